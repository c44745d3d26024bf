package dev.muon4j.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.Backends;
import dev.muon4j.data.ByteTokenizer;
import dev.muon4j.data.Corpus;
import dev.muon4j.data.TokenDataset;
import dev.muon4j.io.JsonCodec;
import dev.muon4j.nn.LlamaConfig;
import dev.muon4j.optim.LegacyStateWriter;
import dev.muon4j.optim.OptimizerState;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The trainer end to end on a tiny byte-level model: it can memorise a repeated sentence with
 * either optimizer, a paused and resumed run is bit-for-bit the uninterrupted one (losses, weights,
 * optimizer state, metrics.jsonl), seeds decide runs, and bad inputs fail with clear errors.
 */
class TrainerTest {
    /**
     * The sentence to memorise, repeated. It is short on purpose: the trainer's loss averages all
     * T positions of a window, and the first positions see too little of the sentence to know where
     * they are, so even a perfect model has a floor. For this sentence the floor (the Bayes loss
     * given the in-window prefix, computed over all window offsets) is 0.029 nats at T = 16,
     * while a model that only looks at the current byte (no attention) cannot go below 0.47 nats.
     * A loss under {@link #MEMORISED} therefore means the model really uses its context.
     */
    static final String SENTENCE = "Sphinx of black quartz, judge my vow. ";
    /** The bound on the mean training loss of the last 10 steps, in nats per token. */
    static final double MEMORISED = 0.1;
    static final int T = 16;

    static Backend backend;
    static TokenDataset sentence;

    @TempDir
    Path tmp;

    final List<String> log = new ArrayList<>();

    @BeforeAll
    static void open() {
        backend = Backends.openBundled(2);
        sentence = TokenDataset.of(Corpus.ofText("sentence", SENTENCE.repeat(60)), new ByteTokenizer(), 0.1, T);
    }

    @AfterAll
    static void close() {
        backend.close();
    }

    /** Width 32, 2 layers, 2 heads, SwiGLU 64, context T, bytes. */
    static LlamaConfig tiny(int width) {
        return new LlamaConfig(256, width, 2, 2, 2, 64, T, false, 10000, 1e-5, 0.02);
    }

    static TrainConfig config(OptimizerChoice optimizer, double lr, long steps, int accumulation, long seed,
                              long checkpointEvery) {
        return new TrainConfig(optimizer, lr, lr, 0.0, 0.9, 0.95, 0.95, ScheduleKind.COSINE, Math.min(3, steps), steps, 0.1,
                8, accumulation, 1.0, seed, 3, 2, checkpointEvery, 3);
    }

    Trainer trainer(LlamaConfig model, TrainConfig config, TokenDataset data, Path dir) {
        return new Trainer(backend, model, config, data, dir, log::add, null);
    }

    // ---------------------------------------------------------------------------------------- learning

    private static double meanOfLast(List<Trainer.StepPoint> steps, int n) {
        return steps.subList(steps.size() - n, steps.size()).stream().mapToDouble(Trainer.StepPoint::loss).average().orElseThrow();
    }

    private void memorises(OptimizerChoice optimizer, double lr, long steps) throws IOException {
        TrainConfig c = config(optimizer, lr, steps, 1, 7, 0);
        Trainer.Result r = trainer(tiny(32), c, sentence, tmp.resolve("run")).run(false);
        double first = r.steps().getFirst().loss();
        double last = meanOfLast(r.steps(), 10);
        System.out.printf("%s memorising: first loss %.4f, mean of the last 10 steps %.4f, validation %.4f (bound %.2f)%n",
                optimizer, first, last, r.finalValidationLoss(), MEMORISED);
        assertTrue(first > 4.5, "starts near ln 256 = 5.55, got " + first);
        assertTrue(last < MEMORISED, optimizer + ": mean training loss of the last 10 of " + steps + " steps is " + last
                + " nats, not below " + MEMORISED);
        assertTrue(r.finalValidationLoss() < MEMORISED, optimizer + ": validation loss (the same sentence) "
                + r.finalValidationLoss());
    }

    @Test
    void adamwMemorisesARepeatedSentence() throws IOException {
        memorises(OptimizerChoice.ADAMW, 1e-2, 150);
    }

    @Test
    void muonMemorisesARepeatedSentence() throws IOException {
        memorises(OptimizerChoice.MUON, 1e-2, 150);
    }

    // ---------------------------------------------------------------------------------------- resume

    private static Map<String, Object> withoutSeconds(Map<String, Object> m) {
        Map<String, Object> copy = new HashMap<>(m);
        copy.remove("seconds");
        copy.remove("time"); // when the line was written
        return copy;
    }

    private static List<Map<String, Object>> metrics(Path dir) throws IOException {
        List<Map<String, Object>> lines = new ArrayList<>();
        for (String line : Files.readAllLines(dir.resolve("metrics.jsonl"))) {
            lines.add(withoutSeconds(JsonCodec.parseObject(line)));
        }
        return lines;
    }

    private static void assertSameSteps(List<Trainer.StepPoint> expected, List<Trainer.StepPoint> actual) {
        assertEquals(expected.size(), actual.size(), "step count");
        for (int i = 0; i < expected.size(); i++) {
            Trainer.StepPoint e = expected.get(i);
            Trainer.StepPoint a = actual.get(i);
            assertEquals(e.step(), a.step());
            assertEquals(e.tokens(), a.tokens());
            assertEquals(Double.doubleToRawLongBits(e.loss()), Double.doubleToRawLongBits(a.loss()),
                    "loss of step " + e.step() + ": " + e.loss() + " vs " + a.loss());
            assertEquals(Double.doubleToRawLongBits(e.lr()), Double.doubleToRawLongBits(a.lr()), "lr of step " + e.step());
            assertEquals(Double.doubleToRawLongBits(e.gradNorm()), Double.doubleToRawLongBits(a.gradNorm()),
                    "gradient norm of step " + e.step());
        }
    }

    /** The final checkpoints of two run directories hold bit-identical weights and optimizer state. */
    private static void assertSameFinalState(Path a, Path b) throws IOException {
        CheckpointStore.Checkpoint ca = new CheckpointStore(a).latest().orElseThrow();
        CheckpointStore.Checkpoint cb = new CheckpointStore(b).latest().orElseThrow();
        assertEquals(ca.step(), cb.step());
        assertEquals(ca.weights().keySet(), cb.weights().keySet());
        for (String name : ca.weights().keySet()) {
            float[] x = ca.weights().get(name).data();
            float[] y = cb.weights().get(name).data();
            assertEquals(x.length, y.length, name);
            for (int i = 0; i < x.length; i++) {
                if (Float.floatToRawIntBits(x[i]) != Float.floatToRawIntBits(y[i])) {
                    throw new AssertionError(name + "[" + i + "] differs: " + x[i] + " vs " + y[i]);
                }
            }
        }
        assertArrayEquals(Files.readAllBytes(ca.dir().resolve(CheckpointStore.MODEL_FILE)),
                Files.readAllBytes(cb.dir().resolve(CheckpointStore.MODEL_FILE)), "model.safetensors bytes");
        assertArrayEquals(Files.readAllBytes(ca.dir().resolve(CheckpointStore.OPTIMIZER_FILE)),
                Files.readAllBytes(cb.dir().resolve(CheckpointStore.OPTIMIZER_FILE)), "optimizer state bytes");
        assertEquals(ca.trainer(), cb.trainer(), "trainer.json");
    }

    /**
     * Run A: 2N steps straight through, checkpointing every N. Run B: the same run paused after N
     * steps, then a new Trainer resumes it from the run directory and finishes.
     */
    private void resumesExactly(OptimizerChoice optimizer, int accumulation) throws IOException {
        int n = 4;
        TrainConfig c = config(optimizer, 1e-2, 2 * n, accumulation, 11, n);
        Path a = tmp.resolve("a");
        Path b = tmp.resolve("b");
        Trainer.Result full = trainer(tiny(32), c, sentence, a).run(false);
        assertEquals(2 * n, full.steps().size());

        Trainer.Result firstHalf = trainer(tiny(32), c, sentence, b).run(false, n);
        assertEquals(n, firstHalf.steps().size(), "paused after N steps");
        assertSameSteps(full.steps().subList(0, n), firstHalf.steps());
        assertEquals(n, new CheckpointStore(b).latest().orElseThrow().step());

        Trainer.Result rest = trainer(tiny(32), c, sentence, b).run(true);
        assertEquals(n, rest.startStep());
        assertTrue(log.stream().anyMatch(m -> m.contains("resumed from") && m.contains("at step " + n)), log.toString());
        assertSameSteps(full.steps().subList(n, 2 * n), rest.steps());
        assertEquals(full.evals(), rest.evals(), "validation points, including those before the pause");
        assertSameFinalState(a, b);
        assertEquals(metrics(a), metrics(b), "metrics.jsonl apart from seconds");
        assertEquals(2 * n + full.evals().size(), metrics(b).size());
    }

    /**
     * Turns a checkpoint into the layout written before the optimizer state became safetensors: its
     * state as {@code optimizer.state} in format version 2, listed so in the manifest.
     */
    @SuppressWarnings("unchecked")
    static void toOldLayout(Path checkpoint) throws IOException {
        Path state = checkpoint.resolve(CheckpointStore.OPTIMIZER_FILE);
        Path old = checkpoint.resolve(CheckpointStore.LEGACY_OPTIMIZER_FILE);
        LegacyStateWriter.write(OptimizerState.read(state), old, 2);
        Files.delete(state);
        Path manifestFile = checkpoint.resolve(CheckpointStore.MANIFEST_FILE);
        Map<String, Object> manifest = JsonCodec.readObject(manifestFile);
        Map<String, Object> files = new LinkedHashMap<>();
        for (Map.Entry<String, Object> e : ((Map<String, Object>) manifest.get("files")).entrySet()) {
            if (e.getKey().equals(CheckpointStore.OPTIMIZER_FILE)) {
                Map<String, Object> info = new LinkedHashMap<>();
                info.put("size", Files.size(old));
                info.put("sha256", FileUtil.sha256(old));
                files.put(CheckpointStore.LEGACY_OPTIMIZER_FILE, info);
            } else {
                files.put(e.getKey(), e.getValue());
            }
        }
        manifest.put("files", files);
        Files.writeString(manifestFile, JsonCodec.pretty(manifest) + "\n");
    }

    @Test
    void aCheckpointWithTheOldOptimizerStateFileResumesExactly() throws IOException {
        int n = 4;
        TrainConfig c = config(OptimizerChoice.MUON, 1e-2, 2 * n, 1, 11, n);
        Path a = tmp.resolve("a");
        Path b = tmp.resolve("b");
        Trainer.Result full = trainer(tiny(32), c, sentence, a).run(false);
        trainer(tiny(32), c, sentence, b).run(false, n);
        Path checkpoint = new CheckpointStore(b).latest().orElseThrow().dir();
        toOldLayout(checkpoint);
        assertFalse(Files.exists(checkpoint.resolve(CheckpointStore.OPTIMIZER_FILE)));
        assertEquals(OptimizerState.read(a.resolve(checkpoint.getFileName()).resolve(CheckpointStore.OPTIMIZER_FILE)).entries().keySet(),
                new CheckpointStore(b).load(checkpoint).optimizer().entries().keySet(), "the old checkpoint loads");

        Trainer.Result rest = trainer(tiny(32), c, sentence, b).run(true);
        assertEquals(n, rest.startStep());
        assertSameSteps(full.steps().subList(n, 2 * n), rest.steps());
        assertSameFinalState(a, b);
        assertTrue(Files.exists(new CheckpointStore(b).latest().orElseThrow().dir().resolve(CheckpointStore.OPTIMIZER_FILE)),
                "new checkpoints are written in the new layout");
    }

    @Test
    void pausedAndResumedRunEqualsUninterruptedRun() throws IOException {
        resumesExactly(OptimizerChoice.MUON, 1);
    }

    @Test
    void resumeIsExactWithGradientAccumulation() throws IOException {
        resumesExactly(OptimizerChoice.MUON, 3);
    }

    @Test
    void resumeIsExactWithAdamW() throws IOException {
        resumesExactly(OptimizerChoice.ADAMW, 2);
    }

    @Test
    void resumeAfterACrashDropsMetricsBeyondTheCheckpoint() throws IOException {
        // Simulate a crash after step 5 of 8 with checkpoints every 4: the directory holds the
        // checkpoint of step 4 and metrics up to step 5 plus half a line.
        int n = 4;
        TrainConfig c = config(OptimizerChoice.MUON, 1e-2, 2 * n, 1, 3, n);
        Path a = tmp.resolve("a");
        Path b = tmp.resolve("b");
        trainer(tiny(32), c, sentence, a).run(false);
        trainer(tiny(32), c, sentence, b).run(false, n);
        Path metrics = b.resolve("metrics.jsonl");
        List<String> linesOfA = Files.readAllLines(a.resolve("metrics.jsonl"));
        List<String> crashed = new ArrayList<>(Files.readAllLines(metrics));
        String step5 = linesOfA.stream().filter(l -> l.startsWith("{\"step\":5,")).findFirst().orElseThrow();
        crashed.add(step5);
        crashed.add(step5.substring(0, step5.length() / 2));
        Files.write(metrics, crashed);

        trainer(tiny(32), c, sentence, b).run(true);
        assertEquals(metrics(a), metrics(b));
        assertSameFinalState(a, b);
    }

    // ---------------------------------------------------------------------------------------- seeds

    @Test
    void theSeedDecidesTheRun() throws IOException {
        TrainConfig c = config(OptimizerChoice.MUON, 1e-2, 5, 1, 5, 0);
        Trainer.Result one = trainer(tiny(32), c, sentence, tmp.resolve("one")).run(false);
        Trainer.Result two = trainer(tiny(32), c, sentence, tmp.resolve("two")).run(false);
        assertSameSteps(one.steps(), two.steps());
        assertSameFinalState(tmp.resolve("one"), tmp.resolve("two"));

        TrainConfig other = config(OptimizerChoice.MUON, 1e-2, 5, 1, 6, 0);
        Trainer.Result three = trainer(tiny(32), other, sentence, tmp.resolve("three")).run(false);
        assertNotEquals(one.steps().getFirst().loss(), three.steps().getFirst().loss(), "different initial weights and data");
        assertNotEquals(one.steps().getLast().loss(), three.steps().getLast().loss());
        CheckpointStore.Checkpoint c1 = new CheckpointStore(tmp.resolve("one")).latest().orElseThrow();
        CheckpointStore.Checkpoint c3 = new CheckpointStore(tmp.resolve("three")).latest().orElseThrow();
        assertFalse(c1.weights().equals(c3.weights()), "different seeds give different weights");
    }

    // ---------------------------------------------------------------------------------------- bad inputs

    @Test
    void resumingWithAnotherModelIsRejected() throws IOException {
        Path dir = tmp.resolve("run");
        trainer(tiny(32), config(OptimizerChoice.ADAMW, 1e-2, 2, 1, 1, 1), sentence, dir).run(false);
        Trainer wider = trainer(tiny(48), config(OptimizerChoice.ADAMW, 1e-2, 4, 1, 1, 1), sentence, dir);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> wider.run(true));
        assertTrue(e.getMessage().contains("another model"), e.getMessage());
        assertTrue(e.getMessage().contains("width=32") && e.getMessage().contains("width=48"), e.getMessage());
        // Nothing was overwritten: the checkpoint still loads as the width-32 model's.
        assertEquals(2, new CheckpointStore(dir).latest().orElseThrow().step());
    }

    @Test
    void aFreshRunRefusesARunDirectoryWithCheckpoints() throws IOException {
        Path dir = tmp.resolve("run");
        trainer(tiny(32), config(OptimizerChoice.ADAMW, 1e-2, 2, 1, 1, 1), sentence, dir).run(false);
        String before = Files.readString(dir.resolve("metrics.jsonl"));
        Trainer again = trainer(tiny(32), config(OptimizerChoice.ADAMW, 1e-2, 2, 1, 1, 1), sentence, dir);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> again.run(false));
        assertTrue(e.getMessage().contains("already holds checkpoint step-00000002"), e.getMessage());
        // Nothing was touched: the metrics and the checkpoint are as the first run left them.
        assertEquals(before, Files.readString(dir.resolve("metrics.jsonl")));
        assertEquals(2, new CheckpointStore(dir).latest().orElseThrow().step());
    }

    @Test
    void aDamagedOnlyCheckpointIsAnErrorNotAFreshStart() throws IOException {
        Path dir = tmp.resolve("run");
        TrainConfig c = config(OptimizerChoice.ADAMW, 1e-2, 2, 1, 1, 0);
        trainer(tiny(32), c, sentence, dir).run(false);
        CheckpointStore store = new CheckpointStore(dir);
        assertEquals(1, store.checkpoints().size());
        Path weights = store.checkpoints().getFirst().resolve(CheckpointStore.MODEL_FILE);
        byte[] bytes = Files.readAllBytes(weights);
        bytes[bytes.length - 5] ^= 0x10;
        Files.write(weights, bytes);

        IOException e = assertThrows(IOException.class, () -> trainer(tiny(32), c.withSteps(4), sentence, dir).run(true));
        assertTrue(e.getMessage().contains("no loadable checkpoint"), e.getMessage());
        assertTrue(e.getMessage().contains(CheckpointStore.MODEL_FILE) && e.getMessage().contains("damaged"), e.getMessage());
    }

    @Test
    void aContextLongerThanTheDataIsRejected() {
        Corpus tiny = Corpus.ofText("tiny", "Hello, world! Hello again, world.");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> TokenDataset.of(tiny, new ByteTokenizer(), 0.5, 32));
        assertTrue(e.getMessage().contains("too short for context 32"), e.getMessage());

        // A dataset cut for T = 8 given to a model with context 16 longer than its splits.
        TokenDataset data = TokenDataset.of(tiny, new ByteTokenizer(), 0.5, 8);
        Trainer t = trainer(tiny(32), config(OptimizerChoice.ADAMW, 1e-2, 2, 1, 1, 0), data, tmp.resolve("run"));
        IllegalArgumentException e2 = assertThrows(IllegalArgumentException.class, () -> t.run(false));
        assertTrue(e2.getMessage().contains("too short for context " + T), e2.getMessage());
    }

    @Test
    void headsThatDoNotDivideTheWidthAreRejected() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new LlamaConfig(256, 30, 2, 4, 4, 64, T, false, 10000, 1e-5, 0.02));
        assertTrue(e.getMessage().contains("heads 4") && e.getMessage().contains("width 30"), e.getMessage());
    }

    @Test
    void aTokenizerVocabularyLargerThanTheModelsIsRejected() {
        LlamaConfig small = tiny(32).withVocabSize(128);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> trainer(small, config(OptimizerChoice.ADAMW, 1e-2, 2, 1, 1, 0), sentence, tmp.resolve("run")));
        assertTrue(e.getMessage().contains("256") && e.getMessage().contains("128"), e.getMessage());
        assertTrue(e.getMessage().contains("vocabulary"), e.getMessage());
    }

    @Test
    void stopAfterMustBePositive() {
        Trainer t = trainer(tiny(32), config(OptimizerChoice.ADAMW, 1e-2, 2, 1, 1, 0), sentence, tmp.resolve("run"));
        assertThrows(IllegalArgumentException.class, () -> t.run(false, 0));
    }
}
