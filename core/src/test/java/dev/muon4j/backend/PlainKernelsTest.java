package dev.muon4j.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The plain-loop kernels that run without {@code jdk.incubator.vector} ({@link PlainKernels})
 * against their Vector API forms ({@link VectorKernels}), which this JVM has: every elementwise
 * kernel must give the same bits, over lengths below, at and around the vector length and with a
 * tail, at several offsets, with zeros, NaN and infinities among the values. {@code sumOfSquares}
 * must give the same bits where the preferred vector holds {@value PlainKernels#LANES} floats and
 * agree within 1e-6 relative elsewhere.
 */
class PlainKernelsTest {
    private static final int[] LENGTHS = {0, 1, 7, 8, 9, 16, 17, 31, 1000, 1031, 2100};
    private static final int[] OFFSETS = {0, 3};

    private final Random random = new Random(20261128);

    /** Gaussian values in [off, off + len), with some zeros; NaN around them. */
    private float[] values(int off, int len) {
        float[] x = new float[off + len + 2];
        Arrays.fill(x, Float.NaN);
        for (int i = 0; i < len; i++) {
            x[off + i] = random.nextInt(10) == 0 ? 0f : (float) random.nextGaussian();
        }
        return x;
    }

    private static void assertSameBits(float[] want, float[] got, String what) {
        for (int i = 0; i < want.length; i++) {
            if (Float.floatToRawIntBits(want[i]) != Float.floatToRawIntBits(got[i])) {
                fail(what + ": index " + i + " Vector API " + want[i] + ", plain " + got[i]);
            }
        }
    }

    @Test
    void vectorApiIsPresentInTheTestJvm() {
        assertTrue(VectorApi.present(), "the tests run with --add-modules " + VectorApi.MODULE + " (muon4j.jvm.flags)");
    }

    @Test
    void scaleAxpyAxpbyAndTheDecoupledUpdates() {
        for (int len : LENGTHS) {
            for (int off : OFFSETS) {
                String at = " len " + len + " off " + off;
                float[] x = values(off, len);
                float[] y = values(off, len);

                float[] v = x.clone();
                float[] p = x.clone();
                VectorKernels.scale(v, off, len, -0.37f);
                PlainKernels.scale(p, off, len, -0.37f);
                assertSameBits(v, p, "scale" + at);

                v = y.clone();
                p = y.clone();
                VectorKernels.axpy(1.3f, x, off, v, off, len);
                PlainKernels.axpy(1.3f, x, off, p, off, len);
                assertSameBits(v, p, "axpy" + at);

                v = y.clone();
                p = y.clone();
                VectorKernels.axpby(0.7f, x, off, -0.2f, v, off, len);
                PlainKernels.axpby(0.7f, x, off, -0.2f, p, off, len);
                assertSameBits(v, p, "axpby" + at);

                v = y.clone();
                p = y.clone();
                VectorKernels.decayAndSubtract(v, off, 0.999f, 0.02f, x, off, len);
                PlainKernels.decayAndSubtract(p, off, 0.999f, 0.02f, x, off, len);
                assertSameBits(v, p, "decayAndSubtract" + at);

                v = y.clone();
                p = y.clone();
                VectorKernels.cautiousDecayAndSubtract(v, off, 0.9f, 0.05f, x, off, len);
                PlainKernels.cautiousDecayAndSubtract(p, off, 0.9f, 0.05f, x, off, len);
                assertSameBits(v, p, "cautiousDecayAndSubtract" + at);
            }
        }
    }

    @Test
    void momentumInEveryForm() {
        for (int len : LENGTHS) {
            for (int off : OFFSETS) {
                for (int form = 0; form < 4; form++) {
                    boolean ema = (form & 1) != 0;
                    boolean nesterov = (form & 2) != 0;
                    String what = "muonMomentum ema=" + ema + " nesterov=" + nesterov + " len " + len + " off " + off;
                    float[] g = values(off, len);
                    float[] m = values(off, len);
                    float[] mv = m.clone();
                    float[] mp = m.clone();
                    float[] uv = new float[m.length];
                    float[] up = new float[m.length];
                    VectorKernels.muonMomentum(ema, nesterov, 0.95, g, off, mv, off, uv, off, len);
                    PlainKernels.muonMomentum(ema, nesterov, 0.95, g, off, mp, off, up, off, len);
                    assertSameBits(mv, mp, what + ": m");
                    assertSameBits(uv, up, what + ": u");
                }
            }
        }
    }

    @Test
    void adamMoments() {
        for (int len : LENGTHS) {
            for (int off : OFFSETS) {
                float[] u = values(off, len);
                float[] m = values(off, len);
                float[] v = values(off, len);
                for (int i = off; i < off + len; i++) {
                    v[i] = v[i] * v[i];
                }
                float[] uv = u.clone();
                float[] mv = m.clone();
                float[] vv = v.clone();
                float[] up = u.clone();
                float[] mp = m.clone();
                float[] vp = v.clone();
                VectorKernels.adamMoments(uv, off, mv, off, vv, off, len, 0.9f, 0.95f, 0.1f, 0.05f, 1e-8f, 0.271f, 0.0975f);
                PlainKernels.adamMoments(up, off, mp, off, vp, off, len, 0.9f, 0.95f, 0.1f, 0.05f, 1e-8f, 0.271f, 0.0975f);
                String what = "adamMoments len " + len + " off " + off;
                assertSameBits(uv, up, what + ": u");
                assertSameBits(mv, mp, what + ": m");
                assertSameBits(vv, vp, what + ": v");
            }
        }
    }

    @Test
    void roundToBFloat16AndFirstNonFinite() {
        for (int len : LENGTHS) {
            for (int off : OFFSETS) {
                String at = " len " + len + " off " + off;
                float[] x = values(off, len);
                if (len > 3) {
                    x[off + 1] = Float.POSITIVE_INFINITY;
                    x[off + 2] = Float.intBitsToFloat(0x7fa00001);   // a NaN with a payload
                    x[off + 3] = -0f;
                }
                float[] v = x.clone();
                float[] p = x.clone();
                VectorKernels.roundToBFloat16(v, off, len);
                PlainKernels.roundToBFloat16(p, off, len);
                assertSameBits(v, p, "roundToBFloat16" + at);

                float[] finite = values(off, len);
                assertEquals(-1, PlainKernels.firstNonFinite(finite, off, len), "firstNonFinite of finite values" + at);
                for (int position : new int[] {0, len / 2, len - 1}) {
                    if (position < 0 || position >= len) {
                        continue;
                    }
                    for (float bad : new float[] {Float.NaN, Float.NEGATIVE_INFINITY}) {
                        float[] y = finite.clone();
                        y[off + position] = bad;
                        assertEquals(VectorKernels.firstNonFinite(y, off, len), PlainKernels.firstNonFinite(y, off, len),
                                "firstNonFinite of " + bad + " at " + position + at);
                        assertEquals(position, PlainKernels.firstNonFinite(y, off, len), "firstNonFinite" + at);
                    }
                }
            }
        }
    }

    @Test
    void sumOfSquares() {
        boolean sameLanes = VectorKernels.S.length() == PlainKernels.LANES;
        for (int len : LENGTHS) {
            for (int off : OFFSETS) {
                float[] x = values(off, len);
                double v = VectorKernels.sumOfSquares(x, off, len);
                double p = PlainKernels.sumOfSquares(x, off, len);
                String what = "sumOfSquares len " + len + " off " + off + " (" + VectorKernels.S.length() + " lanes)";
                if (sameLanes) {
                    assertEquals(Double.doubleToRawLongBits(v), Double.doubleToRawLongBits(p), what + ": " + v + " against " + p);
                } else {
                    assertEquals(v, p, 1e-6 * v, what);
                }
            }
        }
    }
}
