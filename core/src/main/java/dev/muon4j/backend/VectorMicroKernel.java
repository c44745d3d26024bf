package dev.muon4j.backend;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link VectorBackend}'s register-blocked micro-kernel on the Vector API. Loaded only when
 * {@link VectorApi#PRESENT}; {@link PlainMicroKernel} is its twin without the Vector API.
 */
final class VectorMicroKernel {
    /** 256-bit vectors where the hardware has them (the micro-kernel is tuned for AVX2), else the preferred shape. */
    static final VectorSpecies<Float> SPECIES = chooseSpecies();
    /** Floats a vector. */
    static final int LANES = SPECIES.length();
    private static final int L = LANES;
    private static final int MR = VectorBackend.MR;
    /** Columns of the tile: two vectors. */
    private static final int NR = 2 * L;

    private VectorMicroKernel() {
    }

    private static VectorSpecies<Float> chooseSpecies() {
        VectorSpecies<Float> preferred = FloatVector.SPECIES_PREFERRED;
        return preferred.vectorBitSize() >= 256 ? FloatVector.SPECIES_256 : preferred;
    }

    /**
     * An {@code MR}×{@code NR} tile {@code T = Σ_q A[·, q]·B[q, ·]} over the packed strips, stored
     * as {@code C = T}, or {@code C = C + T} when {@code accumulate} (a general beta was applied to C
     * beforehand). Loop indices are {@code long}, which C2 compiles to a tighter loop here than
     * {@code int} indices. The stores are written out in place rather than in a helper: a helper that
     * C2 declines to inline after a deoptimisation would box every vector and run 4× slower.
     */
    static void compute(int kc, float[] a, int aBase, float[] b, int bBase,
                        float[] c, int cIndex, int ldc, boolean accumulate) {
        FloatVector c00 = FloatVector.zero(SPECIES), c01 = c00;
        FloatVector c10 = c00, c11 = c00;
        FloatVector c20 = c00, c21 = c00;
        FloatVector c30 = c00, c31 = c00;
        FloatVector c40 = c00, c41 = c00;
        for (long q = 0; q < kc; q++) {
            int bi = (int) (bBase + q * NR);
            int ai = (int) (aBase + q * MR);
            FloatVector b0 = FloatVector.fromArray(SPECIES, b, bi);
            FloatVector b1 = FloatVector.fromArray(SPECIES, b, bi + L);
            FloatVector av = FloatVector.broadcast(SPECIES, a[ai]);
            c00 = b0.fma(av, c00);
            c01 = b1.fma(av, c01);
            av = FloatVector.broadcast(SPECIES, a[ai + 1]);
            c10 = b0.fma(av, c10);
            c11 = b1.fma(av, c11);
            av = FloatVector.broadcast(SPECIES, a[ai + 2]);
            c20 = b0.fma(av, c20);
            c21 = b1.fma(av, c21);
            av = FloatVector.broadcast(SPECIES, a[ai + 3]);
            c30 = b0.fma(av, c30);
            c31 = b1.fma(av, c31);
            av = FloatVector.broadcast(SPECIES, a[ai + 4]);
            c40 = b0.fma(av, c40);
            c41 = b1.fma(av, c41);
        }
        int r0 = cIndex;
        int r1 = cIndex + ldc;
        int r2 = cIndex + 2 * ldc;
        int r3 = cIndex + 3 * ldc;
        int r4 = cIndex + 4 * ldc;
        if (accumulate) {
            c00 = c00.add(FloatVector.fromArray(SPECIES, c, r0));
            c01 = c01.add(FloatVector.fromArray(SPECIES, c, r0 + L));
            c10 = c10.add(FloatVector.fromArray(SPECIES, c, r1));
            c11 = c11.add(FloatVector.fromArray(SPECIES, c, r1 + L));
            c20 = c20.add(FloatVector.fromArray(SPECIES, c, r2));
            c21 = c21.add(FloatVector.fromArray(SPECIES, c, r2 + L));
            c30 = c30.add(FloatVector.fromArray(SPECIES, c, r3));
            c31 = c31.add(FloatVector.fromArray(SPECIES, c, r3 + L));
            c40 = c40.add(FloatVector.fromArray(SPECIES, c, r4));
            c41 = c41.add(FloatVector.fromArray(SPECIES, c, r4 + L));
        }
        c00.intoArray(c, r0);
        c01.intoArray(c, r0 + L);
        c10.intoArray(c, r1);
        c11.intoArray(c, r1 + L);
        c20.intoArray(c, r2);
        c21.intoArray(c, r2 + L);
        c30.intoArray(c, r3);
        c31.intoArray(c, r3 + L);
        c40.intoArray(c, r4);
        c41.intoArray(c, r4 + L);
    }
}
