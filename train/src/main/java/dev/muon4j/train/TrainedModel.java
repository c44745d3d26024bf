package dev.muon4j.train;

import dev.muon4j.data.Corpus;
import dev.muon4j.data.ShippedCorpus;
import dev.muon4j.data.TokenizerKind;
import dev.muon4j.nn.LanguageModel;
import dev.muon4j.nn.ModelConfig;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.OptionalInt;
import java.util.function.Consumer;

/**
 * A model read back from a checkpoint to be used rather than trained further: the model of the
 * checkpoint's config with its weights and buffers (the routers' choice biases), the tokenizer it was
 * trained with, and what the run recorded about its data and its validation.
 *
 * <p>{@link #load} takes a run directory (its latest checkpoint, with {@link CheckpointStore#latest}'s
 * fallback to the newest one that loads) or one checkpoint directory ({@code step-00000300}). The
 * checkpoint is verified as {@link CheckpointStore#load} verifies it before anything is used.
 */
public final class TrainedModel {
    private final CheckpointStore.Checkpoint checkpoint;
    private final ModelConfig config;
    private final LanguageModel model;
    private final TokenizerKind tokenizer;

    private TrainedModel(CheckpointStore.Checkpoint checkpoint, ModelConfig config, LanguageModel model, TokenizerKind tokenizer) {
        this.checkpoint = checkpoint;
        this.config = config;
        this.model = model;
        this.tokenizer = tokenizer;
    }

    /**
     * Loads the model of a run directory's latest checkpoint, or of one checkpoint directory.
     *
     * @param path     a run directory written by the trainer, or a checkpoint directory in one
     * @param warnings receives the reasons when the latest checkpoint is damaged and an older one is used
     * @throws IOException              when the path does not exist, holds no checkpoint, or its checkpoint is
     *                                  damaged or incomplete (naming the file)
     * @throws IllegalArgumentException when the checkpoint's weights do not fit its own model config
     */
    public static TrainedModel load(Path path, Consumer<String> warnings) throws IOException {
        Objects.requireNonNull(warnings, "warnings");
        Path dir = path.toAbsolutePath().normalize();
        if (!Files.exists(dir)) {
            throw new IOException("there is no run directory or checkpoint at " + dir);
        }
        if (!Files.isDirectory(dir)) {
            throw new IOException(dir + " is a file, not a run directory or a checkpoint directory");
        }
        CheckpointStore.Checkpoint checkpoint;
        if (Files.exists(dir.resolve(CheckpointStore.MANIFEST_FILE))) {
            Path runDir = dir.getParent() != null ? dir.getParent() : dir;
            checkpoint = new CheckpointStore(runDir, CheckpointStore.DEFAULT_KEEP, warnings).load(dir);
        } else {
            checkpoint = new CheckpointStore(dir, CheckpointStore.DEFAULT_KEEP, warnings).latest()
                    .orElseThrow(() -> new IOException("run directory " + dir + " holds no checkpoint (train writes one every "
                            + "--checkpoint-every steps and at the end of the run)"));
        }
        ModelConfig config = modelConfig(checkpoint);
        TokenizerKind tokenizer = tokenizer(checkpoint);
        if (tokenizer.create().vocabSize() > config.vocabSize()) {
            throw new IOException("checkpoint " + checkpoint.dir() + " is inconsistent: its tokenizer " + tokenizer.encodingName()
                    + " has " + tokenizer.create().vocabSize() + " ids, its model a vocabulary of " + config.vocabSize());
        }
        LanguageModel model = config.create();
        CheckpointStore.restoreWeights(checkpoint, Trainer.savedTensors(model));
        return new TrainedModel(checkpoint, config, model, tokenizer);
    }

    @SuppressWarnings("unchecked")
    private static ModelConfig modelConfig(CheckpointStore.Checkpoint cp) throws IOException {
        if (!(cp.config().get("model") instanceof Map<?, ?> m)) {
            throw new IOException("checkpoint " + cp.dir() + " has no model config (\"model\" in " + settingsFile(cp) + ")");
        }
        try {
            return ModelConfig.fromMap((Map<String, ?>) m);
        } catch (RuntimeException e) {
            throw new IOException("checkpoint " + cp.dir() + ": the model config in " + settingsFile(cp) + " is damaged: "
                    + e.getMessage(), e);
        }
    }

    private static TokenizerKind tokenizer(CheckpointStore.Checkpoint cp) throws IOException {
        if (!(cp.config().get("tokenizer") instanceof String name)) {
            throw new IOException("checkpoint " + cp.dir() + " does not name its tokenizer (\"tokenizer\" in "
                    + settingsFile(cp) + ")");
        }
        try {
            return TokenizerKind.parse(name);
        } catch (IllegalArgumentException e) {
            throw new IOException("checkpoint " + cp.dir() + ": " + e.getMessage(), e);
        }
    }

    /** The file holding muon4j's settings: muon4j.json, or config.json in checkpoints written before it. */
    private static String settingsFile(CheckpointStore.Checkpoint cp) {
        return cp.huggingFace().isEmpty() ? CheckpointStore.CONFIG_FILE : CheckpointStore.SETTINGS_FILE;
    }

    /** The checkpoint the weights came from. */
    public CheckpointStore.Checkpoint checkpoint() {
        return checkpoint;
    }

    /** The model's config. */
    public ModelConfig config() {
        return config;
    }

    /** The model, holding the checkpoint's weights and buffers. */
    public LanguageModel model() {
        return model;
    }

    /** The tokenizer the model was trained with. */
    public TokenizerKind tokenizer() {
        return tokenizer;
    }

    /** The run's training data as it recorded it: muon4j.json's {@code "data"} object, empty when absent. */
    private Map<?, ?> data() {
        return checkpoint.config().get("data") instanceof Map<?, ?> d ? d : Map.of();
    }

    /** The run's training settings: muon4j.json's {@code "train"} object, empty when absent. */
    private Map<?, ?> train() {
        return checkpoint.config().get("train") instanceof Map<?, ?> t ? t : Map.of();
    }

    /**
     * Where the run's corpus was read: the shipped corpus or the files and directories given to it;
     * empty for checkpoints that did not record it, or text the run was given in memory.
     */
    public Optional<Corpus.Origin> corpus() {
        Map<?, ?> d = data();
        Optional<ShippedCorpus> shipped = shippedCorpus(checkpoint.config());
        if (shipped.isPresent()) {
            return Optional.of(Corpus.Origin.of(shipped.get()));
        }
        if (d.get("corpus_paths") instanceof List<?> paths && !paths.isEmpty() && paths.stream().allMatch(p -> p instanceof String)) {
            return Optional.of(Corpus.Origin.ofPaths(paths.stream().map(p -> Path.of((String) p)).toList()));
        }
        return Optional.empty();
    }

    /**
     * The shipped corpus a run's settings (muon4j.json) record it read: {@code shipped_corpus_name}, or the Gutenberg
     * corpus where only {@code shipped_corpus} is true (checkpoints before there were two); empty for files.
     *
     * @throws IllegalArgumentException naming the shipped corpora when the recorded name is none of them
     */
    static Optional<ShippedCorpus> shippedCorpus(Map<String, Object> settings) {
        if (!(settings.get("data") instanceof Map<?, ?> d) || !Boolean.TRUE.equals(d.get("shipped_corpus"))) {
            return Optional.empty();
        }
        return Optional.of(d.get("shipped_corpus_name") instanceof String name ? ShippedCorpus.parse(name) : ShippedCorpus.GUTENBERG);
    }

    /** The share of the corpus the run held out for validation, when it recorded it. */
    public OptionalDouble validationFraction() {
        return data().get("validation_fraction") instanceof Number f ? OptionalDouble.of(f.doubleValue()) : OptionalDouble.empty();
    }

    /** The fingerprint of the run's token streams ({@link dev.muon4j.data.TokenDataset#fingerprint()}), when recorded. */
    public Optional<String> dataFingerprint() {
        return data().get("fingerprint") instanceof String f ? Optional.of(f) : Optional.empty();
    }

    /** The run's sequences per micro-batch, which its validation used too. */
    public OptionalInt batchSize() {
        return intSetting("batch_size");
    }

    /** The batches each of the run's validations evaluated. */
    public OptionalInt evalBatches() {
        return intSetting("eval_batches");
    }

    private OptionalInt intSetting(String name) {
        return train().get(name) instanceof Long v && v >= 1 && v <= Integer.MAX_VALUE ? OptionalInt.of(v.intValue()) : OptionalInt.empty();
    }
}
