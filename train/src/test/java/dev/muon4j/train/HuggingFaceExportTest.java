package dev.muon4j.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.VectorBackend;
import dev.muon4j.data.ByteTokenizer;
import dev.muon4j.data.Corpus;
import dev.muon4j.data.TokenDataset;
import dev.muon4j.io.JsonCodec;
import dev.muon4j.io.SafeTensors;
import dev.muon4j.io.TensorData;
import dev.muon4j.nn.DeepSeekConfig;
import dev.muon4j.nn.HuggingFaceConfig;
import dev.muon4j.nn.LlamaConfig;
import dev.muon4j.nn.ModelConfig;
import dev.muon4j.nn.MoeConfig;
import dev.muon4j.optim.Parameter;
import dev.muon4j.tensor.BFloat16;
import dev.muon4j.tensor.DType;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Checkpoints with config.json in Hugging Face's schema and muon4j.json beside it; their export to a
 * directory Hugging Face opens; a new run started from such a directory or from a checkpoint.
 */
class HuggingFaceExportTest {
    static final int T = 16;
    static final LlamaConfig LLAMA = new LlamaConfig(256, 32, 2, 2, 1, 64, T, false, 10000, 1e-5, 0.02);
    static final TokenDataset DATA = TokenDataset.of(Corpus.ofText("sentence", TrainerTest.SENTENCE.repeat(60)), new ByteTokenizer(), 0.1, T);

    @TempDir
    Path tmp;

    static Trainer.Result train(ModelConfig model, TrainConfig config, Path run, InitialWeights init) throws IOException {
        try (Backend backend = new VectorBackend(1)) {
            Trainer trainer = new Trainer(backend, model, config, DATA, run, s -> { }, null);
            if (init != null) {
                trainer.initializeFrom(init);
            }
            return trainer.run(false);
        }
    }

    static TrainConfig config(double lr, long steps) {
        return TrainerTest.config(OptimizerChoice.MUON, lr, steps, 1, 7, 0);
    }

    @Test
    void aCheckpointHoldsHuggingFacesConfigAndMuon4jsSettingsBeside() throws Exception {
        Path run = tmp.resolve("run");
        train(LLAMA, config(1e-2, 3), run, null);
        CheckpointStore.Checkpoint cp = new CheckpointStore(run).latest().orElseThrow();
        assertEquals(JsonCodec.toObject(HuggingFaceConfig.of(LLAMA, HuggingFaceConfig.SpecialTokens.none(), "float32")), cp.huggingFace());
        assertEquals(LLAMA, HuggingFaceConfig.read(JsonCodec.readObject(cp.dir().resolve("config.json")), "config.json"));
        assertEquals(LLAMA, ModelConfig.fromMap(cast(cp.config().get("model"))), "muon4j.json keeps muon4j's own model config");
        assertEquals("byte", cp.config().get("tokenizer"));
        assertEquals(Map.of("architecture", "LlamaForCausalLM", "notes", List.of()), cp.config().get("hugging_face"));
        assertFalse(cp.config().containsKey("init_from"));
        Map<String, Object> manifest = JsonCodec.readObject(cp.dir().resolve(CheckpointStore.MANIFEST_FILE));
        assertTrue(((Map<?, ?>) manifest.get("files")).containsKey("muon4j.json"), "the manifest checks muon4j.json too");
        assertEquals("pt", SafeTensors.read(cp.dir().resolve("model.safetensors")).metadata().get("format"),
                "transformers refuses safetensors without format pt");
    }

    @Test
    void anExportHoldsTheCheckpointsWeightsUnderItsNamesInFloat32OrBfloat16() throws Exception {
        Path run = tmp.resolve("run");
        train(LLAMA, config(1e-2, 3), run, null);
        CheckpointStore.Checkpoint cp = new CheckpointStore(run).latest().orElseThrow();

        HuggingFaceExport.Result f32 = HuggingFaceExport.export(run, tmp.resolve("hf32"), DType.F32, false, s -> { });
        assertEquals(List.of("config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                "special_tokens_map.json", "muon4j.json"), f32.files());
        try (Stream<Path> files = Files.list(tmp.resolve("hf32"))) {
            assertEquals(f32.files().size(), files.count(), "nothing else, no temporary file left");
        }
        try (Stream<Path> files = Files.list(tmp)) {
            assertTrue(files.noneMatch(p -> p.getFileName().toString().startsWith(".tmp")));
        }
        Map<String, TensorData> written = SafeTensors.read(tmp.resolve("hf32/model.safetensors")).tensors();
        assertEquals(cp.weights().keySet(), written.keySet());
        cp.weights().forEach((name, t) -> assertArrayEquals(t.data(), written.get(name).data(), name));
        Map<String, Object> config = JsonCodec.readObject(tmp.resolve("hf32/config.json"));
        assertEquals("float32", config.get("torch_dtype"));
        assertEquals(LLAMA, HuggingFaceConfig.read(config, "config.json"));

        HuggingFaceExport.export(cp.dir(), tmp.resolve("hf16"), DType.BF16, false, s -> { });
        SafeTensors.Contents bf16 = SafeTensors.read(tmp.resolve("hf16/model.safetensors"));
        assertEquals("pt", bf16.metadata().get("format"));
        assertEquals("bfloat16", JsonCodec.readObject(tmp.resolve("hf16/config.json")).get("torch_dtype"));
        cp.weights().forEach((name, t) -> {
            assertEquals("BF16", bf16.tensors().get(name).dtype());
            float[] expected = t.data().clone();
            for (int i = 0; i < expected.length; i++) {
                expected[i] = BFloat16.round(expected[i]);
            }
            assertArrayEquals(expected, bf16.tensors().get(name).data(), name);
        });
    }

    @Test
    void anExportNeverDestroysWhatItShouldNot() throws Exception {
        Path run = tmp.resolve("run");
        train(LLAMA, config(1e-2, 2), run, null);
        Path out = tmp.resolve("out");
        Files.createDirectories(out);
        Files.writeString(out.resolve("notes.txt"), "mine");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> HuggingFaceExport.export(run, out, DType.F32, false, s -> { }));
        assertTrue(e.getMessage().contains("is not empty (1 entry); give --force"), e.getMessage());
        assertEquals("mine", Files.readString(out.resolve("notes.txt")), "left as it was");
        HuggingFaceExport.export(run, out, DType.F32, true, s -> { });
        assertFalse(Files.exists(out.resolve("notes.txt")), "--force replaces it");
        assertTrue(Files.exists(out.resolve("model.safetensors")));

        Path checkpoint = new CheckpointStore(run).latest().orElseThrow().dir();
        for (Path bad : List.of(run, checkpoint, checkpoint.resolve("hf"), tmp)) {
            IllegalArgumentException refused = assertThrows(IllegalArgumentException.class,
                    () -> HuggingFaceExport.export(run, bad, DType.F32, true, s -> { }), bad.toString());
            assertTrue(refused.getMessage().startsWith("--out " + bad.toAbsolutePath().normalize()), refused.getMessage());
        }
        Path other = tmp.resolve("other");
        train(LLAMA, config(1e-2, 1), other, null);
        IllegalArgumentException checkpoints = assertThrows(IllegalArgumentException.class,
                () -> HuggingFaceExport.export(run, other, DType.F32, true, s -> { }));
        assertTrue(checkpoints.getMessage().contains("holds muon4j checkpoints"), checkpoints.getMessage());
        assertTrue(new CheckpointStore(other).latest().isPresent(), "the other run is intact");
        assertTrue(new CheckpointStore(run).latest().isPresent(), "the run is intact");

        Path file = tmp.resolve("file");
        Files.writeString(file, "x");
        assertTrue(assertThrows(IllegalArgumentException.class, () -> HuggingFaceExport.export(run, file, DType.F32, true, s -> { }))
                .getMessage().contains("is a file"));
        IOException missing = assertThrows(IOException.class, () -> HuggingFaceExport.export(tmp.resolve("nothing"), tmp.resolve("o2"),
                DType.F32, false, s -> { }));
        assertTrue(missing.getMessage().startsWith("there is no directory"), missing.getMessage());
    }

    @Test
    void aMixtureOfExpertsModelWithGroupedQueryAttentionIsNotExported() throws Exception {
        DeepSeekConfig gqa = new DeepSeekConfig(new LlamaConfig(256, 32, 2, 2, 2, 64, T, false, 10000, 1e-5, 0.02),
                new MoeConfig(4, 2, 16, 1, 2.446, 1));
        Path run = tmp.resolve("run");
        train(gqa, MoeTrainerTest.config(OptimizerChoice.MUON, 1), run, null);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> HuggingFaceExport.export(run, tmp.resolve("out"), DType.F32, false, s -> { }));
        assertTrue(e.getMessage().contains("--attention mla"), e.getMessage());
        assertFalse(Files.exists(tmp.resolve("out")));
    }

    @Test
    void aNewRunStartsFromAnExportOrACheckpointWithAFreshOptimizer() throws Exception {
        Path first = tmp.resolve("first");
        Map<String, float[]> trained = new HashMap<>();
        try (Backend backend = new VectorBackend(1)) {
            new Trainer(backend, LLAMA, config(1e-2, 6), DATA, first, s -> { }, null)
                    .observeFinalParameters(ps -> ps.forEach(p -> trained.put(p.name(), p.value().clone()))).run(false);
        }
        Path exported = tmp.resolve("hf");
        HuggingFaceExport.export(first, exported, DType.F32, false, s -> { });

        for (Path from : List.of(exported, first, new CheckpointStore(first).latest().orElseThrow().dir())) {
            InitialWeights init = InitialWeights.read(from, s -> { });
            assertEquals(LLAMA, init.model());
            Path second = tmp.resolve("second-" + from.getFileName());
            Map<String, float[]> started = new HashMap<>();
            List<String> log = new java.util.ArrayList<>();
            try (Backend backend = new VectorBackend(1)) {
                // One step at a learning rate too small to move a weight by a float32 rounding: the weights the run starts from.
                new Trainer(backend, LLAMA, config(1e-12, 1), DATA, second, log::add, null).initializeFrom(init)
                        .observeFinalParameters(ps -> ps.forEach(p -> started.put(p.name(), p.value().clone()))).run(false);
            }
            for (Parameter p : LLAMA.create().parameters()) {
                float[] a = trained.get(p.name());
                float[] b = started.get(p.name());
                for (int i = 0; i < a.length; i++) {
                    assertEquals(a[i], b[i], 1e-6 * Math.max(1, Math.abs(a[i])), p.name() + "[" + i + "] from " + from);
                }
            }
            assertTrue(log.stream().anyMatch(l -> l.startsWith("initial weights from")), log.toString());
            CheckpointStore.Checkpoint cp = new CheckpointStore(second).latest().orElseThrow();
            Map<String, Object> initFrom = cast(cp.config().get("init_from"));
            assertEquals(init.kind() == InitialWeights.Kind.CHECKPOINT ? "checkpoint" : "hugging_face", initFrom.get("kind"));
            assertEquals(1L, cp.optimizer().step(), "the optimizer starts fresh: one step taken");
        }

        LlamaConfig wider = new LlamaConfig(256, 64, 2, 2, 1, 64, T, false, 10000, 1e-5, 0.02);
        try (Backend backend = new VectorBackend(1)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new Trainer(backend, wider, config(1e-2, 1), DATA,
                    tmp.resolve("third"), s -> { }, null).initializeFrom(InitialWeights.read(exported, s -> { })));
            assertTrue(e.getMessage().startsWith("Hugging Face model " + exported.toAbsolutePath() + " holds another model"), e.getMessage());
        }
    }

    @Test
    void aDirectoryThatIsNeitherIsRefusedNamingWhatIsMissing() throws Exception {
        Path empty = Files.createDirectories(tmp.resolve("empty"));
        IOException e = assertThrows(IOException.class, () -> InitialWeights.read(empty, s -> { }));
        assertTrue(e.getMessage().contains("is neither a muon4j run or checkpoint directory nor a Hugging Face model directory"),
                e.getMessage());
        Path onlyConfig = Files.createDirectories(tmp.resolve("config-only"));
        Files.write(onlyConfig.resolve("config.json"), JsonCodec.prettyFile(HuggingFaceConfig.of(LLAMA, HuggingFaceConfig.SpecialTokens.none(),
                "float32")));
        assertTrue(assertThrows(IOException.class, () -> InitialWeights.read(onlyConfig, s -> { })).getMessage()
                .endsWith("there is no model.safetensors"));
    }

    @SuppressWarnings("unchecked")
    private static <T> T cast(Object o) {
        return (T) o;
    }
}
