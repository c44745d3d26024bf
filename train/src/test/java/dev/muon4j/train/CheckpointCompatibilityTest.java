package dev.muon4j.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.Backends;
import dev.muon4j.data.ByteTokenizer;
import dev.muon4j.data.Corpus;
import dev.muon4j.data.TokenDataset;
import dev.muon4j.io.JsonCodec;
import dev.muon4j.io.SafeTensors;
import dev.muon4j.nn.DeepSeekConfig;
import dev.muon4j.nn.ModelConfig;
import dev.muon4j.optim.OptimizerState;
import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A run directory written by muon4j 0.1.0 before its JSON moved to Jackson (test resource
 * {@code checkpoint-0.1.0}: the command line's {@code train} of a two-layer DeepSeek model with latent
 * attention and four experts, NorMuon with QK-clip, two steps on the shipped corpus) still loads, is
 * written again byte for byte the same, and resumes.
 */
class CheckpointCompatibilityTest {
    private static final String STEP = "step-00000002";

    @TempDir
    Path tmp;

    private Path copyOfFixture() throws IOException, URISyntaxException {
        Path source = Path.of(Objects.requireNonNull(getClass().getResource("checkpoint-0.1.0"), "fixture").toURI());
        Path run = tmp.resolve("run");
        try (Stream<Path> files = Files.walk(source)) {
            for (Path p : files.toList()) {
                Path target = run.resolve(source.relativize(p).toString());
                if (Files.isDirectory(p)) {
                    Files.createDirectories(target);
                } else {
                    Files.copy(p, target);
                }
            }
        }
        return run;
    }

    @Test
    void theOldCheckpointLoadsAndIsWrittenAgainByteForByte() throws Exception {
        Path run = copyOfFixture();
        Path dir = run.resolve(STEP);
        CheckpointStore.Checkpoint checkpoint = new CheckpointStore(run).latest().orElseThrow();
        assertEquals(dir, checkpoint.dir());
        assertEquals(2, checkpoint.step());

        ModelConfig model = ModelConfig.fromMap(cast(checkpoint.config().get("model")));
        assertInstanceOf(DeepSeekConfig.class, model);
        Map<String, Object> savedTrain = cast(checkpoint.config().get("train"));
        TrainConfig train = trainConfig(checkpoint);
        assertEquals(MuonVariant.NORMUON, train.muonVariant());
        assertEquals(100.0, train.qkClipThreshold());
        Map<String, Object> now = train.toMap();
        assertEquals(savedTrain, now.entrySet().stream().filter(e -> savedTrain.containsKey(e.getKey()))
                .collect(LinkedHashMap<String, Object>::new, (m, e) -> m.put(e.getKey(), e.getValue()), Map::putAll),
                "the settings keep their names and values");
        assertEquals(List.copyOf(savedTrain.keySet()), List.copyOf(now.keySet()).subList(0, savedTrain.size()),
                "and their order; settings added since come after them");
        assertEquals(Map.of("step", 2L, "tokens", 32L, "data_position", 2L, "seed", 1L), checkpoint.trainer());
        assertEquals(Set.of("normuon", "adamw"), checkpoint.optimizer().rules().keySet());

        // The JSON files, the weights and the optimizer state (its metadata checksum included) come out as they went in.
        for (String name : List.of(CheckpointStore.MANIFEST_FILE, CheckpointStore.CONFIG_FILE, CheckpointStore.TRAINER_FILE)) {
            assertEquals(Files.readString(dir.resolve(name)), new String(JsonCodec.prettyFile(JsonCodec.readObject(dir.resolve(name))),
                    StandardCharsets.UTF_8), name);
        }
        assertEquals(Files.readString(dir.resolve(CheckpointStore.TRAINER_FILE)),
                new String(JsonCodec.prettyFile(new TrainerState(2, 32, 2, 1)), StandardCharsets.UTF_8));
        Path state = tmp.resolve("optimizer.safetensors");
        checkpoint.optimizer().write(state);
        assertArrayEquals(Files.readAllBytes(dir.resolve(CheckpointStore.OPTIMIZER_FILE)), Files.readAllBytes(state));
        Path weights = tmp.resolve("model.safetensors");
        SafeTensors.Contents contents = SafeTensors.read(dir.resolve(CheckpointStore.MODEL_FILE));
        SafeTensors.write(weights, contents.tensors(), contents.metadata());
        assertArrayEquals(Files.readAllBytes(dir.resolve(CheckpointStore.MODEL_FILE)), Files.readAllBytes(weights));
        assertEquals(checkpoint.optimizer().entries().keySet(), OptimizerState.read(state).entries().keySet());
    }

    @Test
    void theOldMetricsAreKeptAndTheRunResumes() throws Exception {
        Path run = copyOfFixture();
        List<String> oldLines = Files.readAllLines(run.resolve("metrics.jsonl"));
        CheckpointStore.Checkpoint checkpoint = new CheckpointStore(run).latest().orElseThrow();
        ModelConfig model = ModelConfig.fromMap(cast(checkpoint.config().get("model")));
        TrainConfig saved = trainConfig(checkpoint);
        TokenDataset data = TokenDataset.of(Corpus.defaultCorpus(), new ByteTokenizer(), 0.05, model.contextLength());
        try (Backend backend = Backends.openBundled(1)) {
            Trainer.Result result = new Trainer(backend, model, saved.withSteps(3), data, run, message -> { }, null)
                    .run(RunOptions.resume().withAllowedChanges(Set.of("steps")));
            assertEquals(2, result.startStep());
            assertEquals(List.of(3L), result.steps().stream().map(Trainer.StepPoint::step).toList());
        }
        List<String> lines = Files.readAllLines(run.resolve("metrics.jsonl"));
        assertEquals(oldLines, lines.subList(0, oldLines.size()), "the old lines stay as they were");
        List<Map<String, Object>> added = lines.subList(oldLines.size(), lines.size()).stream().map(JsonCodec::parseObject).toList();
        assertEquals("resume", added.getFirst().get("event"));
        Map<String, Object> step = added.stream().filter(m -> m.containsKey("loss")).findFirst().orElseThrow();
        // a step's line has the fields it had, in their order, with Muon's learning rate after "lr" and the
        // time after "seconds" (both added to the format since)
        List<String> expected = new java.util.ArrayList<>(JsonCodec.parseObject(oldLines.getFirst()).keySet());
        expected.add(expected.indexOf("lr") + 1, "muon_lr");
        expected.add(expected.indexOf("seconds") + 1, "time");
        assertEquals(expected, List.copyOf(step.keySet()), "a step's line has the fields it had, in their order, and the new ones");
        assertEquals(3L, step.get("step"));
        assertTrue(new CheckpointStore(run).latest().orElseThrow().dir().endsWith("step-00000003"));
    }

    /**
     * The checkpoint's training settings as a {@link TrainConfig}; settings added since 0.1.0 take the
     * value that gives 0.1.0's training ({@code ns_precision} F32).
     */
    private static TrainConfig trainConfig(CheckpointStore.Checkpoint checkpoint) throws IOException {
        Map<String, Object> settings = new LinkedHashMap<>(cast(checkpoint.config().get("train")));
        settings.putIfAbsent("ns_precision", "F32");
        return JsonCodec.convert(checkpoint.dir().resolve(CheckpointStore.CONFIG_FILE), settings, TrainConfig.class,
                "its training settings");
    }

    @SuppressWarnings("unchecked")
    private static <T> T cast(Object o) {
        return (T) o;
    }
}
