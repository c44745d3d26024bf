package dev.muon4j.optim;

import java.util.Random;

/**
 * Plain float64 implementations of Newton–Schulz, the Muon step, AdamW and the schedules, written
 * from the algorithm's definition and independent of the code under test, plus test utilities.
 */
final class Float64Reference {
    /** Keller Jordan's quintic coefficients (a, b, c). */
    static final double A = 3.4445;
    static final double B = -4.7750;
    static final double C = 2.0315;

    private Float64Reference() {
    }

    /** Newton–Schulz of a rows×cols row-major matrix with Keller Jordan's coefficients, in double. */
    static double[] newtonSchulz(double[] g, int rows, int cols, int steps, double eps) {
        boolean transposed = rows > cols;
        int m = Math.min(rows, cols);
        int n = Math.max(rows, cols);
        double[] x = transposed ? transpose(g, rows, cols) : g.clone();
        double norm = 0;
        for (double v : x) {
            norm += v * v;
        }
        norm = Math.sqrt(norm);
        for (int i = 0; i < x.length; i++) {
            x[i] /= norm + eps;
        }
        for (int s = 0; s < steps; s++) {
            double[] a = new double[m * m];
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < m; j++) {
                    double sum = 0;
                    for (int k = 0; k < n; k++) {
                        sum += x[i * n + k] * x[j * n + k];
                    }
                    a[i * m + j] = sum;
                }
            }
            double[] b = new double[m * m];
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < m; j++) {
                    double sum = 0;
                    for (int k = 0; k < m; k++) {
                        sum += a[i * m + k] * a[k * m + j];
                    }
                    b[i * m + j] = B * a[i * m + j] + C * sum;
                }
            }
            double[] next = new double[m * n];
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n; j++) {
                    double sum = 0;
                    for (int k = 0; k < m; k++) {
                        sum += b[i * m + k] * x[k * n + j];
                    }
                    next[i * n + j] = A * x[i * n + j] + sum;
                }
            }
            x = next;
        }
        return transposed ? transpose(x, m, n) : x;
    }

    static double[] transpose(double[] src, int rows, int cols) {
        double[] dst = new double[src.length];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                dst[c * rows + r] = src[r * cols + c];
            }
        }
        return dst;
    }

    /** The update scale, written from the definitions of the scale modes. */
    static double scale(ScaleMode mode, int out, int in, double rmsFactor) {
        return switch (mode) {
            case ORIGINAL -> Math.sqrt(Math.max(1.0, (double) out / in));
            case MATCH_RMS_ADAMW -> rmsFactor * Math.sqrt(Math.max(out, in));
            case SPECTRAL -> Math.sqrt((double) out / in);
            case NONE -> 1.0;
        };
    }

    /** Muon on one parameter made of {@code count} stacked fanOut×fanIn matrices, in double. */
    static final class Muon {
        final double[] value;
        final double[] momentum;
        final int count;
        final int fanOut;
        final int fanIn;
        final double beta;
        final boolean ema;
        final boolean nesterov;

        Muon(float[] initial, int count, int fanOut, int fanIn, double beta, boolean ema, boolean nesterov) {
            this.value = toDouble(initial);
            this.momentum = new double[initial.length];
            this.count = count;
            this.fanOut = fanOut;
            this.fanIn = fanIn;
            this.beta = beta;
            this.ema = ema;
            this.nesterov = nesterov;
        }

        void step(float[] gradient, double lr, double weightDecay, double scale) {
            int size = fanOut * fanIn;
            for (int e = 0; e < count; e++) {
                double[] u = new double[size];
                for (int i = 0; i < size; i++) {
                    int k = e * size + i;
                    double g = gradient[k];
                    if (ema) {
                        momentum[k] = beta * momentum[k] + (1 - beta) * g;
                        u[i] = nesterov ? (1 - beta) * g + beta * momentum[k] : momentum[k];
                    } else {
                        momentum[k] = beta * momentum[k] + g;
                        u[i] = nesterov ? g + beta * momentum[k] : momentum[k];
                    }
                }
                double[] o = newtonSchulz(u, fanOut, fanIn, 5, 1e-7);
                for (int i = 0; i < size; i++) {
                    int k = e * size + i;
                    value[k] = value[k] * (1 - lr * weightDecay) - lr * scale * o[i];
                }
            }
        }
    }

    /** AdamW with bias correction and decoupled weight decay, in double. */
    static final class AdamW {
        final double[] value;
        final double[] m;
        final double[] v;
        final double beta1;
        final double beta2;
        final double eps;
        long t;

        AdamW(float[] initial, double beta1, double beta2, double eps) {
            this.value = toDouble(initial);
            this.m = new double[initial.length];
            this.v = new double[initial.length];
            this.beta1 = beta1;
            this.beta2 = beta2;
            this.eps = eps;
        }

        void step(float[] gradient, double lr, double weightDecay) {
            t++;
            double bc1 = 1 - Math.pow(beta1, t);
            double bc2 = 1 - Math.pow(beta2, t);
            for (int i = 0; i < value.length; i++) {
                double g = gradient[i];
                m[i] = beta1 * m[i] + (1 - beta1) * g;
                v[i] = beta2 * v[i] + (1 - beta2) * g * g;
                double mHat = m[i] / bc1;
                double vHat = v[i] / bc2;
                value[i] = value[i] * (1 - lr * weightDecay) - lr * mHat / (Math.sqrt(vHat) + eps);
            }
        }
    }

    /** Warm-up then cosine, from the definition: linear (step+1)/warmup, then min + (1−min)·(1+cos(π·p))/2. */
    static double warmupCosine(long step, long warmup, long total, double min) {
        if (step < warmup) {
            return (step + 1.0) / warmup;
        }
        double p = total == warmup ? 1.0 : Math.min(1.0, (double) (step - warmup) / (total - warmup));
        return min + (1 - min) * 0.5 * (1 + Math.cos(Math.PI * p));
    }

    static double[] toDouble(float[] x) {
        double[] d = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            d[i] = x[i];
        }
        return d;
    }

    static float[] gaussian(Random random, int n, double sigma) {
        float[] x = new float[n];
        fillGaussian(random, x, sigma);
        return x;
    }

    static void fillGaussian(Random random, float[] x, double sigma) {
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) (sigma * random.nextGaussian());
        }
    }

    /** ‖actual − expected‖ / ‖expected‖ (Frobenius). */
    static double relativeError(float[] actual, double[] expected) {
        double diff = 0;
        double ref = 0;
        for (int i = 0; i < actual.length; i++) {
            double d = actual[i] - expected[i];
            diff += d * d;
            ref += expected[i] * expected[i];
        }
        return Math.sqrt(diff / ref);
    }

    /**
     * ‖actual − expected‖ / ‖expected − initial‖: the error relative to the total change the steps
     * made, a stricter measure than {@link #relativeError} when the updates are small against the values.
     */
    static double relativeToChange(float[] actual, double[] expected, float[] initial) {
        double diff = 0;
        double change = 0;
        for (int i = 0; i < actual.length; i++) {
            double d = actual[i] - expected[i];
            double c = expected[i] - initial[i];
            diff += d * d;
            change += c * c;
        }
        return Math.sqrt(diff / change);
    }

    static boolean bitEqual(float[] a, float[] b) {
        if (a.length != b.length) {
            return false;
        }
        for (int i = 0; i < a.length; i++) {
            if (Float.floatToRawIntBits(a[i]) != Float.floatToRawIntBits(b[i])) {
                return false;
            }
        }
        return true;
    }
}
