package dev.muon4j.experiments;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.Backends;
import dev.muon4j.data.ByteTokenizer;
import dev.muon4j.data.Corpus;
import dev.muon4j.data.ShippedCorpus;
import dev.muon4j.data.TokenDataset;
import dev.muon4j.nn.LlamaConfig;
import dev.muon4j.train.CheckpointStore;
import dev.muon4j.train.OptimizerChoice;
import dev.muon4j.train.ScheduleKind;
import dev.muon4j.train.TrainConfig;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The grid runner: a grid cut off mid-run carries on where it stopped (runs that ended are not
 * trained again, the cut run resumes from its checkpoint and ends exactly as an uninterrupted one),
 * a run killed after its last checkpoint ends without training, a diverging run is recorded and the
 * grid goes on, and a grid that changed under existing run directories is refused, naming the change.
 */
class GridRunnerTest {
    static final int T = 16;
    static final int STEPS = 20;
    static Backend backend;
    static TokenDataset data;
    static TokenDataset other;

    @TempDir
    Path tmp;

    final StringWriter log = new StringWriter();

    @BeforeAll
    static void open() {
        backend = Backends.openBundled(2);
        data = TokenDataset.of(Corpus.ofText("text", "Sphinx of black quartz, judge my vow. Pack my box with five dozen liquor jugs! "
                .repeat(40)), new ByteTokenizer(), 0.1, T);
        other = TokenDataset.of(Corpus.ofText("other", "We the People of the United States, in Order to form a more perfect Union, "
                .repeat(40)), new ByteTokenizer(), 0.1, T);
    }

    @AfterAll
    static void close() {
        backend.close();
    }

    static final LlamaConfig MODEL = new LlamaConfig(256, 16, 1, 2, 2, 32, T, false, 10000, 1e-5, 0.02);

    static TrainConfig config(OptimizerChoice o, double lr, double clip) {
        return new TrainConfig(o, lr, 4 * lr, 0.1, 0.9, 0.95, 0.95, ScheduleKind.COSINE, 2, STEPS, 0.1, 4, 1, clip, 1,
                5, 2, 5, 1);
    }

    /** Three runs: AdamW, Muon, AdamW at another rate. */
    static List<GridRun<String>> grid() {
        return List.of(new GridRun<>("a", "a", MODEL, config(OptimizerChoice.ADAMW, 1e-2, 1), Measurements.none()),
                new GridRun<>("b", "b", MODEL, config(OptimizerChoice.MUON, 1e-2, 1), new Measurements(4, true, true, true)),
                new GridRun<>("c", "c", MODEL, config(OptimizerChoice.ADAMW, 3e-3, 1), Measurements.none()));
    }

    GridRunner runner(Path out, BooleanSupplier stop) {
        return new GridRunner(backend, t -> data, out, new PrintWriter(log, true), stop, false);
    }

    /** A stop request that comes on the {@code n}-th poll (the runner polls before each run, the trainer after each step). */
    static BooleanSupplier stopOnPoll(int n) {
        AtomicInteger polls = new AtomicInteger();
        return () -> polls.incrementAndGet() >= n;
    }

    @Test
    void aCutOffGridCarriesOnWhereItStopped() throws IOException {
        Path reference = tmp.resolve("reference");
        GridRunner.Summary whole = runner(reference, () -> false).train(grid());
        assertEquals(new GridRunner.Summary(3, 0, 3, 0, false, whole.seconds()), whole);

        // Polls: 1 before run a, 2..21 after its steps, 22 before run b, 23.. after b's steps: the 30th is after b's step 8.
        Path out = tmp.resolve("cut");
        GridRunner.Summary first = runner(out, stopOnPoll(30)).train(grid());
        assertFalse(first.complete(), first.toString());
        assertEquals(1, first.trained());
        assertTrue(first.stopped());
        Path a = GridRunner.runDir(out, "a");
        Path b = GridRunner.runDir(out, "b");
        assertTrue(Files.exists(a.resolve(GridRunner.RESULT)));
        assertFalse(Files.exists(b.resolve(GridRunner.RESULT)), "b was cut off: not ended");
        assertFalse(Files.exists(GridRunner.runDir(out, "c")), "c never started");
        assertTrue(log.toString().contains("[2/3] b: stopped after step 8 of 20; its checkpoint is kept"), log.toString());
        IllegalStateException unfinished = assertThrows(IllegalStateException.class, () -> GridRunner.load(out, grid()));
        assertTrue(unfinished.getMessage().contains("2 of the grid's 3 runs have not ended") && unfinished.getMessage().contains("(b, c)"),
                unfinished.getMessage());

        byte[] aMetrics = Files.readAllBytes(a.resolve("metrics.jsonl"));
        byte[] aResult = Files.readAllBytes(a.resolve(GridRunner.RESULT));
        FileTime aTime = Files.getLastModifiedTime(a.resolve("metrics.jsonl"));
        log.getBuffer().setLength(0);
        GridRunner.Summary second = runner(out, () -> false).train(grid());
        assertTrue(second.complete(), second.toString());
        assertEquals(1, second.skipped(), "a ended before");
        assertEquals(2, second.trained(), "b resumed, c started");
        assertTrue(log.toString().contains("grid: 3 runs in " + out.resolve(GridRunner.RUNS) + "; 1 ended earlier (skipped), 2 to train"),
                log.toString());
        assertTrue(log.toString().contains("[2/3] b: resumed from " + b.resolve("step-00000008") + " at step 8"), log.toString());
        assertFalse(log.toString().contains("[1/3] a:"), "a is not trained again: " + log);
        assertArrayEquals(aMetrics, Files.readAllBytes(a.resolve("metrics.jsonl")), "a's metrics untouched");
        assertArrayEquals(aResult, Files.readAllBytes(a.resolve(GridRunner.RESULT)), "a's result untouched");
        assertEquals(aTime, Files.getLastModifiedTime(a.resolve("metrics.jsonl")));

        // The cut run ends exactly as the uninterrupted one: every validation loss and measurement, bit for bit.
        List<RunRecord<String>> cut = GridRunner.load(out, grid());
        List<RunRecord<String>> full = GridRunner.load(reference, grid());
        for (int i = 0; i < 3; i++) {
            assertEquals(full.get(i).evals(), cut.get(i).evals(), "validations of " + full.get(i).run().id());
            assertEquals(full.get(i).finalLoss(), cut.get(i).finalLoss());
        }
        assertEquals(full.get(1).perMatrix("update_rms").keySet(), cut.get(1).perMatrix("update_rms").keySet());
        assertArrayEquals(full.get(1).stepsOf("update_rms"), cut.get(1).stepsOf("update_rms"), "steps 1, 4, 8, …, 20 measured");
        assertArrayEquals(new double[] {1, 4, 8, 12, 16, 20}, cut.get(1).stepsOf("weight_rms"));
        for (String name : full.get(1).perMatrix("update_rms").keySet()) {
            assertArrayEquals(full.get(1).perMatrix("update_rms").get(name), cut.get(1).perMatrix("update_rms").get(name), name);
        }
        assertEquals(full.get(1).perLayer("layer_output_rms").length, cut.get(1).perLayer("layer_output_rms").length);
        List<String> sittings = Files.readAllLines(b.resolve(GridRunner.SITTINGS));
        assertEquals(2, sittings.size(), sittings.toString());
        assertTrue(sittings.get(0).contains("\"from_step\":0,\"to_step\":8,\"outcome\":\"stopped\""), sittings.get(0));
        assertTrue(sittings.get(1).contains("\"from_step\":8,\"to_step\":20,\"outcome\":\"finished\""), sittings.get(1));
        RunResult bResult = cut.get(1).result();
        assertEquals(STEPS, bResult.steps());
        assertEquals((long) STEPS * 4 * T, bResult.tokens());
        assertTrue(bResult.wallSeconds() > 0 && bResult.trainSeconds() > 0 && bResult.trainSeconds() <= bResult.wallSeconds(),
                bResult.toString());

        // A third sitting has nothing to do.
        GridRunner.Summary third = runner(out, () -> false).train(grid());
        assertEquals(new GridRunner.Summary(3, 3, 0, 0, false, third.seconds()), third);
    }

    @Test
    void aRunKilledAfterItsLastCheckpointEndsWithoutTraining() throws IOException {
        Path out = tmp.resolve("killed");
        runner(out, () -> false).train(grid());
        Path c = GridRunner.runDir(out, "c");
        RunResult before = GridRunner.load(out, grid()).get(2).result();
        Files.delete(c.resolve(GridRunner.RESULT));  // as if killed between the last checkpoint and result.json
        log.getBuffer().setLength(0);
        GridRunner.Summary s = runner(out, () -> false).train(grid());
        assertEquals(2, s.skipped());
        assertTrue(log.toString().contains("[3/3] c: nothing to do: the checkpoint is at step 20 of 20"), log.toString());
        RunResult after = GridRunner.load(out, grid()).get(2).result();
        assertEquals(before.finalValidationLoss(), after.finalValidationLoss());
        assertEquals(before.steps(), after.steps());
        assertEquals(before.trainSeconds(), after.trainSeconds(), 1e-9, "the steps' time comes from metrics.jsonl");
    }

    @Test
    void aDivergingRunIsRecordedAndTheGridGoesOn() throws IOException {
        List<GridRun<String>> grid = new ArrayList<>(grid());
        // Far too high a rate without clipping: the trainer stops the run as broken (a NaN or a collapse).
        grid.set(0, new GridRun<>("a", "a", MODEL, config(OptimizerChoice.ADAMW, 300, 0), Measurements.none()));
        Path out = tmp.resolve("diverged");
        GridRunner.Summary s = runner(out, () -> false).train(grid);
        assertTrue(s.complete(), s.toString());
        assertEquals(1, s.diverged());
        assertTrue(log.toString().contains("[1/3] a: diverged after"), log.toString());
        assertTrue(log.toString().contains("[3/3] c: ended"), "the grid went on: " + log);
        RunRecord<String> a = GridRunner.load(out, grid).getFirst();
        assertTrue(a.result().diverged());
        assertTrue(Double.isNaN(a.finalLoss()));
        assertTrue(a.result().failure() != null && !a.result().failure().isBlank(), a.result().toString());
        assertEquals(3, runner(out, () -> false).train(grid).skipped(), "a diverged run has ended too");
    }

    @Test
    void aGridThatChangedUnderItsRunDirectoriesIsRefused() throws IOException {
        Path out = tmp.resolve("changed");
        runner(out, stopOnPoll(30)).train(grid());  // a ended, b has a checkpoint at step 8
        List<GridRun<String>> changed = new ArrayList<>(grid());
        changed.set(0, new GridRun<>("a", "a", MODEL, config(OptimizerChoice.ADAMW, 2e-2, 1), Measurements.none()));
        IllegalStateException ended = assertThrows(IllegalStateException.class, () -> runner(out, () -> false).train(changed));
        assertTrue(ended.getMessage().contains(GridRunner.runDir(out, "a").resolve(GridRunner.RESULT).toString())
                && ended.getMessage().contains("train.learning_rate: 0.01 recorded, 0.02 in the grid"), ended.getMessage());

        List<GridRun<String>> changedB = new ArrayList<>(grid());
        changedB.set(1, new GridRun<>("b", "b", MODEL, config(OptimizerChoice.MUON, 2e-2, 1), new Measurements(4, true, true, true)));
        IllegalStateException cut = assertThrows(IllegalStateException.class, () -> runner(out, () -> false).train(changedB));
        assertTrue(cut.getMessage().contains("run directory " + GridRunner.runDir(out, "b") + " holds a checkpoint of other settings"),
                cut.getMessage());
    }

    /** Run a, then d and e fine-tuned from a's final weights (Muon and AdamW), d on a corpus of its own. */
    static List<GridRun<String>> fineTuningGrid(TrainConfig source) {
        return List.of(new GridRun<>("a", "a", MODEL, source, Measurements.none()),
                new GridRun<>("d", "d", MODEL, config(OptimizerChoice.MUON, 3e-3, 1).withSteps(8), Measurements.none(),
                        ShippedCorpus.SOTU, "a"),
                new GridRun<>("e", "e", MODEL, config(OptimizerChoice.ADAMW, 3e-3, 1).withSteps(8), Measurements.none(),
                        ShippedCorpus.GUTENBERG, "a"));
    }

    /** A runner whose corpora are two different texts, so a run on the wrong one would validate to other losses. */
    GridRunner twoCorpusRunner(Path out) {
        return new GridRunner(backend, (corpus, context) -> corpus == ShippedCorpus.SOTU ? other : data, out,
                new PrintWriter(log, true), () -> false, false);
    }

    @Test
    void aFineTuningRunStartsFromItsSourcesFinalWeightsWithAFreshOptimizer() throws IOException {
        Path out = tmp.resolve("finetune");
        List<GridRun<String>> grid = fineTuningGrid(config(OptimizerChoice.ADAMW, 1e-2, 1));
        GridRunner.Summary s = twoCorpusRunner(out).train(grid);
        assertTrue(s.complete(), s.toString());
        Path a = GridRunner.runDir(out, "a");
        assertTrue(log.toString().contains("[2/3] d: Muon (moonlight) lr 0.0120, AdamW part lr 0.00300, weight decay 0.100, 8 steps of 4 x "
                + T + String.format(java.util.Locale.ROOT, " tokens, %,d parameters, corpus sotu, from the final weights of a", MODEL.parameterCount())),
                log.toString());
        assertTrue(log.toString().contains("[2/3] d: initial weights from checkpoint " + a.resolve("step-00000020")
                + " (step 20); the optimizer starts fresh"), log.toString());
        // d's checkpoints record where its weights came from; its optimizer state counts only its own steps.
        CheckpointStore.Checkpoint d = new CheckpointStore(GridRunner.runDir(out, "d"), 2, m -> { }).latest().orElseThrow();
        assertEquals(8, d.step());
        assertEquals(8, d.optimizer().step(), "the optimizer started at d's step 0, not at a's 20");
        assertTrue(d.config().get("init_from") instanceof java.util.Map<?, ?> from && Long.valueOf(20).equals(from.get("step"))
                && String.valueOf(from.get("path")).endsWith("step-00000020"), d.config().toString());
        // d validated on the other text (its own corpus), e on the first.
        assertTrue(d.config().get("data") instanceof java.util.Map<?, ?> dd && other.fingerprint().equals(dd.get("fingerprint")),
                d.config().toString());
        // Starting from a's trained weights, e's first validation is already near a's last; a fresh model's is far above.
        List<RunRecord<String>> records = GridRunner.load(out, grid);
        double aLast = records.get(0).finalLoss();
        double eFirst = records.get(2).evals().getFirst().loss();
        assertTrue(Math.abs(eFirst - aLast) < 0.3 * aLast, "e's first validation " + eFirst + " against a's last " + aLast);
        assertEquals(java.util.Map.of("corpus", "sotu", "init_from", "a"), java.util.Map.of("corpus",
                records.get(1).result().settings().get("corpus"), "init_from", records.get(1).result().settings().get("init_from")));
        assertFalse(records.get(2).result().settings().containsKey("corpus"), "the default corpus is not written");
    }

    @Test
    void aFineTuningRunOfADivergedRunIsRecordedAsDivergedWithoutTraining() throws IOException {
        Path out = tmp.resolve("finetune-diverged");
        List<GridRun<String>> grid = fineTuningGrid(config(OptimizerChoice.ADAMW, 300, 0));
        GridRunner.Summary s = twoCorpusRunner(out).train(grid);
        assertTrue(s.complete(), s.toString());
        assertEquals(3, s.diverged(), s.toString());
        assertTrue(log.toString().contains("[2/3] d: not trained: its initial weights' run a diverged; recorded as diverged"), log.toString());
        RunRecord<String> d = GridRunner.load(out, grid).get(1);
        assertTrue(d.result().diverged() && d.result().steps() == 0 && d.evals().isEmpty(), d.result().toString());
        assertFalse(Files.exists(GridRunner.runDir(out, "d").resolve("metrics.jsonl")), "d trained nothing");
    }

    @Test
    void aRunMustComeAfterTheRunItStartsFrom() {
        List<GridRun<String>> grid = fineTuningGrid(config(OptimizerChoice.ADAMW, 1e-2, 1));
        List<GridRun<String>> reversed = List.of(grid.get(1), grid.get(0));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> twoCorpusRunner(tmp).train(reversed));
        assertEquals("grid run d starts from the weights of run a, which is not an earlier run of the grid", e.getMessage());
        IllegalArgumentException self = assertThrows(IllegalArgumentException.class, () -> new GridRun<>("a", "a", MODEL,
                config(OptimizerChoice.ADAMW, 1e-2, 1), Measurements.none(), ShippedCorpus.GUTENBERG, "a"));
        assertEquals("grid run a cannot start from its own weights", self.getMessage());
        IllegalArgumentException gutenbergOnly = assertThrows(IllegalArgumentException.class,
                () -> runner(tmp.resolve("one-corpus"), () -> false).train(grid));
        assertTrue(gutenbergOnly.getMessage().contains("given the default corpus only, not sotu"), gutenbergOnly.getMessage());
    }

    @Test
    void idsMustBeUniquePlainNames() {
        List<GridRun<String>> twice = List.of(grid().get(0), grid().get(0));
        IllegalArgumentException dup = assertThrows(IllegalArgumentException.class, () -> runner(tmp, () -> false).train(twice));
        assertEquals("the grid has two runs with id a", dup.getMessage());
        IllegalArgumentException bad = assertThrows(IllegalArgumentException.class,
                () -> new GridRun<>("../x", "x", MODEL, config(OptimizerChoice.ADAMW, 1e-2, 1), Measurements.none()));
        assertTrue(bad.getMessage().contains("grid run id '../x' is not a plain directory name"), bad.getMessage());
    }
}
