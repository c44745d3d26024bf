package dev.muon4j.optim;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.BackendConfig;
import dev.muon4j.backend.Backends;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The training-loop example of README.md, as code that must compile and run. */
class ReadmeExampleTest {
    @TempDir
    Path dir;

    @Test
    void readmeTrainingLoopRuns() throws Exception {
        int vocab = 50;
        int width = 16;
        int hidden = 32;
        long totalSteps = 5;
        try (Backend backend = Backends.open(BackendConfig.defaults())) {
            Parameter embed = Parameter.zeros("embed", ParamRole.EMBEDDING, vocab, width);
            Parameter wq = Parameter.matrix("layer0.attn.wq", width, width);
            Parameter up = Parameter.matrix("layer0.mlp.up", hidden, width);
            Parameter norm = Parameter.zeros("layer0.norm", ParamRole.NORM, width);
            Parameter head = Parameter.zeros("head", ParamRole.HEAD, vocab, width);
            List<Parameter> params = List.of(embed, wq, up, norm, head);

            HybridOptimizer optimizer = HybridOptimizer.builder(backend)
                    .adamw(AdamWConfig.builder().learningRate(3e-4).weightDecay(0.1).build())
                    .muon(MuonConfig.moonlight().learningRate(3e-4).weightDecay(0.1).build())
                    .schedule(LearningRateSchedule.warmupCosine(1, totalSteps, 0.1))
                    .clipGradientNorm(1.0)
                    .override("layer0.mlp.up", ParamOverride.none().withLearningRate(1e-4))
                    .build(params);

            SplittableRandom random = new SplittableRandom(3);
            for (long step = 0; step < totalSteps; step++) {
                for (Parameter p : params) {
                    for (int i = 0; i < p.size(); i++) {
                        p.gradient()[i] = (float) random.nextGaussian();
                    }
                }
                StepResult r = optimizer.step();
                assertEquals(step + 1, r.step());
                assertTrue(r.clipped(), "random gradients of this size exceed norm 1");
            }
            Path file = dir.resolve("optimizer.safetensors");
            optimizer.saveState().write(file);
            optimizer.loadState(OptimizerState.read(file));
            assertEquals(Map.of("embed", Route.ADAMW, "layer0.attn.wq", Route.MUON, "layer0.mlp.up", Route.MUON,
                    "layer0.norm", Route.ADAMW, "head", Route.ADAMW), optimizer.routes());
        }
    }
}
