package dev.muon4j.backend;

/**
 * Elementwise kernels, single-threaded, over {@code float[]} ranges: on the Vector API where the
 * JVM has {@code jdk.incubator.vector} ({@code VectorKernels}), as plain loops where it does not
 * ({@code PlainKernels}); see {@link VectorApi}. Both give the same bits, except as
 * {@link #sumOfSquares} says.
 *
 * <p>Each method documents which arrays it modifies; the others are read only. Every kernel here
 * has a plain scalar twin in the tests ({@code ScalarKernels}) that it is checked against.
 */
public final class Kernels {
    /** Whether the kernels run on the Vector API; a constant, so the JIT keeps only one branch. */
    private static final boolean VECTOR = VectorApi.PRESENT;

    private Kernels() {
    }

    /** {@code x[off..off+len) *= s}; modifies x. */
    public static void scale(float[] x, int off, int len, float s) {
        if (VECTOR) {
            VectorKernels.scale(x, off, len, s);
        } else {
            PlainKernels.scale(x, off, len, s);
        }
    }

    /** {@code y += a·x} over len elements; modifies y. */
    public static void axpy(float a, float[] x, int xOff, float[] y, int yOff, int len) {
        if (VECTOR) {
            VectorKernels.axpy(a, x, xOff, y, yOff, len);
        } else {
            PlainKernels.axpy(a, x, xOff, y, yOff, len);
        }
    }

    /** {@code y = a·x + b·y} over len elements; modifies y. */
    public static void axpby(float a, float[] x, int xOff, float b, float[] y, int yOff, int len) {
        if (VECTOR) {
            VectorKernels.axpby(a, x, xOff, b, y, yOff, len);
        } else {
            PlainKernels.axpby(a, x, xOff, b, y, yOff, len);
        }
    }

    /**
     * Sum of squares, accumulated per vector lane in float over blocks of 1024 and across lanes and
     * blocks in double, in a fixed order (the same bits interpreted or JIT-compiled). Without the
     * Vector API the lanes are 8 running sums, whatever the hardware's
     * vector length: the same bits as the Vector API where its preferred vector holds that many
     * floats, within float rounding of them elsewhere.
     */
    public static double sumOfSquares(float[] x, int off, int len) {
        return VECTOR ? VectorKernels.sumOfSquares(x, off, len) : PlainKernels.sumOfSquares(x, off, len);
    }

    /** Index (relative to off) of the first NaN or infinite value, or -1 if all are finite. */
    public static int firstNonFinite(float[] x, int off, int len) {
        return VECTOR ? VectorKernels.firstNonFinite(x, off, len) : PlainKernels.firstNonFinite(x, off, len);
    }

    /**
     * Writes into {@code full} (m×m, row-major, leading dimension m) the dense symmetric matrix whose
     * upper triangle is that of S (m×m at {@code sOffset}, leading dimension {@code lds}); S's
     * strictly lower triangle is not read.
     */
    public static void expandUpper(float[] s, int sOffset, int m, int lds, float[] full) {
        for (int i = 0; i < m; i++) {
            System.arraycopy(s, sOffset + i * lds + i, full, i * m + i, m - i);
        }
        symmetrizeFromUpper(full, 0, m, m);
    }

    /** C (rows×cols, leading dimension ld) {@code *= beta}; beta == 0 writes zeros (NaN does not survive). Modifies c. */
    public static void scaleMatrix(float[] c, int off, int rows, int cols, int ld, float beta) {
        for (int r = 0; r < rows; r++) {
            int row = off + r * ld;
            if (beta == 0f) {
                java.util.Arrays.fill(c, row, row + cols, 0f);
            } else if (beta != 1f) {
                scale(c, row, cols, beta);
            }
        }
    }

    /** The upper triangle (with diagonal) of the n×n matrix C {@code *= beta}; beta == 0 writes zeros. Modifies c. */
    public static void scaleUpperTriangle(float[] c, int off, int n, int ld, float beta) {
        for (int r = 0; r < n; r++) {
            int start = off + r * ld + r;
            if (beta == 0f) {
                java.util.Arrays.fill(c, start, off + r * ld + n, 0f);
            } else if (beta != 1f) {
                scale(c, start, n - r, beta);
            }
        }
    }

    /** Copies the upper triangle of the n×n matrix into its lower triangle, making it fully symmetric. Modifies c. */
    public static void symmetrizeFromUpper(float[] c, int off, int n, int ld) {
        final int block = 64;
        for (int rb = 0; rb < n; rb += block) {
            for (int cb = 0; cb <= rb; cb += block) {
                int rEnd = Math.min(n, rb + block);
                int cEnd = Math.min(n, cb + block);
                for (int r = rb; r < rEnd; r++) {
                    for (int col = cb; col < Math.min(cEnd, r); col++) {
                        c[off + r * ld + col] = c[off + col * ld + r];
                    }
                }
            }
        }
    }

    /** dst (cols×rows) = srcᵀ where src is rows×cols, both dense. Modifies dst; dst must not be src. */
    public static void transpose(float[] src, int srcOff, int rows, int cols, float[] dst, int dstOff) {
        final int block = 32;
        for (int rb = 0; rb < rows; rb += block) {
            int rEnd = Math.min(rows, rb + block);
            for (int cb = 0; cb < cols; cb += block) {
                int cEnd = Math.min(cols, cb + block);
                for (int r = rb; r < rEnd; r++) {
                    int s = srcOff + r * cols;
                    for (int col = cb; col < cEnd; col++) {
                        dst[dstOff + col * rows + r] = src[s + col];
                    }
                }
            }
        }
    }

    /** Rounds each value to the nearest bfloat16 (ties to even), in place; same result as {@code BFloat16.round}. */
    public static void roundToBFloat16(float[] x, int off, int len) {
        if (VECTOR) {
            VectorKernels.roundToBFloat16(x, off, len);
        } else {
            PlainKernels.roundToBFloat16(x, off, len);
        }
    }

    /**
     * Writes {@code round(s·src[i])} for {@code len} values of {@code src} from {@code off} as bfloat16
     * bit patterns (ties to even, as {@link dev.muon4j.tensor.BFloat16#toBits}) into elements
     * {@code [index, index + len)} of the native or heap segment {@code dst}: the same bits as
     * {@link #scale} followed by {@link #roundToBFloat16} and a store, in one pass. src is read only.
     */
    public static void scaleToBFloat16(float[] src, int off, int len, float s, java.lang.foreign.MemorySegment dst, long index) {
        java.util.Objects.checkFromIndexSize(off, len, src.length);
        java.util.Objects.checkFromIndexSize(index * Short.BYTES, (long) len * Short.BYTES, dst.byteSize());
        if (VECTOR) {
            VectorKernels.scaleToBFloat16(src, off, len, s, dst, index);
        } else {
            PlainKernels.scaleToBFloat16(src, off, len, s, dst, index, 0);
        }
    }

    /**
     * Reads {@code len} bfloat16 bit patterns from elements {@code [index, index + len)} of {@code src}
     * into {@code dst[off..off+len)} as float32 (exactly, as {@link dev.muon4j.tensor.BFloat16#fromBits}).
     * Modifies dst.
     */
    public static void fromBFloat16(java.lang.foreign.MemorySegment src, long index, float[] dst, int off, int len) {
        java.util.Objects.checkFromIndexSize(off, len, dst.length);
        java.util.Objects.checkFromIndexSize(index * Short.BYTES, (long) len * Short.BYTES, src.byteSize());
        if (VECTOR) {
            VectorKernels.fromBFloat16(src, index, dst, off, len);
        } else {
            PlainKernels.fromBFloat16(src, index, dst, off, len, 0);
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
    public static void muonMomentum(boolean ema, boolean nesterov, double momentum,
                                    float[] g, int gOff, float[] m, int mOff, float[] u, int uOff, int len) {
        if (VECTOR) {
            VectorKernels.muonMomentum(ema, nesterov, momentum, g, gOff, m, mOff, u, uOff, len);
        } else {
            PlainKernels.muonMomentum(ema, nesterov, momentum, g, gOff, m, mOff, u, uOff, len);
        }
    }

    /** Muon's parameter update {@code w ← w·decay − step·o} (decay = 1 − lr·wd, step = lr·scale). Modifies w. */
    public static void decayAndSubtract(float[] w, int wOff, float decay, float step, float[] o, int oOff, int len) {
        if (VECTOR) {
            VectorKernels.decayAndSubtract(w, wOff, decay, step, o, oOff, len);
        } else {
            PlainKernels.decayAndSubtract(w, wOff, decay, step, o, oOff, len);
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
    public static void adamMoments(float[] u, int uOff, float[] m, int mOff, float[] v, int vOff, int len,
                                   float beta1, float beta2, float oneMinusB1, float oneMinusB2, float eps, float bc1, float bc2) {
        if (VECTOR) {
            VectorKernels.adamMoments(u, uOff, m, mOff, v, vOff, len, beta1, beta2, oneMinusB1, oneMinusB2, eps, bc1, bc2);
        } else {
            PlainKernels.adamMoments(u, uOff, m, mOff, v, vOff, len, beta1, beta2, oneMinusB1, oneMinusB2, eps, bc1, bc2);
        }
    }

    /**
     * Cautious decoupled update {@code w ← (o·w ≥ 0 ? w·decay : w) − step·o}: the weight decays only
     * where the update agrees with it in sign (a zero product counts as agreement). Modifies w.
     */
    public static void cautiousDecayAndSubtract(float[] w, int wOff, float decay, float step, float[] o, int oOff, int len) {
        if (VECTOR) {
            VectorKernels.cautiousDecayAndSubtract(w, wOff, decay, step, o, oOff, len);
        } else {
            PlainKernels.cautiousDecayAndSubtract(w, wOff, decay, step, o, oOff, len);
        }
    }
}
