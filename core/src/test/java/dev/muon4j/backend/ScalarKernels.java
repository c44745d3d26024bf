package dev.muon4j.backend;

/**
 * Plain scalar versions of every public method of {@link Kernels}, written as directly from the
 * documented formulas as possible, for {@code KernelsTest} to compare against.
 */
final class ScalarKernels {
    private ScalarKernels() {
    }

    static void scale(float[] x, int off, int len, float s) {
        for (int i = 0; i < len; i++) {
            x[off + i] = x[off + i] * s;
        }
    }

    static void axpy(float a, float[] x, int xOff, float[] y, int yOff, int len) {
        for (int i = 0; i < len; i++) {
            y[yOff + i] = y[yOff + i] + a * x[xOff + i];
        }
    }

    static void axpby(float a, float[] x, int xOff, float b, float[] y, int yOff, int len) {
        for (int i = 0; i < len; i++) {
            y[yOff + i] = a * x[xOff + i] + b * y[yOff + i];
        }
    }

    /** Exact-ish: each square and the running sum in double. */
    static double sumOfSquares(float[] x, int off, int len) {
        double sum = 0;
        for (int i = 0; i < len; i++) {
            double v = x[off + i];
            sum += v * v;
        }
        return sum;
    }

    static int firstNonFinite(float[] x, int off, int len) {
        for (int i = 0; i < len; i++) {
            float v = x[off + i];
            if (Float.isNaN(v) || Float.isInfinite(v)) {
                return i;
            }
        }
        return -1;
    }

    static void scaleMatrix(float[] c, int off, int rows, int cols, int ld, float beta) {
        for (int r = 0; r < rows; r++) {
            for (int col = 0; col < cols; col++) {
                int i = off + r * ld + col;
                c[i] = beta == 0f ? 0f : c[i] * beta;
            }
        }
    }

    static void scaleUpperTriangle(float[] c, int off, int n, int ld, float beta) {
        for (int r = 0; r < n; r++) {
            for (int col = r; col < n; col++) {
                int i = off + r * ld + col;
                c[i] = beta == 0f ? 0f : c[i] * beta;
            }
        }
    }

    static void symmetrizeFromUpper(float[] c, int off, int n, int ld) {
        for (int r = 0; r < n; r++) {
            for (int col = 0; col < r; col++) {
                c[off + r * ld + col] = c[off + col * ld + r];
            }
        }
    }

    static void transpose(float[] src, int srcOff, int rows, int cols, float[] dst, int dstOff) {
        for (int r = 0; r < rows; r++) {
            for (int col = 0; col < cols; col++) {
                dst[dstOff + col * rows + r] = src[srcOff + r * cols + col];
            }
        }
    }

    static void roundToBFloat16(float[] x, int off, int len) {
        for (int i = 0; i < len; i++) {
            x[off + i] = roundToNearestBFloat16(x[off + i]);
        }
    }

    /**
     * Round to nearest bfloat16, ties to even, by definition: of the two bfloat16 values around x
     * (x with its low 16 bits cleared, and the next one away from zero) take the nearer, measured in
     * double; on a tie take the one with an even last bit. Past the largest bfloat16 the next value
     * away from zero is infinity, at the distance 2^128 would be (IEEE overflow). Every NaN becomes
     * the canonical NaN.
     */
    static float roundToNearestBFloat16(float x) {
        if (Float.isNaN(x)) {
            return Float.NaN;
        }
        if (Float.isInfinite(x)) {
            return x;
        }
        int bits = Float.floatToRawIntBits(x);
        int towardZero = bits & 0xffff0000;
        int awayFromZero = towardZero + 0x10000;
        double lower = Math.abs((double) Float.intBitsToFloat(towardZero));
        double upper = (awayFromZero & 0x7f800000) == 0x7f800000
                ? Math.scalb(1.0, 128)
                : Math.abs((double) Float.intBitsToFloat(awayFromZero));
        double magnitude = Math.abs((double) x);
        double below = magnitude - lower;
        double above = upper - magnitude;
        int chosen;
        if (below < above) {
            chosen = towardZero;
        } else if (above < below) {
            chosen = awayFromZero;
        } else {
            chosen = ((towardZero >>> 16) & 1) == 0 ? towardZero : awayFromZero;
        }
        return Float.intBitsToFloat(chosen);
    }

    static void muonMomentum(boolean ema, boolean nesterov, float beta,
                             float[] g, int gOff, float[] m, int mOff, float[] u, int uOff, int len) {
        for (int i = 0; i < len; i++) {
            float grad = ema ? (1f - beta) * g[gOff + i] : g[gOff + i];
            float momentum = beta * m[mOff + i] + grad;
            m[mOff + i] = momentum;
            u[uOff + i] = nesterov ? beta * momentum + grad : momentum;
        }
    }

    static void decayAndSubtract(float[] w, int wOff, float decay, float step, float[] o, int oOff, int len) {
        for (int i = 0; i < len; i++) {
            w[wOff + i] = w[wOff + i] * decay - step * o[oOff + i];
        }
    }

    /** AdamW exactly as the formula reads, with m̂ = m / bc1 and v̂ = v / bc2 computed per element. */
    static void adamMoments(float[] u, int uOff, float[] m, int mOff, float[] v, int vOff, int len,
                            float beta1, float beta2, float eps, float bc1, float bc2) {
        for (int i = 0; i < len; i++) {
            float grad = u[uOff + i];
            float first = beta1 * m[mOff + i] + (1f - beta1) * grad;
            float second = beta2 * v[vOff + i] + (1f - beta2) * (grad * grad);
            m[mOff + i] = first;
            v[vOff + i] = second;
            u[uOff + i] = (first / bc1) / ((float) Math.sqrt(second / bc2) + eps);
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
