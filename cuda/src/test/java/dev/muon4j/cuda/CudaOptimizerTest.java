package dev.muon4j.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.backend.VectorBackend;
import dev.muon4j.optim.HybridOptimizer;
import dev.muon4j.optim.LearningRateSchedule;
import dev.muon4j.optim.MuonConfig;
import dev.muon4j.optim.NewtonSchulzConfig;
import dev.muon4j.optim.NonFiniteGradientException;
import dev.muon4j.optim.NonFinitePolicy;
import dev.muon4j.optim.Parameter;
import dev.muon4j.optim.Preset;
import dev.muon4j.optim.Route;
import dev.muon4j.optim.StepResult;
import dev.muon4j.optim.Transforms;
import dev.muon4j.optim.UpdateRule;
import dev.muon4j.tensor.DType;
import java.util.List;
import java.util.Random;
import java.util.function.Function;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIf;

/**
 * The GPU optimizer against muon4j-core's {@link HybridOptimizer} on the CPU, from the same builder,
 * parameters and gradients, over several steps of a warm-up–cosine schedule.
 *
 * <p>What must agree, and how closely: every AdamW-routed parameter and Muon's momentum bit for bit
 * (the same float32 operations in the same order, while clipping does not fire); Muon-routed weights
 * within 1% (float32 Newton–Schulz) or 5% (bfloat16) of the change the steps made to them, since
 * Newton–Schulz's float32 sums run in another order; the reported gradient norm to 1e-6 relative (the
 * CPU adds squares in float32 lanes, the GPU in double).
 */
@EnabledIf("dev.muon4j.cuda.CudaTestSupport#gpuAvailable")
class CudaOptimizerTest {
    private static final int STEPS = 4;

    /** Moonlight's preset with {@code muon}'s settings, its rule (and so its Newton–Schulz) included. */
    private static HybridOptimizer.Builder moonlight(VectorBackend b, MuonConfig muon) {
        return Preset.MOONLIGHT.builder(b).muon(muon).muonRule(UpdateRule.muon(muon));
    }

    private static void compare(Function<VectorBackend, HybridOptimizer.Builder> builder, float gradientScale, double muonTolerance,
                                boolean adamwExact) {
        List<Parameter> cpuParams = ModelParameters.make(7);
        List<Parameter> gpuParams = ModelParameters.make(7);
        List<Parameter> initial = ModelParameters.make(7);
        VectorBackend backend = new VectorBackend(1);
        HybridOptimizer cpu = builder.apply(backend).build(cpuParams);
        try (CudaOptimizer gpu = CudaOptimizer.build(CudaTestSupport.device(), builder.apply(backend), gpuParams)) {
            Random rc = new Random(11);
            Random rg = new Random(11);
            for (int s = 0; s < STEPS; s++) {
                ModelParameters.gradients(cpuParams, rc, gradientScale);
                ModelParameters.gradients(gpuParams, rg, gradientScale);
                StepResult a = cpu.step();
                gpu.setGradients();
                StepResult b = gpu.step();
                assertEquals(a.step(), b.step());
                assertEquals(a.clipped(), b.clipped(), "clipped in step " + a.step());
                assertEquals(a.lrFactor(), b.lrFactor());
                // The CPU sums squares in float32 lanes over blocks of 1024 elements, the GPU in double: 1e-6 relative.
                assertEquals(a.gradientNorm(), b.gradientNorm(), 1e-6 * a.gradientNorm(), "gradient norm of step " + a.step());
            }
            gpu.getValues();
            var routes = cpu.routes();
            for (int i = 0; i < cpuParams.size(); i++) {
                Parameter c = cpuParams.get(i);
                Parameter g = gpuParams.get(i);
                if (routes.get(c.name()) == Route.ADAMW) {
                    if (adamwExact) {
                        assertArrayEquals(c.value(), g.value(), "AdamW parameter " + c.name() + " bit for bit");
                    }
                    continue;
                }
                double change = 0;
                double diff = 0;
                for (int j = 0; j < c.size(); j++) {
                    change = Math.max(change, Math.abs(c.value()[j] - initial.get(i).value()[j]));
                    diff = Math.max(diff, Math.abs(c.value()[j] - g.value()[j]));
                }
                assertTrue(change > 0, c.name() + " moved");
                assertTrue(diff <= muonTolerance * change, c.name() + ": max |GPU − CPU| " + diff + " against a change of " + change);
            }
        }
    }

    @Test
    void moonlightFloat32MatchesTheCpu() {
        compare(b -> moonlight(b, MuonConfig.moonlight().learningRate(0.02).build())
                .schedule(LearningRateSchedule.warmupCosine(2, 10, 0.1)), 0.01f, 0.01, true);
    }

    @Test
    void momentumStateIsTheCpusBitForBit() {
        List<Parameter> cpuParams = ModelParameters.make(3);
        List<Parameter> gpuParams = ModelParameters.make(3);
        VectorBackend backend = new VectorBackend(1);
        HybridOptimizer cpu = Preset.KELLER_JORDAN.builder(backend).build(cpuParams);
        try (CudaOptimizer gpu = CudaOptimizer.build(CudaTestSupport.device(), Preset.KELLER_JORDAN.builder(backend), gpuParams)) {
            Random rc = new Random(5);
            Random rg = new Random(5);
            for (int s = 0; s < 3; s++) {
                ModelParameters.gradients(cpuParams, rc, 0.01f);
                ModelParameters.gradients(gpuParams, rg, 0.01f);
                cpu.step();
                gpu.setGradients();
                gpu.step();
            }
            var state = cpu.saveState();
            for (Parameter p : cpuParams) {
                if (cpu.routes().get(p.name()) == Route.MUON) {
                    float[] expected = state.entries().get(p.name()).buffers().get(Transforms.MOMENTUM);
                    assertArrayEquals(expected, gpu.state(p.name(), Transforms.MOMENTUM), p.name());
                } else {
                    assertArrayEquals(state.entries().get(p.name()).buffers().get(Transforms.EXP_AVG), gpu.state(p.name(), Transforms.EXP_AVG),
                            p.name());
                }
            }
        }
    }

    @Test
    void bfloat16NewtonSchulzMatchesTheCpuWithinItsBand() {
        compare(b -> moonlight(b, MuonConfig.moonlight().learningRate(0.02)
                .newtonSchulz(NewtonSchulzConfig.defaults().withPrecision(DType.BF16)).build()), 0.01f, 0.05, true);
    }

    @Test
    void clippingScalesTheGradientsAsTheCpuDoes() {
        // Gradients of norm ≈ 0.5·√(elements) ≫ 1: clipping fires in every step.
        compare(b -> Preset.MOONLIGHT.builder(b).clipGradientNorm(1.0), 0.5f, 0.01, false);
    }

    @Test
    void perHeadRowBlocksAndCautiousWeightDecayMatchTheCpu() {
        compare(b -> {
            MuonConfig muon = MuonConfig.moonlight().learningRate(0.02).build();
            UpdateRule rule = UpdateRule.muon(muon).withWeightDecay(Transforms.WeightDecayMode.CAUTIOUS);
            return Preset.MOONLIGHT.builder(b).muon(muon).muonRule(rule).rule("layers.*.q_proj", UpdateRule.muon(muon).withRowBlocks(16));
        }, 0.01f, 0.01, true);
    }

    @Test
    void aNonFiniteGradientFailsNamingItOrIsSkipped() {
        List<Parameter> params = ModelParameters.make(9);
        VectorBackend backend = new VectorBackend(1);
        try (CudaOptimizer gpu = CudaOptimizer.build(CudaTestSupport.device(), Preset.MOONLIGHT.builder(backend), params)) {
            ModelParameters.gradients(params, new Random(1), 0.01f);
            params.get(3).gradient()[17] = Float.NaN;
            gpu.setGradients();
            NonFiniteGradientException e = assertThrows(NonFiniteGradientException.class, gpu::step);
            assertTrue(e.getMessage().contains(params.get(3).name()) && e.getMessage().contains("17"), e.getMessage());
            assertEquals(0, gpu.stepCount());
        }
        List<Parameter> skipping = ModelParameters.make(9);
        try (CudaOptimizer gpu = CudaOptimizer.build(CudaTestSupport.device(),
                Preset.MOONLIGHT.builder(backend).nonFinite(NonFinitePolicy.SKIP_STEP), skipping)) {
            float[] before = skipping.get(1).value().clone();
            ModelParameters.gradients(skipping, new Random(1), 0.01f);
            skipping.get(1).gradient()[0] = Float.POSITIVE_INFINITY;
            gpu.setGradients();
            StepResult r = gpu.step();
            assertTrue(r.skipped());
            assertEquals(1, gpu.skippedSteps());
            gpu.getValues();
            assertArrayEquals(before, skipping.get(1).value(), "a skipped step changes nothing");
        }
    }
}
