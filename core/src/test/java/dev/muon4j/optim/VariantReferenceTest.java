package dev.muon4j.optim;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.tensor.BFloat16;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Self-checks of {@link VariantReference}: hand-computed 2×3 and 3×2 cases, the property each variant
 * promises (NorMuon: equal row norms and the Frobenius norm kept; cautious decay: no coordinate decayed
 * where update and weight disagree in sign; QK-clip: every head's recomputed max logit ≤ τ, untouched
 * heads bit-identical; per-head orthogonalization: each head's singular values in the Newton–Schulz
 * band, the whole matrix's not), Gram Newton–Schulz against the standard iteration, AOL's norm bound,
 * and the bfloat16 emulation of torch.optim.Muon against outputs of PyTorch itself.
 */
class VariantReferenceTest {
    /** The band five Keller Jordan steps put singular values in (NewtonSchulzTest uses the same). */
    private static final double BAND_LOW = 0.6;
    private static final double BAND_HIGH = 1.2024;

    // ------------------------------------------------------------------------------------ NorMuon

    @Test
    void norMuonHandComputed2x3() {
        // O = [[1,1,1],[2,2,2]]: row means of squares m = [1, 4]. With v = [1, 4] and β2 = ½,
        // v' = v + ½(m − v) = [1, 4]; Ô = O / √v' = all ones; ‖Ô‖ = √6, ‖O‖ = √15,
        // so U = Ô·√15/√6 = √2.5 everywhere: both rows now have the same norm.
        double[] o = {1, 1, 1, 2, 2, 2};
        VariantReference.NorMuonStep step = VariantReference.norMuon(o, 2, 3, new double[] {1, 4}, 0.5, 0);
        double u = Math.sqrt(2.5);
        assertArrayEquals(new double[] {u, u, u, u, u, u}, step.update(), 1e-15);
        assertArrayEquals(new double[] {1, 4}, step.state(), 0);
    }

    @Test
    void norMuonHandComputed3x2WithZeroRow() {
        // O = [[3,4],[0,0],[1,0]], v = 0, β2 = ½: m = [12.5, 0, 0.5], v' = [6.25, 0, 0.25],
        // √v' = [2.5, 0, 0.5]. Ô ≈ [[1.2, 1.6], [0, 0], [2, 0]] (the zero row stays 0 because of eps),
        // ‖Ô‖² = 8, ‖O‖² = 26, so U = Ô·√(26/8) = Ô·√3.25.
        double[] o = {3, 4, 0, 0, 1, 0};
        VariantReference.NorMuonStep step = VariantReference.norMuon(o, 3, 2, new double[3], 0.5,
                VariantReference.NORMUON_EPS);
        double r = Math.sqrt(3.25);
        assertArrayEquals(new double[] {1.2 * r, 1.6 * r, 0, 0, 2 * r, 0}, step.update(), 1e-7);
        assertArrayEquals(new double[] {6.25, 0, 0.25}, step.state(), 0);
        assertEquals(0.0, step.update()[2]);
        assertEquals(0.0, step.update()[3]);
    }

    @Test
    void norMuonFromZeroStateGivesRowsOfEqualNormAndKeepsFrobenius() {
        for (int[] shape : new int[][] {{8, 12}, {12, 8}, {5, 5}}) {
            int rows = shape[0];
            int cols = shape[1];
            double[] o = orthogonalized(new Random(rows * 31L + cols), rows, cols);
            VariantReference.NorMuonStep step = VariantReference.norMuon(o, rows, cols, new double[rows],
                    VariantReference.NORMUON_BETA2, VariantReference.NORMUON_EPS);
            double norm = VariantReference.frobenius(o);
            assertEquals(norm, VariantReference.frobenius(step.update()), 1e-12 * norm, "Frobenius norm kept");
            double[] rowNorms = rowNorms(step.update(), rows, cols);
            double expected = norm / Math.sqrt(rows);
            for (double n : rowNorms) {
                assertEquals(expected, n, 1e-6 * expected, "rows of equal norm " + Arrays.toString(rowNorms));
            }
            for (int i = 0; i < rows; i++) {
                double mean = 0;
                for (int j = 0; j < cols; j++) {
                    mean += o[i * cols + j] * o[i * cols + j] / cols;
                }
                assertEquals((1 - VariantReference.NORMUON_BETA2) * mean, step.state()[i], 1e-15,
                        "v' = (1 − β2)·mean of squares from a zero state");
            }
        }
    }

    @Test
    void norMuonWithArbitraryStateKeepsFrobeniusButNotRowNorms() {
        Random random = new Random(5);
        double[] o = orthogonalized(random, 6, 10);
        double[] state = new double[6];
        for (int i = 0; i < 6; i++) {
            state[i] = Math.pow(10, -1 - 2 * random.nextDouble());
        }
        VariantReference.NorMuonStep step = VariantReference.norMuon(o, 6, 10, state, VariantReference.NORMUON_BETA2,
                VariantReference.NORMUON_EPS);
        double norm = VariantReference.frobenius(o);
        assertEquals(norm, VariantReference.frobenius(step.update()), 1e-12 * norm);
        double[] rowNorms = rowNorms(step.update(), 6, 10);
        double spread = Arrays.stream(rowNorms).max().getAsDouble() / Arrays.stream(rowNorms).min().getAsDouble();
        assertTrue(spread > 1.5, "a stale state weights rows unequally: max/min row norm " + spread);
    }

    @Test
    void norMuonAtSteadyStateGivesRowsOfEqualNorm() {
        int rows = 7;
        int cols = 11;
        double[] o = orthogonalized(new Random(17), rows, cols);
        double[] state = new double[rows];
        double[] update = null;
        for (int t = 0; t < 600; t++) {
            VariantReference.NorMuonStep step = VariantReference.norMuon(o, rows, cols, state,
                    VariantReference.NORMUON_BETA2, VariantReference.NORMUON_EPS);
            state = step.state();
            update = step.update();
        }
        double[] rowNorms = rowNorms(update, rows, cols);
        double expected = VariantReference.frobenius(o) / Math.sqrt(rows);
        for (double n : rowNorms) {
            assertEquals(expected, n, 1e-6 * expected);
        }
    }

    @Test
    void norMuonStackedRescalesEachMatrixAlone() {
        int rows = 4;
        int cols = 6;
        double[] first = orthogonalized(new Random(1), rows, cols);
        double[] second = orthogonalized(new Random(2), rows, cols);
        for (int k = 0; k < second.length; k++) {
            second[k] *= 1000;
        }
        double[] stacked = concat(first, second);
        VariantReference.NorMuonStep step = VariantReference.norMuonStacked(stacked, 2, rows, cols, new double[2 * rows],
                VariantReference.NORMUON_BETA2, VariantReference.NORMUON_EPS);
        double[] u1 = Arrays.copyOfRange(step.update(), 0, rows * cols);
        double[] u2 = Arrays.copyOfRange(step.update(), rows * cols, 2 * rows * cols);
        assertEquals(VariantReference.frobenius(first), VariantReference.frobenius(u1), 1e-12);
        assertEquals(VariantReference.frobenius(second), VariantReference.frobenius(u2), 1e-9);
        VariantReference.NorMuonStep alone = VariantReference.norMuon(second, rows, cols, new double[rows],
                VariantReference.NORMUON_BETA2, VariantReference.NORMUON_EPS);
        assertArrayEquals(alone.update(), u2, 0);
    }

    @Test
    void norMuonPaperRescaleGivesTheTargetRms() {
        double[] o = orthogonalized(new Random(3), 5, 9);
        double[] u = VariantReference.scaleToRms(VariantReference.norMuon(o, 5, 9, new double[5],
                VariantReference.NORMUON_BETA2, VariantReference.NORMUON_EPS).update(), 0.2);
        assertEquals(0.2, VariantReference.frobenius(u) / Math.sqrt(u.length), 1e-15);
    }

    // ---------------------------------------------------------------------- cautious weight decay

    @Test
    void cautiousDecayHandComputed2x3() {
        // U⊙W = [[0.5, −2, 0], [−6, 3, 0]]: mask [[1, 0, 1], [0, 1, 1]] (≥ 0, zeros decayed).
        // lr = 0.1, wd = 0.5, s = 2: W' = W − 0.05·mask⊙W − 0.2·U.
        double[] w = {1, -2, 0, 3, -1, 2};
        double[] u = {0.5, 1, -1, -2, -3, 0};
        boolean[] mask = VariantReference.cautiousMask(w, u);
        assertArrayEquals(new boolean[] {true, false, true, false, true, true}, mask);
        double[] next = VariantReference.cautiousStep(w, u, 0.1, 0.5, 2);
        assertArrayEquals(new double[] {0.85, -2.2, 0.2, 3.4, -0.35, 1.9}, next, 1e-15);
    }

    @Test
    void cautiousDecayHandComputed3x2() {
        // U⊙W = [[−1, 4], [0, −0.25], [9, −0]]: mask [[0, 1], [1, 0], [1, 1]] (−0 counts as ≥ 0).
        // lr = 0.5, wd = 0.2, s = 1: W' = W − 0.1·mask⊙W − 0.5·U.
        double[] w = {-1, 2, 4, 0.5, -3, -0.0};
        double[] u = {1, 2, 0, -0.5, -3, 7};
        double[] next = VariantReference.cautiousStep(w, u, 0.5, 0.2, 1);
        assertArrayEquals(new double[] {-1.5, 0.8, 3.6, 0.75, -1.2, -3.5}, next, 1e-15);
    }

    @Test
    void cautiousDecayNeverDecaysWhereSignsDisagree() {
        Random random = new Random(23);
        int n = 500;
        double[] w = new double[n];
        double[] u = new double[n];
        for (int k = 0; k < n; k++) {
            w[k] = random.nextGaussian();
            u[k] = random.nextGaussian();
        }
        w[0] = 0;
        u[1] = 0;
        double lr = 0.02;
        double wd = 0.1;
        double s = 1.5;
        double[] next = VariantReference.cautiousStep(w, u, lr, wd, s);
        int decayed = 0;
        for (int k = 0; k < n; k++) {
            double undecayed = w[k] - lr * s * u[k];
            if (u[k] * w[k] < 0) {
                assertEquals(undecayed, next[k], 0, "no decay where signs disagree, index " + k);
            } else {
                assertEquals(w[k] * (1 - lr * wd) - lr * s * u[k], next[k], 1e-14, "decayed at index " + k);
                decayed++;
            }
        }
        assertTrue(decayed > n / 3 && decayed < 2 * n / 3, "about half decayed: " + decayed);
    }

    @Test
    void cautiousDecayEqualsPlainDecayWhereSignsAllAgree() {
        double[] w = {0.3, -0.7, 1.1, -2.0};
        double[] u = {0.1, -0.2, 0.3, -0.4};
        double[] next = VariantReference.cautiousStep(w, u, 0.1, 0.3, 2);
        for (int k = 0; k < w.length; k++) {
            assertEquals(w[k] * (1 - 0.1 * 0.3) - 0.1 * 2 * u[k], next[k], 1e-14);
        }
    }

    // ------------------------------------------------------------------------------------ QK-clip

    @Test
    void qkClipHandComputedTwoHeads2x3() {
        // H = 2, D = 1, cols = 3; S = [400, 50], τ = 100: head 0 gets γ = ¼ and its rows × ½,
        // head 1 (50 ≤ τ) is untouched.
        double[] wq = {1, 2, 3, 4, 5, 6};
        double[] wk = {2, 0, -2, 1, 1, 1};
        VariantReference.QkClip clip = VariantReference.qkClip(wq, wk, 2, 2, 1, 3, new double[] {400, 50},
                VariantReference.QK_CLIP_TAU);
        assertArrayEquals(new double[] {0.5, 1, 1.5, 4, 5, 6}, clip.wq(), 0);
        assertArrayEquals(new double[] {1, 0, -1, 1, 1, 1}, clip.wk(), 0);
        assertArrayEquals(new double[] {0.25, 1}, clip.gamma(), 0);
    }

    @Test
    void qkClipHandComputedGroupedQuery3x2() {
        // H = 3 query heads share Hkv = 1 key head; D = 1, cols = 2. S = [50, 400, 25]: the group's
        // max 400 exceeds τ = 100, so every query head and the shared key are scaled by √¼ = ½.
        double[] wq = {1, 2, 3, 4, 5, 6};
        double[] wk = {2, -2};
        VariantReference.QkClip clip = VariantReference.qkClip(wq, wk, 3, 1, 1, 2, new double[] {50, 400, 25}, 100);
        assertArrayEquals(new double[] {0.5, 1, 1.5, 2, 2.5, 3}, clip.wq(), 0);
        assertArrayEquals(new double[] {1, -1}, clip.wk(), 0);
        assertArrayEquals(new double[] {0.25, 0.25, 0.25}, clip.gamma(), 0);
    }

    @Test
    void qkClipLeavesHeadsAtOrBelowThresholdAndNegativeMaximaAlone() {
        double[] wq = {1, 2, 3, 4, 5, 6};
        double[] wk = {2, 0, -2, 1, 1, 1};
        VariantReference.QkClip clip = VariantReference.qkClip(wq, wk, 2, 2, 1, 3, new double[] {100, -300}, 100);
        assertTrue(bitEqual(wq, clip.wq()));
        assertTrue(bitEqual(wk, clip.wk()));
    }

    @Test
    void maxLogitIncludesTheSoftmaxScale() {
        // One token x = [1], D = 4: q = [1,1,1,1], k = [2,2,2,2], q·k = 8, logit = 8/√4 = 4.
        double[] logits = VariantReference.maxLogits(new double[] {1}, 1, 1, new double[] {1, 1, 1, 1},
                new double[] {2, 2, 2, 2}, 1, 1, 4, true);
        assertArrayEquals(new double[] {4}, logits, 0);
    }

    @Test
    void qkClipBringsEveryHeadToAtMostTauMultiHead() {
        checkClipProperty(4, 4, 3, 6, 7, 31);
    }

    @Test
    void qkClipBringsEveryHeadToAtMostTauGroupedQuery() {
        checkClipProperty(6, 2, 4, 8, 9, 37);
    }

    /**
     * Random weights with the query heads of every other key group blown up, S from the logits, τ
     * halfway between the smallest and the largest group maximum; after the clip every head's
     * recomputed max logit is ≤ τ, the largest of each clipped group is τ, and groups that were not
     * over τ are bit-identical with identical logits.
     */
    private static void checkClipProperty(int heads, int kvHeads, int headDim, int cols, int tokens, long seed) {
        Random random = new Random(seed);
        int group = heads / kvHeads;
        double[] x = gaussianArray(random, tokens * cols, 1);
        double[] wq = gaussianArray(random, heads * headDim * cols, 1);
        double[] wk = gaussianArray(random, kvHeads * headDim * cols, 1);
        for (int h = 0; h < heads; h++) {
            if ((h / group) % 2 == 0) {
                for (int k = h * headDim * cols; k < (h + 1) * headDim * cols; k++) {
                    wq[k] *= 6;
                }
            }
        }
        double[] before = VariantReference.maxLogits(x, tokens, cols, wq, wk, heads, kvHeads, headDim, true);
        double lowest = Double.POSITIVE_INFINITY;
        double highest = Double.NEGATIVE_INFINITY;
        for (int g = 0; g < kvHeads; g++) {
            double groupMax = Double.NEGATIVE_INFINITY;
            for (int h = g * group; h < (g + 1) * group; h++) {
                groupMax = Math.max(groupMax, before[h]);
            }
            lowest = Math.min(lowest, groupMax);
            highest = Math.max(highest, groupMax);
        }
        double tau = 0.5 * (lowest + highest);
        VariantReference.QkClip clip = VariantReference.qkClip(wq, wk, heads, kvHeads, headDim, cols, before, tau);
        double[] after = VariantReference.maxLogits(x, tokens, cols, clip.wq(), clip.wk(), heads, kvHeads, headDim,
                true);
        int clippedGroups = 0;
        for (int g = 0; g < kvHeads; g++) {
            double groupMax = Double.NEGATIVE_INFINITY;
            for (int h = g * group; h < (g + 1) * group; h++) {
                groupMax = Math.max(groupMax, before[h]);
            }
            double groupAfter = Double.NEGATIVE_INFINITY;
            for (int h = g * group; h < (g + 1) * group; h++) {
                assertTrue(after[h] <= tau * (1 + 1e-12), "head " + h + ": " + after[h] + " > τ = " + tau);
                groupAfter = Math.max(groupAfter, after[h]);
            }
            int block = headDim * cols;
            if (groupMax > tau) {
                clippedGroups++;
                assertEquals(tau, groupAfter, 1e-12 * tau, "the group's largest logit lands on τ");
                for (int h = g * group; h < (g + 1) * group; h++) {
                    assertEquals(before[h] * tau / groupMax, after[h], 1e-12 * Math.abs(before[h]),
                            "logits of head " + h + " scale by γ");
                }
            } else {
                for (int h = g * group; h < (g + 1) * group; h++) {
                    assertTrue(bitEqual(Arrays.copyOfRange(wq, h * block, (h + 1) * block),
                            Arrays.copyOfRange(clip.wq(), h * block, (h + 1) * block)), "W_q of head " + h + " untouched");
                    assertEquals(before[h], after[h], 0);
                }
                assertTrue(bitEqual(Arrays.copyOfRange(wk, g * block, (g + 1) * block),
                        Arrays.copyOfRange(clip.wk(), g * block, (g + 1) * block)), "W_k of group " + g + " untouched");
            }
        }
        assertTrue(clippedGroups > 0 && clippedGroups < kvHeads, "some groups clipped, some not: " + clippedGroups);
    }

    @Test
    void qkClipLatentScalesEachClippedHeadsLogitsByGammaAndLeavesTheSharedKeyAlone() {
        int heads = 4;
        int dc = 3;
        int dr = 2;
        int queryCols = 6;
        int keyCols = 5;
        int tokens = 7;
        Random random = new Random(41);
        double[] x = gaussianArray(random, tokens * queryCols, 1);
        double[] latent = gaussianArray(random, tokens * keyCols, 1);
        double[] wq = gaussianArray(random, heads * (dc + dr) * queryCols, 1);
        double[] wkc = gaussianArray(random, heads * dc * keyCols, 1);
        double[] wkr = gaussianArray(random, dr * queryCols, 1);
        for (int k = 0; k < (dc + dr) * queryCols; k++) {
            wq[k] *= 8; // head 0
            wq[2 * (dc + dr) * queryCols + k] *= 5; // head 2
        }
        double[] before = VariantReference.maxLogitsLatent(x, latent, tokens, queryCols, keyCols, wq, wkc, wkr, heads,
                dc, dr, true);
        double tau = 0.5 * (Math.min(before[0], before[2]) + Math.max(before[1], before[3]));
        assertTrue(before[0] > tau && before[2] > tau && before[1] < tau && before[3] < tau,
                "heads 0 and 2 over τ, 1 and 3 under: " + Arrays.toString(before));
        VariantReference.QkClipLatent clip = VariantReference.qkClipLatent(wq, wkc, heads, dc, dr, queryCols, keyCols,
                before, tau);
        double[] after = VariantReference.maxLogitsLatent(x, latent, tokens, queryCols, keyCols, clip.wq(), clip.wkContent(),
                wkr, heads, dc, dr, true);
        for (int h = 0; h < heads; h++) {
            if (before[h] > tau) {
                assertEquals(tau, after[h], 1e-12 * tau, "head " + h);
                assertEquals(tau / before[h], clip.gamma()[h], 0);
            } else {
                assertEquals(before[h], after[h], 0, "head " + h + " unchanged");
                int qBlock = (dc + dr) * queryCols;
                assertTrue(bitEqual(Arrays.copyOfRange(wq, h * qBlock, (h + 1) * qBlock),
                        Arrays.copyOfRange(clip.wq(), h * qBlock, (h + 1) * qBlock)));
            }
        }
        // Head 0's rotary query rows are scaled by γ, its content rows by √γ.
        double g0 = clip.gamma()[0];
        assertEquals(wq[0] * Math.sqrt(g0), clip.wq()[0], 1e-15 * Math.abs(wq[0]));
        assertEquals(wq[dc * queryCols] * g0, clip.wq()[dc * queryCols], 1e-15 * Math.abs(wq[dc * queryCols]));
    }

    // ----------------------------------------------------------------- per-head orthogonalization

    @Test
    void perHeadBlocksAreInTheBandWhileTheWholeMatrixIsNot() {
        int heads = 3;
        int headDim = 4;
        int cols = 24;
        double[] u = gaussianArray(new Random(43), heads * headDim * cols, 1);
        double[] o = VariantReference.perHeadNewtonSchulz(u, heads, headDim, cols, 5, 1e-7);
        for (int h = 0; h < heads; h++) {
            double[] sv = VariantReference.singularValues(block(o, h, headDim, cols), headDim, cols);
            assertTrue(sv[sv.length - 1] >= BAND_LOW && sv[0] <= BAND_HIGH, "head " + h + " " + Arrays.toString(sv));
        }
        double[] whole = VariantReference.singularValues(o, heads * headDim, cols);
        assertTrue(whole[whole.length - 1] < BAND_LOW || whole[0] > BAND_HIGH,
                "stacked heads are not orthogonal to each other: " + Arrays.toString(whole));
        double[] joint = VariantReference.singularValues(Float64Reference.newtonSchulz(u, heads * headDim, cols, 5, 1e-7),
                heads * headDim, cols);
        assertTrue(joint[joint.length - 1] >= BAND_LOW && joint[0] <= BAND_HIGH,
                "the whole-matrix iteration is in the band: " + Arrays.toString(joint));
    }

    @Test
    void perHeadWithTwoEqualHeadsGivesARankDeficientWhole() {
        int headDim = 3;
        int cols = 10;
        Random random = new Random(47);
        double[] head = gaussianArray(random, headDim * cols, 1);
        double[] u = concat(concat(head, head), gaussianArray(random, headDim * cols, 1));
        double[] o = VariantReference.perHeadNewtonSchulz(u, 3, headDim, cols, 5, 1e-7);
        assertArrayEquals(block(o, 0, headDim, cols), block(o, 1, headDim, cols), 0);
        double[] whole = VariantReference.singularValues(o, 3 * headDim, cols);
        assertTrue(whole[whole.length - 1] < 1e-6, "duplicate heads: smallest singular value " + whole[whole.length - 1]);
        assertTrue(whole[0] > 1.3, "duplicate heads: largest singular value " + whole[0]);
    }

    @Test
    void perHeadOutputOfAHeadDependsOnlyOnThatHead() {
        int heads = 4;
        int headDim = 2;
        int cols = 9;
        Random random = new Random(53);
        double[] u = gaussianArray(random, heads * headDim * cols, 1);
        double[] changed = u.clone();
        for (int k = 2 * headDim * cols; k < 3 * headDim * cols; k++) {
            changed[k] = random.nextGaussian();
        }
        double[] o1 = VariantReference.perHeadNewtonSchulz(u, heads, headDim, cols, 5, 1e-7);
        double[] o2 = VariantReference.perHeadNewtonSchulz(changed, heads, headDim, cols, 5, 1e-7);
        for (int h = 0; h < heads; h++) {
            boolean same = bitEqual(block(o1, h, headDim, cols), block(o2, h, headDim, cols));
            assertEquals(h != 2, same, "head " + h);
        }
    }

    // ---------------------------------------------------------------- Gram Newton–Schulz and AOL

    @Test
    void gramNewtonSchulzEqualsTheStandardIteration() {
        double[][] keller = new double[5][];
        Arrays.fill(keller, new double[] {Float64Reference.A, Float64Reference.B, Float64Reference.C});
        for (int[] shape : new int[][] {{8, 20}, {20, 8}, {10, 10}}) {
            double[] g = gaussianArray(new Random(shape[0] * 100L + shape[1]), shape[0] * shape[1], 1);
            double[] standard = Float64Reference.newtonSchulz(g, shape[0], shape[1], 5, 1e-7);
            for (int[] restarts : new int[][] {{}, {2}, {2, 4}}) {
                double[] gram = VariantReference.gramNewtonSchulz(g, shape[0], shape[1], keller, restarts, 1e-7);
                double error = relative(gram, standard);
                assertTrue(error < 1e-12, Arrays.toString(shape) + " restarts " + Arrays.toString(restarts)
                        + ": relative error " + error);
            }
        }
    }

    @Test
    void aolPrescaleBoundsTheSpectralNormByOne() {
        Random random = new Random(59);
        int m = 6;
        int n = 15;
        double[] x = gaussianArray(random, m * n, 1);
        for (int j = 0; j < n; j++) {
            x[j] *= 50; // one badly scaled row
        }
        double[] scaled = VariantReference.aolPrescale(x, m, n, 1e-7);
        double[] sv = VariantReference.singularValues(scaled, m, n);
        assertTrue(sv[0] <= 1 + 1e-12, "‖diag(s)·X‖₂ = " + sv[0]);
        assertTrue(sv[sv.length - 1] > 0.1, "and not needlessly small: " + Arrays.toString(sv));
    }

    @Test
    void turboMuonFourStepsLandInKellerJordansRange() {
        // Keller Jordan's description of the quintic iteration's output: singular values roughly in
        // (0.5, 1.5) (torch/optim/_muon.py docstring); Turbo-Muon claims four AOL-prescaled steps match
        // five plain ones (arXiv 2512.04632).
        for (int[] shape : new int[][] {{16, 40}, {40, 16}}) {
            double[] g = gaussianArray(new Random(61 + shape[0]), shape[0] * shape[1], 1);
            double[] o = VariantReference.aolNewtonSchulz(g, shape[0], shape[1], VariantReference.TURBO_MUON_COEFFICIENTS,
                    1e-7);
            double[] sv = VariantReference.singularValues(o, shape[0], shape[1]);
            assertTrue(sv[sv.length - 1] > 0.5 && sv[0] < 1.5, Arrays.toString(shape) + " " + Arrays.toString(sv));
        }
    }

    @Test
    void singularValuesOfAKnownMatrix() {
        // [[3, 0, 0], [0, 0, -4]] has singular values 4 and 3; its transpose too.
        double[] x = {3, 0, 0, 0, 0, -4};
        assertArrayEquals(new double[] {4, 3}, VariantReference.singularValues(x, 2, 3), 1e-12);
        assertArrayEquals(new double[] {4, 3},
                VariantReference.singularValues(Float64Reference.transpose(x, 2, 3), 3, 2), 1e-12);
        double[] rotation = {0.6, -0.8, 0.8, 0.6};
        assertArrayEquals(new double[] {1, 1}, VariantReference.singularValues(rotation, 2, 2), 1e-12);
    }

    // ------------------------------------------------------- torch.optim.Muon bfloat16 emulation

    /**
     * The golden outputs in torch-bf16-newton-schulz.txt were made by
     * scripts/golden/torch_bf16_newton_schulz.py: PyTorch 1.13 (Debian's python3-torch) running
     * torch.optim.Muon's 2.9 Newton–Schulz op for op in bfloat16 on the CPU, on shapes whose every
     * product has m·k·n &gt; 4096 so that PyTorch uses oneDNN (float32 accumulation, one rounding).
     * The emulation must reproduce every output bit.
     */
    @Test
    void torchBfloat16NewtonSchulzMatchesPyTorchBitForBit() throws IOException {
        List<GoldenCase> cases = readGolden();
        assertEquals(3, cases.size());
        for (GoldenCase c : cases) {
            float[] g = lcgMatrix(c.seed, c.rows, c.cols);
            double[] out = VariantReference.torchMuonNewtonSchulz(g, c.rows, c.cols, 5);
            int mismatches = 0;
            for (int k = 0; k < out.length; k++) {
                float v = (float) out[k];
                assertEquals(v, BFloat16.round(v), "outputs are bfloat16 values");
                if ((BFloat16.toBits(v) & 0xffff) != c.bits[k]) {
                    mismatches++;
                }
            }
            assertEquals(0, mismatches, "case " + c.seed + " (" + c.rows + "×" + c.cols + "): outputs differing from PyTorch");
        }
    }

    @Test
    void lcgInputsMatchTheGoldenScript() {
        // The script's lcg_matrix(1, 1, 4): [-0.40625, 0.44433594, 0.36523438, 0.95703125].
        assertArrayEquals(new float[] {-416 / 1024f, 455 / 1024f, 374 / 1024f, 980 / 1024f}, lcgMatrix(1, 1, 4));
    }

    @Test
    void torchBfloat16NewtonSchulzIsCloseToFloat64() {
        float[] g = lcgMatrix(3, 24, 40);
        double[] bf16 = VariantReference.torchMuonNewtonSchulz(g, 24, 40, 5);
        double[] exact = Float64Reference.newtonSchulz(Float64Reference.toDouble(g), 24, 40, 5, 1e-7);
        double error = relative(bf16, exact);
        assertTrue(error < 5e-2 && error > 1e-4, "bfloat16 rounding is visible but small: " + error);
    }

    @Test
    void torchBfloat16NewtonSchulzOfZeroIsZero() {
        double[] out = VariantReference.torchMuonNewtonSchulz(new float[12], 3, 4, 5);
        for (double v : out) {
            assertEquals(0.0, v);
        }
    }

    // --------------------------------------------------------------------------------- utilities

    record GoldenCase(long seed, int rows, int cols, int[] bits) {
    }

    static List<GoldenCase> readGolden() throws IOException {
        List<GoldenCase> cases = new ArrayList<>();
        try (InputStream in = VariantReferenceTest.class.getResourceAsStream("torch-bf16-newton-schulz.txt")) {
            assertNotNull(in, "resource torch-bf16-newton-schulz.txt");
            BufferedReader reader = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8));
            String line;
            GoldenCase current = null;
            int filled = 0;
            while ((line = reader.readLine()) != null) {
                if (line.isBlank() || line.startsWith("#")) {
                    continue;
                }
                String[] parts = line.trim().split("\\s+");
                if (parts[0].equals("case")) {
                    assertTrue(current == null || filled == current.bits.length, "a case is complete");
                    int rows = Integer.parseInt(parts[2]);
                    int cols = Integer.parseInt(parts[3]);
                    current = new GoldenCase(Long.parseLong(parts[1]), rows, cols, new int[rows * cols]);
                    cases.add(current);
                    filled = 0;
                } else {
                    for (String word : parts) {
                        current.bits[filled++] = Integer.parseInt(word, 16);
                    }
                }
            }
            assertEquals(current.bits.length, filled, "the last case is complete");
        }
        return cases;
    }

    /**
     * The golden script's inputs: a 64-bit linear congruential generator with Knuth's MMIX constants,
     * value = ((state &gt;&gt;&gt; 33) mod 2001 − 1000) / 1024.
     */
    static float[] lcgMatrix(long seed, int rows, int cols) {
        long state = seed;
        float[] out = new float[rows * cols];
        for (int k = 0; k < out.length; k++) {
            state = state * 6364136223846793005L + 1442695040888963407L;
            out[k] = (float) (((state >>> 33) % 2001 - 1000) / 1024.0);
        }
        return out;
    }

    private static double[] orthogonalized(Random random, int rows, int cols) {
        return Float64Reference.newtonSchulz(gaussianArray(random, rows * cols, 1), rows, cols, 5, 1e-7);
    }

    private static double[] gaussianArray(Random random, int n, double sigma) {
        double[] x = new double[n];
        for (int k = 0; k < n; k++) {
            x[k] = sigma * random.nextGaussian();
        }
        return x;
    }

    private static double[] rowNorms(double[] x, int rows, int cols) {
        double[] norms = new double[rows];
        for (int i = 0; i < rows; i++) {
            double sum = 0;
            for (int j = 0; j < cols; j++) {
                sum += x[i * cols + j] * x[i * cols + j];
            }
            norms[i] = Math.sqrt(sum);
        }
        return norms;
    }

    private static double[] block(double[] x, int index, int rows, int cols) {
        return Arrays.copyOfRange(x, index * rows * cols, (index + 1) * rows * cols);
    }

    private static double[] concat(double[] a, double[] b) {
        double[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    private static double relative(double[] got, double[] want) {
        double diff = 0;
        double ref = 0;
        for (int k = 0; k < got.length; k++) {
            diff += (got[k] - want[k]) * (got[k] - want[k]);
            ref += want[k] * want[k];
        }
        return Math.sqrt(diff / ref);
    }

    private static boolean bitEqual(double[] a, double[] b) {
        if (a.length != b.length) {
            return false;
        }
        for (int k = 0; k < a.length; k++) {
            if (Double.doubleToRawLongBits(a[k]) != Double.doubleToRawLongBits(b[k])) {
                return false;
            }
        }
        return true;
    }
}
