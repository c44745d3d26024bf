package dev.muon4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.backend.VectorBackend;
import dev.muon4j.nn.DeepSeekConfig;
import dev.muon4j.nn.LlamaConfig;
import dev.muon4j.nn.MlaConfig;
import dev.muon4j.nn.MoeConfig;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The training benchmark on a dense and a Mixture-of-Experts model of a few thousand parameters, timed in turns. */
class TrainingBenchmarkTest {
    private static final LlamaConfig DENSE = new LlamaConfig(64, 32, 2, 2, 2, 64, 16, false, 10000, 1e-5, 0.02);
    private static final DeepSeekConfig MOE = new DeepSeekConfig(DENSE, new MoeConfig(4, 2, 16, 2, 2.446, 1),
            new MlaConfig(0, 8, 16, 8, 16));

    @Test
    void comparesDenseAndMixtureOfExpertsInTurns() {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (VectorBackend backend = new VectorBackend(1)) {
            TrainingBenchmark bench = new TrainingBenchmark(backend, new PrintStream(bytes, true, StandardCharsets.UTF_8));
            for (boolean muon : new boolean[] {false, true}) {
                List<TrainingBenchmark.Result> results = bench.compare(
                        List.of(new TrainingBenchmark.Case("dense", DENSE), new TrainingBenchmark.Case("MoE", MOE)), 2, 1, muon, 1, 2);
                assertEquals(2, results.size());
                assertEquals("dense", results.get(0).model());
                assertEquals("MoE", results.get(1).model());
                double paired = TrainingBenchmark.pairedRatio(results.get(1), results.get(0));
                assertTrue(paired > 0 && Double.isFinite(paired), "paired ratio " + paired);
                for (TrainingBenchmark.Result r : results) {
                    assertEquals(2, r.stepTimes().length);
                    assertEquals(2L * 16, r.tokensPerStep());
                    assertTrue(r.forward() > 0 && r.backward() > 0 && r.step() > 0 && r.tokensPerSecond() > 0, r.toString());
                    // Newton–Schulz is part of the optimizer's time, and only Muon runs it.
                    assertTrue(muon ? r.newtonSchulz() > 0 && r.newtonSchulz() <= r.step() : r.newtonSchulz() == 0, r.toString());
                    bench.print(r);
                }
            }
        }
        String printed = bytes.toString(StandardCharsets.UTF_8);
        assertTrue(printed.contains("MoE") && printed.contains("Muon (hybrid)") && printed.contains("Newton-Schulz"), printed);
    }

    @Test
    void stepsOneModelsAdamWAndMuonInTurns() {
        try (VectorBackend backend = new VectorBackend(1)) {
            TrainingBenchmark bench = new TrainingBenchmark(backend, new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8));
            TrainingBenchmark.Case dense = new TrainingBenchmark.Case("dense", DENSE);
            List<TrainingBenchmark.Result> results = bench.compareArms(
                    List.of(new TrainingBenchmark.Arm(dense, false), new TrainingBenchmark.Arm(dense, true)), 2, 1, 1, 3);
            assertEquals(2, results.size());
            assertEquals("AdamW", results.get(0).optimizer());
            assertEquals("Muon (hybrid)", results.get(1).optimizer());
            assertEquals(0, results.get(0).newtonSchulz(), "AdamW runs no Newton–Schulz");
            assertTrue(results.get(1).newtonSchulz() > 0, results.get(1).toString());
            for (TrainingBenchmark.Result r : results) {
                assertEquals("dense", r.model());
                assertEquals(3, r.stepTimes().length);
            }
            double paired = TrainingBenchmark.pairedRatio(results.get(1), results.get(0));
            assertTrue(paired > 0 && Double.isFinite(paired), "paired ratio " + paired);
        }
    }

    @Test
    void pairedRatioIsTheMedianOfTheRoundsRatios() {
        // Rounds of 1 s and 2 s for a, 2 s, 2 s and 8 s for b: a's speed over b's is 2, 1 and 8; median 2.
        var a = new TrainingBenchmark.Result("a", "AdamW", 0, 0, 0, 0, 100, new double[] {1, 2, 1});
        var b = new TrainingBenchmark.Result("b", "AdamW", 0, 0, 0, 0, 100, new double[] {2, 2, 8});
        assertEquals(2, TrainingBenchmark.pairedRatio(a, b), 1e-12);
    }

    @Test
    void singleModelRunKeepsTheFamilyAsLabel() {
        try (VectorBackend backend = new VectorBackend(1)) {
            TrainingBenchmark bench = new TrainingBenchmark(backend, new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8));
            TrainingBenchmark.Result r = bench.run(MOE, 1, 2, false, 0, 1);
            assertEquals("deepseek", r.model());
            assertEquals("AdamW", r.optimizer());
            assertEquals(2L * 16, r.tokensPerStep());
        }
    }
}
