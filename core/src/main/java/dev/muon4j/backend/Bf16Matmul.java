package dev.muon4j.backend;

import java.lang.foreign.MemorySegment;

/**
 * Matrix products on bfloat16 matrices in native memory with float32 accumulation, for processors
 * whose vector units multiply bfloat16 pairs (x86's AVX512_BF16 {@code vdpbf16ps} or AMX): twice the
 * float32 rate on the same unit. Offered by a {@link Backend} through {@link Backend#bf16Matmul()}.
 *
 * <p>Matrices are row-major arrays of bfloat16 bit patterns (the upper 16 bits of a float32, see
 * {@link dev.muon4j.tensor.BFloat16}) in native segments; a leading dimension is counted in elements.
 * The result is computed in float32 and rounded once to the nearest bfloat16 (ties to even), which
 * is what rounding a float32 product to bfloat16 afterwards gives, up to the order of the float32
 * sums. Calls on one instance are serialised; it is not meant to be shared by threads that need to
 * run side by side ({@link Backend#concurrentWorkers()} have one each).
 */
public interface Bf16Matmul {

    /**
     * {@code C = alpha·op(A)·op(B) + beta·C} with {@code op(A)} m×k, {@code op(B)} k×n, C m×n; C must not
     * overlap A or B. When {@code beta == 0}, C's previous contents are not read.
     *
     * @throws IllegalArgumentException if a segment is not native or is too small for its matrix
     */
    void gemm(boolean transA, boolean transB, int m, int n, int k,
              float alpha, MemorySegment a, int lda, MemorySegment b, int ldb,
              float beta, MemorySegment c, int ldc);

    /** What runs the products, e.g. {@code "oneDNN matmul brg_matmul:avx512_core_bf16, 1 thread"}. */
    String description();

    /** Bytes a rows×cols bfloat16 matrix with leading dimension {@code ld} spans. */
    static long bytes(int rows, int cols, int ld) {
        return rows == 0 || cols == 0 ? 0 : ((long) (rows - 1) * ld + cols) * Short.BYTES;
    }

    /** Checks a matrix argument of {@link #gemm}: native, large enough, leading dimension at least its columns. */
    static void checkMatrix(String what, MemorySegment s, int rows, int cols, int ld) {
        if (rows < 0 || cols < 0) {
            throw new IllegalArgumentException(what + ": negative size " + rows + "×" + cols);
        }
        if (ld < Math.max(1, cols)) {
            throw new IllegalArgumentException(what + ": leading dimension " + ld + " < column count " + cols);
        }
        if (!s.isNative()) {
            throw new IllegalArgumentException(what + ": a bfloat16 matrix must be in native memory, got a heap segment");
        }
        long need = bytes(rows, cols, ld);
        if (s.byteSize() < need) {
            throw new IllegalArgumentException(what + ": " + rows + "×" + cols + " (leading dimension " + ld + ") needs "
                    + need + " bytes, the segment has " + s.byteSize());
        }
    }
}
