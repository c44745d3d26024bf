package dev.muon4j.train;

import dev.muon4j.data.HuggingFaceTokenizer;
import dev.muon4j.data.TokenizerKind;
import dev.muon4j.io.AtomicFiles;
import dev.muon4j.io.JsonCodec;
import dev.muon4j.io.SafeTensors;
import dev.muon4j.io.TensorData;
import dev.muon4j.nn.HuggingFaceConfig;
import dev.muon4j.nn.ModelConfig;
import dev.muon4j.tensor.DType;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.function.Consumer;

/**
 * Writes a checkpoint as a directory that Hugging Face's {@code AutoModelForCausalLM.from_pretrained}
 * opens:
 * <pre>
 * out/
 *   config.json              the model in Hugging Face's schema ({@link HuggingFaceConfig}), torch_dtype as written
 *   model.safetensors        the weights under Hugging Face's names, F32 or BF16; metadata format=pt
 *   generation_config.json   bos_token_id and eos_token_id
 *   tokenizer.json, tokenizer_config.json, special_tokens_map.json (and vocab.json, merges.txt for GPT-2)
 *                            the tokenizer ({@link HuggingFaceTokenizer}); none for cl100k_base and o200k_base
 *   muon4j.json              where it came from: the checkpoint, its step, muon4j's model config and tokenizer
 * </pre>
 * The routers' choice biases ({@code mlp.gate.e_score_correction_bias}) are written with the weights:
 * Hugging Face's DeepseekV3 loads them as the buffers they are.
 *
 * <p>The directory is written whole into a temporary directory beside it, fsynced, and renamed into place,
 * so it is either the old one or the complete new one. An existing directory that is not empty is replaced
 * only when asked to ({@code force}); one that holds muon4j checkpoints, or that holds the checkpoint being
 * exported, never is.
 */
public final class HuggingFaceExport {
    /** The file muon4j's own record of the export goes to. */
    public static final String SETTINGS_FILE = CheckpointStore.SETTINGS_FILE;
    private static final SecureRandom RANDOM = new SecureRandom();

    private HuggingFaceExport() {
    }

    /**
     * What was written.
     *
     * @param out          the directory
     * @param source       the checkpoint exported
     * @param step         its step
     * @param model        the model
     * @param architecture the Hugging Face class that loads it
     * @param dtype        the weights' dtype
     * @param files        the files written, in the order written
     * @param tokenizerNote why no tokenizer files were written, when none were
     */
    public record Result(Path out, Path source, long step, ModelConfig model, String architecture, DType dtype, List<String> files,
                         Optional<String> tokenizerNote) {
    }

    /**
     * Exports the latest checkpoint of a run directory, or one checkpoint directory.
     *
     * @param from     a run directory or a checkpoint directory
     * @param out      the directory to write; created with its parents
     * @param dtype    F32 (the weights as trained) or BF16 (rounded to nearest-even)
     * @param force    replace {@code out} when it is a directory that is not empty
     * @param warnings receives the reasons when a run's latest checkpoint is damaged and an older one is used
     * @throws IOException              naming what is missing or damaged in {@code from}, or why {@code out} is not written
     * @throws IllegalArgumentException when the model has no Hugging Face architecture, or {@code out} may not be replaced
     */
    public static Result export(Path from, Path out, DType dtype, boolean force, Consumer<String> warnings) throws IOException {
        Objects.requireNonNull(dtype, "dtype");
        Path target = out.toAbsolutePath().normalize();
        InitialWeights source = InitialWeights.read(from, warnings);
        if (source.kind() != InitialWeights.Kind.CHECKPOINT) {
            throw new IllegalArgumentException(source.source() + " is a Hugging Face model directory already, not a muon4j run or "
                    + "checkpoint directory");
        }
        CheckpointStore.Checkpoint checkpoint = source.checkpoint().orElseThrow();
        ModelConfig model = source.model();
        String architecture = HuggingFaceConfig.architecture(model).orElseThrow(() -> new IllegalArgumentException(
                "checkpoint " + checkpoint.dir() + " cannot be exported: Hugging Face has no architecture for a Mixture-of-Experts "
                        + "model with grouped-query attention (DeepseekV3's attention is latent); train with --attention mla to export"));
        checkTarget(target, checkpoint.dir(), force);
        TokenizerKind tokenizer = source.tokenizer().orElseThrow(() -> new IOException("checkpoint " + checkpoint.dir()
                + " does not name its tokenizer"));
        CheckpointStore.restoreWeights(checkpoint, Trainer.savedTensors(model.create())); // the weights fit the model

        Map<String, TensorData> weights = new LinkedHashMap<>();
        for (Map.Entry<String, TensorData> w : checkpoint.weights().entrySet()) {
            weights.put(w.getKey(), new TensorData(dtype == DType.BF16 ? "BF16" : "F32", w.getValue().shape(), w.getValue().data()));
        }
        HuggingFaceConfig.SpecialTokens tokens = Trainer.specialTokens(tokenizer.encodingName());
        String torchDtype = dtype == DType.BF16 ? "bfloat16" : "float32";
        Map<String, Object> generation = new LinkedHashMap<>();
        generation.put("_from_model_config", true);
        generation.put("bos_token_id", tokens.bos());
        generation.put("eos_token_id", tokens.eos());
        Optional<HuggingFaceTokenizer.Files> tokenizerFiles = HuggingFaceTokenizer.files(tokenizer, model.contextLength());
        Map<String, Object> settings = new LinkedHashMap<>();
        settings.put("format", "muon4j-export");
        settings.put("version", 1);
        settings.put("source", checkpoint.dir().toString());
        settings.put("step", checkpoint.step());
        settings.put("model", model.toMap());
        settings.put("tokenizer", tokenizer.encodingName());
        settings.put("hugging_face", new CheckpointConfig.HuggingFace(architecture, HuggingFaceConfig.notes(model)));

        Path parent = target.getParent();
        Files.createDirectories(parent);
        Path tmp = parent.resolve(".tmp-export-" + target.getFileName() + "-" + nonce());
        List<String> written = new ArrayList<>();
        try {
            Files.createDirectory(tmp);
            json(tmp, "config.json", HuggingFaceConfig.of(model, tokens, torchDtype), written);
            Map<String, String> metadata = new LinkedHashMap<>();
            metadata.put("format", "pt"); // transformers reads safetensors whose metadata says "pt"
            metadata.put("producer", "muon4j");
            metadata.put("step", Long.toString(checkpoint.step()));
            file(tmp, CheckpointStore.MODEL_FILE, o -> SafeTensors.write(o, weights, metadata), written);
            json(tmp, "generation_config.json", generation, written);
            if (tokenizerFiles.isPresent()) {
                for (Map.Entry<String, Map<String, Object>> f : tokenizerFiles.get().json().entrySet()) {
                    json(tmp, f.getKey(), f.getValue(), written);
                }
                for (Map.Entry<String, String> f : tokenizerFiles.get().text().entrySet()) {
                    byte[] bytes = f.getValue().getBytes(StandardCharsets.UTF_8);
                    file(tmp, f.getKey(), o -> o.write(bytes), written);
                }
            }
            json(tmp, SETTINGS_FILE, settings, written);
            AtomicFiles.fsyncDirectory(tmp);
            replace(target, tmp);
        } catch (IOException | RuntimeException | Error e) {
            try {
                FileUtil.deleteRecursively(tmp);
            } catch (IOException cleanup) {
                e.addSuppressed(cleanup);
            }
            if (e instanceof IOException io) {
                throw new IOException(target + " was not written (" + io.getMessage() + ")", io);
            }
            throw e;
        }
        return new Result(target, checkpoint.dir(), checkpoint.step(), model, architecture, dtype, written,
                HuggingFaceTokenizer.unsupported(tokenizer));
    }

    /**
     * Refuses an output directory that would destroy something: a file, a non-empty directory unless forced,
     * and even when forced a directory holding muon4j checkpoints or the checkpoint being exported.
     */
    private static void checkTarget(Path target, Path checkpointDir, boolean force) throws IOException {
        Path source = checkpointDir.toAbsolutePath().normalize();
        if (source.startsWith(target)) {
            throw new IllegalArgumentException("--out " + target + " holds the checkpoint being exported (" + source
                    + "); give another directory");
        }
        if (target.startsWith(source)) {
            throw new IllegalArgumentException("--out " + target + " lies inside the checkpoint being exported (" + source
                    + "); give a directory outside it");
        }
        if (!Files.exists(target)) {
            return;
        }
        if (!Files.isDirectory(target)) {
            throw new IllegalArgumentException("--out " + target + " is a file, not a directory");
        }
        List<String> entries = new ArrayList<>();
        try (DirectoryStream<Path> stream = Files.newDirectoryStream(target)) {
            for (Path p : stream) {
                entries.add(p.getFileName().toString());
            }
        }
        if (entries.isEmpty()) {
            return;
        }
        if (entries.contains(CheckpointStore.MANIFEST_FILE) || entries.contains(CheckpointStore.LATEST_FILE)
                || entries.stream().anyMatch(n -> n.matches("step-\\d{8,18}"))) {
            throw new IllegalArgumentException("--out " + target + " holds muon4j checkpoints; export never replaces them, "
                    + "give another directory");
        }
        if (!force) {
            throw new IllegalArgumentException("--out " + target + " is not empty (" + entries.size() + " entr"
                    + (entries.size() == 1 ? "y" : "ies") + "); give --force to replace it, or another directory");
        }
    }

    /** Puts {@code tmp} in place of {@code target}: an existing one is moved aside first and deleted after. */
    private static void replace(Path target, Path tmp) throws IOException {
        Path parent = target.getParent();
        Path old = null;
        if (Files.exists(target)) {
            old = parent.resolve(".tmp-export-old-" + target.getFileName() + "-" + nonce());
            Files.move(target, old, StandardCopyOption.ATOMIC_MOVE);
        }
        try {
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            if (old != null) {
                Files.move(old, target, StandardCopyOption.ATOMIC_MOVE);
            }
            throw e;
        }
        AtomicFiles.fsyncDirectory(parent);
        if (old != null) {
            FileUtil.deleteRecursively(old);
        }
    }

    private interface Body {
        void write(OutputStream out) throws IOException;
    }

    private static void json(Path dir, String name, Object value, List<String> written) throws IOException {
        byte[] bytes = JsonCodec.prettyFile(value);
        file(dir, name, o -> o.write(bytes), written);
    }

    private static void file(Path dir, String name, Body body, List<String> written) throws IOException {
        try (var channel = java.nio.channels.FileChannel.open(dir.resolve(name), StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            OutputStream out = new java.io.BufferedOutputStream(java.nio.channels.Channels.newOutputStream(channel), 1 << 16);
            body.write(out);
            out.flush();
            channel.force(true);
        }
        written.add(name);
    }

    private static String nonce() {
        byte[] b = new byte[6];
        RANDOM.nextBytes(b);
        return HexFormat.of().formatHex(b);
    }
}
