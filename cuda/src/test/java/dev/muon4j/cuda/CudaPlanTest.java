package dev.muon4j.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.backend.VectorBackend;
import dev.muon4j.optim.MuonConfig;
import dev.muon4j.optim.NewtonSchulzConfig;
import dev.muon4j.optim.Parameter;
import dev.muon4j.optim.Preset;
import dev.muon4j.optim.Route;
import dev.muon4j.optim.UpdateRule;
import java.util.List;
import org.junit.jupiter.api.Test;

/** How the GPU optimizer groups parameters and what it refuses: decided before any GPU is touched, so these run anywhere. */
class CudaPlanTest {
    private static final VectorBackend CPU = new VectorBackend(1);

    @Test
    void sameShapeMatricesOfOneRuleAreOneBatch() {
        List<Parameter> params = ModelParameters.make(1);
        CudaOptimizer.Plan plan = CudaOptimizer.plan(Preset.MOONLIGHT.builder(CPU), params);
        // Muon: q_proj (64×32) ×2, o_proj (32×64) ×2, up (96×32) ×2, down (32×96) ×2, gate (32×32) ×2, experts 3 × (48×32);
        // AdamW: one group (embed, norms, biases, head share lr and wd).
        assertEquals(6 + 1, plan.groups().size(), plan.groups().toString());
        CudaOptimizer.Group q = plan.groups().stream().filter(g -> g.rows() == 64 && g.cols() == 32).findFirst().orElseThrow();
        assertEquals(2, q.batch());
        assertEquals(List.of("layers.0.q_proj", "layers.1.q_proj"), q.members().stream().map(m -> m.parameter().name()).toList());
        assertEquals(64 * 32, q.members().get(1).offset());
        assertEquals(0.2 * Math.sqrt(64), q.scale(), 1e-12);
        CudaOptimizer.Group experts = plan.groups().stream().filter(g -> g.rows() == 48).findFirst().orElseThrow();
        assertEquals(3, experts.batch(), "each expert of the stack is a matrix of the batch");
        CudaOptimizer.Group adamw = plan.groups().stream().filter(g -> g.rule().family() == Route.ADAMW).findFirst().orElseThrow();
        assertEquals(0, adamw.batch());
        long expected = params.stream().filter(p -> p.layout() == null || p.role() != dev.muon4j.optim.ParamRole.HIDDEN_MATRIX)
                .mapToLong(Parameter::size).sum();
        assertEquals(expected, adamw.elements());
    }

    @Test
    void perHeadBlocksAreTheBatchesMatrices() {
        MuonConfig muon = MuonConfig.moonlight().build();
        CudaOptimizer.Plan plan = CudaOptimizer.plan(Preset.MOONLIGHT.builder(CPU).rule("layers.*.q_proj",
                UpdateRule.muon(muon).withRowBlocks(16)), ModelParameters.make(1));
        CudaOptimizer.Group q = plan.groups().stream().filter(g -> g.rows() == 16).findFirst().orElseThrow();
        assertEquals(2 * 64 / 16, q.batch(), "4 heads of 16 rows in each of two q_proj");
        assertEquals(0.2 * Math.sqrt(32), q.scale(), 1e-12, "the scale is the block's");
    }

    @Test
    void stagesWithoutAGpuFormAreRefusedNamingTheParameter() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> CudaOptimizer.plan(Preset.NORMUON.builder(CPU), ModelParameters.make(1)));
        assertTrue(e.getMessage().contains("layers.0.q_proj") && e.getMessage().contains("normuon"), e.getMessage());
        IllegalArgumentException torch = assertThrows(IllegalArgumentException.class,
                () -> CudaOptimizer.plan(Preset.TORCH_ORIGINAL.builder(CPU), ModelParameters.make(1)));
        assertTrue(torch.getMessage().contains("TORCH_BF16"), torch.getMessage());
        MuonConfig gramConfig = MuonConfig.moonlight().newtonSchulz(NewtonSchulzConfig.defaults().withMethod(NewtonSchulzConfig.Method.GRAM))
                .build();
        IllegalArgumentException gram = assertThrows(IllegalArgumentException.class, () -> CudaOptimizer.plan(Preset.MOONLIGHT.builder(CPU)
                .muon(gramConfig).muonRule(UpdateRule.muon(gramConfig)), ModelParameters.make(1)));
        assertTrue(gram.getMessage().contains("GRAM"), gram.getMessage());
    }

    @Test
    void withoutAGpuTheReasonSaysWhatIsMissing() {
        var reason = CudaDevice.unavailableReason();
        if (reason.isPresent()) {
            String why = reason.get();
            assertTrue(why.contains("libcuda") || why.contains("MUON4J_CUDA_PATH") || why.contains("no GPU"), why);
        } else {
            try (CudaDevice d = CudaDevice.open(0)) {
                assertTrue(!d.name().isBlank());
            }
        }
    }
}
