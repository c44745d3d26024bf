package dev.muon4j.optim;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.Backends;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * AdamW against a float64 reference (bias-corrected moments, decoupled decay W·(1 − lr·wd)), with a
 * constant learning rate, with betas close to 1, and with a warm-up-cosine schedule whose factor
 * scales the lr at each step.
 */
class AdamWTest {
    /**
     * Bound on ‖W − W_ref‖ / ‖W_ref − W₀‖: the error against the change made by the steps, stricter
     * than against the values. float32 arithmetic gives about 1e-6 over these steps.
     */
    static final double BOUND = 1e-5;

    static Backend backend;
    static double worstError;

    @BeforeAll
    static void open() {
        backend = Backends.openBundled(2);
    }

    @AfterAll
    static void close() throws Exception {
        System.out.printf("AdamWTest: worst relative error vs float64 %.3e%n", worstError);
        backend.close();
    }

    @Test
    void matchesFloat64ReferenceWithConstantLearningRate() {
        run(LearningRateSchedule.constant(), 0.01, 0.1, 10, 1, 0.9, 0.99);
    }

    @ParameterizedTest(name = "beta2={0}")
    @ValueSource(doubles = {0.999, 0.9999, 0.99999})
    void matchesFloat64ReferenceWithBetaTwoNearOne(double beta2) {
        // 1 − β2 must not be formed from β2 rounded to float: (float) 0.9999 is 1.7e-4 off in 1 − β2.
        run(LearningRateSchedule.constant(), 0.01, 0.1, 10, 4, 0.9, beta2);
    }

    @Test
    void matchesFloat64ReferenceWithBetaOneNearOne() {
        run(LearningRateSchedule.constant(), 0.01, 0.1, 10, 5, 0.999, 0.9999);
    }

    @Test
    void matchesFloat64ReferenceWithoutWeightDecay() {
        run(LearningRateSchedule.constant(), 0.003, 0.0, 8, 2, 0.9, 0.99);
    }

    @Test
    void scheduleFactorScalesTheLearningRateAtEachStep() {
        run(LearningRateSchedule.warmupCosine(3, 10, 0.1), 0.02, 0.05, 12, 3, 0.9, 0.99);
    }

    private void run(LearningRateSchedule schedule, double lr, double wd, int steps, long seed, double beta1, double beta2) {
        Random random = new Random(seed);
        double eps = 1e-8;
        // Sizes that exercise both the vector loop and the scalar tail of the kernels.
        int[][] shapes = {{37}, {16, 24}, {5, 7}, {1}};
        Parameter[] params = new Parameter[shapes.length];
        Float64Reference.AdamW[] refs = new Float64Reference.AdamW[shapes.length];
        float[][] initial = new float[shapes.length][];
        for (int i = 0; i < shapes.length; i++) {
            int n = 1;
            for (int d : shapes[i]) {
                n *= d;
            }
            initial[i] = Float64Reference.gaussian(random, n, 0.1);
            params[i] = Parameter.of("p" + i, ParamRole.SCALAR, shapes[i], initial[i].clone(), new float[n]);
            refs[i] = new Float64Reference.AdamW(initial[i], beta1, beta2, eps);
        }
        AdamWConfig config = AdamWConfig.builder().learningRate(lr).beta1(beta1).beta2(beta2).eps(eps).weightDecay(wd).build();
        HybridOptimizer optimizer = HybridOptimizer.builder(backend).adamw(config).routeAll(Route.ADAMW)
                .schedule(schedule).build(List.of(params));
        for (int step = 0; step < steps; step++) {
            double factor = schedule instanceof LearningRateSchedule.WarmupCosine
                    ? Float64Reference.warmupCosine(step, 3, 10, 0.1) : 1.0;
            for (int i = 0; i < params.length; i++) {
                Float64Reference.fillGaussian(random, params[i].gradient(), 1.0);
                refs[i].step(params[i].gradient(), lr * factor, wd);
            }
            StepResult result = optimizer.step();
            assertEquals(factor, result.lrFactor(), 1e-15, "lr factor at step " + step);
            assertEquals(step + 1, result.step());
            for (int i = 0; i < params.length; i++) {
                double error = Float64Reference.relativeToChange(params[i].value(), refs[i].value, initial[i]);
                worstError = Math.max(worstError, error);
                assertTrue(error <= BOUND, params[i].name() + " after step " + step + ": relative error " + error);
            }
        }
    }

    @Test
    void firstStepIsBiasCorrected() {
        // After one step m̂ = g and v̂ = g², so the update is lr·g/(|g| + eps) ≈ lr·sign(g).
        float[] value = {0.5f, -0.25f, 1f};
        float[] gradient = {3f, -0.001f, 0f};
        Parameter p = Parameter.of("v", ParamRole.BIAS, new int[] {3}, value, gradient);
        AdamWConfig config = AdamWConfig.builder().learningRate(0.01).weightDecay(0.1).build();
        Optimizers.adamw(backend, config, List.of(p)).step();
        double decay = 1 - 0.01 * 0.1;
        assertEquals(0.5 * decay - 0.01 * 3 / (3 + 1e-8), value[0], 1e-7);
        assertEquals(-0.25 * decay + 0.01 * 0.001 / (0.001 + 1e-8), value[1], 1e-7);
        assertEquals(1 * decay, value[2], 1e-7);
    }
}
