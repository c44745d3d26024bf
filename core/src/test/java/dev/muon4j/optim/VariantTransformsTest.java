package dev.muon4j.optim;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.VectorBackend;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The variant stages against the float64 references of {@link VariantReference} (which follow the
 * sources cited in docs/VARIANTS.md): NorMuon's row normalisation over several steps, stacked
 * matrices included, and cautious weight decay, each alone and inside a whole optimizer step.
 */
class VariantTransformsTest {
    static Backend backend;

    @BeforeAll
    static void open() {
        backend = new VectorBackend(1);
    }

    @AfterAll
    static void close() {
        backend.close();
    }

    static float[] gaussian(SplittableRandom r, int n, double scale) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            double u = r.nextDouble(), v = r.nextDouble();
            x[i] = (float) (scale * Math.sqrt(-2 * Math.log(1 - u)) * Math.cos(2 * Math.PI * v));
        }
        return x;
    }

    static double[] widen(float[] x) {
        double[] d = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            d[i] = x[i];
        }
        return d;
    }

    static void assertClose(double[] want, float[] got, double relative, String what) {
        double worst = 0;
        double scale = 0;
        for (double w : want) {
            scale = Math.max(scale, Math.abs(w));
        }
        for (int i = 0; i < want.length; i++) {
            worst = Math.max(worst, Math.abs(want[i] - got[i]));
        }
        assertTrue(worst <= relative * scale, what + ": largest difference " + worst + " against values up to " + scale);
    }

    static ParamState slot(Parameter p, UpdateRule rule, double lr, double wd, double scale) {
        return new ParamState(new HybridOptimizer.Assignment(p, rule.family(), lr, wd, scale, rule), 0, p.size());
    }

    @Test
    void norMuonMatchesTheReferenceOverStepsAndStackedMatrices() {
        SplittableRandom random = new SplittableRandom(11);
        int count = 3, rows = 7, cols = 5;
        float[] value = new float[count * rows * cols];
        Parameter p = Parameter.stackedMatrices("experts", count, rows, cols, value, new float[value.length]);
        UpdateRule rule = UpdateRule.norMuon(MuonConfig.builder().build(), 0.9);
        ParamState s = slot(p, rule, 0.01, 0, 1);
        Transforms.NorMuon stage = new Transforms.NorMuon(0.9);
        StepContext ctx = new StepContext(backend);
        double[] state = new double[count * rows];
        for (int step = 1; step <= 4; step++) {
            ctx.begin(step, 1);
            // Rows of very different scale, as NorMuon exists for.
            float[] o = gaussian(random, value.length, 1);
            for (int i = 0; i < o.length; i++) {
                o[i] *= (float) (1 + (i / cols) % rows);
            }
            VariantReference.NorMuonStep want = VariantReference.norMuonStacked(widen(o), count, rows, cols, state, 0.9, 1e-8);
            stage.apply(ctx, s, 0, o, 0, o.length);
            assertClose(want.update(), o, 2e-6, "step " + step + " update");
            assertClose(want.state(), s.buffer(Transforms.NorMuon.ROW_SECOND_MOMENT), 2e-6, "step " + step + " row second moment");
            state = want.state();
        }
    }

    @Test
    void norMuonRunsMatrixByMatrixWhenGivenOneMatrixOfTheStack() {
        // One process applies a matrix rule matrix by matrix: stage over matrix 1 alone = the middle of the whole.
        SplittableRandom random = new SplittableRandom(5);
        int count = 3, rows = 4, cols = 6, size = rows * cols;
        Parameter p = Parameter.stackedMatrices("experts", count, rows, cols, new float[count * size], new float[count * size]);
        UpdateRule rule = UpdateRule.norMuon(MuonConfig.builder().build(), 0.95);
        float[] o = gaussian(random, count * size, 1);
        ParamState whole = slot(p, rule, 0.01, 0, 1);
        ParamState pieces = slot(p, rule, 0.01, 0, 1);
        StepContext ctx = new StepContext(backend);
        ctx.begin(1, 1);
        float[] a = o.clone();
        new Transforms.NorMuon(0.95).apply(ctx, whole, 0, a, 0, a.length);
        float[] b = o.clone();
        for (int k = 0; k < count; k++) {
            new Transforms.NorMuon(0.95).apply(ctx, pieces, k * size, b, k * size, size);
        }
        for (int i = 0; i < a.length; i++) {
            assertEquals(Float.floatToRawIntBits(a[i]), Float.floatToRawIntBits(b[i]), "element " + i);
        }
    }

    @Test
    void cautiousDecayMatchesTheReferenceAndSparesWeightsTheUpdateGrows() {
        SplittableRandom random = new SplittableRandom(3);
        int rows = 9, cols = 13;
        Parameter p = Parameter.matrix("w", rows, cols);
        float[] w0 = gaussian(random, p.size(), 1);
        w0[0] = 0;
        System.arraycopy(w0, 0, p.value(), 0, p.size());
        float[] u = gaussian(random, p.size(), 0.5);
        u[1] = 0;
        double lr = 0.05, wd = 0.4, scale = 1.7;
        UpdateRule rule = UpdateRule.muon(MuonConfig.builder().build()).withWeightDecay(Transforms.WeightDecayMode.CAUTIOUS);
        assertEquals("muon+cautious_wd", rule.name());
        ParamState s = slot(p, rule, lr, wd, scale);
        StepContext ctx = new StepContext(backend);
        ctx.begin(1, 1);
        double[] want = VariantReference.cautiousStep(widen(w0), widen(u), lr, wd, scale);
        rule.transforms().getLast().apply(ctx, s, 0, u.clone(), 0, u.length);
        assertClose(want, p.value(), 1e-6, "cautious step");
        int decayed = 0, spared = 0;
        for (int i = 0; i < p.size(); i++) {
            double plain = w0[i] - lr * scale * u[i];
            if ((double) w0[i] * u[i] >= 0) {
                decayed++;
            } else {
                spared++;
                assertEquals(plain, p.value()[i], 1e-6, "element " + i + ": signs disagree, no decay");
            }
        }
        assertTrue(decayed > 10 && spared > 10, decayed + " decayed, " + spared + " spared");
    }

    @Test
    void aNorMuonOptimizerStepIsMomentumNewtonSchulzNorMuonAndTheUpdate() {
        SplittableRandom random = new SplittableRandom(8);
        int rows = 6, cols = 10;
        Parameter p = Parameter.matrix("w", rows, cols);
        float[] w0 = gaussian(random, p.size(), 0.1);
        System.arraycopy(w0, 0, p.value(), 0, p.size());
        float[] g = gaussian(random, p.size(), 1);
        System.arraycopy(g, 0, p.gradient(), 0, p.size());
        MuonConfig config = MuonConfig.moonlight().learningRate(0.02).weightDecay(0.1).build();
        HybridOptimizer opt = HybridOptimizer.builder(backend).muon(config).rule("w", UpdateRule.norMuon(config, 0.95))
                .build(List.of(p));
        opt.step();
        // The reference: classic Nesterov momentum from zero (U = G + μ·G), float64 Newton–Schulz, NorMuon, update.
        double[] u = widen(g);
        for (int i = 0; i < u.length; i++) {
            u[i] = g[i] + config.momentum() * g[i];
        }
        double[] o = Float64Reference.newtonSchulz(u, rows, cols, 5, 1e-7);
        VariantReference.NorMuonStep n = VariantReference.norMuon(o, rows, cols, new double[rows], 0.95, 1e-8);
        double s = config.scale(rows, cols);
        double[] want = new double[p.size()];
        for (int i = 0; i < want.length; i++) {
            want[i] = w0[i] * (1 - 0.02 * 0.1) - 0.02 * s * n.update()[i];
        }
        assertClose(want, p.value(), 2e-3, "one NorMuon step");
        assertEquals(List.of("momentum", "row_second_moment"),
                List.copyOf(opt.saveState().entries().get("w").buffers().keySet()));
    }

    @Test
    void perHeadOrthogonalizationMatchesTheReferenceAndScalesByTheHeadsShape() {
        SplittableRandom random = new SplittableRandom(21);
        int heads = 3, headDim = 4, cols = 10;
        Parameter q = Parameter.matrix("model.layers.0.self_attn.q_proj.weight", heads * headDim, cols);
        MuonConfig config = MuonConfig.builder().scaleMode(ScaleMode.MATCH_RMS_ADAMW).build();
        UpdateRule perHead = UpdateRule.muon(config).withRowBlocks(headDim);
        assertEquals("muon+per_head", perHead.name());
        List<HybridOptimizer.Assignment> assigned = HybridOptimizer.builder(backend).muon(config)
                .rule("*.q_proj.weight", perHead).assign(List.of(q));
        assertEquals(config.scale(headDim, cols), assigned.getFirst().scale(), 1e-12, "the scale of a D × C head");
        float[] u = gaussian(random, q.size(), 1);
        double[] want = VariantReference.perHeadNewtonSchulz(widen(u), heads, headDim, cols, 5, 1e-7);
        StepContext ctx = new StepContext(backend);
        ctx.begin(1, 1);
        perHead.transforms().get(1).apply(ctx, slot(q, perHead, 0.01, 0, 1), 0, u, 0, u.length);
        assertClose(want, u, 5e-3, "per-head Newton–Schulz");
        // Not the same as orthogonalizing the whole matrix.
        double[] whole = Float64Reference.newtonSchulz(widen(gaussian(new SplittableRandom(21), q.size(), 1)), heads * headDim, cols,
                5, 1e-7);
        double differs = 0;
        for (int i = 0; i < whole.length; i++) {
            differs = Math.max(differs, Math.abs(whole[i] - want[i]));
        }
        assertTrue(differs > 0.05, "per-head differs from whole-matrix Newton–Schulz by " + differs);
        IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                () -> UpdateRule.muon(config).withRowBlocks(5).check(q));
        assertTrue(e.getMessage().contains("q_proj") && e.getMessage().contains("fan-out 12"), e.getMessage());
    }

    @Test
    void norMuonWithPerHeadOrthogonalizationKeepsEachHeadsNormAsDionDoesWithNumHeads() {
        SplittableRandom random = new SplittableRandom(33);
        int heads = 3, headDim = 4, cols = 6;
        Parameter q = Parameter.matrix("model.layers.0.self_attn.q_proj.weight", heads * headDim, cols);
        UpdateRule rule = UpdateRule.norMuon(MuonConfig.builder().build(), 0.9).withRowBlocks(headDim);
        assertEquals("normuon+per_head", rule.name());
        Transforms.NorMuon stage = (Transforms.NorMuon) rule.transforms().get(2);
        assertEquals(headDim, stage.blockRows(), "the NorMuon stage rescales per head");
        ParamState s = slot(q, rule, 0.01, 0, 1);
        StepContext ctx = new StepContext(backend);
        double[] state = new double[heads * headDim];
        for (int step = 1; step <= 3; step++) {
            ctx.begin(step, 1);
            float[] o = gaussian(random, q.size(), 1);
            for (int i = 0; i < o.length; i++) {
                o[i] *= (float) (1 + 3 * (i / (headDim * cols))); // heads of different scale
            }
            VariantReference.NorMuonStep want = VariantReference.norMuonStacked(widen(o), heads, headDim, cols, state, 0.9, 1e-8);
            VariantReference.NorMuonStep wholeMatrix = VariantReference.norMuon(widen(o), heads * headDim, cols, state, 0.9, 1e-8);
            stage.apply(ctx, s, 0, o, 0, o.length);
            assertClose(want.update(), o, 2e-6, "step " + step + " per-head update");
            assertClose(want.state(), s.buffer(Transforms.NorMuon.ROW_SECOND_MOMENT), 2e-6, "step " + step + " row second moment");
            double differs = 0;
            for (int i = 0; i < o.length; i++) {
                differs = Math.max(differs, Math.abs(wholeMatrix.update()[i] - want.update()[i]));
            }
            assertTrue(differs > 1e-3, "per-head rescale differs from the whole matrix's by " + differs);
            state = want.state();
        }
        IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                () -> new Transforms.NorMuon(0.9, -1));
        assertTrue(e.getMessage().contains("-1"), e.getMessage());
        IllegalArgumentException bad = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                () -> new UpdateRule("n", Route.MUON, List.of(new Transforms.NorMuon(0.9, 5), new Transforms.DecoupledUpdate())).check(q));
        assertTrue(bad.getMessage().contains("q_proj") && bad.getMessage().contains("fan-out 12"), bad.getMessage());
    }
}
