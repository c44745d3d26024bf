package dev.muon4j.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.VectorBackend;
import dev.muon4j.data.ByteTokenizer;
import dev.muon4j.data.Corpus;
import dev.muon4j.data.TokenDataset;
import dev.muon4j.distributed.LocalRanks;
import dev.muon4j.distributed.ShardedOptimizer;
import dev.muon4j.io.SafeTensors;
import dev.muon4j.nn.LlamaConfig;
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
 * Data-parallel training on in-process ranks: N ranks end where one process ends (same global
 * batch), for Muon, AdamW and both ways of splitting Muon; a run checkpointed by 2 ranks resumes
 * on 4; a rank that fails stops the whole group quickly with its error.
 */
class DataParallelTrainerTest {
    static final int T = 16;
    static final TokenDataset DATA = TokenDataset.of(Corpus.ofText("pangrams",
            "Sphinx of black quartz, judge my vow. The five boxing wizards jump quickly. Pack my box with five dozen liquor jugs. "
                    .repeat(20)), new ByteTokenizer(), 0.1, T);
    /**
     * Initialised with std 0.1, not 0.02: at 0.02 some attention gradients are ~1e-8, where Adam's
     * first steps (g / (|g| + 1e-8)) turn float rounding of the gradient into percent-level
     * differences of the update, whatever the rank count; at 0.1 every run here agrees to ~1e-7.
     */
    static final LlamaConfig MODEL = new LlamaConfig(256, 32, 2, 2, 2, 64, T, false, 10000, 1e-5, 0.1);

    @TempDir
    Path tmp;

    static TrainConfig config(OptimizerChoice optimizer, long steps, int batch, int accumulation) {
        return new TrainConfig(optimizer, 3e-3, 1.2e-2, 0.1, 0.9, 0.95, 0.95, ScheduleKind.COSINE, 1, steps, 0.1,
                batch, accumulation, 1.0, 7, 2, 2, 2, 3);
    }

    /** Final weights of a run, read back from its last checkpoint. */
    static Map<String, float[]> weights(Path dir) throws Exception {
        CheckpointStore.Checkpoint cp = new CheckpointStore(dir, 3, s -> { }).latest().orElseThrow();
        Map<String, float[]> out = new java.util.TreeMap<>();
        SafeTensors.read(cp.dir().resolve(CheckpointStore.MODEL_FILE)).tensors().forEach((k, v) -> out.put(k, v.data()));
        return out;
    }

    static Trainer.Result single(TrainConfig c, Path dir) throws Exception {
        try (Backend b = new VectorBackend(1)) {
            return new Trainer(b, MODEL, c, DATA, dir, s -> { }, null).run(false);
        }
    }

    static List<Trainer.Result> ranks(int n, ShardedOptimizer.Mode mode, TrainConfig c, Path dir, boolean resume, long stopAfter)
            throws Exception {
        return LocalRanks.run(n, Duration.ofSeconds(60), comm -> {
            try (Backend b = new VectorBackend(1)) {
                return new Trainer(b, MODEL, c, DATA, dir, s -> { }, null, new Trainer.DataParallel(comm, mode)).run(resume, stopAfter);
            }
        });
    }

    static void assertClose(Map<String, float[]> want, Map<String, float[]> got, double tolerance, String what) {
        assertEquals(want.keySet(), got.keySet());
        for (String name : want.keySet()) {
            float[] a = want.get(name);
            float[] b = got.get(name);
            double diff = 0;
            double norm = 0;
            for (int i = 0; i < a.length; i++) {
                diff += Math.pow(a[i] - b[i], 2);
                norm += Math.pow(a[i], 2);
            }
            double rel = Math.sqrt(diff / norm);
            assertTrue(rel <= tolerance, what + ": " + name + " relative difference " + rel);
        }
    }

    @ParameterizedTest
    @CsvSource({"MUON, 2, DISTRIBUTED_MUON, 1", "MUON, 3, DISTRIBUTED_MUON, 1", "MUON, 4, WHOLE_MATRIX, 1",
            "ADAMW, 2, DISTRIBUTED_MUON, 1", "ADAMW, 3, WHOLE_MATRIX, 2", "MUON, 3, WHOLE_MATRIX, 2"})
    void ranksEndWhereOneProcessEnds(OptimizerChoice optimizer, int n, ShardedOptimizer.Mode mode, int accumulation) throws Exception {
        TrainConfig c = config(optimizer, 4, 4, accumulation);
        Trainer.Result one = single(c, tmp.resolve("one"));
        List<Trainer.Result> many = ranks(n, mode, c, tmp.resolve("many"), false, Long.MAX_VALUE);
        assertClose(weights(tmp.resolve("one")), weights(tmp.resolve("many")), 2e-5, n + " ranks " + mode);
        for (Trainer.Result r : many) {
            assertEquals(one.steps().size(), r.steps().size());
            for (int s = 0; s < one.steps().size(); s++) {
                assertEquals(one.steps().get(s).loss(), r.steps().get(s).loss(), 1e-5, "loss of step " + (s + 1));
                assertEquals(one.steps().get(s).gradNorm(), r.steps().get(s).gradNorm(), 1e-4 * one.steps().get(s).gradNorm());
            }
            assertEquals(one.finalValidationLoss(), r.finalValidationLoss(), 1e-5);
        }
        // Batch 4 over 3 ranks is 1 + 1 + 2 rows: the shares are weighted; only rank 0 writes metrics.
        assertTrue(Files.readString(tmp.resolve("many/metrics.jsonl")).lines().count() >= 4);
        assertTrue(many.get(1).timings().getFirst().bytesSent() > 0);
    }

    @Test
    void moreRanksThanSequencesLeavesARankWithoutGradientsAndStillMatches() throws Exception {
        TrainConfig c = config(OptimizerChoice.MUON, 3, 2, 1);
        single(c, tmp.resolve("one"));
        ranks(3, ShardedOptimizer.Mode.DISTRIBUTED_MUON, c, tmp.resolve("three"), false, Long.MAX_VALUE);
        assertClose(weights(tmp.resolve("one")), weights(tmp.resolve("three")), 2e-5, "3 ranks, batch 2");
    }

    @Test
    void twoRankCheckpointResumesOnFourRanks() throws Exception {
        TrainConfig c = config(OptimizerChoice.MUON, 6, 4, 1);
        single(c, tmp.resolve("one"));
        Path dir = tmp.resolve("resumed");
        ranks(2, ShardedOptimizer.Mode.DISTRIBUTED_MUON, c, dir, false, 3);
        List<Trainer.Result> rest = ranks(4, ShardedOptimizer.Mode.WHOLE_MATRIX, c, dir, true, Long.MAX_VALUE);
        assertEquals(3, rest.get(2).startStep());
        assertClose(weights(tmp.resolve("one")), weights(dir), 2e-5, "2 ranks then 4");
        // The resumed optimizer state also matches the uninterrupted one's.
        CheckpointStore.Checkpoint a = new CheckpointStore(tmp.resolve("one"), 3, s -> { }).latest().orElseThrow();
        CheckpointStore.Checkpoint b = new CheckpointStore(dir, 3, s -> { }).latest().orElseThrow();
        assertEquals(a.optimizer().step(), b.optimizer().step());
        for (String name : a.optimizer().entries().keySet()) {
            assertClose(a.optimizer().entries().get(name).buffers(), b.optimizer().entries().get(name).buffers(), 1e-4,
                    "optimizer state of " + name);
        }
    }

    @Test
    void aFailingRankStopsTheGroupWithItsError() throws Exception {
        TrainConfig c = config(OptimizerChoice.MUON, 6, 4, 1);
        Path dir = tmp.resolve("fails");
        long t0 = System.nanoTime();
        LocalRanks.RankFailedException e = assertThrows(LocalRanks.RankFailedException.class, () ->
                LocalRanks.run(2, Duration.ofSeconds(120), comm -> {
                    try (Backend b = new VectorBackend(1)) {
                        Trainer t = new Trainer(b, MODEL, c, DATA, dir, s -> { }, null,
                                new Trainer.DataParallel(comm, ShardedOptimizer.Mode.DISTRIBUTED_MUON));
                        if (comm.rank() == 1) {
                            t.run(false, 2); // rank 1 dies after step 2 while rank 0 goes on into step 3
                            throw new IllegalStateException("rank 1 crashed");
                        }
                        return t.run(false);
                    }
                }));
        double seconds = (System.nanoTime() - t0) / 1e9;
        assertEquals(1, e.rank());
        assertTrue(e.getMessage().contains("rank 1 crashed"), e.getMessage());
        assertTrue(seconds < 60, "the group stopped after " + seconds + " s, not at the 120 s timeout");
    }

    @Test
    void rankZeroRefusingTheRunDirectoryStopsEveryRank() throws Exception {
        TrainConfig c = config(OptimizerChoice.ADAMW, 2, 4, 1);
        ranks(2, ShardedOptimizer.Mode.DISTRIBUTED_MUON, c, tmp.resolve("taken"), false, Long.MAX_VALUE);
        LocalRanks.RankFailedException e = assertThrows(LocalRanks.RankFailedException.class,
                () -> ranks(2, ShardedOptimizer.Mode.DISTRIBUTED_MUON, c, tmp.resolve("taken"), false, Long.MAX_VALUE));
        assertTrue(e.getMessage().contains("already holds checkpoint"), e.getMessage());
    }
}
