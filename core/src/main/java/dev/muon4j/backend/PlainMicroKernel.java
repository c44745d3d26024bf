package dev.muon4j.backend;

/**
 * {@link VectorBackend}'s micro-kernel as plain loops, for a JVM without
 * {@code jdk.incubator.vector}: the same fused multiply-adds as {@code VectorMicroKernel}, element
 * by element in the same order of q, so the same bits for a tile of the same width.
 */
final class PlainMicroKernel {
    /** The width of a tile is two of these without the Vector API: that of a 256-bit vector of floats. */
    static final int LANES = 8;

    private PlainMicroKernel() {
    }

    /**
     * An {@code MR}×{@code NR} tile {@code T = Σ_q A[·, q]·B[q, ·]} over the packed strips (layouts
     * as in {@link VectorBackend}), stored as {@code C = T}, or {@code C = C + T} when
     * {@code accumulate}. {@code sums} (at least MR·NR floats) holds the running sums; modified.
     */
    static void compute(int kc, float[] a, int aBase, float[] b, int bBase,
                        float[] c, int cIndex, int ldc, boolean accumulate, float[] sums) {
        int mr = VectorBackend.MR;
        int nr = VectorBackend.NR;
        java.util.Arrays.fill(sums, 0, mr * nr, 0f);
        for (int q = 0; q < kc; q++) {
            int bi = bBase + q * nr;
            int ai = aBase + q * mr;
            for (int r = 0; r < mr; r++) {
                float av = a[ai + r];
                int row = r * nr;
                for (int j = 0; j < nr; j++) {
                    sums[row + j] = Math.fma(b[bi + j], av, sums[row + j]);
                }
            }
        }
        for (int r = 0; r < mr; r++) {
            int row = cIndex + r * ldc;
            for (int j = 0; j < nr; j++) {
                float t = sums[r * nr + j];
                c[row + j] = accumulate ? t + c[row + j] : t;
            }
        }
    }
}
