package dev.muon4j.autograd;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;

/**
 * Vector-API helpers whose results are the same bits whether HotSpot runs the code interpreted,
 * C1- or C2-compiled. Two Vector-API operations are not fully specified and do change with the JIT
 * tier: {@code reduceLanes(ADD)} on floats (the compiled form adds the lanes in another order
 * than the Java fallback) and the transcendental lane-wise operations such as {@code EXP} (the
 * compiled form calls a vector math library, the fallback {@code Math.exp}). Using them made two
 * identical training runs in one JVM differ in the last bits once the JIT had warmed up, and a
 * run resumed in a fresh JVM differ from the uninterrupted one. These helpers use only exactly
 * specified lane operations (add, multiply, fused multiply-add, min, max, conversions, shifts).
 */
final class ExactBits {
    private ExactBits() {
    }

    /** The lanes of {@code v} added in lane order, in double. */
    static double sumLanes(FloatVector v) {
        double sum = 0;
        for (int i = 0; i < v.length(); i++) {
            sum += v.lane(i);
        }
        return sum;
    }

    private static final float LOG2E = 1.44269504088896341f;
    /** ln 2 split so that n·LN2_HI is exact for |n| < 2^8. */
    private static final float LN2_HI = 0.693145751953125f;
    private static final float LN2_LO = 1.42860682030941723212e-6f;
    /** 1.5·2^23: adding it rounds a float of magnitude < 2^22 to an integer (round half to even). */
    private static final float ROUND = 12582912f;
    /** Below this e^x is flushed to 0 (e^−86 ≈ 4.5e−38, near the smallest normal float). */
    private static final float LOW = -86f;
    /** Above this e^x overflows to +∞ anyway; clamping keeps the exponent arithmetic in range. */
    private static final float HIGH = 89f;
    // Taylor coefficients 1/k! of e^r for |r| ≤ ln2/2; the truncation error after r^7 is < 6e−9.
    private static final float C2 = 1f / 2, C3 = 1f / 6, C4 = 1f / 24, C5 = 1f / 120, C6 = 1f / 720, C7 = 1f / 5040;

    /**
     * e^x within about 2 ulp of {@code Math.exp} for results above 4.5e−38, 0 below that, +∞ on
     * overflow, NaN for NaN: x = n·ln2 + r, e^r by a degree-7 polynomial, times 2^n built from bits.
     * {@link #expShiftInPlace} computes the same function on vectors, to the same bits.
     */
    static float exp(float x) {
        float xc = Math.min(Math.max(x, LOW), HIGH);
        float n = Math.fma(xc, LOG2E, ROUND) - ROUND;
        float r = Math.fma(n, -LN2_HI, xc);
        r = Math.fma(n, -LN2_LO, r);
        float p = Math.fma(Math.fma(Math.fma(Math.fma(Math.fma(Math.fma(Math.fma(r, C7, C6), r, C5), r, C4), r, C3), r, C2), r, 1f), r, 1f);
        float scale = Float.intBitsToFloat(((int) n + 126) << 23);
        float y = p * scale * 2f;
        return x < LOW ? 0f : y;
    }

    // The vector form of exp lives inside the loop of the array kernel below rather than in a method
    // of its own: once C2 has compiled such a method alone, its machine code is too large to be
    // inlined into a caller, and a vector passed to or returned from a call that is not inlined is
    // boxed on the heap, which made the training step 20% slower.

    /**
     * x[off..off+n) ← exp(x − shift), the same bits as {@link #exp(float)} per element; returns the
     * sum of the results (vector lanes added in lane order, in double).
     */
    static double expShiftInPlace(float[] x, int off, int n, float shift) {
        var species = FloatVector.SPECIES_PREFERRED;
        int lanes = species.length();
        FloatVector acc = FloatVector.zero(species);
        int j = 0;
        for (int bound = species.loopBound(n); j < bound; j += lanes) {
            FloatVector v = FloatVector.fromArray(species, x, off + j).sub(shift);
            FloatVector xc = v.max(LOW).min(HIGH);
            FloatVector k = xc.fma(LOG2E, ROUND).sub(ROUND);
            FloatVector r = k.fma(FloatVector.broadcast(species, -LN2_HI), xc);
            r = k.fma(FloatVector.broadcast(species, -LN2_LO), r);
            FloatVector p = r.fma(C7, C6);
            p = p.fma(r, FloatVector.broadcast(species, C5));
            p = p.fma(r, FloatVector.broadcast(species, C4));
            p = p.fma(r, FloatVector.broadcast(species, C3));
            p = p.fma(r, FloatVector.broadcast(species, C2));
            p = p.fma(r, FloatVector.broadcast(species, 1f));
            p = p.fma(r, FloatVector.broadcast(species, 1f));
            FloatVector scale = ((FloatVector) k.convert(VectorOperators.F2I, 0)
                    .lanewise(VectorOperators.ADD, 126).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats());
            FloatVector e = p.mul(scale).mul(2f).blend(0f, v.compare(VectorOperators.LT, LOW));
            e.intoArray(x, off + j);
            acc = acc.add(e);
        }
        double sum = sumLanes(acc);
        for (; j < n; j++) {
            float e = exp(x[off + j] - shift);
            x[off + j] = e;
            sum += e;
        }
        return sum;
    }

    /** out[i] = σ(in[i]) = 1 / (1 + exp(−in[i])) for i in [from, to), the same bits as {@link #sigmoid(float)}. */
    static void sigmoid(float[] in, float[] out, int from, int to) {
        var species = FloatVector.SPECIES_PREFERRED;
        int lanes = species.length();
        int bound = from + species.loopBound(to - from);
        for (int j = from; j < bound; j += lanes) {
            FloatVector.fromArray(species, in, j).neg().intoArray(out, j);
        }
        expShiftInPlace(out, from, bound - from, 0f);
        for (int j = from; j < bound; j += lanes) {
            FloatVector.broadcast(species, 1f).div(FloatVector.fromArray(species, out, j).add(1f)).intoArray(out, j);
        }
        for (int j = bound; j < to; j++) {
            out[j] = sigmoid(in[j]);
        }
    }

    /** σ(x) = 1 / (1 + exp(−x)) with {@link #exp(float)}. */
    static float sigmoid(float x) {
        return 1f / (1f + exp(-x));
    }
}
