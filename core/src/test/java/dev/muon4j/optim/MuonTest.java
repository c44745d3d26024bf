package dev.muon4j.optim;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.Backends;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Muon against a float64 reference (own Newton–Schulz, momentum and decay in double) for every
 * momentum form, Nesterov setting, scale mode and weight decay, on square, wide, tall, stacked-expert
 * and 4-D convolution weights; the scale formulas exactly; and the equivalence of the EMA and
 * classic momentum forms.
 */
class MuonTest {
    /**
     * Bound on ‖W − W_ref‖ / ‖W_ref − W₀‖ after the steps: the error measured against the change the
     * steps made (stricter than against the values). float32 Newton–Schulz on these sizes is about 1e-6.
     */
    static final double BOUND = 1e-4;
    static final int STEPS = 4;
    static final double LR = 0.05;

    static Backend backend;
    static double worstError;
    static double worstFormError;

    @BeforeAll
    static void open() {
        backend = Backends.openBundled(2);
    }

    @AfterAll
    static void close() throws Exception {
        System.out.printf("MuonTest: worst relative error vs float64 %.3e, EMA vs classic %.3e%n", worstError, worstFormError);
        backend.close();
    }

    /** One parameter with its reference twin. */
    record Case(Parameter parameter, Float64Reference.Muon reference, float[] initial, int fanOut, int fanIn) {
    }

    static Stream<Arguments> variants() {
        List<Arguments> all = new ArrayList<>();
        for (MomentumForm form : MomentumForm.values()) {
            for (boolean nesterov : new boolean[] {false, true}) {
                for (Object[] scale : new Object[][] {{ScaleMode.ORIGINAL, 0.2}, {ScaleMode.MATCH_RMS_ADAMW, 0.2},
                        {ScaleMode.MATCH_RMS_ADAMW, 0.35}, {ScaleMode.SPECTRAL, 0.2}, {ScaleMode.NONE, 0.2}}) {
                    for (double wd : new double[] {0.0, 0.1}) {
                        all.add(Arguments.of(form, nesterov, scale[0], scale[1], wd));
                    }
                }
            }
        }
        return all.stream();
    }

    @ParameterizedTest(name = "{0} nesterov={1} {2} k={3} wd={4}")
    @MethodSource("variants")
    void matchesFloat64Reference(MomentumForm form, boolean nesterov, ScaleMode mode, double rmsFactor, double wd) {
        Random random = new Random(form.ordinal() * 1000 + (nesterov ? 100 : 0) + mode.ordinal() * 10 + (wd > 0 ? 1 : 0));
        double beta = 0.9;
        List<Case> cases = new ArrayList<>();
        cases.add(plain(random, "square", new int[] {32, 32}, 32, 32, beta, form, nesterov));
        cases.add(plain(random, "wide", new int[] {24, 40}, 24, 40, beta, form, nesterov));
        cases.add(plain(random, "tall", new int[] {40, 24}, 40, 24, beta, form, nesterov));
        cases.add(plain(random, "conv", new int[] {8, 4, 3, 3}, 8, 36, beta, form, nesterov));
        float[] experts = Float64Reference.gaussian(random, 3 * 16 * 24, 0.1);
        Parameter stacked = Parameter.stackedMatrices("experts", 3, 16, 24, experts, new float[experts.length]);
        cases.add(new Case(stacked, new Float64Reference.Muon(experts, 3, 16, 24, beta, form == MomentumForm.EMA, nesterov),
                experts.clone(), 16, 24));

        MuonConfig config = MuonConfig.builder().learningRate(LR).momentum(beta).momentumForm(form).nesterov(nesterov)
                .scaleMode(mode).rmsFactor(rmsFactor).weightDecay(wd).build();
        HybridOptimizer optimizer = Optimizers.muon(backend, config, cases.stream().map(Case::parameter).toList());
        for (int step = 0; step < STEPS; step++) {
            for (Case c : cases) {
                Float64Reference.fillGaussian(random, c.parameter().gradient(), 1.0);
                double s = Float64Reference.scale(mode, c.fanOut(), c.fanIn(), rmsFactor);
                c.reference().step(c.parameter().gradient(), LR, wd, s);
            }
            optimizer.step();
        }
        for (Case c : cases) {
            double error = Float64Reference.relativeToChange(c.parameter().value(), c.reference().value, c.initial());
            worstError = Math.max(worstError, error);
            assertTrue(error <= BOUND, c.parameter().name() + ": relative error " + error + " > " + BOUND);
        }
        assertEquals(STEPS, optimizer.stepCount());
    }

    private static Case plain(Random random, String name, int[] shape, int fanOut, int fanIn, double beta,
                              MomentumForm form, boolean nesterov) {
        float[] value = Float64Reference.gaussian(random, fanOut * fanIn, 0.1);
        Parameter p = Parameter.of(name, ParamRole.HIDDEN_MATRIX, shape, value, new float[value.length]);
        return new Case(p, new Float64Reference.Muon(value, 1, fanOut, fanIn, beta, form == MomentumForm.EMA, nesterov),
                value.clone(), fanOut, fanIn);
    }

    @Test
    void scaleFormulasAreExact() {
        assertEquals(0.2 * Math.sqrt(3072), ScaleMode.MATCH_RMS_ADAMW.scale(768, 3072, 0.2), 0.0);
        assertEquals(0.2 * Math.sqrt(3072), ScaleMode.MATCH_RMS_ADAMW.scale(3072, 768, 0.2), 0.0);
        assertEquals(0.3 * Math.sqrt(4096), ScaleMode.MATCH_RMS_ADAMW.scale(4096, 4096, 0.3), 0.0);
        assertEquals(2.0, ScaleMode.ORIGINAL.scale(3072, 768, 0.2), 0.0);
        assertEquals(1.0, ScaleMode.ORIGINAL.scale(768, 3072, 0.2), 0.0);
        assertEquals(1.0, ScaleMode.ORIGINAL.scale(512, 512, 0.2), 0.0);
        assertEquals(0.5, ScaleMode.SPECTRAL.scale(768, 3072, 0.2), 0.0);
        assertEquals(2.0, ScaleMode.SPECTRAL.scale(3072, 768, 0.2), 0.0);
        assertEquals(Math.sqrt(40.0 / 24.0), ScaleMode.SPECTRAL.scale(40, 24, 0.2), 0.0);
        assertEquals(1.0, ScaleMode.NONE.scale(40, 24, 0.2), 0.0);
        for (ScaleMode mode : ScaleMode.values()) {
            for (int[] fans : new int[][] {{24, 40}, {40, 24}, {7, 7}, {768, 3072}, {1, 1000}}) {
                assertEquals(Float64Reference.scale(mode, fans[0], fans[1], 0.2), mode.scale(fans[0], fans[1], 0.2), 0.0,
                        mode + " " + fans[0] + "x" + fans[1]);
            }
        }
        MuonConfig moonlight = MuonConfig.moonlight().build();
        assertEquals(0.2 * Math.sqrt(3072), moonlight.scale(768, 3072), 0.0);
    }

    @Test
    void convolutionWeightIsFlattenedForTheScale() {
        int out = 16;
        int in = 4;
        int k = 3;
        Parameter conv = Parameter.zeros("conv", ParamRole.HIDDEN_MATRIX, out, in, k, k);
        assertEquals(new MatrixLayout(1, out, in * k * k), conv.layout());
        MuonConfig config = MuonConfig.builder().scaleMode(ScaleMode.SPECTRAL).build();
        assertEquals(Math.sqrt(16.0 / 36.0), config.scale(conv.layout().fanOut(), conv.layout().fanIn()), 0.0);
        MuonConfig original = MuonConfig.builder().scaleMode(ScaleMode.ORIGINAL).build();
        assertEquals(1.0, original.scale(conv.layout().fanOut(), conv.layout().fanIn()), 0.0);
        Parameter experts = Parameter.stackedMatrices("experts", 3, 16, 24, new float[3 * 16 * 24], new float[3 * 16 * 24]);
        assertEquals(new MatrixLayout(3, 16, 24), experts.layout());
    }

    @Test
    void weightDecayUsesTheUnscaledLearningRate() {
        // With a zero gradient the orthogonalised update is zero (NS(0) = 0), so one step is pure decay.
        float[] value = Float64Reference.gaussian(new Random(5), 24 * 40, 1.0);
        float[] before = value.clone();
        Parameter p = Parameter.of("w", ParamRole.HIDDEN_MATRIX, new int[] {24, 40}, value, new float[value.length]);
        MuonConfig config = MuonConfig.builder().learningRate(0.1).weightDecay(0.5)
                .scaleMode(ScaleMode.MATCH_RMS_ADAMW).rmsFactor(0.2).build();
        Optimizers.muon(backend, config, List.of(p)).step();
        for (int i = 0; i < value.length; i++) {
            assertEquals(before[i] * (1 - 0.1 * 0.5), value[i], 1e-6 * Math.abs(before[i]), "element " + i);
        }
    }

    @Test
    void expertWithZeroGradientIsOnlyDecayed() {
        // An expert that received no tokens has a zero gradient and momentum: NS(0) = 0, so only decay applies.
        Random random = new Random(6);
        int size = 8 * 12;
        float[] value = Float64Reference.gaussian(random, 3 * size, 1.0);
        float[] before = value.clone();
        float[] gradient = Float64Reference.gaussian(random, 3 * size, 1.0);
        java.util.Arrays.fill(gradient, size, 2 * size, 0f);
        Parameter experts = Parameter.stackedMatrices("experts", 3, 8, 12, value, gradient);
        MuonConfig config = MuonConfig.builder().learningRate(0.1).weightDecay(0.2).build();
        HybridOptimizer optimizer = Optimizers.muon(backend, config, List.of(experts));
        optimizer.step();
        optimizer.step();
        double decay = (1 - 0.1 * 0.2) * (1 - 0.1 * 0.2);
        for (int i = size; i < 2 * size; i++) {
            assertEquals(before[i] * decay, value[i], 1e-6 * Math.abs(before[i]), "expert 1 element " + (i - size));
        }
        for (int i = 0; i < size; i++) {
            assertTrue(Math.abs(value[i] - before[i] * decay) > 0 || before[i] == 0, "expert 0 did not move");
        }
    }

    /**
     * A stack of experts (E × out × in) steps exactly as E separate matrices would: each expert is
     * orthogonalized alone and scaled by its own shape, bit for bit, for Moonlight's and Keller
     * Jordan's settings and with NorMuon (whose per-row state is per expert too).
     */
    @Test
    void aStackOfExpertsStepsBitForBitAsEachExpertAlone() {
        int count = 4;
        int rows = 12;
        int cols = 20;
        int size = rows * cols;
        for (MuonConfig config : List.of(MuonConfig.moonlight().learningRate(0.02).build(), MuonConfig.kellerJordan().build())) {
            for (boolean norMuon : new boolean[] {false, true}) {
                Random random = new Random(31);
                float[] value = Float64Reference.gaussian(random, count * size, 0.1);
                Parameter stacked = Parameter.stackedMatrices("mlp.experts.up_proj.weight", count, rows, cols, value.clone(),
                        new float[count * size]);
                List<Parameter> alone = new ArrayList<>();
                for (int e = 0; e < count; e++) {
                    alone.add(Parameter.of("mlp.experts." + e + ".up_proj.weight", ParamRole.HIDDEN_MATRIX, new int[] {rows, cols},
                            java.util.Arrays.copyOfRange(value, e * size, (e + 1) * size), new float[size]));
                }
                UpdateRule rule = norMuon ? UpdateRule.norMuon(config, 0.95) : UpdateRule.muon(config);
                HybridOptimizer one = HybridOptimizer.builder(backend).muon(config).muonRule(rule).build(List.of(stacked));
                HybridOptimizer many = HybridOptimizer.builder(backend).muon(config).muonRule(rule).build(alone);
                for (int step = 0; step < 3; step++) {
                    float[] g = Float64Reference.gaussian(random, count * size, 1.0);
                    System.arraycopy(g, 0, stacked.gradient(), 0, g.length);
                    for (int e = 0; e < count; e++) {
                        System.arraycopy(g, e * size, alone.get(e).gradient(), 0, size);
                    }
                    one.step();
                    many.step();
                }
                for (int e = 0; e < count; e++) {
                    float[] want = alone.get(e).value();
                    for (int i = 0; i < size; i++) {
                        assertEquals(Float.floatToRawIntBits(want[i]), Float.floatToRawIntBits(stacked.value()[e * size + i]),
                                config.scaleMode() + (norMuon ? " NorMuon" : "") + ": expert " + e + " element " + i);
                    }
                }
            }
        }
    }

    /**
     * A model's single matrices stepped side by side on a 2-thread oneDNN backend's workers (each
     * taking the next matrix when done) end bit for bit where a 1-thread oneDNN backend, stepping them
     * one after another, ends: float32 and bfloat16 Newton–Schulz, with AdamW parameters and a stack
     * of experts in the same optimizer, and the Newton–Schulz counts add up.
     */
    @Test
    void matricesSteppedSideBySideOnWorkersEqualThemSteppedInTurn() {
        try (Backend two = dev.muon4j.backend.Backends.openOneDnn(2); Backend one = dev.muon4j.backend.Backends.openOneDnn(1)) {
            assertEquals(2, two.concurrentWorkers().size());
            for (dev.muon4j.tensor.DType precision : List.of(dev.muon4j.tensor.DType.F32, dev.muon4j.tensor.DType.BF16)) {
                MuonConfig config = MuonConfig.moonlight().learningRate(0.02)
                        .newtonSchulz(NewtonSchulzConfig.defaults().withPrecision(precision)).build();
                int[][] shapes = {{24, 40}, {40, 24}, {32, 32}, {16, 64}, {64, 16}, {8, 8}};
                List<List<Parameter>> models = new ArrayList<>();
                for (int copy = 0; copy < 2; copy++) {
                    Random random = new Random(5);
                    List<Parameter> params = new ArrayList<>();
                    for (int i = 0; i < shapes.length; i++) {
                        int size = shapes[i][0] * shapes[i][1];
                        params.add(Parameter.of("h." + i + ".weight", ParamRole.HIDDEN_MATRIX, shapes[i],
                                Float64Reference.gaussian(random, size, 0.1), new float[size]));
                    }
                    params.add(Parameter.stackedMatrices("mlp.experts.weight", 3, 12, 20, Float64Reference.gaussian(random, 720, 0.1),
                            new float[720]));
                    params.add(Parameter.of("norm.weight", ParamRole.NORM, new int[] {24}, Float64Reference.gaussian(random, 24, 1),
                            new float[24]));
                    models.add(params);
                }
                HybridOptimizer sideBySide = HybridOptimizer.builder(two).muon(config).build(models.get(0));
                HybridOptimizer inTurn = HybridOptimizer.builder(one).muon(config).build(models.get(1));
                Random gradients = new Random(9);
                for (int step = 0; step < 3; step++) {
                    for (int p = 0; p < models.get(0).size(); p++) {
                        float[] g = Float64Reference.gaussian(gradients, models.get(0).get(p).size(), 1.0);
                        System.arraycopy(g, 0, models.get(0).get(p).gradient(), 0, g.length);
                        System.arraycopy(g, 0, models.get(1).get(p).gradient(), 0, g.length);
                    }
                    sideBySide.step();
                    inTurn.step();
                    assertEquals(shapes.length + 3, sideBySide.lastNewtonSchulzMatrices(), "matrices orthogonalized in a step");
                }
                for (int p = 0; p < models.get(0).size(); p++) {
                    float[] got = models.get(0).get(p).value();
                    float[] want = models.get(1).get(p).value();
                    for (int i = 0; i < got.length; i++) {
                        assertEquals(Float.floatToRawIntBits(want[i]), Float.floatToRawIntBits(got[i]),
                                precision + " " + models.get(0).get(p).name() + " element " + i);
                    }
                }
            }
        }
    }

    static Stream<Arguments> nesterovSettings() {
        return Stream.of(Arguments.of(false), Arguments.of(true));
    }

    @ParameterizedTest(name = "nesterov={0}")
    @MethodSource("nesterovSettings")
    void emaAndClassicMomentumGiveTheSameUpdates(boolean nesterov) {
        Random random = new Random(nesterov ? 11 : 12);
        double beta = 0.95;
        int rows = 24;
        int cols = 40;
        float[] initial = Float64Reference.gaussian(random, rows * cols, 0.1);
        Parameter emaParam = Parameter.of("w", ParamRole.HIDDEN_MATRIX, new int[] {rows, cols}, initial.clone(), new float[initial.length]);
        Parameter classicParam = Parameter.of("w", ParamRole.HIDDEN_MATRIX, new int[] {rows, cols}, initial.clone(), new float[initial.length]);
        MuonConfig.Builder common = MuonConfig.builder().learningRate(LR).momentum(beta).nesterov(nesterov)
                .scaleMode(ScaleMode.NONE).weightDecay(0);
        HybridOptimizer ema = Optimizers.muon(backend, common.momentumForm(MomentumForm.EMA).build(), List.of(emaParam));
        HybridOptimizer classic = Optimizers.muon(backend, common.momentumForm(MomentumForm.CLASSIC).build(), List.of(classicParam));
        for (int step = 0; step < 6; step++) {
            float[] emaBefore = emaParam.value().clone();
            float[] classicBefore = classicParam.value().clone();
            float[] g = Float64Reference.gaussian(random, initial.length, 1.0);
            System.arraycopy(g, 0, emaParam.gradient(), 0, g.length);
            System.arraycopy(g, 0, classicParam.gradient(), 0, g.length);
            ema.step();
            classic.step();
            double[] emaUpdate = new double[g.length];
            float[] classicUpdate = new float[g.length];
            for (int i = 0; i < g.length; i++) {
                emaUpdate[i] = (double) emaParam.value()[i] - emaBefore[i];
                classicUpdate[i] = (float) ((double) classicParam.value()[i] - classicBefore[i]);
            }
            double error = Float64Reference.relativeError(classicUpdate, emaUpdate);
            worstFormError = Math.max(worstFormError, error);
            assertTrue(error <= BOUND, "step " + step + ": EMA and classic updates differ by " + error);
        }
    }
}
