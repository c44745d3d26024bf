package dev.muon4j.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.VectorBackend;
import dev.muon4j.distributed.LocalRanks;
import dev.muon4j.distributed.ShardedOptimizer;
import dev.muon4j.io.JsonCodec;
import dev.muon4j.nn.DeepSeekConfig;
import dev.muon4j.nn.LlamaConfig;
import dev.muon4j.nn.MlaConfig;
import dev.muon4j.nn.MoeConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Training the DeepSeek-V3-style Mixture-of-Experts model: checkpoints hold one tensor per expert
 * under Hugging Face's names and the routers' choice biases; a run stopped and resumed ends bit for
 * bit where an uninterrupted one ends; the biases move by the balancing rule; metrics carry each
 * layer's expert loads; 2 and 4 in-process ranks in both modes end where one process ends, for Muon
 * and AdamW.
 */
class MoeTrainerTest {
    static final int T = 16;
    /** Two layers, the first dense; 4 experts of width 16, 2 active, 1 shared; latent attention. */
    static final DeepSeekConfig MODEL = new DeepSeekConfig(new LlamaConfig(256, 32, 2, 2, 2, 64, T, false, 10000, 1e-5, 0.1),
            new MoeConfig(4, 2, 16, 1, 2.446, 1), new MlaConfig(0, 8, 16, 8, 16));

    @TempDir
    Path tmp;

    static TrainConfig config(OptimizerChoice optimizer, long steps) {
        // γ = 0.01: large enough that four steps move the biases visibly.
        return DataParallelTrainerTest.config(optimizer, steps, 4, 1).withRouterBiasRate(0.01);
    }

    static Trainer.Result single(TrainConfig c, Path dir, RunOptions options) throws Exception {
        try (Backend b = new VectorBackend(1)) {
            return new Trainer(b, MODEL, c, DataParallelTrainerTest.DATA, dir, s -> { }, null).run(options);
        }
    }

    @Test
    void aStoppedAndResumedRunEndsBitForBitWithExpertsSavedOneTensorEach() throws Exception {
        TrainConfig c = config(OptimizerChoice.MUON, 4);
        single(c, tmp.resolve("whole"), RunOptions.fresh());
        single(c, tmp.resolve("parts"), RunOptions.fresh().withStopAfter(2));
        Trainer.Result rest = single(c, tmp.resolve("parts"), RunOptions.resume());
        assertEquals(2, rest.startStep());
        Map<String, float[]> whole = DataParallelTrainerTest.weights(tmp.resolve("whole"));
        Map<String, float[]> parts = DataParallelTrainerTest.weights(tmp.resolve("parts"));
        assertEquals(whole.keySet(), parts.keySet());
        for (String name : whole.keySet()) {
            assertArrayEquals(whole.get(name), parts.get(name), name + " after a resume");
        }
        for (int e = 0; e < 4; e++) {
            for (String proj : List.of("gate_proj", "up_proj", "down_proj")) {
                assertTrue(whole.containsKey("model.layers.1.mlp.experts." + e + "." + proj + ".weight"), proj + " of expert " + e);
            }
        }
        assertTrue(whole.containsKey("model.layers.1.mlp.shared_experts.gate_proj.weight"));
        assertTrue(whole.containsKey("model.layers.0.mlp.gate_proj.weight"), "layer 0 is dense");
        assertTrue(whole.containsKey("model.layers.1.self_attn.kv_a_proj_with_mqa.weight"), "latent attention");
        float[] bias = whole.get("model.layers.1.mlp.gate.e_score_correction_bias");
        // Each step moves every bias by ±γ or 0: after 4 steps each is a multiple of 0.01 within ±0.04.
        boolean moved = false;
        for (float b : bias) {
            assertTrue(Math.abs(b) <= 0.04 + 1e-6, "bias " + b);
            assertEquals(0, Math.abs(Math.round(b / 0.01) * 0.01 - b), 1e-6, "bias " + b + " is a multiple of γ");
            moved |= b != 0;
        }
        assertTrue(moved, "the balancing moved some bias");

        List<String> lines = Files.readAllLines(tmp.resolve("whole/metrics.jsonl"));
        Map<?, ?> step = JsonCodec.parseObject(lines.stream().filter(l -> l.contains("\"loss\"")).findFirst().orElseThrow());
        List<?> loads = (List<?>) step.get("expert_load_max_mean");
        assertEquals(1, loads.size(), "one MoE layer");
        double load = ((Number) loads.getFirst()).doubleValue();
        assertTrue(load >= 1 && load <= 4, "max/mean load " + load);
        List<?> shares = (List<?>) ((List<?>) step.get("expert_share")).getFirst();
        assertEquals(1.0, shares.stream().mapToDouble(v -> ((Number) v).doubleValue()).sum(), 1e-9);
        assertEquals(4, ((List<?>) ((List<?>) step.get("router_bias")).getFirst()).size());
    }

    @ParameterizedTest
    @CsvSource({"MUON, 2, DISTRIBUTED_MUON", "MUON, 4, WHOLE_MATRIX", "ADAMW, 2, WHOLE_MATRIX", "MUON, 2, WHOLE_MATRIX",
            "ADAMW, 4, DISTRIBUTED_MUON"})
    void ranksEndWhereOneProcessEnds(OptimizerChoice optimizer, int n, ShardedOptimizer.Mode mode) throws Exception {
        TrainConfig c = config(optimizer, 4);
        Trainer.Result one = single(c, tmp.resolve("one"), RunOptions.fresh());
        List<Trainer.Result> many = LocalRanks.run(n, Duration.ofSeconds(60), comm -> {
            try (Backend b = new VectorBackend(1)) {
                return new Trainer(b, MODEL, c, DataParallelTrainerTest.DATA, tmp.resolve("many"), s -> { }, null,
                        new Trainer.DataParallel(comm, mode)).run(false);
            }
        });
        Map<String, float[]> a = DataParallelTrainerTest.weights(tmp.resolve("one"));
        Map<String, float[]> b = DataParallelTrainerTest.weights(tmp.resolve("many"));
        // The routers' biases move by exact counts summed over the ranks: equal bit for bit.
        assertArrayEquals(a.get("model.layers.1.mlp.gate.e_score_correction_bias"), b.get("model.layers.1.mlp.gate.e_score_correction_bias"));
        DataParallelTrainerTest.assertClose(a, b, 2e-5, n + " ranks " + mode);
        for (int s = 0; s < one.steps().size(); s++) {
            assertEquals(one.steps().get(s).loss(), many.getFirst().steps().get(s).loss(), 1e-5, "loss of step " + (s + 1));
        }
    }
}
