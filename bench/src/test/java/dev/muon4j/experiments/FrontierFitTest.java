package dev.muon4j.experiments;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The frontier fit L(C) = a·C^(−b) + L∞ recovers known curves from synthetic points: exactly from exact
 * points, closely from points with a little noise, whatever the scale of C; the lower envelope keeps the
 * compute-optimal points; bad input is refused with the offending value named.
 */
class FrontierFitTest {
    /** n points log-spaced over [lo, hi] on a·C^(−b) + L∞, each moved by up to ±noise (uniform, seeded). */
    private static double[][] points(double a, double b, double lInf, double lo, double hi, int n, double noise, long seed) {
        Random r = new Random(seed);
        double[] c = new double[n];
        double[] l = new double[n];
        for (int i = 0; i < n; i++) {
            c[i] = lo * Math.pow(hi / lo, i / (n - 1.0));
            l[i] = a * Math.pow(c[i], -b) + lInf + noise * (2 * r.nextDouble() - 1);
        }
        return new double[][] {c, l};
    }

    @Test
    void recoversExactCurves() {
        // Losses of our frontiers' scale: from about 3.3 at 1e10 FLOPs to 2 at 1e13.
        double[][] cases = {{570, 0.25, 1.2}, {40, 0.1, 0.5}, {3e5, 0.5, 2.0}, {12, 0.05, 0}};
        for (double[] k : cases) {
            double[][] p = points(k[0], k[1], k[2], 1e10, 1e13, 8, 0, 1);
            FrontierFit f = FrontierFit.fit(p[0], p[1]);
            String what = String.format("a %g, b %g, L∞ %g: got %s", k[0], k[1], k[2], f);
            assertEquals(k[1], f.b(), 1e-6 * k[1], what);
            assertEquals(k[2], f.lInf(), 1e-6, what);
            assertEquals(k[0], f.a(), 1e-5 * k[0], what);
            assertTrue(f.rmse() < 1e-8, what);
            assertEquals(8, f.points());
        }
    }

    @Test
    void recoversCurvesFromNoisyPoints() {
        double a = 570;
        double b = 0.25;
        double lInf = 1.2;
        for (long seed = 1; seed <= 5; seed++) {
            double[][] p = points(a, b, lInf, 1e10, 1e13, 10, 0.005, seed);
            FrontierFit f = FrontierFit.fit(p[0], p[1]);
            String what = "seed " + seed + ": " + f;
            assertEquals(b, f.b(), 0.05, what);
            assertEquals(lInf, f.lInf(), 0.1, what);
            assertTrue(f.rmse() <= 0.005, what);
            // Within the fitted range the curve is close to the true one, and so is the compute for a loss.
            for (double c : new double[] {1e10, 1e11, 1e12, 1e13}) {
                double truth = a * Math.pow(c, -b) + lInf;
                assertEquals(truth, f.loss(c), 0.006, what + " at C = " + c);
                assertEquals(1, f.computeFor(truth) / c, 0.15, what + ": compute for the loss at C = " + c);
            }
        }
    }

    @Test
    void theScaleOfTheComputeDoesNotMatter() {
        double[][] p = points(2.0, 0.3, 1.5, 1, 1000, 6, 0, 2);
        FrontierFit small = FrontierFit.fit(p[0], p[1]);
        double[] big = new double[p[0].length];
        for (int i = 0; i < big.length; i++) {
            big[i] = p[0][i] * 1e15;
        }
        FrontierFit scaled = FrontierFit.fit(big, p[1]);
        assertEquals(small.b(), scaled.b(), 1e-9);
        assertEquals(small.lInf(), scaled.lInf(), 1e-9);
        assertEquals(small.a() * Math.pow(1e15, small.b()), scaled.a(), 1e-6 * scaled.a());
    }

    @Test
    void computeForAndLossAreInverses() {
        FrontierFit f = new FrontierFit(570, 0.25, 1.2, 0, 5);
        assertEquals(3.0, f.loss(f.computeFor(3.0)), 1e-12);
        assertTrue(Double.isNaN(f.computeFor(1.2)), "L∞ itself is never reached");
        assertTrue(Double.isNaN(f.computeFor(1.0)), "below L∞");
        assertTrue(Double.isNaN(new FrontierFit(0, 0.25, 2, 0, 5).computeFor(3)), "a flat curve reaches nothing");
    }

    @Test
    void aFlatSetOfPointsFitsAFlatCurve() {
        FrontierFit f = FrontierFit.fit(new double[] {1e9, 1e10, 1e11, 1e12}, new double[] {2.5, 2.5, 2.5, 2.5});
        assertEquals(2.5, f.loss(1e10), 1e-12, f.toString());
        assertTrue(f.rmse() < 1e-12, f.toString());
    }

    @Test
    void lossesThatRiseWithComputeGetAnAlmostFlatCurveAtTheirMean() {
        // a ≥ 0 and b > 0 allow no rising curve; the best is as flat as the smallest b makes it, near the mean 2.5.
        FrontierFit f = FrontierFit.fit(new double[] {1e9, 1e10, 1e11}, new double[] {2.0, 2.5, 3.0});
        assertEquals(FrontierFit.B_MIN, f.b(), 1e-9, f.toString());
        for (double c : new double[] {1e9, 1e10, 1e11}) {
            assertEquals(2.5, f.loss(c), 0.02, "at " + c + ": " + f);
        }
        assertTrue(f.lInf() <= 2.0, "L∞ never above the lowest loss: " + f);
    }

    @Test
    void lowerEnvelopeKeepsTheComputeOptimalPoints() {
        double[] c = {4, 1, 2, 3, 5, 6};
        double[] l = {2.5, 3.0, 2.8, 2.9, 2.6, Double.NaN};
        // By compute: 1→3.0 (kept), 2→2.8 (kept), 3→2.9 (no: 2 did better with less), 4→2.5 (kept), 5→2.6 (no), 6→NaN (never).
        assertArrayEquals(new int[] {1, 2, 0}, FrontierFit.lowerEnvelope(c, l));
    }

    @Test
    void badInputIsRefused() {
        IllegalArgumentException few = assertThrows(IllegalArgumentException.class,
                () -> FrontierFit.fit(new double[] {1, 2}, new double[] {3, 2}));
        assertTrue(few.getMessage().contains("at least 3 points, got 2"), few.getMessage());
        IllegalArgumentException lengths = assertThrows(IllegalArgumentException.class,
                () -> FrontierFit.fit(new double[] {1, 2, 3}, new double[] {3, 2}));
        assertTrue(lengths.getMessage().contains("3 compute values but 2 losses"), lengths.getMessage());
        IllegalArgumentException zero = assertThrows(IllegalArgumentException.class,
                () -> FrontierFit.fit(new double[] {1, 0, 3}, new double[] {3, 2, 1}));
        assertTrue(zero.getMessage().contains("compute 1 is 0.0"), zero.getMessage());
        IllegalArgumentException nan = assertThrows(IllegalArgumentException.class,
                () -> FrontierFit.fit(new double[] {1, 2, 3}, new double[] {3, Double.NaN, 1}));
        assertTrue(nan.getMessage().contains("loss 1 is NaN"), nan.getMessage());
    }
}
