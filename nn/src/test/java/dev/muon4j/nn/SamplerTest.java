package dev.muon4j.nn;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The sampling arithmetic on logits whose answer is known: greedy decoding, top-k, top-p on a
 * constructed distribution, temperature against a float64 softmax, and the draws' frequencies and
 * reproducibility.
 */
class SamplerTest {
    /** Logits whose softmax at T = 1 is exactly the given probabilities (up to float rounding). */
    private static float[] logitsOf(double... probabilities) {
        float[] z = new float[probabilities.length];
        for (int i = 0; i < z.length; i++) {
            z[i] = (float) Math.log(probabilities[i]);
        }
        return z;
    }

    /** softmax(z / T) in float64, the plain way. */
    private static double[] softmax(float[] z, double temperature) {
        double max = Double.NEGATIVE_INFINITY;
        for (float v : z) {
            max = Math.max(max, v / temperature);
        }
        double[] p = new double[z.length];
        double sum = 0;
        for (int i = 0; i < z.length; i++) {
            p[i] = Math.exp(z[i] / temperature - max);
            sum += p[i];
        }
        for (int i = 0; i < z.length; i++) {
            p[i] /= sum;
        }
        return p;
    }

    private static float[] randomLogits(long seed, int vocab) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] z = new float[vocab];
        for (int i = 0; i < vocab; i++) {
            z[i] = (float) (3 * r.nextGaussian());
        }
        return z;
    }

    @Test
    void greedyPicksTheLargestLogitAndTheSmallestIdAmongEqualOnes() {
        float[] z = {0.5f, -1f, 2.25f, 2.0f, -3f};
        Sampler greedy = new Sampler(SamplingConfig.greedy(), 1);
        for (int i = 0; i < 5; i++) {
            assertEquals(2, greedy.next(z, 0, z.length));
        }
        assertArrayEquals(new double[] {0, 0, 1, 0, 0}, Sampler.probabilities(SamplingConfig.greedy(), z, 0, z.length));
        float[] tied = {1f, 4f, 0f, 4f};
        assertEquals(1, Sampler.argmax(tied, 0, 4));
        // a row inside a larger array: the offset is honoured
        float[] rows = {9f, 0f, 0f, 0f, 1f, 3f, 2f};
        assertEquals(1, Sampler.argmax(rows, 4, 3));
    }

    @Test
    void topKOfOneIsGreedyWhateverTheTemperature() {
        for (long seed = 0; seed < 20; seed++) {
            float[] z = randomLogits(seed, 50);
            int best = Sampler.argmax(z, 0, z.length);
            SamplingConfig topOne = new SamplingConfig(1.7, 1, 0.9);
            Sampler sampler = new Sampler(topOne, seed);
            for (int draw = 0; draw < 10; draw++) {
                assertEquals(best, sampler.next(z, 0, z.length));
            }
            assertArrayEquals(Sampler.probabilities(SamplingConfig.greedy(), z, 0, z.length),
                    Sampler.probabilities(topOne, z, 0, z.length));
        }
    }

    @Test
    void temperatureDividesTheLogitsBeforeTheSoftmax() {
        float[] z = randomLogits(7, 40);
        for (double t : new double[] {0.25, 0.5, 1, 2, 10}) {
            double[] q = Sampler.probabilities(new SamplingConfig(t, 0, 1), z, 0, z.length);
            double[] expected = softmax(z, t);
            for (int i = 0; i < z.length; i++) {
                assertEquals(expected[i], q[i], 1e-12, "T = " + t + ", token " + i);
            }
        }
        // lower temperature: the most likely token gains; higher: the distribution flattens towards uniform
        int best = Sampler.argmax(z, 0, z.length);
        double at1 = Sampler.probabilities(new SamplingConfig(1, 0, 1), z, 0, z.length)[best];
        assertTrue(Sampler.probabilities(new SamplingConfig(0.5, 0, 1), z, 0, z.length)[best] > at1);
        double[] hot = Sampler.probabilities(new SamplingConfig(1e6, 0, 1), z, 0, z.length);
        for (double q : hot) {
            assertEquals(1.0 / z.length, q, 1e-6);
        }
    }

    @Test
    void topKKeepsTheKLargestLogitsRenormalised() {
        float[] z = {1f, 5f, 3f, 4f, 2f, 0f};
        double[] q = Sampler.probabilities(new SamplingConfig(1, 3, 1), z, 0, z.length);
        double[] p = softmax(new float[] {5f, 3f, 4f}, 1);
        assertArrayEquals(new double[] {0, p[0], p[1], p[2], 0, 0}, q, 1e-12);
        // exactly k tokens also when the k-th logit is tied with the next one: the smaller id wins
        double[] tied = Sampler.probabilities(new SamplingConfig(1, 2, 1), new float[] {3f, 1f, 3f, 3f}, 0, 4);
        assertArrayEquals(new double[] {0.5, 0, 0.5, 0}, tied, 1e-12);
        // k larger than the vocabulary keeps everything
        assertArrayEquals(softmax(z, 1), Sampler.probabilities(new SamplingConfig(1, 100, 1), z, 0, z.length), 1e-12);
    }

    @Test
    void topPKeepsTheSmallestSetOfMostLikelyTokensWhoseMassReachesP() {
        // probabilities 0.1, 0.4, 0.2, 0.3 (shuffled so that the order is not the ids'); the logits are floats,
        // so the thresholds stay clear of the sums: 0.4, 0.7, 0.9
        float[] z = logitsOf(0.1, 0.4, 0.2, 0.3);
        double tol = 1e-6;
        assertArrayEquals(new double[] {0, 1, 0, 0}, Sampler.probabilities(new SamplingConfig(1, 0, 0.39), z, 0, 4), tol,
                "0.4 alone reaches 0.39");
        assertArrayEquals(new double[] {0, 1, 0, 0}, Sampler.probabilities(new SamplingConfig(1, 0, 0.01), z, 0, 4), tol,
                "the most likely token is always kept");
        assertArrayEquals(new double[] {0, 4 / 7.0, 0, 3 / 7.0}, Sampler.probabilities(new SamplingConfig(1, 0, 0.41), z, 0, 4), tol,
                "0.4 falls short of 0.41: 0.4 + 0.3");
        assertArrayEquals(new double[] {0, 4 / 7.0, 0, 3 / 7.0}, Sampler.probabilities(new SamplingConfig(1, 0, 0.69), z, 0, 4), tol,
                "0.4 + 0.3 reaches 0.69");
        assertArrayEquals(new double[] {0, 4 / 9.0, 2 / 9.0, 3 / 9.0},
                Sampler.probabilities(new SamplingConfig(1, 0, 0.71), z, 0, 4), tol, "0.7 falls short of 0.71: the third one joins");
        assertArrayEquals(new double[] {0.1, 0.4, 0.2, 0.3}, Sampler.probabilities(new SamplingConfig(1, 0, 0.91), z, 0, 4), tol,
                "0.9 falls short of 0.91: all four");
        assertArrayEquals(new double[] {0.1, 0.4, 0.2, 0.3}, Sampler.probabilities(new SamplingConfig(1, 0, 1), z, 0, 4), tol,
                "p = 1 keeps all");
        // a mass that reaches p exactly: four equal logits are 0.25 each in exact arithmetic; p = 0.5 keeps two (smaller ids)
        assertArrayEquals(new double[] {0.5, 0.5, 0, 0}, Sampler.probabilities(new SamplingConfig(1, 0, 0.5), new float[4], 0, 4),
                1e-15);
        assertArrayEquals(new double[] {1 / 3.0, 1 / 3.0, 1 / 3.0, 0},
                Sampler.probabilities(new SamplingConfig(1, 0, 0.75), new float[4], 0, 4), 1e-15);
        // after top-k: top-k 3 leaves 0.4, 0.3, 0.2 → 4/9, 3/9, 2/9; p = 0.6 needs 4/9 + 3/9
        assertArrayEquals(new double[] {0, 4 / 7.0, 0, 3 / 7.0}, Sampler.probabilities(new SamplingConfig(1, 3, 0.6), z, 0, 4), tol);
        // temperature 0.5 squares the probabilities: 0.16, 0.09, 0.04, 0.01 over 0.3; 0.16/0.3 = 0.533 reaches 0.5
        assertArrayEquals(new double[] {0, 1, 0, 0}, Sampler.probabilities(new SamplingConfig(0.5, 0, 0.5), z, 0, 4), tol);
    }

    @Test
    void drawsFollowTheProbabilities() {
        float[] z = logitsOf(0.1, 0.4, 0.2, 0.3);
        SamplingConfig config = new SamplingConfig(1, 0, 0.8);   // keeps 0.4, 0.3, 0.2 → 4/9, 3/9, 2/9
        Sampler sampler = new Sampler(config, 42);
        int n = 90_000;
        int[] counts = new int[4];
        for (int i = 0; i < n; i++) {
            counts[sampler.next(z, 0, 4)]++;
        }
        assertEquals(0, counts[0], "a token outside the nucleus is never drawn");
        double[] expected = {0, 4 / 9.0, 2 / 9.0, 3 / 9.0};
        for (int i = 1; i < 4; i++) {
            double sd = Math.sqrt(n * expected[i] * (1 - expected[i]));
            assertEquals(n * expected[i], counts[i], 5 * sd, "token " + i + ": " + java.util.Arrays.toString(counts));
        }
    }

    @Test
    void theSameSeedDrawsTheSameTokensAndAnotherSeedOthers() {
        float[] z = randomLogits(3, 64);
        SamplingConfig config = new SamplingConfig(2.0, 0, 1);
        int[] a = draws(new Sampler(config, 11), z, 200);
        int[] b = draws(new Sampler(config, 11), z, 200);
        int[] c = draws(new Sampler(config, 12), z, 200);
        assertArrayEquals(a, b);
        assertNotEquals(java.util.Arrays.toString(a), java.util.Arrays.toString(c));
    }

    private static int[] draws(Sampler sampler, float[] z, int n) {
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
            out[i] = sampler.next(z, 0, z.length);
        }
        return out;
    }

    @Test
    void brokenLogitsAndBadSettingsAreNamed() {
        var e = assertThrows(IllegalArgumentException.class, () -> new Sampler(new SamplingConfig(1, 0, 1), 1)
                .next(new float[] {0f, Float.NaN, 1f}, 0, 3));
        assertTrue(e.getMessage().contains("token 1 is NaN"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Sampler.argmax(new float[] {Float.NEGATIVE_INFINITY}, 0, 1));
        assertTrue(e.getMessage().contains("-Infinity"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new SamplingConfig(-0.5, 0, 1));
        assertTrue(e.getMessage().contains("temperature") && e.getMessage().contains("-0.5"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new SamplingConfig(1, -2, 1));
        assertTrue(e.getMessage().contains("top-k") && e.getMessage().contains("-2"), e.getMessage());
        for (double p : new double[] {0, 1.5, Double.NaN}) {
            e = assertThrows(IllegalArgumentException.class, () -> new SamplingConfig(1, 0, p));
            assertTrue(e.getMessage().contains("top-p") && e.getMessage().contains(Double.toString(p)), e.getMessage());
        }
        // -Infinity logits are masked tokens: never drawn
        float[] masked = {Float.NEGATIVE_INFINITY, 0f, Float.NEGATIVE_INFINITY};
        assertArrayEquals(new double[] {0, 1, 0}, Sampler.probabilities(new SamplingConfig(1, 0, 1), masked, 0, 3));
    }
}
