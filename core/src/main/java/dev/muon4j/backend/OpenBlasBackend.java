package dev.muon4j.backend;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Path;

/**
 * {@link Backend} over OpenBLAS's CBLAS interface, called through java.lang.foreign.
 *
 * <p>Heap arrays are passed to OpenBLAS directly (downcalls marked {@link Linker.Option#critical
 * critical} with heap access), so no copies are made. OpenBLAS's thread count is process-wide: a
 * process should hold one open OpenBLAS backend at a time.
 */
public final class OpenBlasBackend implements Backend {
    private static final int ROW_MAJOR = 101;
    private static final int NO_TRANS = 111;
    private static final int TRANS = 112;
    private static final int UPPER = 121;
    private static final int LEFT = 141;

    private static final ValueLayout.OfInt I = ValueLayout.JAVA_INT;
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT;
    private static final ValueLayout P = ValueLayout.ADDRESS;

    private final BackendKind kind;
    private final Path library;
    private final int threads;
    private final String config;
    private final MethodHandle sgemm;
    private final MethodHandle ssyrk;
    private final MethodHandle ssymm;

    private OpenBlasBackend(BackendKind kind, Path library, SymbolLookup lookup, int threads) {
        this.kind = kind;
        this.library = library;
        Linker linker = Linker.nativeLinker();
        Linker.Option critical = Linker.Option.critical(true);
        this.sgemm = linker.downcallHandle(find(lookup, "cblas_sgemm"),
                FunctionDescriptor.ofVoid(I, I, I, I, I, I, F, P, I, P, I, F, P, I), critical);
        this.ssyrk = linker.downcallHandle(find(lookup, "cblas_ssyrk"),
                FunctionDescriptor.ofVoid(I, I, I, I, I, F, P, I, F, P, I), critical);
        this.ssymm = linker.downcallHandle(find(lookup, "cblas_ssymm"),
                FunctionDescriptor.ofVoid(I, I, I, I, I, F, P, I, P, I, F, P, I), critical);
        MethodHandle setThreads = linker.downcallHandle(find(lookup, "openblas_set_num_threads"),
                FunctionDescriptor.ofVoid(I));
        MethodHandle getThreads = linker.downcallHandle(find(lookup, "openblas_get_num_threads"),
                FunctionDescriptor.of(I));
        MethodHandle getConfig = linker.downcallHandle(find(lookup, "openblas_get_config"),
                FunctionDescriptor.of(P));
        try {
            setThreads.invokeExact(threads);
            this.threads = (int) getThreads.invokeExact();
            MemorySegment text = (MemorySegment) getConfig.invokeExact();
            this.config = text.reinterpret(1024).getString(0);
        } catch (Throwable t) {
            throw new IllegalStateException("OpenBLAS at " + library + " failed to initialise", t);
        }
    }

    /**
     * Opens OpenBLAS from {@code library} with the given thread count.
     *
     * @throws IllegalStateException if the library cannot be loaded or lacks a needed CBLAS symbol
     */
    static OpenBlasBackend open(BackendKind kind, Path library, int threads) {
        SymbolLookup lookup;
        try {
            lookup = SymbolLookup.libraryLookup(library, Arena.global());
        } catch (IllegalArgumentException e) {
            throw new IllegalStateException("cannot load OpenBLAS from " + library + ": " + e.getMessage(), e);
        }
        return new OpenBlasBackend(kind, library, lookup, threads);
    }

    private static MemorySegment find(SymbolLookup lookup, String symbol) {
        return lookup.find(symbol).orElseThrow(
                () -> new IllegalStateException("OpenBLAS library lacks symbol " + symbol));
    }

    /** The shared library file this backend was loaded from. */
    public Path library() {
        return library;
    }

    @Override
    public String description() {
        return "OpenBLAS (" + (kind == BackendKind.OPENBLAS_SYSTEM ? "system" : "bundled") + ", " + config.strip()
                + ") from " + library + ", " + threads + " thread" + (threads == 1 ? "" : "s");
    }

    @Override
    public BackendKind kind() {
        return kind;
    }

    @Override
    public int threads() {
        return threads;
    }

    private static MemorySegment at(float[] array, int offset) {
        MemorySegment s = MemorySegment.ofArray(array);
        return offset == 0 ? s : s.asSlice((long) offset * Float.BYTES);
    }

    @Override
    public void gemm(boolean transA, boolean transB, int m, int n, int k,
                     float alpha, float[] a, int aOffset, int lda,
                     float[] b, int bOffset, int ldb,
                     float beta, float[] c, int cOffset, int ldc) {
        if (!Backend.gemmNeedsProduct(transA, transB, m, n, k, a, aOffset, lda, b, bOffset, ldb, beta, c, cOffset, ldc)) {
            return;
        }
        try {
            sgemm.invokeExact(ROW_MAJOR, transA ? TRANS : NO_TRANS, transB ? TRANS : NO_TRANS, m, n, k,
                    alpha, at(a, aOffset), lda, at(b, bOffset), ldb, beta, at(c, cOffset), ldc);
        } catch (Throwable t) {
            throw new IllegalStateException("cblas_sgemm failed", t);
        }
    }

    @Override
    public void syrk(boolean trans, int n, int k,
                     float alpha, float[] a, int aOffset, int lda,
                     float beta, float[] c, int cOffset, int ldc) {
        if (!Backend.syrkNeedsProduct(trans, n, k, a, aOffset, lda, beta, c, cOffset, ldc)) {
            return;
        }
        try {
            ssyrk.invokeExact(ROW_MAJOR, UPPER, trans ? TRANS : NO_TRANS, n, k,
                    alpha, at(a, aOffset), lda, beta, at(c, cOffset), ldc);
        } catch (Throwable t) {
            throw new IllegalStateException("cblas_ssyrk failed", t);
        }
    }

    @Override
    public void symm(int m, int n,
                     float alpha, float[] s, int sOffset, int lds,
                     float[] b, int bOffset, int ldb,
                     float beta, float[] c, int cOffset, int ldc) {
        if (!Backend.symmNeedsProduct(m, n, s, sOffset, lds, b, bOffset, ldb, c, cOffset, ldc)) {
            return;
        }
        try {
            ssymm.invokeExact(ROW_MAJOR, LEFT, UPPER, m, n,
                    alpha, at(s, sOffset), lds, at(b, bOffset), ldb, beta, at(c, cOffset), ldc);
        } catch (Throwable t) {
            throw new IllegalStateException("cblas_ssymm failed", t);
        }
    }
}
