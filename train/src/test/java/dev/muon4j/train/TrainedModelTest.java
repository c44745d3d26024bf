package dev.muon4j.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.VectorBackend;
import dev.muon4j.data.Batch;
import dev.muon4j.data.ByteTokenizer;
import dev.muon4j.data.Corpus;
import dev.muon4j.data.TokenDataset;
import dev.muon4j.data.Tokenizer;
import dev.muon4j.data.TokenizerKind;
import dev.muon4j.io.TensorData;
import dev.muon4j.nn.DeepSeekConfig;
import dev.muon4j.nn.LlamaConfig;
import dev.muon4j.nn.MlaConfig;
import dev.muon4j.nn.ModelConfig;
import dev.muon4j.nn.MoeConfig;
import dev.muon4j.optim.Parameter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A trained model read back from its run directory: the weights the run ended with, the run's record
 * of its data, and a validation loss equal to the one the trainer logged; damaged or missing checkpoints
 * named.
 */
class TrainedModelTest {
    static final int T = 16;
    static Backend backend;

    @TempDir
    Path tmp;

    @BeforeAll
    static void open() {
        backend = new VectorBackend(1);
    }

    @AfterAll
    static void close() {
        backend.close();
    }

    static final LlamaConfig DENSE = new LlamaConfig(256, 32, 2, 2, 2, 64, T, false, 10000, 1e-5, 0.1);
    static final DeepSeekConfig MOE = new DeepSeekConfig(DENSE, new MoeConfig(4, 2, 16, 1, 2.446, 1), new MlaConfig(0, 8, 16, 8, 16));

    /** A corpus file of a few kilobytes, and its dataset with a 20% validation split. */
    private TokenDataset data() throws IOException {
        Path file = tmp.resolve("corpus.txt");
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < 80; i++) {
            text.append("Line ").append(i).append(": the quick brown fox jumps over the lazy dog, ").append(i * 7 % 13).append(" times.\n");
        }
        Files.writeString(file, text);
        return TokenDataset.of(Corpus.fromPaths(List.of(file)), new ByteTokenizer(), 0.2, T);
    }

    private static TrainConfig config(long steps) {
        return new TrainConfig(OptimizerChoice.MUON, 3e-3, 1.2e-2, 0.1, 0.9, 0.95, 0.95, ScheduleKind.COSINE, 2, steps,
                0.1, 4, 1, 1.0, 1, 3, 3, 3, 3).withRouterBiasRate(0.01);
    }

    private record Trained(Trainer.Result result, Map<String, float[]> finalValues) {
    }

    private Trained train(ModelConfig model, TokenDataset data, Path dir, long steps) throws IOException {
        Map<String, float[]> values = new LinkedHashMap<>();
        Trainer trainer = new Trainer(backend, model, config(steps), data, dir, msg -> { }, null)
                .observeFinalParameters(ps -> ps.forEach(p -> values.put(p.name(), p.value().clone())));
        return new Trained(trainer.run(false), values);
    }

    @Test
    void theLatestCheckpointLoadsWithTheRunsWeightsAndItsValidationLossComesBack() throws IOException {
        for (ModelConfig model : List.of(DENSE, MOE)) {
            TokenDataset data = data();
            Path dir = tmp.resolve("run-" + model.family().key());
            Trained run = train(model, data, dir, 6);
            List<String> warnings = new ArrayList<>();
            TrainedModel trained = TrainedModel.load(dir, warnings::add);
            assertEquals(List.of(), warnings);
            assertEquals(6, trained.checkpoint().step());
            assertEquals(model, trained.config());
            assertEquals(TokenizerKind.BYTE, trained.tokenizer());
            for (Parameter p : trained.model().parameters()) {
                assertArrayEquals(run.finalValues().get(p.name()), p.value(), p.name());
            }
            if (model == MOE) {
                // the routers' choice biases are restored too: training moved them away from 0
                List<Parameter> biases = trained.model().buffers();
                assertTrue(!biases.isEmpty() && biases.stream().anyMatch(b -> {
                    for (float v : b.value()) {
                        if (v != 0) {
                            return true;
                        }
                    }
                    return false;
                }), "some bias moved");
            }
            // what the run recorded of its data
            assertEquals(data.origin(), trained.corpus().orElseThrow());
            assertEquals(0.2, trained.validationFraction().orElseThrow());
            assertEquals(data.fingerprint(), trained.dataFingerprint().orElseThrow());
            assertEquals(4, trained.batchSize().orElseThrow());
            assertEquals(3, trained.evalBatches().orElseThrow());

            // the trainer's last validation, recomputed from the checkpoint
            List<Batch> batches = data.validationBatches(3, 4, T);
            Evaluation e = Evaluation.of(backend, trained.model(), batches, new ByteTokenizer());
            assertEquals(run.result().finalValidationLoss(), e.loss(), 1e-5, model.family().key());
            assertEquals(3L * 4 * T, e.tokens());
            assertEquals(e.tokens(), e.bytes(), "one byte per token");
            assertEquals(e.loss() / Math.log(2), e.bitsPerByte(), 1e-12);
            assertEquals(Math.exp(e.loss()), e.perplexity(), 1e-12);

            // one checkpoint directory, not the latest
            TrainedModel earlier = TrainedModel.load(dir.resolve("step-00000003"), warnings::add);
            assertEquals(3, earlier.checkpoint().step());
            assertEquals(run.result().evals().getFirst().loss(), Evaluation.of(backend, earlier.model(), batches, new ByteTokenizer()).loss(),
                    1e-5, "the validation of step 3");
        }
    }

    @Test
    void bitsPerByteCountTheBytesEachTokenStandsFor() {
        Tokenizer gpt2 = TokenizerKind.GPT2.create();
        String text = "Naïve café owners sell crème brûlée — and “quoted” words. ".repeat(3);
        int[] ids = gpt2.encode(text);
        int t = 8;
        int rows = (ids.length - 1) / t;
        int[] inputs = new int[rows * t];
        int[] targets = new int[rows * t];
        for (int i = 0; i < rows * t; i++) {
            inputs[i] = ids[i];
            targets[i] = ids[i + 1];
        }
        LlamaConfig model = new LlamaConfig(gpt2.vocabSize(), 16, 1, 2, 2, 32, t, true, 10000, 1e-5, 0.02);
        var lm = model.create();
        lm.initialize(1);
        Evaluation e = Evaluation.of(backend, lm, List.of(new Batch(inputs, targets, rows, t)), gpt2);
        assertEquals((long) rows * t, e.tokens());
        assertEquals(gpt2.decodeBytes(targets).length, e.bytes());
        assertTrue(e.bytes() > e.tokens(), "a GPT-2 token is several bytes");
        assertTrue(new String(gpt2.decodeBytes(targets), StandardCharsets.UTF_8).contains("crème"), "non-ASCII text counted");
        assertEquals(e.loss() * e.tokens() / (Math.log(2) * e.bytes()), e.bitsPerByte(), 1e-12);
        assertTrue(e.loss() > Math.log(gpt2.vocabSize()) - 1, "an untrained model is near uniform: " + e.loss());
    }

    @Test
    void missingEmptyAndDamagedCheckpointsAreNamed() throws IOException {
        IOException e = assertThrows(IOException.class, () -> TrainedModel.load(tmp.resolve("nowhere"), w -> { }));
        assertTrue(e.getMessage().contains("no run directory or checkpoint at") && e.getMessage().contains("nowhere"), e.getMessage());
        Path file = Files.writeString(tmp.resolve("file.txt"), "x");
        e = assertThrows(IOException.class, () -> TrainedModel.load(file, w -> { }));
        assertTrue(e.getMessage().contains("is a file"), e.getMessage());
        Path empty = Files.createDirectories(tmp.resolve("empty"));
        e = assertThrows(IOException.class, () -> TrainedModel.load(empty, w -> { }));
        assertTrue(e.getMessage().contains("holds no checkpoint"), e.getMessage());

        Path dir = tmp.resolve("run");
        train(DENSE, data(), dir, 6);
        Path weights = dir.resolve("step-00000006").resolve(CheckpointStore.MODEL_FILE);
        byte[] bytes = Files.readAllBytes(weights);
        bytes[bytes.length - 5] ^= 0x40;
        Files.write(weights, bytes);
        e = assertThrows(IOException.class, () -> TrainedModel.load(dir.resolve("step-00000006"), w -> { }));
        assertTrue(e.getMessage().contains(CheckpointStore.MODEL_FILE) && e.getMessage().contains("SHA-256"), e.getMessage());
        // the run directory falls back to the newest checkpoint that loads, and says why
        List<String> warnings = new ArrayList<>();
        TrainedModel fallback = TrainedModel.load(dir, warnings::add);
        assertEquals(3, fallback.checkpoint().step());
        assertTrue(warnings.size() == 1 && warnings.getFirst().contains("step-00000006") && warnings.getFirst().contains("damaged"),
                warnings.toString());
        for (TensorData t : fallback.checkpoint().weights().values()) {
            assertTrue(t.data().length > 0);
        }
    }
}
