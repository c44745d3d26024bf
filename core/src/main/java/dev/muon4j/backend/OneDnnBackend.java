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
 * {@link Backend} over oneDNN's {@code dnnl_sgemm} (the UXL Foundation's Deep Neural Network
 * Library, formerly Intel MKL-DNN), called through java.lang.foreign on heap arrays.
 *
 * <p>Why oneDNN: its GEMM is generated at run time for the widest vector unit the processor has
 * (AVX-512 where present, AVX2 otherwise), whatever the machine. OpenBLAS chooses its kernels when
 * the library loads, and on the processors where the environment sets {@code OPENBLAS_CORETYPE}
 * (older OpenBLAS builds miscompute there) it runs the AVX2 kernels even on an AVX-512 machine:
 * measured on a 2-core AMD Zen 5, 2048² GEMM ran at 355 GFLOP/s in oneDNN 3.11 against 174 in
 * OpenBLAS 0.3.31 (docs/BENCHMARKS.md).
 *
 * <p>oneDNN has no SYRK or SYMM, so both are built from its GEMM here:
 * <ul>
 *   <li>{@link #syrk} computes the upper triangle by block rows: rows {@code [r0, r1)} of C are one
 *       GEMM over columns {@code [r0, n)}, so only the diagonal blocks' lower halves are computed
 *       needlessly (with four blocks, 1.25× SYRK's flops, at GEMM's rate). The diagonal blocks'
 *       strictly lower triangles are saved before and put back after, keeping the contract that
 *       the strictly lower triangle of C is left untouched.</li>
 *   <li>{@link #symm} copies the upper triangle of S into a full m×m matrix and runs one GEMM; the
 *       copy is m² floats against the product's 2m²n flops.</li>
 * </ul>
 *
 * <p>Threads: the library from {@code org.bytedeco:dnnl} runs on GNU OpenMP, whose thread count is
 * a per-calling-thread setting; every call first sets it to this backend's count on the calling
 * thread, so the count holds whichever Java thread calls. Calls on one instance are serialised
 * (the SYMM and SYRK scratch is per instance); {@link #concurrentWorkers()} gives one-thread
 * instances that run side by side.
 */
public final class OneDnnBackend implements Backend {
    /** Block rows of {@link #syrk}: at least this many rows per block… */
    private static final int SYRK_MIN_BLOCK = 64;
    /** …and at most this many blocks. */
    private static final int SYRK_MAX_BLOCKS = 4;

    private static final ValueLayout.OfInt I = ValueLayout.JAVA_INT;
    private static final ValueLayout.OfByte C = ValueLayout.JAVA_BYTE;
    private static final ValueLayout.OfLong J = ValueLayout.JAVA_LONG;
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT;
    private static final ValueLayout P = ValueLayout.ADDRESS;

    private final Path library;
    private final int threads;
    private final String version;
    private final String isa;
    private final MethodHandle sgemm;
    private final MethodHandle setOmpThreads;
    /** The library's matmul functions and engine; null where the processor has no bfloat16 products. */
    private final OneDnnMatmul.Library matmulLibrary;
    private OneDnnMatmul matmul;
    private float[] scratch = new float[0];
    private java.util.List<Backend> workers;

    private OneDnnBackend(Path library, SymbolLookup dnnl, SymbolLookup gomp, int threads) {
        this.library = library;
        this.threads = threads;
        Linker linker = Linker.nativeLinker();
        this.sgemm = linker.downcallHandle(find(dnnl, "dnnl_sgemm", library),
                FunctionDescriptor.of(I, C, C, J, J, J, F, P, J, P, J, F, P, J), Linker.Option.critical(true));
        this.setOmpThreads = linker.downcallHandle(find(gomp, "omp_set_num_threads", library), FunctionDescriptor.ofVoid(I));
        MethodHandle versionHandle = linker.downcallHandle(find(dnnl, "dnnl_version", library), FunctionDescriptor.of(P));
        MethodHandle isaHandle = linker.downcallHandle(find(dnnl, "dnnl_get_effective_cpu_isa", library), FunctionDescriptor.of(I));
        try {
            // dnnl_version_t: int major, minor, patch; const char *hash; unsigned cpu_runtime, gpu_runtime
            MemorySegment v = ((MemorySegment) versionHandle.invokeExact()).reinterpret(12);
            this.version = v.get(I, 0) + "." + v.get(I, 4) + "." + v.get(I, 8);
            int isaBits = (int) isaHandle.invokeExact();
            this.isa = isaName(isaBits);
            this.matmulLibrary = (isaBits & ISA_AVX512_BF16) == ISA_AVX512_BF16 ? new OneDnnMatmul.Library(dnnl, library, setOmpThreads) : null;
        } catch (Throwable t) {
            throw new IllegalStateException("oneDNN at " + library + " failed to initialise", t);
        }
    }

    /**
     * dnnl_cpu_isa_avx512_core_bf16 (dnnl_types.h): AVX-512 with bfloat16 dot products; the ISAs above it
     * (AMX, AVX10) contain its bits.
     */
    private static final int ISA_AVX512_BF16 = 0xe7;

    /** A one-thread backend over the same library and handles as {@code parent}, with scratch of its own. */
    private OneDnnBackend(OneDnnBackend parent) {
        this.library = parent.library;
        this.threads = 1;
        this.version = parent.version;
        this.isa = parent.isa;
        this.sgemm = parent.sgemm;
        this.setOmpThreads = parent.setOmpThreads;
        this.matmulLibrary = parent.matmulLibrary;
    }

    /**
     * Opens oneDNN from {@code library}, whose directory also holds the {@code libgomp.so.1} it was
     * built against (found through its RUNPATH {@code $ORIGIN}).
     *
     * @throws IllegalStateException if the library cannot be loaded or lacks a needed symbol
     */
    static OneDnnBackend open(Path library, int threads) {
        SymbolLookup dnnl;
        SymbolLookup gomp;
        try {
            dnnl = SymbolLookup.libraryLookup(library, Arena.global());
            gomp = SymbolLookup.libraryLookup(library.resolveSibling("libgomp.so.1"), Arena.global());
        } catch (IllegalArgumentException e) {
            throw new IllegalStateException("cannot load oneDNN from " + library + ": " + e.getMessage(), e);
        }
        return new OneDnnBackend(library, dnnl, gomp, threads);
    }

    private static MemorySegment find(SymbolLookup lookup, String symbol, Path library) {
        return lookup.find(symbol).orElseThrow(
                () -> new IllegalStateException("oneDNN library " + library + " lacks symbol " + symbol));
    }

    /**
     * Names oneDNN's {@code dnnl_cpu_isa_t} values (dnnl_types.h: each is the bit set of the ones it
     * contains) by the widest unit; unknown values are shown in hex.
     */
    static String isaName(int isa) {
        return switch (isa) {
            case 0x1 -> "SSE4.1";
            case 0x3 -> "AVX";
            case 0x7 -> "AVX2";
            case 0xf -> "AVX2+VNNI";
            case 0x1f -> "AVX2+VNNI2";
            case 0x27 -> "AVX-512";
            case 0x67 -> "AVX-512+VNNI";
            case 0xe7 -> "AVX-512+BF16";
            default -> (isa & 0x27) == 0x27 ? "AVX-512 (isa 0x" + Integer.toHexString(isa) + ")"
                    : "isa 0x" + Integer.toHexString(isa);
        };
    }

    /** The shared library file this backend was loaded from. */
    public Path library() {
        return library;
    }

    /** The vector instruction set oneDNN's kernels use on this processor, e.g. {@code AVX-512+BF16}. */
    public String isa() {
        return isa;
    }

    @Override
    public String description() {
        return "oneDNN " + version + " (bundled, " + isa + ") from " + library + ", " + threads + " thread"
                + (threads == 1 ? "" : "s");
    }

    @Override
    public BackendKind kind() {
        return BackendKind.ONEDNN;
    }

    @Override
    public int threads() {
        return threads;
    }

    /**
     * {@code threads} one-thread backends: {@code dnnl_sgemm} may be called from several threads at
     * once, and each call's OpenMP team is set per calling thread. Measured on 2 Zen 5 cores, 96
     * Newton–Schulz problems of 256×384 ran in 0.18 s as two one-thread streams against 0.35 s one
     * at a time on two threads (docs/BENCHMARKS.md).
     */
    @Override
    public synchronized java.util.List<Backend> concurrentWorkers() {
        if (workers == null) {
            java.util.List<Backend> list = new java.util.ArrayList<>();
            for (int i = 0; threads > 1 && i < threads; i++) {
                list.add(new OneDnnBackend(this));
            }
            workers = java.util.List.copyOf(list);
        }
        return workers;
    }

    /**
     * oneDNN's matmul primitive on bfloat16 matrices where the processor multiplies bfloat16 pairs
     * (AVX512_BF16, AMX); empty elsewhere, where oneDNN would convert to float32 and gain nothing.
     */
    @Override
    public synchronized java.util.Optional<Bf16Matmul> bf16Matmul() {
        if (matmulLibrary == null) {
            return java.util.Optional.empty();
        }
        if (matmul == null) {
            matmul = new OneDnnMatmul(matmulLibrary, threads);
        }
        return java.util.Optional.of(matmul);
    }

    @Override
    public synchronized void close() {
        if (matmul != null) {
            matmul.close();
            matmul = null;
        }
        if (workers != null) {
            for (Backend w : workers) {
                w.close();
            }
        }
    }

    @Override
    public synchronized void gemm(boolean transA, boolean transB, int m, int n, int k,
                                  float alpha, float[] a, int aOffset, int lda,
                                  float[] b, int bOffset, int ldb,
                                  float beta, float[] c, int cOffset, int ldc) {
        if (!Backend.gemmNeedsProduct(transA, transB, m, n, k, a, aOffset, lda, b, bOffset, ldb, beta, c, cOffset, ldc)) {
            return;
        }
        call(transA, transB, m, n, k, alpha, a, aOffset, lda, b, bOffset, ldb, beta, c, cOffset, ldc);
    }

    private void call(boolean transA, boolean transB, int m, int n, int k,
                      float alpha, float[] a, int aOffset, int lda,
                      float[] b, int bOffset, int ldb,
                      float beta, float[] c, int cOffset, int ldc) {
        int status;
        try {
            setOmpThreads.invokeExact(threads);
            status = (int) sgemm.invokeExact(transA ? (byte) 'T' : (byte) 'N', transB ? (byte) 'T' : (byte) 'N',
                    (long) m, (long) n, (long) k, alpha, at(a, aOffset), (long) lda, at(b, bOffset), (long) ldb,
                    beta, at(c, cOffset), (long) ldc);
        } catch (Throwable t) {
            throw new IllegalStateException("dnnl_sgemm failed", t);
        }
        if (status != 0) {
            throw new IllegalStateException("dnnl_sgemm returned status " + status + " for " + m + "×" + n + "×" + k
                    + (transA ? " (A transposed)" : "") + (transB ? " (B transposed)" : ""));
        }
    }

    @Override
    public synchronized void syrk(boolean trans, int n, int k,
                                  float alpha, float[] a, int aOffset, int lda,
                                  float beta, float[] c, int cOffset, int ldc) {
        if (!Backend.syrkNeedsProduct(trans, n, k, a, aOffset, lda, beta, c, cOffset, ldc)) {
            return;
        }
        int blocks = Math.max(1, Math.min(SYRK_MAX_BLOCKS, n / SYRK_MIN_BLOCK));
        int block = (n + blocks - 1) / blocks;
        float[] saved = scratch(block * block);
        for (int r0 = 0; r0 < n; r0 += block) {
            int rows = Math.min(block, n - r0);
            int diagonal = cOffset + r0 * ldc + r0;
            saveOrRestoreLower(c, diagonal, rows, ldc, saved, true);
            // rows [r0, r0+rows) of C, columns [r0, n): A[r0..]·A[r0..]ᵀ, or (Aᵀ·A) restricted likewise
            int rowsOffset = trans ? aOffset + r0 : aOffset + r0 * lda;
            call(trans, !trans, rows, n - r0, k, alpha, a, rowsOffset, lda, a, rowsOffset, lda, beta, c, diagonal, ldc);
            saveOrRestoreLower(c, diagonal, rows, ldc, saved, false);
        }
    }

    /** Copies the strictly lower triangle of the {@code rows}² block at {@code at} into {@code saved}, or back. */
    private static void saveOrRestoreLower(float[] c, int at, int rows, int ldc, float[] saved, boolean save) {
        int s = 0;
        for (int i = 1; i < rows; i++) {
            int row = at + i * ldc;
            if (save) {
                System.arraycopy(c, row, saved, s, i);
            } else {
                System.arraycopy(saved, s, c, row, i);
            }
            s += i;
        }
    }

    @Override
    public synchronized void symm(int m, int n,
                                  float alpha, float[] s, int sOffset, int lds,
                                  float[] b, int bOffset, int ldb,
                                  float beta, float[] c, int cOffset, int ldc) {
        if (!Backend.symmNeedsProduct(m, n, s, sOffset, lds, b, bOffset, ldb, c, cOffset, ldc)) {
            return;
        }
        float[] full = scratch(m * m);
        Kernels.expandUpper(s, sOffset, m, lds, full);
        call(false, false, m, n, m, alpha, full, 0, m, b, bOffset, ldb, beta, c, cOffset, ldc);
    }

    private float[] scratch(int floats) {
        if (scratch.length < floats) {
            scratch = new float[floats];
        }
        return scratch;
    }

    private static MemorySegment at(float[] array, int offset) {
        MemorySegment s = MemorySegment.ofArray(array);
        return offset == 0 ? s : s.asSlice((long) offset * Float.BYTES);
    }
}
