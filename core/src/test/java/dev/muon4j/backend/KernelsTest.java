package dev.muon4j.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.fail;

import dev.muon4j.tensor.BFloat16;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Checks every {@link Kernels} method against its plain scalar twin in {@link ScalarKernels} on
 * random data, for lengths 0, 1, 7, 8, 9, 31, 1000 and 1031 (empty, shorter than a vector, exactly
 * one, one more, several plus a tail, long with and without a tail) at offsets 0, 1 and 5, checking
 * that nothing outside the range is touched.
 *
 * <p>Tolerances: the elementwise kernels (scale, axpy, axpby, firstNonFinite, the matrix helpers,
 * roundToBFloat16, muonMomentum, decayAndSubtract) evaluate the same float expression per element
 * as the scalar twin, so they must agree bit for bit. {@code sumOfSquares} accumulates in float
 * per vector lane, so it is held to a relative 1e-6 of the double sum. {@code adamw} computes the
 * bias corrections as {@code lr/bc1} and {@code 1/bc2} once instead of per element: its m and v
 * must match bit for bit, its w within 1e-6 relative to the sizes of the two terms of the update.
 */
class KernelsTest {
    private static final int[] LENGTHS = {0, 1, 7, 8, 9, 31, 1000, 1031};
    private static final int[] OFFSETS = {0, 1, 5};
    private static final int PAD = 3;

    private final Random random = new Random(2024);

    private float[] randomArray(int length) {
        float[] out = new float[length];
        for (int i = 0; i < length; i++) {
            out[i] = (float) random.nextGaussian();
        }
        return out;
    }

    /** Random values at [off, off+len), and recognisable values (NaN included) in the padding around them. */
    private float[] padded(int off, int len) {
        float[] out = new float[off + len + PAD];
        Arrays.fill(out, Float.NaN);
        System.arraycopy(randomArray(len), 0, out, off, len);
        return out;
    }

    private static void assertSameBits(float[] want, float[] got, String what) {
        assertEquals(want.length, got.length, what + ": length");
        for (int i = 0; i < want.length; i++) {
            if (Float.floatToRawIntBits(want[i]) != Float.floatToRawIntBits(got[i])) {
                fail(what + ": index " + i + " expected " + want[i] + " (0x" + Integer.toHexString(Float.floatToRawIntBits(want[i]))
                        + ") got " + got[i] + " (0x" + Integer.toHexString(Float.floatToRawIntBits(got[i])) + ")");
            }
        }
    }

    @Test
    void scale() {
        for (int len : LENGTHS) {
            for (int off : OFFSETS) {
                float[] x = padded(off, len);
                float[] want = x.clone();
                ScalarKernels.scale(want, off, len, 0.37f);
                Kernels.scale(x, off, len, 0.37f);
                assertSameBits(want, x, "scale len " + len + " off " + off);
            }
        }
    }

    @Test
    void axpyAndAxpby() {
        for (int len : LENGTHS) {
            for (int off : OFFSETS) {
                float[] x = padded(off, len);
                float[] y = padded(2 * off, len);
                float[] want = y.clone();
                ScalarKernels.axpy(-1.3f, x, off, want, 2 * off, len);
                float[] got = y.clone();
                Kernels.axpy(-1.3f, x, off, got, 2 * off, len);
                assertSameBits(want, got, "axpy len " + len + " off " + off);

                want = y.clone();
                ScalarKernels.axpby(0.7f, x, off, -2.1f, want, 2 * off, len);
                got = y.clone();
                Kernels.axpby(0.7f, x, off, -2.1f, got, 2 * off, len);
                assertSameBits(want, got, "axpby len " + len + " off " + off);
            }
        }
    }

    @Test
    void sumOfSquares() {
        double worst = 0;
        for (int len : new int[] {0, 1, 7, 8, 9, 31, 1000, 1031, 1024, 4096, 5000}) {
            for (int off : OFFSETS) {
                float[] x = padded(off, len);
                double want = ScalarKernels.sumOfSquares(x, off, len);
                double got = Kernels.sumOfSquares(x, off, len);
                assertEquals(want, got, 1e-6 * want, "sumOfSquares len " + len + " off " + off);
                if (want > 0) {
                    worst = Math.max(worst, Math.abs(got - want) / want);
                }
            }
        }
        System.out.printf("sumOfSquares: largest relative error %.2e%n", worst);
        // Values of very different sizes: the block sums in double keep the large ones from swamping.
        float[] mixed = new float[3000];
        for (int i = 0; i < mixed.length; i++) {
            mixed[i] = (float) (random.nextGaussian() * Math.pow(10, random.nextInt(7) - 3));
        }
        double want = ScalarKernels.sumOfSquares(mixed, 0, mixed.length);
        assertEquals(want, Kernels.sumOfSquares(mixed, 0, mixed.length), 1e-6 * want, "mixed magnitudes");
    }

    @Test
    void firstNonFiniteFindsEachKindEverywhere() {
        assertEquals(-1, Kernels.firstNonFinite(new float[] {Float.NaN}, 0, 0));
        for (int len : LENGTHS) {
            for (int off : OFFSETS) {
                float[] x = padded(off, len);
                assertEquals(-1, Kernels.firstNonFinite(x, off, len), "all finite, len " + len + " off " + off);
                assertEquals(ScalarKernels.firstNonFinite(x, off, len), Kernels.firstNonFinite(x, off, len));
                if (len == 0) {
                    continue;
                }
                // Positions: first, inside the first vector, last of the vector body, start of the tail, last.
                int[] positions = {0, Math.min(3, len - 1), Math.max(0, VectorKernels.S.loopBound(len) - 1),
                        Math.min(VectorKernels.S.loopBound(len), len - 1), len - 1, len / 2};
                for (float bad : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY,
                        Float.intBitsToFloat(0xffc00001)}) {
                    for (int pos : positions) {
                        float[] y = x.clone();
                        y[off + pos] = bad;
                        assertEquals(pos, Kernels.firstNonFinite(y, off, len), bad + " at " + pos + ", len " + len + " off " + off);
                        assertEquals(ScalarKernels.firstNonFinite(y, off, len), Kernels.firstNonFinite(y, off, len));
                        if (pos + 1 < len) {
                            y[off + len - 1] = Float.NaN;
                            assertEquals(pos, Kernels.firstNonFinite(y, off, len), "the first of two");
                        }
                    }
                }
                // Extremes that are finite are not reported.
                float[] z = x.clone();
                z[off] = Float.MAX_VALUE;
                z[off + len - 1] = -Float.MIN_VALUE;
                assertEquals(-1, Kernels.firstNonFinite(z, off, len));
            }
        }
    }

    @Test
    void scaleMatrix() {
        int[][] shapes = {{0, 5}, {3, 0}, {1, 1}, {4, 7}, {9, 17}, {33, 40}};
        for (int[] shape : shapes) {
            int rows = shape[0];
            int cols = shape[1];
            for (int ld : new int[] {cols, cols + 3}) {
                if (ld == 0) {
                    continue;
                }
                for (float beta : new float[] {0f, 1f, -0.5f, 2.5f}) {
                    float[] c = padded(2, rows * ld + 4);
                    c[2] = Float.NaN;
                    if (rows > 0 && cols > 1) {
                        c[2 + cols - 1] = Float.POSITIVE_INFINITY;
                    }
                    float[] want = c.clone();
                    ScalarKernels.scaleMatrix(want, 2, rows, cols, ld, beta);
                    float[] got = c.clone();
                    Kernels.scaleMatrix(got, 2, rows, cols, ld, beta);
                    assertSameBits(want, got, "scaleMatrix " + rows + "×" + cols + " ld " + ld + " beta " + beta);
                    if (beta == 0f && rows > 0 && cols > 0) {
                        assertEquals(0f, got[2], "beta 0 erases NaN");
                    }
                }
            }
        }
    }

    @Test
    void scaleUpperTriangleLeavesLowerAlone() {
        for (int n : new int[] {0, 1, 2, 7, 8, 9, 31, 70}) {
            for (int ld : new int[] {Math.max(1, n), n + 5}) {
                for (float beta : new float[] {0f, 1f, 0.3f, -4f}) {
                    float[] c = padded(1, n * ld + 2);
                    if (n > 0) {
                        c[1] = Float.NaN;
                    }
                    float[] want = c.clone();
                    ScalarKernels.scaleUpperTriangle(want, 1, n, ld, beta);
                    float[] got = c.clone();
                    Kernels.scaleUpperTriangle(got, 1, n, ld, beta);
                    assertSameBits(want, got, "scaleUpperTriangle n " + n + " ld " + ld + " beta " + beta);
                    for (int r = 0; r < n; r++) {
                        for (int col = 0; col < r; col++) {
                            int i = 1 + r * ld + col;
                            assertEquals(Float.floatToRawIntBits(c[i]), Float.floatToRawIntBits(got[i]), "lower element " + r + "," + col);
                        }
                    }
                }
            }
        }
    }

    @Test
    void symmetrizeFromUpper() {
        for (int n : new int[] {0, 1, 2, 7, 63, 64, 65, 130}) {
            for (int ld : new int[] {Math.max(1, n), n + 3}) {
                float[] c = padded(4, n * ld + 1);
                float[] want = c.clone();
                ScalarKernels.symmetrizeFromUpper(want, 4, n, ld);
                float[] got = c.clone();
                Kernels.symmetrizeFromUpper(got, 4, n, ld);
                assertSameBits(want, got, "symmetrizeFromUpper n " + n + " ld " + ld);
            }
        }
    }

    @Test
    void transpose() {
        int[][] shapes = {{0, 4}, {4, 0}, {1, 1}, {1, 9}, {9, 1}, {7, 8}, {31, 33}, {64, 32}, {65, 100}};
        for (int[] shape : shapes) {
            int rows = shape[0];
            int cols = shape[1];
            float[] src = padded(3, rows * cols);
            float[] dst = new float[rows * cols + 7];
            Arrays.fill(dst, -7f);
            float[] want = dst.clone();
            ScalarKernels.transpose(src, 3, rows, cols, want, 2);
            Kernels.transpose(src, 3, rows, cols, dst, 2);
            assertSameBits(want, dst, "transpose " + rows + "×" + cols);
        }
    }

    @Test
    void roundToBFloat16MatchesScalarAndBFloat16Round() {
        for (int len : LENGTHS) {
            for (int off : OFFSETS) {
                float[] x = padded(off, len);
                checkRounding(x, off, len, "gaussian len " + len + " off " + off);
            }
        }
        // Random bit patterns: every exponent, subnormals, infinities, NaNs with any payload and sign.
        float[] bits = new float[100_003];
        for (int i = 0; i < bits.length; i++) {
            bits[i] = Float.intBitsToFloat(random.nextInt());
        }
        checkRounding(bits, 0, bits.length, "random bits");
        // Exact ties (low 16 bits 0x8000) with even and odd kept bit, near-ties, subnormals, overflow.
        float[] special = {
            Float.intBitsToFloat(0x3f808000), Float.intBitsToFloat(0x3f818000), Float.intBitsToFloat(0xbf808000),
            Float.intBitsToFloat(0xbf818000), Float.intBitsToFloat(0x3f807fff), Float.intBitsToFloat(0x3f808001),
            Float.intBitsToFloat(0x00008000), Float.intBitsToFloat(0x00018000), Float.intBitsToFloat(0x00000001),
            Float.intBitsToFloat(0x807fffff), Float.intBitsToFloat(0x007f8000), Float.MIN_VALUE, -Float.MIN_NORMAL,
            Float.MAX_VALUE, -Float.MAX_VALUE, Float.intBitsToFloat(0x7f7f7fff), Float.intBitsToFloat(0x7f7f8000),
            Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.NaN, Float.intBitsToFloat(0x7f800001),
            Float.intBitsToFloat(0xff800001), Float.intBitsToFloat(0x7fffffff), 0f, -0f, 1f, -1f,
        };
        float[] many = new float[special.length * 4 + 5];
        for (int i = 0; i < many.length; i++) {
            many[i] = special[i % special.length];
        }
        checkRounding(many, 0, many.length, "special values");
        checkRounding(many, 3, many.length - 3, "special values, offset 3");
        // Overflow: the largest float rounds to infinity, the largest bfloat16 stays.
        assertEquals(Float.POSITIVE_INFINITY, BFloat16.round(Float.MAX_VALUE));
        assertEquals(Float.intBitsToFloat(0x7f7f0000), BFloat16.round(Float.intBitsToFloat(0x7f7f7fff)));
    }

    /**
     * The fused scale-round-store into bfloat16 patterns and the load back give, pattern for pattern,
     * what {@link BFloat16#toBits} and {@link BFloat16#fromBits} give one element at a time, on
     * Gaussians, random bit patterns (NaNs with payloads, subnormals, infinities), exact ties and a
     * scale that overflows; and touch nothing outside their range.
     */
    @Test
    void bfloat16StoreAndLoadMatchBFloat16Patterns() {
        float[] bits = new float[10_007];
        for (int i = 0; i < bits.length; i++) {
            bits[i] = Float.intBitsToFloat(random.nextInt());
        }
        float[] ties = {Float.intBitsToFloat(0x3f808000), Float.intBitsToFloat(0x3f818000), Float.intBitsToFloat(0xbf808000),
            Float.intBitsToFloat(0x7f7f8000), Float.NaN, Float.intBitsToFloat(0xff800001), Float.POSITIVE_INFINITY, -0f,
            Float.MIN_VALUE, 1f, -1f, 3f, 0.1f, 65504f, 1e-40f, 7f, 8f};
        for (float s : new float[] {1f, 0.3712f, -2.5f, 3e38f}) {
            for (int len : LENGTHS) {
                for (int off : OFFSETS) {
                    checkStore(padded(off, len), off, len, s, 2, "gaussian len " + len + " off " + off + " scale " + s);
                }
            }
            checkStore(bits, 0, bits.length, s, 0, "random bits, scale " + s);
            checkStore(bits, 5, 1003, s, 1, "random bits, offset 5, scale " + s);
            checkStore(ties, 0, ties.length, s, 3, "ties and specials, scale " + s);
        }
        for (int len : new int[] {0, 1, 15, 16, 17, 33, 1000, 10_007}) {
            for (long index : new long[] {0, 1, 3}) {
                java.lang.foreign.MemorySegment src = java.lang.foreign.Arena.ofAuto().allocate((index + len) * Short.BYTES);
                short[] patterns = new short[len];
                for (int i = 0; i < len; i++) {
                    patterns[i] = (short) random.nextInt();
                    src.setAtIndex(java.lang.foreign.ValueLayout.JAVA_SHORT, index + i, patterns[i]);
                }
                float[] want = new float[len + 2 + PAD];
                Arrays.fill(want, Float.NaN);
                float[] got = want.clone();
                for (int i = 0; i < len; i++) {
                    want[2 + i] = BFloat16.fromBits(patterns[i]);
                }
                Kernels.fromBFloat16(src, index, got, 2, len);
                assertSameBits(want, got, "fromBFloat16 len " + len + " index " + index);
            }
        }
        java.lang.foreign.MemorySegment small = java.lang.foreign.Arena.ofAuto().allocate(8 * Short.BYTES);
        assertThrows(IndexOutOfBoundsException.class, () -> Kernels.scaleToBFloat16(new float[9], 0, 9, 1f, small, 0));
        assertThrows(IndexOutOfBoundsException.class, () -> Kernels.fromBFloat16(small, 1, new float[8], 0, 8));
    }

    private static void checkStore(float[] x, int off, int len, float s, long index, String what) {
        java.lang.foreign.MemorySegment dst = java.lang.foreign.Arena.ofAuto().allocate((index + len + 2) * Short.BYTES);
        dst.fill((byte) 0x5a);
        Kernels.scaleToBFloat16(x, off, len, s, dst, index);
        for (long i = 0; i < index + len + 2; i++) {
            short got = dst.getAtIndex(java.lang.foreign.ValueLayout.JAVA_SHORT, i);
            short want = i >= index && i < index + len ? BFloat16.toBits(x[off + (int) (i - index)] * s) : (short) 0x5a5a;
            assertEquals(want, got, what + ": element " + i);
        }
    }

    private static void checkRounding(float[] x, int off, int len, String what) {
        float[] scalar = x.clone();
        ScalarKernels.roundToBFloat16(scalar, off, len);
        float[] reference = x.clone();
        for (int i = off; i < off + len; i++) {
            reference[i] = BFloat16.round(reference[i]);
        }
        float[] got = x.clone();
        Kernels.roundToBFloat16(got, off, len);
        assertSameBits(reference, got, what + ": Kernels vs BFloat16.round");
        assertSameBits(scalar, got, what + ": Kernels vs round-to-nearest-even by definition");
    }

    @Test
    void muonMomentumAllForms() {
        for (boolean ema : new boolean[] {true, false}) {
            for (boolean nesterov : new boolean[] {true, false}) {
                for (int len : LENGTHS) {
                    for (int off : OFFSETS) {
                        float[] g = padded(off, len);
                        float[] m = padded(off + 1, len);
                        float[] u = padded(2, len);
                        float[] mWant = m.clone();
                        float[] uWant = u.clone();
                        ScalarKernels.muonMomentum(ema, nesterov, 0.95f, g, off, mWant, off + 1, uWant, 2, len);
                        Kernels.muonMomentum(ema, nesterov, 0.95f, g, off, m, off + 1, u, 2, len);
                        String what = "muonMomentum ema " + ema + " nesterov " + nesterov + " len " + len + " off " + off;
                        assertSameBits(mWant, m, what + ": m");
                        assertSameBits(uWant, u, what + ": u");
                    }
                }
            }
        }
    }

    @Test
    void muonMomentumWithUAliasingM() {
        // Without Nesterov, u may be m itself.
        float[] g = randomArray(37);
        float[] m = randomArray(37);
        float[] want = m.clone();
        float[] unused = new float[37];
        ScalarKernels.muonMomentum(true, false, 0.9f, g, 0, want, 0, unused, 0, 37);
        Kernels.muonMomentum(true, false, 0.9f, g, 0, m, 0, m, 0, 37);
        assertSameBits(want, m, "u == m");
    }

    @Test
    void decayAndSubtract() {
        for (int len : LENGTHS) {
            for (int off : OFFSETS) {
                float[] w = padded(off, len);
                float[] o = padded(1, len);
                float[] want = w.clone();
                ScalarKernels.decayAndSubtract(want, off, 0.999f, 0.02f, o, 1, len);
                Kernels.decayAndSubtract(w, off, 0.999f, 0.02f, o, 1, len);
                assertSameBits(want, w, "decayAndSubtract len " + len + " off " + off);
            }
        }
    }

    @Test
    void cautiousDecayAndSubtract() {
        for (int len : LENGTHS) {
            for (int off : OFFSETS) {
                float[] w = padded(off, len);
                float[] o = padded(1, len);
                if (len > 3) {
                    w[off] = 0f;   // a zero weight: agreement
                    o[2] = 0f;     // a zero update: agreement
                }
                float[] want = w.clone();
                ScalarKernels.cautiousDecayAndSubtract(want, off, 0.9f, 0.02f, o, 1, len);
                Kernels.cautiousDecayAndSubtract(w, off, 0.9f, 0.02f, o, 1, len);
                assertSameBits(want, w, "cautiousDecayAndSubtract len " + len + " off " + off);
            }
        }
    }

    @Test
    void adamMoments() {
        float beta1 = 0.9f;
        float beta2 = 0.95f;
        float lr = 3e-3f;
        float weightDecay = 0.1f;
        float eps = 1e-8f;
        for (int t : new int[] {1, 10, 1000}) {
            float bc1 = (float) (1 - Math.pow(beta1, t));
            float bc2 = (float) (1 - Math.pow(beta2, t));
            for (int len : LENGTHS) {
                for (int off : OFFSETS) {
                    float[] w = padded(off, len);
                    float[] g = padded(1, len);
                    float[] m = padded(off, len);
                    float[] v = padded(off, len);
                    for (int i = off; i < off + len; i++) {
                        m[i] *= 0.1f;
                        v[i] = v[i] * v[i] * 0.01f;
                    }
                    if (len > 2) {
                        g[1] = 0f;
                        v[off] = 0f;
                        m[off] = 0f;
                    }
                    // u starts as the gradient (placed at the weights' offset) and ends as Adam's direction.
                    float[] u = padded(off, len);
                    System.arraycopy(g, 1, u, off, len);
                    float[] uWant = u.clone();
                    float[] mWant = m.clone();
                    float[] vWant = v.clone();
                    ScalarKernels.adamMoments(uWant, off, mWant, off, vWant, off, len, beta1, beta2, eps, bc1, bc2);
                    float[] u0 = u.clone();
                    Kernels.adamMoments(u, off, m, off, v, off, len, beta1, beta2, 1f - beta1, 1f - beta2, eps, bc1, bc2);
                    String what = "adam moments t " + t + " len " + len + " off " + off;
                    assertSameBits(mWant, m, what + ": m");
                    assertSameBits(vWant, v, what + ": v");
                    for (int i = 0; i < u.length; i++) {
                        if (i < off || i >= off + len) {
                            assertSameBits(new float[] {u0[i]}, new float[] {u[i]}, what + ": padding");
                            continue;
                        }
                        double direction = Math.abs((mWant[i] / bc1) / (Math.sqrt(vWant[i] / bc2) + eps));
                        assertEquals(uWant[i], u[i], 1e-6 * direction + 1e-30, what + ": u at " + i);
                    }
                }
            }
        }
    }
}
