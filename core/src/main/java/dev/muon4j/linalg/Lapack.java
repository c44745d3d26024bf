package dev.muon4j.linalg;

import dev.muon4j.backend.Backends;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Path;
import java.util.Objects;

/**
 * LAPACK routines from OpenBLAS (which ships LAPACK and its C interface, LAPACKE, beside BLAS), called
 * through java.lang.foreign as {@code OpenBlasBackend} calls the GEMM. For now one routine: the
 * singular values of a float32 matrix by {@code LAPACKE_sgesdd} with {@code jobz = 'N'} (values only: a
 * bidiagonal reduction, then the bidiagonal matrix's singular values).
 *
 * <p>The rule of the backends holds here too: never call into OpenBLAS from two Java threads at once.
 * An instance holds no state beyond the library's function handles.
 *
 * <p>Each call runs on one OpenBLAS thread: the library's thread count (process-wide, shared with an
 * OpenBLAS backend loaded from the same file) is set to 1 for the call and put back after it. sgesdd's
 * bidiagonal reduction is a sequence of matrix-vector products too small to share between threads, and
 * sharing them cost far more than it saved: the values of the 175 hidden matrices of the tiny
 * Mixture-of-Experts model (up to 512 × 192) took 7.5 to 18 s on 2 threads and 0.6 to 1.1 s on one, on
 * 2 Zen 5 cores busy with other work (load average 10, 2026-11-28).
 */
public final class Lapack {
    /** LAPACKE's {@code LAPACK_COL_MAJOR} (lapacke.h). */
    private static final int COL_MAJOR = 102;
    /** {@code jobz = 'N'}: compute no singular vectors (sgesdd's documentation). */
    private static final byte VALUES_ONLY = 'N';

    private static final ValueLayout.OfInt I = ValueLayout.JAVA_INT;
    private static final ValueLayout P = ValueLayout.ADDRESS;

    private final Path library;
    private final MethodHandle sgesdd;
    /** OpenBLAS's {@code openblas_get_num_threads} and {@code openblas_set_num_threads}; null for another LAPACK. */
    private final MethodHandle getThreads;
    private final MethodHandle setThreads;

    private Lapack(Path library, SymbolLookup lookup) {
        this.library = library;
        MemorySegment symbol = lookup.find("LAPACKE_sgesdd").orElseThrow(() -> new IllegalStateException(
                "the library " + library + " has no LAPACKE_sgesdd: an OpenBLAS built without LAPACK cannot compute singular values"));
        // lapack_int LAPACKE_sgesdd(int layout, char jobz, lapack_int m, lapack_int n, float* a, lapack_int lda, float* s,
        //                           float* u, lapack_int ldu, float* vt, lapack_int ldvt); lapack_int is 32 bits (LP64 build).
        this.sgesdd = Linker.nativeLinker().downcallHandle(symbol,
                FunctionDescriptor.of(I, I, ValueLayout.JAVA_BYTE, I, I, P, I, P, P, I, P, I));
        var get = lookup.find("openblas_get_num_threads");
        var set = lookup.find("openblas_set_num_threads");
        boolean openBlas = get.isPresent() && set.isPresent();
        this.getThreads = openBlas ? Linker.nativeLinker().downcallHandle(get.get(), FunctionDescriptor.of(I)) : null;
        this.setThreads = openBlas ? Linker.nativeLinker().downcallHandle(set.get(), FunctionDescriptor.ofVoid(I)) : null;
    }

    /**
     * LAPACK of the libopenblas in Maven's {@code org.bytedeco:openblas} jar on the class path (extracted as
     * {@link Backends#openBundled} does), whichever backend the process computes with.
     *
     * @throws IllegalStateException saying why when the library cannot be extracted or loaded (no natives for this
     *                               platform on the class path) or lacks LAPACKE
     */
    public static Lapack openBundled() {
        Path library;
        try {
            library = Backends.bundledOpenBlasLibrary();
        } catch (IllegalStateException e) {
            throw new IllegalStateException("singular values need LAPACK from the bundled OpenBLAS (org.bytedeco:openblas, "
                    + "linux-x86_64), which is not available here: " + e.getMessage(), e);
        }
        return open(library);
    }

    /**
     * LAPACK of the OpenBLAS (or other LAPACKE) library at {@code library}.
     *
     * @throws IllegalStateException naming the file when it cannot be loaded or lacks LAPACKE_sgesdd
     */
    public static Lapack open(Path library) {
        Objects.requireNonNull(library, "library");
        SymbolLookup lookup;
        try {
            lookup = SymbolLookup.libraryLookup(library, Arena.global());
        } catch (IllegalArgumentException e) {
            throw new IllegalStateException("cannot load LAPACK from " + library + ": " + e.getMessage(), e);
        }
        return new Lapack(library, lookup);
    }

    /** The shared library file the routines come from. */
    public Path library() {
        return library;
    }

    /**
     * The singular values of the {@code rows} × {@code cols} row-major matrix at {@code a[offset..]}, largest
     * first: min(rows, cols) values, each ≥ 0, in float32 (each within a modest multiple of float32's ε times the
     * largest, the bound of LAPACK Users' Guide §4.9 for its SVD drivers). {@code a} is not modified.
     *
     * @throws IllegalArgumentException naming the value when a size is below 1, the matrix does not fit in {@code a}
     *                                  from {@code offset}, or an entry is not finite (naming its row and column)
     * @throws IllegalStateException    when LAPACK reports a failure (its {@code info}, explained)
     */
    public float[] singularValues(float[] a, int offset, int rows, int cols) {
        Objects.requireNonNull(a, "matrix");
        if (rows < 1 || cols < 1) {
            throw new IllegalArgumentException("singular values of a " + rows + " × " + cols + " matrix: both sizes must be at least 1");
        }
        long size = (long) rows * cols;
        if (offset < 0 || offset + size > a.length) {
            throw new IllegalArgumentException("a " + rows + " × " + cols + " matrix at offset " + offset + " does not fit in an array of "
                    + a.length + " floats");
        }
        for (int i = 0; i < size; i++) {
            if (!Float.isFinite(a[offset + i])) {
                throw new IllegalArgumentException("singular values of a " + rows + " × " + cols + " matrix: entry (" + i / cols + ", "
                        + i % cols + ") is " + a[offset + i] + ", not a finite number");
            }
        }
        int k = Math.min(rows, cols);
        try (Arena arena = Arena.ofConfined()) {
            // sgesdd overwrites its input, so it gets a copy. Read column-major, the row-major rows × cols matrix is its
            // cols × rows transpose, which has the same singular values: no transposition needed.
            MemorySegment copy = arena.allocate(ValueLayout.JAVA_FLOAT, size);
            MemorySegment.copy(a, offset, copy, ValueLayout.JAVA_FLOAT, 0, (int) size);
            MemorySegment s = arena.allocate(ValueLayout.JAVA_FLOAT, k);
            int info;
            try {
                int threads = getThreads == null ? 1 : (int) getThreads.invokeExact();
                if (threads != 1) {
                    setThreads.invokeExact(1);
                }
                try {
                    info = (int) sgesdd.invokeExact(COL_MAJOR, VALUES_ONLY, cols, rows, copy, cols, s, MemorySegment.NULL, 1,
                            MemorySegment.NULL, 1);
                } finally {
                    if (threads != 1) {
                        setThreads.invokeExact(threads);
                    }
                }
            } catch (Throwable t) {
                throw new IllegalStateException("LAPACKE_sgesdd from " + library + " failed", t);
            }
            if (info != 0) {
                throw new IllegalStateException("LAPACKE_sgesdd on a " + rows + " × " + cols + " matrix returned info " + info + ": "
                        + (info <= -1010 ? "LAPACKE could not allocate its work memory"
                        : info < 0 ? "argument " + -info + " was refused" : "the bidiagonal iteration did not converge"));
            }
            return s.toArray(ValueLayout.JAVA_FLOAT);
        }
    }
}
