package dev.muon4j.optim;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

/**
 * {@link QkClip} against the float64 reference {@link VariantReference#qkClip} (docs/VARIANTS.md,
 * "MuonClip / QK-clip"), for multi-head and grouped-query shapes. The float version multiplies each
 * float weight by the same double factor √(τ/S) as the reference and rounds once, so the results
 * agree bit for bit; heads (groups) at or under τ are untouched.
 */
class QkClipTest {
    static float[] gaussian(SplittableRandom r, int n) {
        return VariantTransformsTest.gaussian(r, n, 1);
    }

    /** S per head: some over τ = 5, some at it, some under, one negative. */
    static double[] logits(SplittableRandom r, int heads) {
        double[] s = new double[heads];
        for (int h = 0; h < heads; h++) {
            s[h] = switch (h % 4) {
                case 0 -> 5 + 40 * r.nextDouble() + 1e-3;  // over τ
                case 1 -> 5;                               // exactly τ: not clipped
                case 2 -> 5 * r.nextDouble();              // under τ
                default -> -3 * r.nextDouble() - 0.5;      // negative
            };
        }
        return s;
    }

    @ParameterizedTest(name = "H={0} K={1} D={2} C={3}")
    @CsvSource({"4, 4, 3, 7", "8, 8, 2, 5", "6, 2, 4, 9", "8, 2, 3, 6", "4, 1, 5, 3", "1, 1, 8, 8"})
    void matchesTheFloat64ReferenceBitForBit(int heads, int kvHeads, int headDim, int cols) {
        double tau = 5;
        for (long seed = 1; seed <= 8; seed++) {
            SplittableRandom r = new SplittableRandom(seed * 31 + heads);
            float[] wq = gaussian(r, heads * headDim * cols);
            float[] wk = gaussian(r, kvHeads * headDim * cols);
            double[] s = logits(r, heads);
            if (seed % 2 == 0) {
                // every other draw leaves exactly one group over τ
                for (int h = heads / kvHeads; h < heads; h++) {
                    s[h] = Math.min(s[h], tau);
                }
            }
            VariantReference.QkClip want = VariantReference.qkClip(VariantTransformsTest.widen(wq),
                    VariantTransformsTest.widen(wk), heads, kvHeads, headDim, cols, s, tau);
            float[] q = wq.clone();
            float[] k = wk.clone();
            int scaled = QkClip.clip(q, k, heads, kvHeads, headDim, s, tau);
            assertBitEqual(want.wq(), q, "W_q, seed " + seed);
            assertBitEqual(want.wk(), k, "W_k, seed " + seed);
            assertArrayEquals(want.gamma(), QkClip.factors(s, kvHeads, tau), 0, "γ, seed " + seed);
            int expected = 0;
            for (double g : want.gamma()) {
                expected += g != 1 ? 1 : 0;
            }
            assertEquals(expected, scaled, "scaled heads, seed " + seed);
            // Untouched groups are the very input bits.
            int group = heads / kvHeads;
            for (int g = 0; g < kvHeads; g++) {
                if (want.gamma()[g * group] == 1) {
                    for (int i = g * group * headDim * cols; i < (g + 1) * group * headDim * cols; i++) {
                        assertEquals(Float.floatToRawIntBits(wq[i]), Float.floatToRawIntBits(q[i]), "W_q element " + i);
                    }
                    for (int i = g * headDim * cols; i < (g + 1) * headDim * cols; i++) {
                        assertEquals(Float.floatToRawIntBits(wk[i]), Float.floatToRawIntBits(k[i]), "W_k element " + i);
                    }
                }
            }
        }
    }

    static void assertBitEqual(double[] want, float[] got, String what) {
        assertEquals(want.length, got.length, what + ": length");
        for (int i = 0; i < want.length; i++) {
            assertEquals(Float.floatToRawIntBits((float) want[i]), Float.floatToRawIntBits(got[i]),
                    what + ": element " + i + " is " + got[i] + ", reference " + want[i]);
        }
    }

    @Test
    void handComputedGroupedQueryScalesTheWholeGroup() {
        // H = 4, K = 2, D = 1, C = 2; S = [400, 50, 80, 90], τ = 100: group 0 (max 400) × √¼ = ½,
        // including head 1 that was under τ; group 1 (max 90) untouched.
        float[] wq = {1, 2, 3, 4, 5, 6, 7, 8};
        float[] wk = {2, -2, 3, 3};
        int scaled = QkClip.clip(wq, wk, 4, 2, 1, new double[] {400, 50, 80, 90}, 100);
        assertArrayEquals(new float[] {0.5f, 1, 1.5f, 2, 5, 6, 7, 8}, wq);
        assertArrayEquals(new float[] {1, -1, 3, 3}, wk);
        assertEquals(2, scaled);
        assertArrayEquals(new double[] {0.25, 0.25, 1, 1}, QkClip.factors(new double[] {400, 50, 80, 90}, 2, 100), 0);
    }

    @Test
    void aNaNOrMissingMaximumLeavesItsGroupAlone() {
        float[] wq = {1, 2, 3, 4};
        float[] wk = {5, 6, 7, 8};
        int scaled = QkClip.clip(wq, wk, 2, 2, 1, new double[] {Double.NaN, Double.NEGATIVE_INFINITY}, 1);
        assertEquals(0, scaled);
        assertArrayEquals(new float[] {1, 2, 3, 4}, wq);
        assertArrayEquals(new float[] {5, 6, 7, 8}, wk);
    }

    @ParameterizedTest
    @ValueSource(doubles = {0, -1, Double.NaN, Double.POSITIVE_INFINITY})
    void rejectsAThresholdThatIsNotPositiveAndFinite(double tau) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> QkClip.clip(new float[4], new float[4], 2, 2, 1, new double[] {1, 2}, tau));
        assertTrue(e.getMessage().contains("threshold τ") && e.getMessage().contains(String.valueOf(tau)), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> QkClip.factors(new double[] {1, 2}, 2, tau));
    }

    @Test
    void rejectsShapesThatDoNotMatch() {
        IllegalArgumentException heads = assertThrows(IllegalArgumentException.class,
                () -> QkClip.clip(new float[6], new float[4], 3, 2, 1, new double[3], 1));
        assertTrue(heads.getMessage().contains("query heads 3") && heads.getMessage().contains("key heads 2"), heads.getMessage());
        IllegalArgumentException logits = assertThrows(IllegalArgumentException.class,
                () -> QkClip.clip(new float[4], new float[4], 2, 2, 1, new double[3], 1));
        assertTrue(logits.getMessage().contains("3 max logits for 2 query heads"), logits.getMessage());
        IllegalArgumentException q = assertThrows(IllegalArgumentException.class,
                () -> QkClip.clip(new float[5], new float[4], 2, 2, 1, new double[2], 1));
        assertTrue(q.getMessage().contains("W_q has 5 values"), q.getMessage());
        IllegalArgumentException k = assertThrows(IllegalArgumentException.class,
                () -> QkClip.clip(new float[8], new float[6], 2, 1, 2, new double[2], 1));
        assertTrue(k.getMessage().contains("W_k has 6 values"), k.getMessage());
    }
}
