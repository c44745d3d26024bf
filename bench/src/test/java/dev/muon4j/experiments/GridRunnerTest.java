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
import dev.muon4j.data.TokenDataset;
import dev.muon4j.nn.LlamaConfig;
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

    @TempDir
    Path tmp;

    final StringWriter log = new StringWriter();

    @BeforeAll
    static void open() {
        backend = Backends.openBundled(2);
        data = TokenDataset.of(Corpus.ofText("text", "Sphinx of black quartz, judge my vow. Pack my box with five dozen liquor jugs! "
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
