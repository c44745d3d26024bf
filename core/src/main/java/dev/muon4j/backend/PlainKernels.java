package dev.muon4j.backend;

/**
 * {@link Kernels}' elementwise kernels as plain loops, for a JVM without
 * {@code jdk.incubator.vector}. Each evaluates, element by element, the same float expression as
 * the Vector API form in {@link VectorKernels}, so the two agree bit for bit; the one exception is
 * {@link #sumOfSquares}, which keeps {@value #LANES} running sums where the Vector API keeps one per
 * lane of its preferred vector (the same bits where that vector holds {@value #LANES} floats, as
 * with AVX2). Each method is documented at its {@link Kernels} entry point.
 */
final class PlainKernels {
    /** Running sums of {@link #sumOfSquares}: the lane count of a 256-bit vector of floats. */
    static final int LANES = 8;

    private PlainKernels() {
    }

    static void scale(float[] x, int off, int len, float s) {
        for (int i = 0; i < len; i++) {
            x[off + i] *= s;
        }
    }

    static void axpy(float a, float[] x, int xOff, float[] y, int yOff, int len) {
        for (int i = 0; i < len; i++) {
            y[yOff + i] += a * x[xOff + i];
        }
    }

    static void axpby(float a, float[] x, int xOff, float b, float[] y, int yOff, int len) {
        for (int i = 0; i < len; i++) {
            y[yOff + i] = a * x[xOff + i] + b * y[yOff + i];
        }
    }

    /**
     * Blocks of 1024; in each, element i goes to running sum {@code i mod LANES} (a fused
     * multiply-add in float) as far as the last whole group of {@link #LANES}, the sums are added in
     * order in double, then the rest of the block in double.
     */
    static double sumOfSquares(float[] x, int off, int len) {
        double total = 0;
        float[] acc = new float[LANES];
        for (int start = 0; start < len; start += 1024) {
            int n = Math.min(1024, len - start);
            int bound = n - n % LANES;
            java.util.Arrays.fill(acc, 0f);
            int i = 0;
            for (; i < bound; i += LANES) {
                int base = off + start + i;
                for (int lane = 0; lane < LANES; lane++) {
                    float v = x[base + lane];
                    acc[lane] = Math.fma(v, v, acc[lane]);
                }
            }
            double block = 0;
            for (int lane = 0; lane < LANES; lane++) {
                block += acc[lane];
            }
            for (; i < n; i++) {
                float v = x[off + start + i];
                block += (double) v * v;
            }
            total += block;
        }
        return total;
    }

    static int firstNonFinite(float[] x, int off, int len) {
        for (int i = 0; i < len; i++) {
            if (!Float.isFinite(x[off + i])) {
                return i;
            }
        }
        return -1;
    }

    static void roundToBFloat16(float[] x, int off, int len) {
        for (int i = 0; i < len; i++) {
            x[off + i] = dev.muon4j.tensor.BFloat16.round(x[off + i]);
        }
    }

    /** {@link Kernels#scaleToBFloat16} from element {@code from} of the range on. */
    static void scaleToBFloat16(float[] src, int off, int len, float s, java.lang.foreign.MemorySegment dst, long index, int from) {
        for (int i = from; i < len; i++) {
            dst.setAtIndex(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, index + i,
                    dev.muon4j.tensor.BFloat16.toBits(src[off + i] * s));
        }
    }

    /** {@link Kernels#fromBFloat16} from element {@code from} of the range on. */
    static void fromBFloat16(java.lang.foreign.MemorySegment src, long index, float[] dst, int off, int len, int from) {
        for (int i = from; i < len; i++) {
            dst[off + i] = dev.muon4j.tensor.BFloat16.fromBits(src.getAtIndex(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, index + i));
        }
    }

    static void muonMomentum(boolean ema, boolean nesterov, double momentum,
                             float[] g, int gOff, float[] m, int mOff, float[] u, int uOff, int len) {
        float beta = (float) momentum;
        float gScale = ema ? (float) (1 - momentum) : 1f;
        for (int i = 0; i < len; i++) {
            float gv = gScale * g[gOff + i];
            float mv = beta * m[mOff + i] + gv;
            m[mOff + i] = mv;
            u[uOff + i] = nesterov ? beta * mv + gv : mv;
        }
    }

    static void decayAndSubtract(float[] w, int wOff, float decay, float step, float[] o, int oOff, int len) {
        for (int i = 0; i < len; i++) {
            w[wOff + i] = w[wOff + i] * decay - step * o[oOff + i];
        }
    }

    static void adamMoments(float[] u, int uOff, float[] m, int mOff, float[] v, int vOff, int len,
                            float beta1, float beta2, float oneMinusB1, float oneMinusB2, float eps, float bc1, float bc2) {
        float invBc1 = 1f / bc1;
        float invBc2 = 1f / bc2;
        for (int i = 0; i < len; i++) {
            float gv = u[uOff + i];
            float mv = beta1 * m[mOff + i] + oneMinusB1 * gv;
            float vv = beta2 * v[vOff + i] + oneMinusB2 * (gv * gv);
            m[mOff + i] = mv;
            v[vOff + i] = vv;
            u[uOff + i] = (mv * invBc1) / ((float) Math.sqrt(vv * invBc2) + eps);
        }
    }

    static void cautiousDecayAndSubtract(float[] w, int wOff, float decay, float step, float[] o, int oOff, int len) {
        for (int i = 0; i < len; i++) {
            float wv = w[wOff + i];
            float ov = o[oOff + i];
            w[wOff + i] = (wv * ov >= 0 ? wv * decay : wv) - step * ov;
        }
    }
}
