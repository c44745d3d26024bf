package dev.muon4j.backend;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The Vector API forms of {@link Kernels}' elementwise kernels, single-threaded, over
 * {@code float[]} ranges. Loaded only when {@link VectorApi#PRESENT}: every reference to this class
 * sits behind that test, so a JVM without {@code jdk.incubator.vector} never links it. Each method
 * is documented at its {@link Kernels} entry point.
 */
final class VectorKernels {
    static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> SI = IntVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    /**
     * Shorts as many as {@link #S}'s floats: bfloat16 patterns of one float vector; null where that would be
     * narrower than the narrowest vector (64 bits: a JVM whose preferred float vector holds 2 lanes), and the
     * bfloat16 conversions then run element by element.
     */
    private static final VectorSpecies<Short> SS = L * Short.SIZE >= 64
            ? VectorSpecies.of(short.class, VectorShape.forBitSize(L * Short.SIZE)) : null;
    private static final java.nio.ByteOrder NATIVE = java.nio.ByteOrder.nativeOrder();

    private VectorKernels() {
    }

    /** {@code x[off..off+len) *= s}; modifies x. */
    static void scale(float[] x, int off, int len, float s) {
        int i = 0;
        for (int bound = S.loopBound(len); i < bound; i += L) {
            FloatVector.fromArray(S, x, off + i).mul(s).intoArray(x, off + i);
        }
        for (; i < len; i++) {
            x[off + i] *= s;
        }
    }

    /** {@code y += a·x} over len elements; modifies y. */
    static void axpy(float a, float[] x, int xOff, float[] y, int yOff, int len) {
        int i = 0;
        for (int bound = S.loopBound(len); i < bound; i += L) {
            FloatVector xv = FloatVector.fromArray(S, x, xOff + i);
            FloatVector.fromArray(S, y, yOff + i).add(xv.mul(a)).intoArray(y, yOff + i);
        }
        for (; i < len; i++) {
            y[yOff + i] += a * x[xOff + i];
        }
    }

    /** {@code y = a·x + b·y} over len elements; modifies y. */
    static void axpby(float a, float[] x, int xOff, float b, float[] y, int yOff, int len) {
        int i = 0;
        for (int bound = S.loopBound(len); i < bound; i += L) {
            FloatVector xv = FloatVector.fromArray(S, x, xOff + i);
            FloatVector.fromArray(S, y, yOff + i).mul(b).add(xv.mul(a)).intoArray(y, yOff + i);
        }
        for (; i < len; i++) {
            y[yOff + i] = a * x[xOff + i] + b * y[yOff + i];
        }
    }

    /**
     * Sum of squares, accumulated per vector lane in float over blocks of 1024 and across lanes and
     * blocks in double, in a fixed order (the same bits interpreted or JIT-compiled).
     */
    static double sumOfSquares(float[] x, int off, int len) {
        double total = 0;
        for (int start = 0; start < len; start += 1024) {
            int n = Math.min(1024, len - start);
            int i = 0;
            FloatVector acc = FloatVector.zero(S);
            for (int bound = S.loopBound(n); i < bound; i += L) {
                FloatVector v = FloatVector.fromArray(S, x, off + start + i);
                acc = v.fma(v, acc);
            }
            // The lanes in lane order: reduceLanes(ADD) adds them in an order that changes with the JIT tier.
            double block = 0;
            for (int lane = 0; lane < L; lane++) {
                block += acc.lane(lane);
            }
            for (; i < n; i++) {
                float v = x[off + start + i];
                block += (double) v * v;
            }
            total += block;
        }
        return total;
    }

    /** Index (relative to off) of the first NaN or infinite value, or -1 if all are finite. */
    static int firstNonFinite(float[] x, int off, int len) {
        int i = 0;
        for (int bound = S.loopBound(len); i < bound; i += L) {
            FloatVector v = FloatVector.fromArray(S, x, off + i);
            // x - x is 0 for finite x and NaN for NaN or ±Inf.
            VectorMask<Float> bad = v.sub(v).test(VectorOperators.IS_NAN);
            if (bad.anyTrue()) {
                return i + bad.firstTrue();
            }
        }
        for (; i < len; i++) {
            if (!Float.isFinite(x[off + i])) {
                return i;
            }
        }
        return -1;
    }

    /**
     * The bfloat16 patterns of a float vector's values, rounded to nearest, ties to even (as {@code BFloat16.toBits}),
     * in the low 16 bits of each lane: infinities pass unchanged and every NaN becomes the canonical NaN.
     */
    private static IntVector bfloat16Bits(FloatVector v) {
        IntVector bits = v.reinterpretAsInts();
        VectorMask<Integer> special = bits.and(0x7f800000).compare(VectorOperators.EQ, 0x7f800000);
        IntVector lsb = bits.lanewise(VectorOperators.LSHR, 16).and(1);
        IntVector rounded = bits.add(lsb.add(0x7fff));
        IntVector result = rounded.blend(bits, special)
                .blend(IntVector.broadcast(SI, 0x7fc00000), v.test(VectorOperators.IS_NAN).cast(SI));
        return result.lanewise(VectorOperators.LSHR, 16);
    }

    static void scaleToBFloat16(float[] src, int off, int len, float s, java.lang.foreign.MemorySegment dst, long index) {
        int i = 0;
        if (SI.length() == L && SS != null && SS.length() == L) {
            long at = index * Short.BYTES;
            for (int bound = S.loopBound(len); i < bound; i += L) {
                IntVector bits = bfloat16Bits(FloatVector.fromArray(S, src, off + i).mul(s));
                ((ShortVector) bits.convertShape(VectorOperators.I2S, SS, 0)).intoMemorySegment(dst, at + (long) i * Short.BYTES, NATIVE);
            }
        }
        PlainKernels.scaleToBFloat16(src, off, len, s, dst, index, i);
    }

    static void fromBFloat16(java.lang.foreign.MemorySegment src, long index, float[] dst, int off, int len) {
        int i = 0;
        if (SI.length() == L && SS != null && SS.length() == L) {
            long at = index * Short.BYTES;
            for (int bound = S.loopBound(len); i < bound; i += L) {
                ShortVector bits = ShortVector.fromMemorySegment(SS, src, at + (long) i * Short.BYTES, NATIVE);
                // sign extension puts copies of bit 15 in bits 16..31; the shift moves them out
                ((IntVector) bits.convertShape(VectorOperators.S2I, SI, 0)).lanewise(VectorOperators.LSHL, 16)
                        .reinterpretAsFloats().intoArray(dst, off + i);
            }
        }
        PlainKernels.fromBFloat16(src, index, dst, off, len, i);
    }

    /** Rounds each value to the nearest bfloat16 (ties to even), in place; same result as {@code BFloat16.round}. */
    static void roundToBFloat16(float[] x, int off, int len) {
        int i = 0;
        if (SI.length() == L) {
            for (int bound = S.loopBound(len); i < bound; i += L) {
                bfloat16Bits(FloatVector.fromArray(S, x, off + i)).lanewise(VectorOperators.LSHL, 16)
                        .reinterpretAsFloats().intoArray(x, off + i);
            }
        }
        for (; i < len; i++) {
            x[off + i] = dev.muon4j.tensor.BFloat16.round(x[off + i]);
        }
    }

    /**
     * Muon momentum update and the matrix handed to Newton–Schulz, fused. Modifies m and u.
     *
     * <pre>
     * EMA form:      m ← β·m + (1−β)·g;   u = nesterov ? (1−β)·g + β·m : m
     * classic form:  m ← β·m + g;         u = nesterov ? g + β·m : m
     * </pre>
     * β is taken in double so that 1 − β is formed before rounding to float (for β near 1 the
     * float β alone would lose digits of 1 − β).
     */
    static void muonMomentum(boolean ema, boolean nesterov, double momentum,
                                    float[] g, int gOff, float[] m, int mOff, float[] u, int uOff, int len) {
        float beta = (float) momentum;
        float gScale = ema ? (float) (1 - momentum) : 1f;
        int i = 0;
        for (int bound = S.loopBound(len); i < bound; i += L) {
            FloatVector gv = FloatVector.fromArray(S, g, gOff + i).mul(gScale);
            FloatVector mv = FloatVector.fromArray(S, m, mOff + i).mul(beta).add(gv);
            mv.intoArray(m, mOff + i);
            (nesterov ? mv.mul(beta).add(gv) : mv).intoArray(u, uOff + i);
        }
        for (; i < len; i++) {
            float gv = gScale * g[gOff + i];
            float mv = beta * m[mOff + i] + gv;
            m[mOff + i] = mv;
            u[uOff + i] = nesterov ? beta * mv + gv : mv;
        }
    }

    /** Muon's parameter update {@code w ← w·decay − step·o} (decay = 1 − lr·wd, step = lr·scale). Modifies w. */
    static void decayAndSubtract(float[] w, int wOff, float decay, float step, float[] o, int oOff, int len) {
        int i = 0;
        for (int bound = S.loopBound(len); i < bound; i += L) {
            FloatVector ov = FloatVector.fromArray(S, o, oOff + i);
            FloatVector.fromArray(S, w, wOff + i).mul(decay).sub(ov.mul(step)).intoArray(w, wOff + i);
        }
        for (; i < len; i++) {
            w[wOff + i] = w[wOff + i] * decay - step * o[oOff + i];
        }
    }

    /**
     * Adam's moments and its bias-corrected direction, in place of the gradient. Modifies u, m and v.
     * <pre>
     * m ← β1·m + (1−β1)·u;  v ← β2·v + (1−β2)·u²;  u ← (m / bc1) / (√(v / bc2) + eps)
     * </pre>
     * Give {@code 1 − β} computed in double from the double betas: {@code 1f − (float) β} loses digits
     * when β is near 1 ((float) 0.9999 makes 1 − β2 wrong by 1.7e-4 relative), and then the moments no
     * longer match the bias corrections.
     */
    static void adamMoments(float[] u, int uOff, float[] m, int mOff, float[] v, int vOff, int len,
                                   float beta1, float beta2, float oneMinusB1, float oneMinusB2, float eps, float bc1, float bc2) {
        float invBc1 = 1f / bc1;
        float invBc2 = 1f / bc2;
        int i = 0;
        for (int bound = S.loopBound(len); i < bound; i += L) {
            FloatVector gv = FloatVector.fromArray(S, u, uOff + i);
            FloatVector mv = FloatVector.fromArray(S, m, mOff + i).mul(beta1).add(gv.mul(oneMinusB1));
            FloatVector vv = FloatVector.fromArray(S, v, vOff + i).mul(beta2).add(gv.mul(gv).mul(oneMinusB2));
            mv.intoArray(m, mOff + i);
            vv.intoArray(v, vOff + i);
            mv.mul(invBc1).div(vv.mul(invBc2).sqrt().add(eps)).intoArray(u, uOff + i);
        }
        for (; i < len; i++) {
            float gv = u[uOff + i];
            float mv = beta1 * m[mOff + i] + oneMinusB1 * gv;
            float vv = beta2 * v[vOff + i] + oneMinusB2 * (gv * gv);
            m[mOff + i] = mv;
            v[vOff + i] = vv;
            u[uOff + i] = (mv * invBc1) / ((float) Math.sqrt(vv * invBc2) + eps);
        }
    }

    /**
     * Cautious decoupled update {@code w ← (o·w ≥ 0 ? w·decay : w) − step·o}: the weight decays only
     * where the update agrees with it in sign (a zero product counts as agreement). Modifies w.
     */
    static void cautiousDecayAndSubtract(float[] w, int wOff, float decay, float step, float[] o, int oOff, int len) {
        int i = 0;
        for (int bound = S.loopBound(len); i < bound; i += L) {
            FloatVector ov = FloatVector.fromArray(S, o, oOff + i);
            FloatVector wv = FloatVector.fromArray(S, w, wOff + i);
            VectorMask<Float> agree = wv.mul(ov).compare(VectorOperators.GE, 0f);
            wv.blend(wv.mul(decay), agree).sub(ov.mul(step)).intoArray(w, wOff + i);
        }
        for (; i < len; i++) {
            float wv = w[wOff + i];
            float ov = o[oOff + i];
            w[wOff + i] = (wv * ov >= 0 ? wv * decay : wv) - step * ov;
        }
    }
}
