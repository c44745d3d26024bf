package dev.muon4j.train;

import dev.muon4j.backend.Kernels;
import dev.muon4j.data.TokenizerKind;
import dev.muon4j.io.JsonCodec;
import dev.muon4j.io.SafeTensors;
import dev.muon4j.io.TensorData;
import dev.muon4j.nn.HuggingFaceConfig;
import dev.muon4j.nn.ModelConfig;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.function.Consumer;

/**
 * A model's weights and shape read from a directory, to start a new run from ({@code train --init-from})
 * or to export: a run directory (its latest checkpoint), one checkpoint directory, or a Hugging Face model
 * directory ({@code config.json} in Hugging Face's schema and {@code model.safetensors}, as
 * {@link HuggingFaceExport} writes it). Checkpoints are verified as {@link CheckpointStore#load} verifies
 * them; a Hugging Face directory's config must describe a model muon4j computes
 * ({@link HuggingFaceConfig#read}) and its weights must be finite.
 *
 * @param source    the directory as given, absolute
 * @param kind      what the directory was
 * @param step      the checkpoint's step; null for a Hugging Face directory
 * @param model     the model's shape
 * @param weights   tensor name → value (parameters and buffers, experts one tensor each), widened to float32
 * @param tokenizer the tokenizer the model was trained with, when the directory records it (muon4j.json)
 * @param checkpoint the checkpoint itself, when the directory was a run or checkpoint directory
 */
public record InitialWeights(Path source, Kind kind, Long step, ModelConfig model, Map<String, TensorData> weights,
                             Optional<TokenizerKind> tokenizer, Optional<CheckpointStore.Checkpoint> checkpoint) {
    /** What the directory was. */
    public enum Kind {
        /** A muon4j checkpoint (given directly, or as a run directory's latest). */
        CHECKPOINT,
        /** A Hugging Face model directory. */
        HUGGING_FACE
    }

    /** Names the weights in messages: "checkpoint DIR" or "Hugging Face model DIR". */
    public String describe() {
        return kind == Kind.CHECKPOINT ? "checkpoint " + checkpoint.map(CheckpointStore.Checkpoint::dir).orElse(source)
                : "Hugging Face model " + source;
    }

    /** The record muon4j.json keeps of it ({@code init_from}). */
    CheckpointConfig.InitFrom record() {
        return new CheckpointConfig.InitFrom(checkpoint.map(c -> c.dir().toString()).orElse(source.toString()),
                kind == Kind.CHECKPOINT ? "checkpoint" : "hugging_face", step);
    }

    /**
     * Reads {@code dir}.
     *
     * @param warnings receives the reasons when a run directory's latest checkpoint is damaged and an older one is used
     * @throws IOException naming the directory and what is missing or damaged in it
     * @throws IllegalArgumentException when its config asks for a model muon4j does not compute, naming the field
     */
    public static InitialWeights read(Path dir, Consumer<String> warnings) throws IOException {
        Objects.requireNonNull(warnings, "warnings");
        Path d = dir.toAbsolutePath().normalize();
        if (!Files.exists(d)) {
            throw new IOException("there is no directory " + d);
        }
        if (!Files.isDirectory(d)) {
            throw new IOException(d + " is a file; give the directory holding config.json and model.safetensors, "
                    + "or a run or checkpoint directory");
        }
        if (Files.exists(d.resolve(CheckpointStore.MANIFEST_FILE))) {
            Path runDir = d.getParent() != null ? d.getParent() : d;
            return ofCheckpoint(d, new CheckpointStore(runDir, CheckpointStore.DEFAULT_KEEP, warnings).load(d));
        }
        CheckpointStore store = new CheckpointStore(d, CheckpointStore.DEFAULT_KEEP, warnings);
        if (Files.exists(d.resolve(CheckpointStore.LATEST_FILE)) || !store.checkpoints().isEmpty()) {
            CheckpointStore.Checkpoint cp = store.latest()
                    .orElseThrow(() -> new IOException("run directory " + d + " holds no checkpoint"));
            return ofCheckpoint(d, cp);
        }
        if (Files.exists(d.resolve(CheckpointStore.CONFIG_FILE))) {
            return ofHuggingFace(d);
        }
        throw new IOException(d + " is neither a muon4j run or checkpoint directory nor a Hugging Face model directory: it holds no "
                + CheckpointStore.MANIFEST_FILE + ", no '" + CheckpointStore.LATEST_FILE + "' file and no "
                + CheckpointStore.CONFIG_FILE);
    }

    @SuppressWarnings("unchecked")
    private static InitialWeights ofCheckpoint(Path source, CheckpointStore.Checkpoint cp) throws IOException {
        if (!(cp.config().get("model") instanceof Map<?, ?> m)) {
            throw new IOException("checkpoint " + cp.dir() + " has no model config (\"model\" in its settings)");
        }
        ModelConfig model;
        try {
            model = ModelConfig.fromMap((Map<String, ?>) m);
        } catch (RuntimeException e) {
            throw new IOException("checkpoint " + cp.dir() + ": its model config is damaged: " + e.getMessage(), e);
        }
        return new InitialWeights(source, Kind.CHECKPOINT, cp.step(), model, cp.weights(), tokenizerOf(cp.config(), cp.dir()),
                Optional.of(cp));
    }

    private static InitialWeights ofHuggingFace(Path dir) throws IOException {
        Path configFile = dir.resolve(CheckpointStore.CONFIG_FILE);
        Path weightsFile = dir.resolve(CheckpointStore.MODEL_FILE);
        if (!Files.isRegularFile(weightsFile)) {
            String why = Files.exists(dir.resolve("model.safetensors.index.json")) ? "its weights are split over several files "
                    + "(model.safetensors.index.json), which muon4j does not read"
                    : Files.exists(dir.resolve("pytorch_model.bin")) ? "it holds pytorch_model.bin; muon4j reads safetensors only"
                    : "there is no " + CheckpointStore.MODEL_FILE;
            throw new IOException("Hugging Face model " + dir + ": " + why);
        }
        ModelConfig model = HuggingFaceConfig.read(JsonCodec.readObject(configFile), configFile.toString());
        Map<String, TensorData> weights = new LinkedHashMap<>(SafeTensors.read(weightsFile).tensors());
        // Buffers transformers once saved (rotary tables) are recomputed, and a tied head is the embedding.
        weights.keySet().removeIf(name -> name.endsWith(".rotary_emb.inv_freq"));
        if (model.trunk().tiedHead()) {
            weights.remove("lm_head.weight");
        }
        for (Map.Entry<String, TensorData> w : weights.entrySet()) {
            float[] v = w.getValue().data();
            int bad = Kernels.firstNonFinite(v, 0, v.length);
            if (bad >= 0) {
                throw new IOException(weightsFile + ": " + w.getKey() + " element " + bad + " is " + v[bad]);
            }
        }
        Optional<TokenizerKind> tokenizer = Optional.empty();
        Path settings = dir.resolve(CheckpointStore.SETTINGS_FILE);
        if (Files.isRegularFile(settings)) {
            tokenizer = tokenizerOf(JsonCodec.readObject(settings), settings);
        }
        return new InitialWeights(dir, Kind.HUGGING_FACE, null, model, weights, tokenizer, Optional.empty());
    }

    private static Optional<TokenizerKind> tokenizerOf(Map<String, Object> settings, Path where) throws IOException {
        Object name = settings.get("tokenizer");
        if (name == null) {
            return Optional.empty();
        }
        try {
            return Optional.of(TokenizerKind.parse(String.valueOf(name)));
        } catch (IllegalArgumentException e) {
            throw new IOException(where + ": " + e.getMessage(), e);
        }
    }
}
