package dev.muon4j.optim;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.Backends;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The hybrid optimizer: routing by role and by override, per-parameter lr and weight decay,
 * separate Muon and AdamW learning rates (all against the float64 reference), configuration
 * errors, and global-norm gradient clipping.
 */
class HybridOptimizerTest {
    /** Bounds on ‖W − W_ref‖ / ‖W_ref − W₀‖ per rule, as in MuonTest and AdamWTest. */
    static final double MUON_BOUND = 1e-4;
    static final double ADAMW_BOUND = 1e-5;
    static final double MUON_LR = 0.02;
    static final double ADAMW_LR = 0.003;
    static final double BETA = 0.95;

    static Backend backend;
    static double worstError;

    @BeforeAll
    static void open() {
        backend = Backends.openBundled(2);
    }

    @AfterAll
    static void close() throws Exception {
        System.out.printf("HybridOptimizerTest: worst relative error vs float64 %.3e%n", worstError);
        backend.close();
    }

    /** A parameter with its float64 twin: either a Muon or an AdamW reference, with its lr and weight decay. */
    static final class Tracked {
        final Parameter parameter;
        final float[] initial;
        Float64Reference.Muon muon;
        Float64Reference.AdamW adamw;
        double lr;
        double wd;
        double scale;

        Tracked(Parameter parameter) {
            this.parameter = parameter;
            this.initial = parameter.value().clone();
        }

        Tracked muon(int fanOut, int fanIn, double lr, double wd) {
            this.muon = new Float64Reference.Muon(initial, 1, fanOut, fanIn, BETA, false, true);
            this.lr = lr;
            this.wd = wd;
            this.scale = 0.2 * Math.sqrt(Math.max(fanOut, fanIn));
            return this;
        }

        Tracked adamw(double lr, double wd) {
            this.adamw = new Float64Reference.AdamW(initial, 0.9, 0.999, 1e-8);
            this.lr = lr;
            this.wd = wd;
            return this;
        }

        void step(float[] gradient, double factor) {
            if (muon != null) {
                muon.step(gradient, lr * factor, wd, scale);
            } else {
                adamw.step(gradient, lr * factor, wd);
            }
        }

        double bound() {
            return muon != null ? MUON_BOUND : ADAMW_BOUND;
        }

        double[] expected() {
            return muon != null ? muon.value : adamw.value;
        }
    }

    private static Parameter random(Random random, String name, ParamRole role, int... shape) {
        int n = 1;
        for (int d : shape) {
            n *= d;
        }
        return Parameter.of(name, role, shape, Float64Reference.gaussian(random, n, 0.1), new float[n]);
    }

    private static MuonConfig moonlight() {
        return MuonConfig.moonlight().learningRate(MUON_LR).momentum(BETA).weightDecay(0.1).build();
    }

    private static AdamWConfig adamw() {
        return AdamWConfig.builder().learningRate(ADAMW_LR).weightDecay(0.01).build();
    }

    private static void runAndCompare(HybridOptimizer optimizer, List<Tracked> tracked, Random random, int steps,
                                      LearningRateSchedule schedule) {
        for (int step = 0; step < steps; step++) {
            double factor = schedule.factor(step);
            for (Tracked t : tracked) {
                Float64Reference.fillGaussian(random, t.parameter.gradient(), 1.0);
                t.step(t.parameter.gradient(), factor);
            }
            optimizer.step();
        }
        for (Tracked t : tracked) {
            double error = Float64Reference.relativeToChange(t.parameter.value(), t.expected(), t.initial);
            worstError = Math.max(worstError, error);
            assertTrue(error <= t.bound(), t.parameter.name() + ": relative error " + error + " > " + t.bound());
        }
    }

    @Test
    void routesByRoleAndMatchesReference() {
        Random random = new Random(1);
        List<Tracked> tracked = List.of(
                new Tracked(random(random, "embed", ParamRole.EMBEDDING, 10, 8)).adamw(ADAMW_LR, 0.01),
                new Tracked(random(random, "layers.0.wq", ParamRole.HIDDEN_MATRIX, 16, 24)).muon(16, 24, MUON_LR, 0.1),
                new Tracked(random(random, "layers.0.w2", ParamRole.HIDDEN_MATRIX, 24, 16)).muon(24, 16, MUON_LR, 0.1),
                new Tracked(random(random, "layers.0.norm", ParamRole.NORM, 8)).adamw(ADAMW_LR, 0.01),
                new Tracked(random(random, "layers.0.bias", ParamRole.BIAS, 16)).adamw(ADAMW_LR, 0.01),
                new Tracked(random(random, "temperature", ParamRole.SCALAR, 1)).adamw(ADAMW_LR, 0.01),
                new Tracked(random(random, "head", ParamRole.HEAD, 10, 8)).adamw(ADAMW_LR, 0.01));
        LearningRateSchedule schedule = LearningRateSchedule.warmupCosine(2, 6, 0.1);
        HybridOptimizer optimizer = HybridOptimizer.builder(backend).muon(moonlight()).adamw(adamw()).schedule(schedule)
                .build(tracked.stream().map(t -> t.parameter).toList());
        Map<String, Route> expected = new LinkedHashMap<>();
        expected.put("embed", Route.ADAMW);
        expected.put("layers.0.wq", Route.MUON);
        expected.put("layers.0.w2", Route.MUON);
        expected.put("layers.0.norm", Route.ADAMW);
        expected.put("layers.0.bias", Route.ADAMW);
        expected.put("temperature", Route.ADAMW);
        expected.put("head", Route.ADAMW);
        assertEquals(expected, optimizer.routes());
        assertEquals(List.copyOf(expected.keySet()), List.copyOf(optimizer.routes().keySet()), "parameter order");
        runAndCompare(optimizer, tracked, random, 5, schedule);
    }

    @Test
    void overridesOfRouteLearningRateAndWeightDecayTakeEffect() {
        Random random = new Random(2);
        Parameter head = random(random, "head", ParamRole.HEAD, 10, 8).withLayout(new MatrixLayout(1, 10, 8));
        List<Tracked> tracked = List.of(
                new Tracked(random(random, "layers.0.wq", ParamRole.HIDDEN_MATRIX, 16, 24)).muon(16, 24, 0.05, 0.0),
                new Tracked(random(random, "layers.0.w2", ParamRole.HIDDEN_MATRIX, 24, 16)).adamw(0.001, 0.3),
                new Tracked(random(random, "layers.0.norm", ParamRole.NORM, 8)).adamw(ADAMW_LR, 0.2),
                new Tracked(random(random, "layers.0.bias", ParamRole.BIAS, 16)).adamw(0.01, 0.01),
                new Tracked(head).muon(10, 8, MUON_LR, 0.1),
                new Tracked(random(random, "layers.1.wq", ParamRole.HIDDEN_MATRIX, 16, 16)).muon(16, 16, MUON_LR, 0.1));
        HybridOptimizer optimizer = HybridOptimizer.builder(backend).muon(moonlight()).adamw(adamw())
                .override("layers.0.wq", ParamOverride.none().withLearningRate(0.05).withWeightDecay(0.0))
                .override("layers.0.w2", ParamOverride.none().withRoute(Route.ADAMW).withLearningRate(0.001).withWeightDecay(0.3))
                .override("layers.0.norm", ParamOverride.none().withWeightDecay(0.2))
                .override("layers.0.bias", ParamOverride.none().withLearningRate(0.01))
                .override("head", ParamOverride.none().withRoute(Route.MUON))
                .build(tracked.stream().map(t -> t.parameter).toList());
        assertEquals(Route.MUON, optimizer.routes().get("layers.0.wq"));
        assertEquals(Route.ADAMW, optimizer.routes().get("layers.0.w2"));
        assertEquals(Route.ADAMW, optimizer.routes().get("layers.0.norm"));
        assertEquals(Route.MUON, optimizer.routes().get("head"));
        assertEquals(Route.MUON, optimizer.routes().get("layers.1.wq"));
        runAndCompare(optimizer, tracked, random, 4, LearningRateSchedule.constant());
    }

    @Test
    void separateLearningRatesForMuonAndAdamW() {
        // Zero weight decay and a zero AdamW lr: the AdamW parameter must stay put while Muon's moves.
        Random random = new Random(3);
        Parameter hidden = random(random, "hidden", ParamRole.HIDDEN_MATRIX, 16, 16);
        Parameter norm = random(random, "norm", ParamRole.NORM, 16);
        float[] hiddenBefore = hidden.value().clone();
        float[] normBefore = norm.value().clone();
        HybridOptimizer optimizer = HybridOptimizer.builder(backend)
                .muon(MuonConfig.builder().learningRate(0.02).weightDecay(0).build())
                .adamw(AdamWConfig.builder().learningRate(0).weightDecay(0).build())
                .build(List.of(hidden, norm));
        Float64Reference.fillGaussian(random, hidden.gradient(), 1.0);
        Float64Reference.fillGaussian(random, norm.gradient(), 1.0);
        optimizer.step();
        assertTrue(Float64Reference.bitEqual(normBefore, norm.value()), "AdamW parameter with lr 0 moved");
        assertFalse(Float64Reference.bitEqual(hiddenBefore, hidden.value()), "Muon parameter did not move");
    }

    @Test
    void overrideNamingUnknownParameterFails() {
        Parameter w = Parameter.matrix("w", 4, 4);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> HybridOptimizer.builder(backend)
                .override("layers.9.missing", ParamOverride.none().withLearningRate(0.1)).build(List.of(w)));
        assertTrue(e.getMessage().contains("layers.9.missing"), e.getMessage());
    }

    @Test
    void routingOneDimensionalNormToMuonFails() {
        Parameter w = Parameter.matrix("w", 4, 4);
        Parameter norm = Parameter.zeros("final_norm", ParamRole.NORM, 4);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> HybridOptimizer.builder(backend)
                .override("final_norm", ParamOverride.none().withRoute(Route.MUON)).build(List.of(w, norm)));
        assertTrue(e.getMessage().contains("final_norm"), e.getMessage());
        IllegalArgumentException all = assertThrows(IllegalArgumentException.class,
                () -> Optimizers.muon(backend, MuonConfig.builder().build(), List.of(w, norm)));
        assertTrue(all.getMessage().contains("final_norm"), all.getMessage());
    }

    @Test
    void duplicateNamesFail() {
        Parameter a = Parameter.matrix("layers.0.wq", 4, 4);
        Parameter b = Parameter.matrix("layers.0.wq", 4, 4);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> HybridOptimizer.builder(backend).build(List.of(a, b)));
        assertTrue(e.getMessage().contains("layers.0.wq"), e.getMessage());
    }

    @Test
    void sharedArraysFail() {
        Parameter a = Parameter.matrix("a", 4, 4);
        Parameter b = Parameter.of("b", ParamRole.HIDDEN_MATRIX, new int[] {4, 4}, a.value(), new float[16]);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> HybridOptimizer.builder(backend).build(List.of(a, b)));
        assertTrue(e.getMessage().contains("a") && e.getMessage().contains("b"), e.getMessage());
    }

    @Test
    void clipsGradientsToTheThreshold() {
        Random random = new Random(4);
        List<Tracked> tracked = List.of(
                new Tracked(random(random, "hidden", ParamRole.HIDDEN_MATRIX, 16, 24)).muon(16, 24, MUON_LR, 0.1),
                new Tracked(random(random, "embed", ParamRole.EMBEDDING, 37, 8)).adamw(ADAMW_LR, 0.01),
                new Tracked(random(random, "bias", ParamRole.BIAS, 5)).adamw(ADAMW_LR, 0.01));
        HybridOptimizer optimizer = HybridOptimizer.builder(backend).muon(moonlight()).adamw(adamw()).clipGradientNorm(1.0)
                .build(tracked.stream().map(t -> t.parameter).toList());
        for (int step = 0; step < 3; step++) {
            double sum = 0;
            List<float[]> original = new ArrayList<>();
            for (Tracked t : tracked) {
                Float64Reference.fillGaussian(random, t.parameter.gradient(), 2.0);
                original.add(t.parameter.gradient().clone());
                for (float g : t.parameter.gradient()) {
                    sum += (double) g * g;
                }
            }
            double norm = Math.sqrt(sum);
            assertTrue(norm > 10, "test gradients should exceed the threshold");
            for (int i = 0; i < tracked.size(); i++) {
                float[] clipped = original.get(i).clone();
                for (int k = 0; k < clipped.length; k++) {
                    clipped[k] = (float) (original.get(i)[k] * (1.0 / norm));
                }
                tracked.get(i).step(clipped, 1.0);
            }
            StepResult result = optimizer.step();
            assertTrue(result.clipped());
            assertEquals(norm, result.gradientNorm(), 1e-6 * norm, "global norm before clipping");
            double after = 0;
            for (int i = 0; i < tracked.size(); i++) {
                float[] g = tracked.get(i).parameter.gradient();
                for (int k = 0; k < g.length; k++) {
                    assertEquals(original.get(i)[k] / norm, g[k], 1e-6 * Math.abs(original.get(i)[k] / norm) + 1e-12,
                            tracked.get(i).parameter.name() + "[" + k + "] scaled by threshold/norm");
                    after += (double) g[k] * g[k];
                }
            }
            assertEquals(1.0, Math.sqrt(after), 1e-5, "gradient norm after clipping");
        }
        for (Tracked t : tracked) {
            double error = Float64Reference.relativeToChange(t.parameter.value(), t.expected(), t.initial);
            worstError = Math.max(worstError, error);
            assertTrue(error <= t.bound(), t.parameter.name() + ": relative error " + error + " > " + t.bound());
        }
    }

    @Test
    void noClippingBelowThresholdOrWhenOff() {
        Random random = new Random(5);
        Parameter hidden = random(random, "hidden", ParamRole.HIDDEN_MATRIX, 8, 8);
        Parameter bias = random(random, "bias", ParamRole.BIAS, 8);
        Float64Reference.fillGaussian(random, hidden.gradient(), 1.0);
        Float64Reference.fillGaussian(random, bias.gradient(), 1.0);
        double sum = 0;
        for (Parameter p : List.of(hidden, bias)) {
            for (float g : p.gradient()) {
                sum += (double) g * g;
            }
        }
        double norm = Math.sqrt(sum);
        float[] hiddenGrad = hidden.gradient().clone();
        float[] biasGrad = bias.gradient().clone();
        HybridOptimizer below = HybridOptimizer.builder(backend).clipGradientNorm(norm * 1.5).build(List.of(hidden, bias));
        StepResult result = below.step();
        assertFalse(result.clipped());
        assertEquals(norm, result.gradientNorm(), 1e-6 * norm);
        assertTrue(Float64Reference.bitEqual(hiddenGrad, hidden.gradient()), "gradient changed below the threshold");
        assertTrue(Float64Reference.bitEqual(biasGrad, bias.gradient()), "gradient changed below the threshold");

        Parameter other = random(random, "other", ParamRole.HIDDEN_MATRIX, 8, 8);
        Float64Reference.fillGaussian(random, other.gradient(), 100.0);
        float[] otherGrad = other.gradient().clone();
        StepResult off = HybridOptimizer.builder(backend).build(List.of(other)).step();
        assertFalse(off.clipped());
        assertTrue(Float64Reference.bitEqual(otherGrad, other.gradient()), "gradient changed with clipping off");
    }
}
