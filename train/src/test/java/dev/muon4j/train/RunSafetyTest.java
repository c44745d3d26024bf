package dev.muon4j.train;

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
import dev.muon4j.io.JsonCodec;
import dev.muon4j.io.SafeTensors;
import dev.muon4j.io.TensorData;
import dev.muon4j.nn.LlamaConfig;
import dev.muon4j.optim.OptimizerState;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What a run never does to a good checkpoint: it never trains through a collapse or a NaN, never
 * trusts a checkpoint whose step is not the same everywhere or whose values are not finite, never
 * resumes what is not there or with other settings, and never shares its run directory with
 * another writer.
 */
class RunSafetyTest {
    static final int T = 16;
    static Backend backend;
    static TokenDataset text;

    @TempDir
    Path tmp;

    final List<String> log = new ArrayList<>();

    @BeforeAll
    static void open() {
        backend = Backends.openBundled(2);
        text = TokenDataset.of(Corpus.defaultCorpus(), new ByteTokenizer(), 0.05, T);
    }

    @AfterAll
    static void close() {
        backend.close();
    }

    static LlamaConfig model() {
        return new LlamaConfig(256, 32, 2, 2, 2, 64, T, false, 10000, 1e-5, 0.02);
    }

    static TrainConfig config(double lr, double clip, long steps, long checkpointEvery, int keep) {
        return new TrainConfig(OptimizerChoice.MUON, lr, 4 * lr, 0.1, 0.9, 0.95, 0.95, ScheduleKind.COSINE, Math.min(3, steps), steps,
                0.1, 8, 1, clip, 1, 5, 2, checkpointEvery, keep);
    }

    Trainer trainer(TrainConfig c, Path dir) {
        return new Trainer(backend, model(), c, text, dir, log::add, null);
    }

    static boolean allFinite(CheckpointStore.Checkpoint cp) {
        for (TensorData t : cp.weights().values()) {
            for (float v : t.data()) {
                if (!Float.isFinite(v)) {
                    return false;
                }
            }
        }
        return true;
    }

    static List<Map<String, Object>> metricLines(Path dir) throws IOException {
        List<Map<String, Object>> lines = new ArrayList<>();
        for (String line : Files.readAllLines(dir.resolve("metrics.jsonl"))) {
            lines.add(JsonCodec.parseObject(line));
        }
        return lines;
    }

    // ---------------------------------------------------------------------------------------- collapse

    @Test
    void aCollapseStopsTheRunAndLeavesTheLastGoodCheckpointNamedByLatest() throws IOException {
        Path dir = tmp.resolve("run");
        // lr 30 without clipping: the weights blow up within a few steps, then the loss sits at ln 256
        // with a gradient norm of exactly 0 (the tester's --lr 30 --clip 0).
        TrainConfig c = config(30, 0, 200, 1, 3);
        TrainingHealthException e = assertThrows(TrainingHealthException.class, () -> trainer(c, dir).run(false));
        assertTrue(e.getMessage().contains("training collapsed"), e.getMessage());
        assertTrue(e.getMessage().contains("largest weight") && e.getMessage().contains("model.layers."), e.getMessage());

        List<Map<String, Object>> steps = metricLines(dir).stream().filter(m -> m.containsKey("loss")).toList();
        long last = ((Number) steps.getLast().get("step")).longValue();
        assertTrue(last < 200, "stopped early, at step " + last);
        // The streak: the last collapse-steps lines are all collapse steps.
        HealthCheck health = HealthCheck.defaults();
        long streakStart = last - health.collapseSteps() + 1;
        for (Map<String, Object> m : steps.subList(steps.size() - health.collapseSteps(), steps.size())) {
            assertTrue(health.isCollapseStep(((Number) m.get("loss")).doubleValue(), ((Number) m.get("grad_norm")).doubleValue(), 256), m.toString());
        }
        assertTrue(e.getMessage().contains("steps " + streakStart + " to " + last), e.getMessage());

        CheckpointStore store = new CheckpointStore(dir);
        CheckpointStore.Checkpoint latest = store.latest().orElseThrow();
        assertTrue(latest.step() < streakStart, "latest is step " + latest.step() + ", from before the collapse at " + streakStart);
        assertEquals(CheckpointStore.dirName(latest.step()), Files.readString(dir.resolve(CheckpointStore.LATEST_FILE)).strip());
        assertTrue(e.getMessage().contains(CheckpointStore.dirName(latest.step()) + ", is intact"), e.getMessage());
        for (Path p : store.checkpoints()) {
            CheckpointStore.Checkpoint cp = store.load(p);
            assertTrue(cp.step() < streakStart, "no checkpoint written during the collapse: " + p);
            assertTrue(allFinite(cp), p.toString());
        }
        assertTrue(log.stream().anyMatch(l -> l.contains("put off")), log.toString());
        // Nor during the divergence before it: every kept checkpoint's step had a loss below 2 ln V.
        for (Path p : store.checkpoints()) {
            long step = store.load(p).step();
            double loss = steps.stream().filter(m -> ((Number) m.get("step")).longValue() == step).mapToDouble(
                    m -> ((Number) m.get("loss")).doubleValue()).findFirst().orElseThrow();
            assertTrue(loss <= 2 * Math.log(256), p + " was saved after a loss of " + loss);
        }
    }

    @Test
    void aHealthyRunThatDivergesOnResumeKeepsItsHealthyCheckpoints() throws IOException {
        Path dir = tmp.resolve("run");
        trainer(config(3e-3, 1, 40, 2, 3), dir).run(false, 8);
        CheckpointStore store = new CheckpointStore(dir);
        assertEquals(List.of("step-00000004", "step-00000006", "step-00000008"),
                store.checkpoints().stream().map(p -> p.getFileName().toString()).toList());
        // The same run resumed at learning rate 30 without clipping (allowed explicitly): it diverges.
        TrainConfig wild = config(30, 0, 40, 2, 3);
        assertThrows(TrainingHealthException.class,
                () -> trainer(wild, dir).run(RunOptions.resume().withAllowedChanges(Set.of("learning_rate", "muon_learning_rate",
                        "clip_norm"))));
        assertEquals(List.of("step-00000004", "step-00000006", "step-00000008"),
                store.checkpoints().stream().map(p -> p.getFileName().toString()).toList(), "the healthy checkpoints are all kept");
        assertEquals(8, store.latest().orElseThrow().step());
    }

    @Test
    void withCollapseDetectionOffANanGradientNamesTheStepTheMetricsWouldGiveIt() throws IOException {
        Path dir = tmp.resolve("run");
        TrainConfig c = config(30, 0, 400, 0, 3);
        TrainingHealthException e = assertThrows(TrainingHealthException.class,
                () -> trainer(c, dir).run(RunOptions.fresh().withHealth(HealthCheck.collapseOff())));
        List<Map<String, Object>> steps = metricLines(dir).stream().filter(m -> m.containsKey("loss")).toList();
        long lastLogged = ((Number) steps.getLast().get("step")).longValue();
        assertTrue(e.getMessage().contains("step " + (lastLogged + 1)), "the failing step is the one after the last logged "
                + lastLogged + ": " + e.getMessage());
        assertTrue(e.getMessage().contains("no checkpoint of this run was written"), e.getMessage());
        assertTrue(new CheckpointStore(dir).checkpoints().isEmpty());
    }

    @Test
    void aHealthyRunNeverLooksCollapsed() throws IOException {
        Trainer.Result r = trainer(config(3e-3, 1, 30, 10, 3), tmp.resolve("run")).run(false);
        assertEquals(30, r.steps().size());
        assertTrue(log.stream().noneMatch(l -> l.contains("put off")), log.toString());
    }

    // ---------------------------------------------------------------------------------------- non-finite state

    /** Rewrites an optimizer state file with {@code edit} applied to its floats, its CRC and the manifest fixed. */
    static void editState(Path checkpoint, String parameter, String buffer, float value) throws IOException {
        Path file = checkpoint.resolve(CheckpointStore.OPTIMIZER_FILE);
        OptimizerState s = OptimizerState.read(file);
        Map<String, OptimizerState.Entry> entries = new LinkedHashMap<>();
        s.entries().forEach((name, e) -> {
            Map<String, float[]> buffers = new LinkedHashMap<>(e.buffers());
            if (name.equals(parameter)) {
                float[] b = buffers.get(buffer).clone();
                b[3] = value;
                buffers.put(buffer, b);
            }
            entries.put(name, new OptimizerState.Entry(e.route(), e.shape(), buffers));
        });
        new OptimizerState(s.step(), s.skippedSteps(), entries).write(file);
        fixManifest(checkpoint, CheckpointStore.OPTIMIZER_FILE);
    }

    /** Puts a file's real size and SHA-256 into the manifest, as a careful forger would. */
    @SuppressWarnings("unchecked")
    static void fixManifest(Path checkpoint, String fileName) throws IOException {
        Path manifestFile = checkpoint.resolve(CheckpointStore.MANIFEST_FILE);
        Map<String, Object> manifest = JsonCodec.parseObject(Files.readString(manifestFile));
        Map<String, Object> files = new LinkedHashMap<>((Map<String, Object>) manifest.get("files"));
        Map<String, Object> entry = new LinkedHashMap<>();
        entry.put("size", Files.size(checkpoint.resolve(fileName)));
        entry.put("sha256", FileUtil.sha256(checkpoint.resolve(fileName)));
        files.put(fileName, entry);
        manifest.put("files", files);
        Files.writeString(manifestFile, JsonCodec.pretty(manifest) + "\n");
    }

    @Test
    void aNanInTheNewestCheckpointsMomentumIsRefusedAndTheRunResumesFromTheOneBefore() throws IOException {
        Path dir = tmp.resolve("run");
        TrainConfig c = config(3e-3, 1, 12, 2, 3);
        trainer(c, dir).run(false, 6);
        editState(dir.resolve("step-00000006"), "model.layers.0.mlp.up_proj.weight", "momentum", Float.NaN);

        Trainer.Result r = trainer(c, dir).run(true);
        assertEquals(4, r.startStep(), "fell back to step 4");
        assertTrue(log.stream().anyMatch(l -> l.contains("step-00000006") && l.contains("non-finite")
                && l.contains("momentum of model.layers.0.mlp.up_proj.weight element 3 is NaN")), log.toString());
        CheckpointStore.Checkpoint end = new CheckpointStore(dir).latest().orElseThrow();
        assertEquals(12, end.step());
        assertTrue(allFinite(end));
    }

    @Test
    void aStateThatMakesTheWeightsInfiniteStopsTheRunBeforeItIsSaved() throws IOException {
        Path dir = tmp.resolve("run");
        TrainConfig c = config(3e-3, 1, 12, 2, 3);
        trainer(c, dir).run(false, 6);
        // A finite but absurd AdamW first moment: the next update overflows the head's weights to infinity.
        editState(dir.resolve("step-00000006"), "lm_head.weight", "exp_avg", 3e38f);
        editState(dir.resolve("step-00000006"), "lm_head.weight", "exp_avg_sq", 0f);

        TrainingHealthException e = assertThrows(TrainingHealthException.class, () -> trainer(c, dir).run(true));
        assertTrue(e.getMessage().contains("step 7:") && e.getMessage().contains("lm_head.weight element 3"), e.getMessage());
        assertTrue(e.getMessage().contains("step-00000006, is intact"), e.getMessage());
        assertEquals("step-00000006", Files.readString(dir.resolve(CheckpointStore.LATEST_FILE)).strip());
        assertFalse(Files.exists(dir.resolve("step-00000007")));
    }

    static List<Trainer.Result> ranks(int n, TrainConfig c, Path dir, java.util.function.IntFunction<RunOptions> options) throws Exception {
        return dev.muon4j.distributed.LocalRanks.run(n, java.time.Duration.ofSeconds(60), comm -> {
            try (Backend b = new dev.muon4j.backend.VectorBackend(1)) {
                return new Trainer(b, model(), c, text, dir, s -> { }, null,
                        new Trainer.DataParallel(comm, dev.muon4j.distributed.ShardedOptimizer.Mode.DISTRIBUTED_MUON)).run(options.apply(comm.rank()));
            }
        });
    }

    @Test
    void onSeveralRanksAFailedCheckStopsEveryRankBeforeTheSave() throws Exception {
        Path dir = tmp.resolve("run");
        TrainConfig c = config(3e-3, 1, 12, 2, 3);
        trainer(c, dir).run(false, 6);
        editState(dir.resolve("step-00000006"), "lm_head.weight", "exp_avg", 3e38f);
        editState(dir.resolve("step-00000006"), "lm_head.weight", "exp_avg_sq", 0f);
        dev.muon4j.distributed.LocalRanks.RankFailedException e = assertThrows(dev.muon4j.distributed.LocalRanks.RankFailedException.class,
                () -> ranks(2, c, dir, rank -> RunOptions.resume()));
        Throwable cause = e.getCause();
        assertTrue(cause instanceof TrainingHealthException, String.valueOf(cause));
        assertTrue(cause.getMessage().contains("step 7:") && cause.getMessage().contains("lm_head.weight"), cause.getMessage());
        assertFalse(Files.exists(dir.resolve("step-00000007")));
        assertEquals("step-00000006", Files.readString(dir.resolve(CheckpointStore.LATEST_FILE)).strip());
    }

    @Test
    void onSeveralRanksAStopRequestOnOneRankStopsAllAfterTheSameStepWithACheckpoint() throws Exception {
        Path dir = tmp.resolve("run");
        TrainConfig c = config(3e-3, 1, 12, 0, 3);
        // Only rank 1 asks, on its fourth poll.
        int[] polls = {0};
        List<Trainer.Result> results = ranks(2, c, dir, rank -> RunOptions.fresh().withStopRequested(() -> rank == 1 && ++polls[0] >= 4));
        assertTrue(results.stream().allMatch(Trainer.Result::stoppedOnRequest), "every rank stopped");
        assertEquals(List.of(4, 4), results.stream().map(r -> r.steps().size()).toList());
        assertEquals(4, new CheckpointStore(dir).latest().orElseThrow().step());
    }

    // ---------------------------------------------------------------------------------------- step agreement

    @Test
    void anEditedManifestStepIsRefusedAndTheRunFallsBackToThePreviousCheckpoint() throws IOException {
        Path dir = tmp.resolve("run");
        TrainConfig c = config(3e-3, 1, 10, 2, 3);
        trainer(c, dir).run(false, 6);
        Path manifest = dir.resolve("step-00000006").resolve(CheckpointStore.MANIFEST_FILE);
        String text = Files.readString(manifest);
        assertTrue(text.contains("\"step\": 6"), text);
        Files.writeString(manifest, text.replace("\"step\": 6", "\"step\": 1"));
        String metricsBefore = Files.readString(dir.resolve("metrics.jsonl"));

        IOException direct = assertThrows(IOException.class, () -> new CheckpointStore(dir).load(dir.resolve("step-00000006")));
        assertTrue(direct.getMessage().contains("inconsistent") && direct.getMessage().contains("says step 1")
                && direct.getMessage().contains("directory name says 6"), direct.getMessage());

        Trainer.Result r = trainer(c, dir).run(true);
        assertEquals(4, r.startStep(), "resumed from step 4, not from a step-6 checkpoint calling itself step 1");
        assertTrue(metricsBefore.length() > 0);
        List<Map<String, Object>> lines = metricLines(dir);
        long[] stepsSeen = lines.stream().filter(m -> m.containsKey("loss")).mapToLong(m -> ((Number) m.get("step")).longValue()).toArray();
        assertEquals(10, stepsSeen.length, "each step once");
        for (int i = 0; i < stepsSeen.length; i++) {
            assertEquals(i + 1, stepsSeen[i]);
        }
    }

    @Test
    void anOptimizerStateFromAnotherStepIsRefused() throws IOException {
        Path dir = tmp.resolve("run");
        TrainConfig c = config(3e-3, 1, 10, 2, 3);
        trainer(c, dir).run(false, 6);
        Path cp = dir.resolve("step-00000006");
        OptimizerState s = OptimizerState.read(cp.resolve(CheckpointStore.OPTIMIZER_FILE));
        new OptimizerState(2, 0, s.entries(), s.rules()).write(cp.resolve(CheckpointStore.OPTIMIZER_FILE));
        fixManifest(cp, CheckpointStore.OPTIMIZER_FILE);
        IOException e = assertThrows(IOException.class, () -> new CheckpointStore(dir).load(cp));
        assertTrue(e.getMessage().contains(CheckpointStore.OPTIMIZER_FILE + " says 2"), e.getMessage());
        assertEquals(4, new CheckpointStore(dir, 3, log::add).latest().orElseThrow().step());
    }

    @Test
    void trainerJsonAndSafetensorsMetadataMustAgreeToo() throws IOException {
        Path dir = tmp.resolve("run");
        trainer(config(3e-3, 1, 4, 2, 3), dir).run(false);
        Path cp = dir.resolve("step-00000004");
        Path trainerFile = cp.resolve(CheckpointStore.TRAINER_FILE);
        Files.writeString(trainerFile, Files.readString(trainerFile).replace("\"step\": 4", "\"step\": 40"));
        fixManifest(cp, CheckpointStore.TRAINER_FILE);
        IOException e = assertThrows(IOException.class, () -> new CheckpointStore(dir).load(cp));
        assertTrue(e.getMessage().contains("trainer.json says 40"), e.getMessage());

        Path other = tmp.resolve("other");
        trainer(config(3e-3, 1, 4, 2, 3), other).run(false);
        Path cp2 = other.resolve("step-00000004");
        Path weights = cp2.resolve(CheckpointStore.MODEL_FILE);
        SafeTensors.Contents contents = SafeTensors.read(weights);
        SafeTensors.write(weights, contents.tensors(), Map.of("producer", "muon4j", "step", "3"));
        fixManifest(cp2, CheckpointStore.MODEL_FILE);
        IOException e2 = assertThrows(IOException.class, () -> new CheckpointStore(other).load(cp2));
        assertTrue(e2.getMessage().contains("metadata says 3"), e2.getMessage());
    }

    // ---------------------------------------------------------------------------------------- resume

    @Test
    void resumingAnEmptyOrMissingRunDirectoryIsRefused() throws IOException {
        TrainConfig c = config(3e-3, 1, 4, 2, 3);
        Path missing = tmp.resolve("missing");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> trainer(c, missing).run(true));
        assertTrue(e.getMessage().contains("nothing to resume") && e.getMessage().contains("does not exist"), e.getMessage());
        assertFalse(Files.exists(missing), "a refused resume creates nothing");

        Path empty = Files.createDirectories(tmp.resolve("empty"));
        IllegalArgumentException e2 = assertThrows(IllegalArgumentException.class, () -> trainer(c, empty).run(true));
        assertTrue(e2.getMessage().contains("nothing to resume") && e2.getMessage().contains("holds no checkpoint"), e2.getMessage());
        assertFalse(Files.exists(empty.resolve("metrics.jsonl")));

        // Starting fresh there is explicit.
        Trainer.Result r = trainer(c, empty).run(RunOptions.resume().withStart(RunOptions.Start.RESUME_OR_FRESH));
        assertEquals(0, r.startStep());
        assertEquals(4, new CheckpointStore(empty).latest().orElseThrow().step());
        Trainer.Result again = trainer(c.withSteps(4), empty).run(RunOptions.resume().withStart(RunOptions.Start.RESUME_OR_FRESH));
        assertEquals(4, again.startStep(), "the second time it resumes");
    }

    @Test
    void resumingWithChangedSettingsIsRefusedListingEachUnlessAllowed() throws IOException {
        Path dir = tmp.resolve("run");
        TrainConfig c = config(3e-3, 1, 10, 2, 3);
        trainer(c, dir).run(false, 4);
        TrainConfig changed = new TrainConfig(OptimizerChoice.MUON, 6e-3, 4 * 3e-3, 0.1, 0.9, 0.95, 0.95, ScheduleKind.COSINE, 3, 12,
                0.1, 4, 1, 1, 2, 5, 2, 2, 3);
        String metricsBefore = Files.readString(dir.resolve("metrics.jsonl"));
        ChangedSettingsException e = assertThrows(ChangedSettingsException.class, () -> trainer(changed, dir).run(true));
        assertEquals(List.of("learning_rate", "steps", "batch_size", "seed"),
                e.changes().stream().map(ChangedSettingsException.Change::setting).toList(), e.getMessage());
        assertTrue(e.getMessage().contains("learning_rate (checkpoint 0.003, now 0.006)"), e.getMessage());
        assertEquals(metricsBefore, Files.readString(dir.resolve("metrics.jsonl")), "a refused resume touches nothing");

        // Other data is a change too.
        TokenDataset otherText = TokenDataset.of(Corpus.ofText("other", "The quick brown fox jumps over the lazy dog. ".repeat(400)),
                new ByteTokenizer(), 0.05, T);
        ChangedSettingsException d = assertThrows(ChangedSettingsException.class,
                () -> new Trainer(backend, model(), c, otherText, dir, log::add, null).run(true));
        assertEquals(List.of("data"), d.changes().stream().map(ChangedSettingsException.Change::setting).toList());

        // Allowed explicitly: it runs, says so, and the metrics record it.
        TrainConfig longer = c.withSteps(12);
        Trainer.Result r = trainer(longer, dir).run(RunOptions.resume().withAllowedChanges(Set.of("steps")));
        assertEquals(4, r.startStep());
        assertTrue(log.stream().anyMatch(l -> l.contains("changed settings") && l.contains("steps 10 -> 12")), log.toString());
        Map<String, Object> event = metricLines(dir).stream().filter(m -> "resume".equals(m.get("event"))).findFirst().orElseThrow();
        assertEquals(4L, event.get("step"));
        assertEquals(Map.of("steps", Map.of("from", 10L, "to", 12L)), event.get("changed"));
    }

    @Test
    void theShippedCorpusIsRecordedByNameAndAnotherIsRefusedOnResume() throws IOException {
        Path dir = tmp.resolve("sotu");
        TrainConfig c = config(3e-3, 1, 10, 2, 3);
        TokenDataset sotu = TokenDataset.of(Corpus.shipped(ShippedCorpus.SOTU), new ByteTokenizer(), 0.05, T);
        new Trainer(backend, model(), c, sotu, dir, log::add, null).run(false, 4);
        CheckpointStore.Checkpoint cp = new CheckpointStore(dir).latest().orElseThrow();
        Map<?, ?> data = (Map<?, ?>) cp.config().get("data");
        assertEquals(true, data.get("shipped_corpus"));
        assertEquals("sotu", data.get("shipped_corpus_name"));
        assertEquals(java.util.Optional.of(ShippedCorpus.SOTU), TrainedModel.shippedCorpus(cp.config()));
        ChangedSettingsException e = assertThrows(ChangedSettingsException.class, () -> trainer(c, dir).run(true));
        assertEquals(List.of("corpus", "data"), e.changes().stream().map(ChangedSettingsException.Change::setting).toList(),
                e.getMessage());
        assertTrue(e.getMessage().contains("corpus (checkpoint sotu, now gutenberg)"), e.getMessage());
        // The default corpus leaves the name out, as checkpoints from before there were two shipped corpora; they mean it.
        assertEquals(java.util.Optional.of(ShippedCorpus.GUTENBERG),
                TrainedModel.shippedCorpus(Map.of("data", Map.of("shipped_corpus", true))));
        assertEquals(java.util.Optional.empty(), TrainedModel.shippedCorpus(Map.of("data", Map.of("shipped_corpus", false))));
        IllegalArgumentException unknown = assertThrows(IllegalArgumentException.class, () -> TrainedModel.shippedCorpus(
                Map.of("data", Map.of("shipped_corpus", true, "shipped_corpus_name", "bible"))));
        assertTrue(unknown.getMessage().contains("no shipped corpus named 'bible'"), unknown.getMessage());
    }

    @Test
    void unknownSettingNamesAreRejected() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> RunOptions.resume().withAllowedChanges(Set.of("learning_rat")));
        assertTrue(e.getMessage().contains("learning_rat") && e.getMessage().contains("learning_rate"), e.getMessage());
    }

    // ---------------------------------------------------------------------------------------- one writer

    @Test
    void aSecondWriterIsRefusedWhileTheFirstHoldsTheRunDirectory() throws Exception {
        Path dir = tmp.resolve("run");
        try (RunLock held = RunLock.acquire(dir, log::add)) {
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> trainer(config(3e-3, 1, 4, 2, 3), dir).run(false));
            assertTrue(e.getMessage().contains("already in use by this process"), e.getMessage());
            assertTrue(held.file().endsWith(RunLock.FILE));
        }
        // Released: the run goes ahead.
        trainer(config(3e-3, 1, 4, 2, 3), dir).run(false);
        assertEquals("", Files.readString(dir.resolve(RunLock.FILE)), "released locks are emptied");
    }

    @Test
    void aLockLeftByADeadProcessIsTakenOverWithAWarning() throws Exception {
        Path dir = Files.createDirectories(tmp.resolve("run"));
        Process dead = new ProcessBuilder("true").start();
        dead.waitFor();
        Files.writeString(dir.resolve(RunLock.FILE), "pid=" + dead.pid() + "\nhost=h\nstarted=2026-01-01T00:00:00Z\n"
                + "command=java -cp x dev.muon4j.cli.Main train --run-dir " + dir + "\n");
        try (RunLock lock = RunLock.acquire(dir, log::add)) {
            String holder = Files.readString(lock.file());
            assertTrue(holder.contains("pid=" + ProcessHandle.current().pid()), holder);
        }
        assertTrue(log.stream().anyMatch(l -> l.contains("took over") && l.contains("PID " + dead.pid())
                && l.contains("muon4j train --run-dir")), log.toString());
    }

    @Test
    void aRunDirectoryThatIsAFileIsNamedAsSuch() throws IOException {
        Path file = Files.writeString(tmp.resolve("notadir"), "x");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> trainer(config(3e-3, 1, 4, 2, 3), file).run(false));
        assertTrue(e.getMessage().contains(file + " is not a directory"), e.getMessage());
    }

    // ---------------------------------------------------------------------------------------- stop requests

    @Test
    void aStopRequestFinishesTheStepSavesAndResumesToTheSameRun() throws IOException {
        TrainConfig c = config(3e-3, 1, 10, 0, 3);
        Trainer.Result full = trainer(c, tmp.resolve("full")).run(false);
        int[] polls = {0};
        Path dir = tmp.resolve("stopped");
        Trainer.Result first = trainer(c, dir).run(RunOptions.fresh().withStopRequested(() -> ++polls[0] >= 3));
        assertTrue(first.stoppedOnRequest());
        assertEquals(3, first.steps().size());
        assertEquals(3, new CheckpointStore(dir).latest().orElseThrow().step());
        Trainer.Result rest = trainer(c, dir).run(true);
        assertFalse(rest.stoppedOnRequest());
        CheckpointStore.Checkpoint a = new CheckpointStore(tmp.resolve("full")).latest().orElseThrow();
        CheckpointStore.Checkpoint b = new CheckpointStore(dir).latest().orElseThrow();
        for (String name : a.weights().keySet()) {
            float[] x = a.weights().get(name).data();
            float[] y = b.weights().get(name).data();
            for (int i = 0; i < x.length; i++) {
                assertEquals(Float.floatToRawIntBits(x[i]), Float.floatToRawIntBits(y[i]), name + "[" + i + "]");
            }
        }
        assertEquals(full.steps().getLast().loss(), rest.steps().getLast().loss());
    }
}
