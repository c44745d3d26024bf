package dev.muon4j.backend;

/**
 * Dense float32 linear algebra on row-major matrices stored in heap {@code float[]} arrays.
 *
 * <p>Every matrix argument is a base array, an offset into it and a leading dimension (the
 * distance in floats between the starts of consecutive rows). Output arrays are modified; input
 * arrays are not. An output must not overlap an input. Implementations are chosen once (see
 * {@link Backends}) and passed to whatever needs them; there is no global instance.
 *
 * <p>Implementations are not required to be safe for concurrent calls from several Java threads:
 * each backend already uses all the threads it was configured with.
 */
public interface Backend extends AutoCloseable {

    /** Short human-readable description, e.g. {@code "OpenBLAS 0.3.31 (bundled), 2 threads"}. */
    String description();

    /** Which implementation this is. */
    BackendKind kind();

    /** Number of compute threads this backend uses. */
    int threads();

    /**
     * General matrix product {@code C = alpha·op(A)·op(B) + beta·C}, where {@code op(X)} is
     * {@code X} or {@code Xᵀ}. {@code op(A)} is m×k, {@code op(B)} is k×n, {@code C} is m×n.
     * When {@code beta == 0}, C's previous contents are ignored (NaNs in C do not propagate).
     */
    void gemm(boolean transA, boolean transB, int m, int n, int k,
              float alpha, float[] a, int aOffset, int lda,
              float[] b, int bOffset, int ldb,
              float beta, float[] c, int cOffset, int ldc);

    /**
     * Symmetric rank-k update of the upper triangle: {@code C = alpha·A·Aᵀ + beta·C} with A n×k
     * ({@code trans == false}), or {@code C = alpha·Aᵀ·A + beta·C} with A k×n ({@code trans == true}).
     * C is n×n; only its upper triangle (including the diagonal) is read and written, the strictly
     * lower triangle is left untouched.
     */
    void syrk(boolean trans, int n, int k,
              float alpha, float[] a, int aOffset, int lda,
              float beta, float[] c, int cOffset, int ldc);

    /**
     * Symmetric times general: {@code C = alpha·S·B + beta·C} with S m×m symmetric, of which only
     * the upper triangle is read, B and C m×n.
     */
    void symm(int m, int n,
              float alpha, float[] s, int sOffset, int lds,
              float[] b, int bOffset, int ldb,
              float beta, float[] c, int cOffset, int ldc);

    /**
     * Independent one-thread backends, as many as this backend has threads, that may run at the same
     * time, each called from its own Java thread. For work made of many small, independent products
     * (Newton–Schulz over a stack of expert matrices): one product at a time on all threads spends
     * much of its time handing work between the threads, one product per thread does not. Empty
     * (the default) where the library cannot run calls side by side or this backend has one thread.
     * The same list is returned every time; its backends close with this one.
     */
    default java.util.List<Backend> concurrentWorkers() {
        return java.util.List.of();
    }

    /**
     * Products of bfloat16 matrices in native memory at the processor's bfloat16 rate, where this
     * backend has them (oneDNN on a processor with AVX512_BF16 or AMX); empty (the default) elsewhere.
     * Newton–Schulz in {@link dev.muon4j.tensor.DType#BF16} precision runs on it when present. The
     * same instance is returned every time; it closes with this backend.
     */
    default java.util.Optional<Bf16Matmul> bf16Matmul() {
        return java.util.Optional.empty();
    }

    /** Releases native resources, if any. Further calls are undefined. */
    @Override
    default void close() {
    }

    /** Checks that a row-major matrix of {@code rows × cols} with leading dimension {@code ld} fits in {@code array}. */
    static void checkMatrix(String what, float[] array, int offset, int rows, int cols, int ld) {
        if (rows < 0 || cols < 0) {
            throw new IllegalArgumentException(what + ": negative size " + rows + "×" + cols);
        }
        if (ld < Math.max(1, cols)) {
            throw new IllegalArgumentException(what + ": leading dimension " + ld + " < column count " + cols);
        }
        if (rows == 0 || cols == 0) {
            return;
        }
        long last = (long) offset + (long) (rows - 1) * ld + cols;
        if (offset < 0 || last > array.length) {
            throw new IllegalArgumentException(what + ": " + rows + "×" + cols + " matrix at offset " + offset
                    + " with leading dimension " + ld + " needs " + last + " floats, array has " + array.length);
        }
    }

    /** Checks the three operands of {@link #gemm} fit their arrays; an implementation calls it first. */
    static void checkGemm(boolean transA, boolean transB, int m, int n, int k, float[] a, int aOffset, int lda,
                          float[] b, int bOffset, int ldb, float[] c, int cOffset, int ldc) {
        checkMatrix("gemm A", a, aOffset, transA ? k : m, transA ? m : k, lda);
        checkMatrix("gemm B", b, bOffset, transB ? n : k, transB ? k : n, ldb);
        checkMatrix("gemm C", c, cOffset, m, n, ldc);
    }

    /**
     * The part of {@link #gemm} every implementation shares: checks the operands, and does the whole
     * call when no product is needed (an empty C; or k = 0, when C only scales by beta). Returns
     * whether the product itself is still to be computed.
     */
    static boolean gemmNeedsProduct(boolean transA, boolean transB, int m, int n, int k, float[] a, int aOffset, int lda,
                                    float[] b, int bOffset, int ldb, float beta, float[] c, int cOffset, int ldc) {
        checkGemm(transA, transB, m, n, k, a, aOffset, lda, b, bOffset, ldb, c, cOffset, ldc);
        if (m == 0 || n == 0) {
            return false;
        }
        if (k == 0) {
            Kernels.scaleMatrix(c, cOffset, m, n, ldc, beta);
            return false;
        }
        return true;
    }

    /** As {@link #gemmNeedsProduct} for {@link #syrk}: with k = 0 only C's upper triangle scales by beta. */
    static boolean syrkNeedsProduct(boolean trans, int n, int k, float[] a, int aOffset, int lda, float beta,
                                    float[] c, int cOffset, int ldc) {
        checkSyrk(trans, n, k, a, aOffset, lda, c, cOffset, ldc);
        if (n == 0) {
            return false;
        }
        if (k == 0) {
            Kernels.scaleUpperTriangle(c, cOffset, n, ldc, beta);
            return false;
        }
        return true;
    }

    /** As {@link #gemmNeedsProduct} for {@link #symm}: an empty C needs nothing. */
    static boolean symmNeedsProduct(int m, int n, float[] s, int sOffset, int lds, float[] b, int bOffset, int ldb,
                                    float[] c, int cOffset, int ldc) {
        checkSymm(m, n, s, sOffset, lds, b, bOffset, ldb, c, cOffset, ldc);
        return m != 0 && n != 0;
    }

    /** Checks the operands of {@link #syrk} fit their arrays. */
    static void checkSyrk(boolean trans, int n, int k, float[] a, int aOffset, int lda, float[] c, int cOffset, int ldc) {
        checkMatrix("syrk A", a, aOffset, trans ? k : n, trans ? n : k, lda);
        checkMatrix("syrk C", c, cOffset, n, n, ldc);
    }

    /** Checks the operands of {@link #symm} fit their arrays. */
    static void checkSymm(int m, int n, float[] s, int sOffset, int lds, float[] b, int bOffset, int ldb,
                          float[] c, int cOffset, int ldc) {
        checkMatrix("symm S", s, sOffset, m, m, lds);
        checkMatrix("symm B", b, bOffset, m, n, ldb);
        checkMatrix("symm C", c, cOffset, m, n, ldc);
    }
}
