package dev.muon4j.train;

import com.fasterxml.jackson.annotation.JsonProperty;
import dev.muon4j.backend.Kernels;
import dev.muon4j.io.AtomicFiles;
import dev.muon4j.io.JsonCodec;
import dev.muon4j.io.SafeTensors;
import dev.muon4j.io.TensorData;
import dev.muon4j.nn.ExpertTensors;
import dev.muon4j.optim.HybridOptimizer;
import dev.muon4j.optim.OptimizerState;
import dev.muon4j.optim.Parameter;
import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.DigestOutputStream;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.function.Consumer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Checkpoints of a training run, kept in a run directory so that a crash at any moment leaves the
 * latest complete checkpoint readable.
 *
 * <h2>Layout</h2>
 * <pre>
 * runDir/
 *   latest                   one line: the name of the current checkpoint directory, e.g. step-00000300
 *   step-00000200/
 *   step-00000300/
 *     model.safetensors      parameter name → value (F32), sorted by name; metadata producer=muon4j, step=N
 *     optimizer.safetensors  {@link OptimizerState#write the optimizer state}: a tensor per buffer; steps, parameters, rules in its metadata
 *     config.json            the model in Hugging Face's schema ({@link dev.muon4j.nn.HuggingFaceConfig})
 *     muon4j.json            muon4j's own settings (its model config, training config, tokenizer, data)
 *     trainer.json           the caller's JSON object (step, data position, seed, metrics so far)
 *     MANIFEST.json          {"format": "muon4j-checkpoint", "version": 1, "step": N,
 *                             "files": {name: {"size": bytes, "sha256": hex}, ...}} for the five files above
 *   .tmp-…                   leftovers of an interrupted save: ignored, deleted by the next save
 * </pre>
 * Step directories are named {@code step-} and the step with at least 8 digits. Checkpoints written
 * before the optimizer state became safetensors hold {@code optimizer.state} (format version 1 or 2)
 * in its place; they load as they are ({@link #LEGACY_OPTIMIZER_FILE}). Checkpoints written before config.json
 * followed Hugging Face's schema have no {@code muon4j.json}: their config.json holds muon4j's settings,
 * and {@link Checkpoint#config()} gives them from there ({@link Checkpoint#huggingFace()} is then empty).
 *
 * <h2>Saving</h2>
 * {@link #save} writes every file into a fresh {@code .tmp-step-…} directory inside the run
 * directory, fsyncs the files and that directory, atomically renames it to {@code step-N}, fsyncs
 * the run directory, and then atomically replaces {@code latest} (temporary file, fsync, rename).
 * Only after that are checkpoints beyond the newest {@code keep} (by step number; the one just
 * written always stays) deleted, each first renamed to a {@code .tmp-} name so that a half-deleted
 * directory never looks like a checkpoint. If writing fails (a full disk, say) the temporary
 * directory is removed, nothing else has changed, and the {@code IOException} says that the
 * checkpoint was not written and which previous checkpoint is kept. Saving a step that already
 * exists replaces that directory. The store assumes one writer per run directory; the trainer
 * ensures it by holding the directory's {@link RunLock} while it runs. Nothing with a NaN or an
 * infinity in its weights or optimizer state is ever written, and the optimizer state's step count
 * must be the checkpoint's step.
 *
 * <h2>Loading</h2>
 * {@link #latest} follows {@code latest}; when that file is missing, unreadable, names a missing
 * directory or a damaged checkpoint, it reports a warning and falls back to the newest complete
 * checkpoint that loads. {@link #load} verifies every file against the manifest (size and SHA-256;
 * errors name the damaged file) before parsing it, then refuses a checkpoint whose step is not the
 * same in every place that records it (directory name, manifest, weights' metadata, optimizer
 * state, trainer.json) or whose weights or optimizer state hold a NaN or an infinity; {@link #latest}
 * treats such a checkpoint as damaged and falls back to an older one. {@link #restoreWeights} (or {@link #checkModel})
 * then checks the weights against the model's parameters: the same names and shapes, or an error
 * saying that the checkpoint is from another model with the missing and unexpected names and the
 * shape mismatches.
 *
 * <p>JSON values come back as {@link JsonCodec} reads them: integral numbers as {@code Long}, others as
 * {@code Double}, objects as {@code LinkedHashMap}, arrays as {@code List}.
 */
public final class CheckpointStore {
    /** Default number of checkpoints kept. */
    public static final int DEFAULT_KEEP = 3;
    /** Name of the weights file in a checkpoint directory. */
    public static final String MODEL_FILE = "model.safetensors";
    /** Name of the optimizer state file in a checkpoint directory. */
    public static final String OPTIMIZER_FILE = "optimizer.safetensors";
    /**
     * Name of the optimizer state file in checkpoints written before the state became safetensors
     * (format versions 1 and 2): read when the manifest lists it instead of {@link #OPTIMIZER_FILE}.
     */
    public static final String LEGACY_OPTIMIZER_FILE = "optimizer.state";
    /**
     * Name of the model's configuration in Hugging Face's schema in a checkpoint directory; in checkpoints
     * without {@link #SETTINGS_FILE}, muon4j's settings.
     */
    public static final String CONFIG_FILE = "config.json";
    /** Name of muon4j's own settings (model, training, tokenizer, data) in a checkpoint directory, beside config.json. */
    public static final String SETTINGS_FILE = "muon4j.json";
    /** Name of the caller's trainer state file in a checkpoint directory. */
    public static final String TRAINER_FILE = "trainer.json";
    /** Name of the manifest (sizes and SHA-256 of the other files) in a checkpoint directory. */
    public static final String MANIFEST_FILE = "MANIFEST.json";
    /** Name of the pointer file in the run directory. */
    public static final String LATEST_FILE = "latest";
    /** The {@code "format"} value of a manifest. */
    public static final String MANIFEST_FORMAT = "muon4j-checkpoint";
    /** The manifest version this code writes and reads. */
    public static final int MANIFEST_VERSION = 1;

    private static final List<String> REQUIRED = List.of(MODEL_FILE, CONFIG_FILE, TRAINER_FILE);
    private static final Pattern STEP_DIR = Pattern.compile("step-(\\d{8,18})");
    private static final String TMP_PREFIX = ".tmp-";
    private static final SecureRandom RANDOM = new SecureRandom();
    private static final System.Logger LOG = System.getLogger(CheckpointStore.class.getName());

    /**
     * A loaded checkpoint.
     *
     * @param dir       its directory
     * @param step      the step it was saved at
     * @param weights   parameter name → value, in name order (unmodifiable)
     * @param optimizer   the optimizer state
     * @param config      muon4j's settings: muon4j.json's object, or config.json's in a checkpoint without muon4j.json
     * @param trainer     the caller's trainer.json object
     * @param huggingFace config.json's object when it is in Hugging Face's schema (beside muon4j.json); empty otherwise
     */
    public record Checkpoint(Path dir, long step, Map<String, TensorData> weights, OptimizerState optimizer,
                             Map<String, Object> config, Map<String, Object> trainer, Map<String, Object> huggingFace) {
        /** Checks for nulls and makes the maps unmodifiable (shallow). */
        public Checkpoint {
            Objects.requireNonNull(dir, "dir");
            weights = Collections.unmodifiableMap(new LinkedHashMap<>(weights));
            Objects.requireNonNull(optimizer, "optimizer");
            config = Collections.unmodifiableMap(new LinkedHashMap<>(config));
            trainer = Collections.unmodifiableMap(new LinkedHashMap<>(trainer));
            huggingFace = Collections.unmodifiableMap(new LinkedHashMap<>(huggingFace));
        }

        /** A checkpoint whose config.json holds muon4j's settings (no Hugging Face config). */
        public Checkpoint(Path dir, long step, Map<String, TensorData> weights, OptimizerState optimizer,
                          Map<String, Object> config, Map<String, Object> trainer) {
            this(dir, step, weights, optimizer, config, trainer, Map.of());
        }
    }

    /**
     * The manifest of a checkpoint directory: what it holds and how to tell that a file is intact.
     *
     * @param format  {@value #MANIFEST_FORMAT}
     * @param version {@value #MANIFEST_VERSION}
     * @param step    the checkpoint's step, ≥ 0
     * @param files   file name → its size and SHA-256
     */
    record Manifest(@JsonProperty(required = true) String format, @JsonProperty(required = true) int version,
                    @JsonProperty(required = true) long step, @JsonProperty(required = true) Map<String, FileEntry> files) {
        Manifest {
            if (step < 0) {
                throw new IllegalArgumentException("the step is " + step + ", below 0");
            }
            if (files == null) {
                throw new IllegalArgumentException("it has no \"files\" object");
            }
            files.forEach((name, entry) -> {
                if (entry == null) {
                    throw new IllegalArgumentException("the entry of " + name + " is null");
                }
            });
            files = Collections.unmodifiableMap(new LinkedHashMap<>(files));
        }
    }

    /**
     * A file's entry in the manifest.
     *
     * @param size   its size in bytes, ≥ 0
     * @param sha256 its SHA-256, 64 hex digits
     */
    record FileEntry(@JsonProperty(required = true) long size, @JsonProperty(required = true) String sha256) {
        FileEntry {
            if (size < 0) {
                throw new IllegalArgumentException("the size is " + size + ", below 0");
            }
            if (sha256 == null || !sha256.matches("[0-9a-fA-F]{64}")) {
                throw new IllegalArgumentException("the sha256 is " + (sha256 == null ? "missing" : "'" + abbreviate(sha256) + "'")
                        + ", not 64 hex digits");
            }
        }
    }

    /** Hook that wraps every stream the store writes itself: lets tests simulate a full disk. */
    interface StreamWrapper {
        /** The stream to write {@code fileName} through; {@code out} goes to the file. */
        OutputStream wrap(String fileName, OutputStream out) throws IOException;
    }

    private final Path runDir;
    private final int keep;
    private final Consumer<String> warnings;
    private final StreamWrapper wrapper;

    /** A store in {@code runDir} (created on the first save) keeping the newest {@value #DEFAULT_KEEP} checkpoints. */
    public CheckpointStore(Path runDir) {
        this(runDir, DEFAULT_KEEP);
    }

    /**
     * A store in {@code runDir} (created on the first save) keeping the newest {@code keep}
     * checkpoints, warnings going to the {@link System.Logger} of this class.
     */
    public CheckpointStore(Path runDir, int keep) {
        this(runDir, keep, message -> LOG.log(System.Logger.Level.WARNING, message));
    }

    /**
     * A store in {@code runDir} keeping the newest {@code keep} (≥ 1) checkpoints, warnings (fallbacks
     * while loading, failures to prune or clean up) going to {@code warnings}.
     */
    public CheckpointStore(Path runDir, int keep, Consumer<String> warnings) {
        this(runDir, keep, warnings, (name, out) -> out);
    }

    CheckpointStore(Path runDir, int keep, Consumer<String> warnings, StreamWrapper wrapper) {
        if (keep < 1) {
            throw new IllegalArgumentException("keep must be >= 1, got " + keep);
        }
        this.runDir = runDir.toAbsolutePath().normalize();
        this.keep = keep;
        this.warnings = Objects.requireNonNull(warnings, "warnings");
        this.wrapper = Objects.requireNonNull(wrapper, "wrapper");
    }

    /** The run directory. */
    public Path runDir() {
        return runDir;
    }

    /** How many checkpoints are kept. */
    public int keep() {
        return keep;
    }

    /** The directory name of a step's checkpoint: {@code step-} and the step with at least 8 digits. */
    public static String dirName(long step) {
        if (step < 0) {
            throw new IllegalArgumentException("step must be >= 0, got " + step);
        }
        return String.format("step-%08d", step);
    }

    /** The step of a checkpoint directory name, or -1 when the name is not one. */
    private static long stepOf(String name) {
        Matcher m = STEP_DIR.matcher(name);
        if (!m.matches()) {
            return -1;
        }
        long step = Long.parseLong(m.group(1));
        return dirName(step).equals(name) ? step : -1;
    }

    /**
     * The complete checkpoint directories (a {@code step-N} directory holding a manifest), oldest
     * step first. Their files are not verified here.
     */
    public List<Path> checkpoints() throws IOException {
        List<Path> dirs = new ArrayList<>();
        if (!Files.isDirectory(runDir)) {
            return dirs;
        }
        try (DirectoryStream<Path> stream = Files.newDirectoryStream(runDir)) {
            for (Path p : stream) {
                if (stepOf(p.getFileName().toString()) >= 0 && Files.isDirectory(p) && Files.isRegularFile(p.resolve(MANIFEST_FILE))) {
                    dirs.add(p);
                }
            }
        }
        dirs.sort(Comparator.comparingLong(p -> stepOf(p.getFileName().toString())));
        return dirs;
    }

    // ------------------------------------------------------------------------------------------ saving

    /**
     * Saves a checkpoint atomically (see the class description) and prunes old ones.
     *
     * @param step    the training step (≥ 0); names the directory
     * @param params  the model's parameters; their values are written as F32 under their names
     * @param state   the optimizer state
     * @param config  written to config.json: a record or a map that {@link JsonCodec#write} turns into a JSON object;
     *                {@link Checkpoint#config()} when loaded
     * @param trainer written to trainer.json: a record or a map that {@link JsonCodec#write} turns into a JSON object
     * @return the new checkpoint directory
     * @throws IllegalArgumentException before anything is written, for duplicate parameter names,
     *                                  values JSON cannot hold (NaN, Infinity, other types), an
     *                                  optimizer state (applied + skipped steps) or trainer step other
     *                                  than {@code step}, or a NaN or infinite weight or state value
     * @throws IOException              if writing fails: the message says that the checkpoint was not
     *                                  written and which previous checkpoint is kept (or, if only the
     *                                  {@code latest} pointer could not be replaced, that the
     *                                  directory was written but {@code latest} still names the old one)
     */
    public Path save(long step, List<Parameter> params, OptimizerState state, Object config, Object trainer) throws IOException {
        return save(step, params, state, config, null, trainer);
    }

    /**
     * Saves a checkpoint as {@link #save(long, List, OptimizerState, Object, Object)} does, with the model's
     * configuration in Hugging Face's schema as config.json and muon4j's own settings beside it as
     * muon4j.json; loaded, {@link Checkpoint#config()} is muon4j.json's object and
     * {@link Checkpoint#huggingFace()} config.json's.
     *
     * @param huggingFace written to config.json: a record or a map that {@link JsonCodec#write} turns into a JSON object
     * @param settings    written to muon4j.json, likewise; null writes none, and {@code huggingFace} is then the
     *                    caller's config as in the other {@code save}
     */
    public Path save(long step, List<Parameter> params, OptimizerState state, Object huggingFace, Object settings, Object trainer)
            throws IOException {
        String name = dirName(step);
        Objects.requireNonNull(state, "optimizer state");
        Map<String, TensorData> tensors = new LinkedHashMap<>();
        for (Parameter p : params) {
            for (ExpertTensors.Piece piece : ExpertTensors.pieces(p)) {
                float[] values = piece.offset() == 0 && piece.length() == p.size() ? p.value()
                        : Arrays.copyOfRange(p.value(), piece.offset(), piece.offset() + piece.length());
                if (tensors.put(piece.name(), TensorData.f32(piece.shape(), values)) != null) {
                    throw new IllegalArgumentException("two parameters are named " + piece.name());
                }
            }
        }
        byte[] configJson = jsonBytes(Objects.requireNonNull(huggingFace, "config"), CONFIG_FILE);
        byte[] settingsJson = settings == null ? null : jsonBytes(settings, SETTINGS_FILE);
        byte[] trainerJson = jsonBytes(Objects.requireNonNull(trainer, "trainer"), TRAINER_FILE);
        if (state.step() + state.skippedSteps() != step) {
            throw new IllegalArgumentException("checkpoint " + name + ": the optimizer state has taken " + (state.step()
                    + state.skippedSteps()) + " steps (" + state.step() + " applied + " + state.skippedSteps() + " skipped), not " + step);
        }
        if (JsonCodec.parseObject(new String(trainerJson, StandardCharsets.UTF_8)).get("step") instanceof Number t && t.longValue() != step) {
            throw new IllegalArgumentException("checkpoint " + name + ": trainer.json's step is " + t + ", not " + step);
        }
        Optional<String> bad = firstNonFinite(tensors, OPTIMIZER_FILE, state);
        if (bad.isPresent()) {
            throw new IllegalArgumentException("refusing to write checkpoint " + name + ": " + bad.get());
        }
        Map<String, String> metadata = new LinkedHashMap<>();
        metadata.put("format", "pt"); // transformers reads safetensors whose metadata says "pt"
        metadata.put("producer", "muon4j");
        metadata.put("step", Long.toString(step));

        Files.createDirectories(runDir);
        cleanLeftovers();
        String previous = describePrevious();
        Path target = runDir.resolve(name);
        Path tmp = runDir.resolve(TMP_PREFIX + name + "-" + nonce());
        try {
            Files.createDirectory(tmp);
            Map<String, FileEntry> files = new LinkedHashMap<>();
            files.put(MODEL_FILE, writeFile(tmp, MODEL_FILE, out -> SafeTensors.write(out, tensors, metadata)));
            Path optimizerFile = tmp.resolve(OPTIMIZER_FILE);
            state.write(optimizerFile);
            files.put(OPTIMIZER_FILE, new FileEntry(Files.size(optimizerFile), FileUtil.sha256(optimizerFile)));
            files.put(CONFIG_FILE, writeFile(tmp, CONFIG_FILE, out -> out.write(configJson)));
            if (settingsJson != null) {
                files.put(SETTINGS_FILE, writeFile(tmp, SETTINGS_FILE, out -> out.write(settingsJson)));
            }
            files.put(TRAINER_FILE, writeFile(tmp, TRAINER_FILE, out -> out.write(trainerJson)));
            byte[] manifestJson = JsonCodec.prettyFile(new Manifest(MANIFEST_FORMAT, MANIFEST_VERSION, step, files));
            writeFile(tmp, MANIFEST_FILE, out -> out.write(manifestJson));
            AtomicFiles.fsyncDirectory(tmp);
            if (Files.exists(target)) {
                // Re-saving a step: move the old directory out of the way (deleted by the next save).
                atomicMove(target, runDir.resolve(TMP_PREFIX + "replaced-" + name + "-" + nonce()));
            }
            atomicMove(tmp, target);
            AtomicFiles.fsyncDirectory(runDir);
        } catch (IOException | UncheckedIOException e) {
            deleteQuietly(tmp, e);
            throw new IOException("checkpoint " + name + " was not written (" + e.getMessage() + "); " + previous, e);
        } catch (RuntimeException | Error e) {
            deleteQuietly(tmp, e);
            throw e;
        }
        try {
            writeLatest(name);
        } catch (IOException e) {
            throw new IOException("checkpoint " + name + " was written to " + target + " but the '" + LATEST_FILE
                    + "' pointer could not be replaced (" + e.getMessage() + "); it still names the previous checkpoint", e);
        }
        prune(target);
        return target;
    }

    private static void deleteQuietly(Path tmp, Throwable failure) {
        try {
            FileUtil.deleteRecursively(tmp);
        } catch (IOException cleanup) {
            failure.addSuppressed(cleanup);
        }
    }

    /** The file's bytes: the value as a pretty-printed JSON object. */
    private static byte[] jsonBytes(Object value, String file) {
        byte[] bytes;
        try {
            bytes = JsonCodec.prettyFile(value);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(file + ": " + e.getMessage(), e);
        }
        if (bytes.length == 0 || bytes[0] != '{') {
            throw new IllegalArgumentException(file + ": a " + value.getClass().getSimpleName() + " is not written as a JSON object");
        }
        return bytes;
    }

    private static String nonce() {
        byte[] b = new byte[6];
        RANDOM.nextBytes(b);
        return HexFormat.of().formatHex(b);
    }

    private String describePrevious() {
        try {
            Path latest = runDir.resolve(LATEST_FILE);
            if (Files.isRegularFile(latest)) {
                String named = Files.readString(latest).trim();
                if (stepOf(named) >= 0 && Files.isDirectory(runDir.resolve(named))) {
                    return "the previous checkpoint " + runDir.resolve(named) + " is kept";
                }
            }
            List<Path> dirs = checkpoints();
            if (!dirs.isEmpty()) {
                return "the previous checkpoint " + dirs.getLast() + " is kept";
            }
        } catch (IOException | RuntimeException e) {
            return "the previous checkpoints in " + runDir + " are kept";
        }
        return "no earlier checkpoint exists in " + runDir;
    }

    private interface Body {
        void write(OutputStream out) throws IOException;
    }

    /** Writes a new file through the wrapper, fsyncs it, and returns its manifest entry. */
    private FileEntry writeFile(Path dir, String fileName, Body body) throws IOException {
        Path file = dir.resolve(fileName);
        MessageDigest digest = FileUtil.sha256();
        long size;
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            OutputStream raw = wrapper.wrap(fileName, Channels.newOutputStream(channel));
            DigestOutputStream out = new DigestOutputStream(new BufferedOutputStream(raw, 1 << 16), digest);
            body.write(out);
            out.flush();
            channel.force(true);
            size = channel.size();
        }
        return new FileEntry(size, HexFormat.of().formatHex(digest.digest()));
    }

    private static void atomicMove(Path from, Path to) throws IOException {
        try {
            Files.move(from, to, StandardCopyOption.ATOMIC_MOVE);
        } catch (AtomicMoveNotSupportedException e) {
            throw new IOException("cannot atomically rename " + from + " to " + to + ": the file system does not support atomic moves", e);
        }
    }

    private void writeLatest(String name) throws IOException {
        Path tmp = runDir.resolve(TMP_PREFIX + LATEST_FILE + "-" + nonce());
        try {
            byte[] line = (name + "\n").getBytes(StandardCharsets.US_ASCII);
            writeFile(runDir, tmp.getFileName().toString(), out -> out.write(line));
            Files.move(tmp, runDir.resolve(LATEST_FILE), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            AtomicFiles.fsyncDirectory(runDir);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    /** Deletes {@code .tmp-} leftovers of interrupted saves and deletions; failures are warnings. */
    private void cleanLeftovers() {
        try (DirectoryStream<Path> stream = Files.newDirectoryStream(runDir, TMP_PREFIX + "*")) {
            for (Path p : stream) {
                try {
                    FileUtil.deleteRecursively(p);
                } catch (IOException e) {
                    warnings.accept("could not delete the leftover " + p + ": " + e.getMessage());
                }
            }
        } catch (IOException e) {
            warnings.accept("could not list " + runDir + " for leftovers: " + e.getMessage());
        }
    }

    /** Deletes checkpoints beyond the newest {@code keep}, never {@code justWritten}; failures are warnings. */
    private void prune(Path justWritten) {
        try {
            List<Path> dirs = new ArrayList<>(checkpoints());
            dirs.remove(justWritten);
            int surplus = dirs.size() + 1 - keep;
            for (int i = 0; i < surplus; i++) {
                Path old = dirs.get(i);
                try {
                    Path doomed = runDir.resolve(TMP_PREFIX + "delete-" + old.getFileName() + "-" + nonce());
                    atomicMove(old, doomed);
                    FileUtil.deleteRecursively(doomed);
                } catch (IOException e) {
                    warnings.accept("could not delete the old checkpoint " + old + ": " + e.getMessage());
                }
            }
        } catch (IOException e) {
            warnings.accept("could not prune old checkpoints in " + runDir + ": " + e.getMessage());
        }
    }

    // ------------------------------------------------------------------------------------------ loading

    /**
     * The current checkpoint: the one {@code latest} names, or, with a warning, the newest complete
     * checkpoint that loads when {@code latest} is missing, names a missing directory or a damaged
     * checkpoint. Every file is verified as in {@link #load}.
     *
     * @return empty when the run directory holds no checkpoint and no {@code latest} file
     * @throws IOException when checkpoints (or a {@code latest} file) exist but none loads; the
     *                     message lists each failure
     */
    public Optional<Checkpoint> latest() throws IOException {
        Path latestFile = runDir.resolve(LATEST_FILE);
        List<Path> dirs = new ArrayList<>(checkpoints());
        Collections.reverse(dirs);
        List<String> failures = new ArrayList<>();
        Path named = null;
        boolean pointerExists = Files.exists(latestFile);
        if (pointerExists) {
            String content;
            try {
                content = Files.readString(latestFile, StandardCharsets.US_ASCII).trim();
            } catch (IOException e) {
                content = null;
                failures.add(latestFile + " cannot be read: " + e.getMessage());
            }
            if (content != null && stepOf(content) < 0) {
                failures.add(latestFile + " does not name a checkpoint directory (it holds '" + abbreviate(content) + "')");
            } else if (content != null) {
                named = runDir.resolve(content);
                if (!Files.isDirectory(named)) {
                    failures.add(latestFile + " names " + content + ", which does not exist");
                } else {
                    try {
                        return Optional.of(load(named));
                    } catch (IOException e) {
                        failures.add(latestFile + " names " + content + ", which is damaged: " + e.getMessage());
                    }
                }
            }
        } else if (!dirs.isEmpty()) {
            failures.add("there is no '" + LATEST_FILE + "' file in " + runDir);
        }
        for (Path dir : dirs) {
            if (dir.equals(named)) {
                continue;
            }
            try {
                Checkpoint checkpoint = load(dir);
                warnings.accept(String.join("; ", failures) + "; falling back to the newest complete checkpoint " + dir);
                return Optional.of(checkpoint);
            } catch (IOException e) {
                failures.add(dir.getFileName() + " is damaged: " + e.getMessage());
            }
        }
        if (failures.isEmpty()) {
            return Optional.empty();
        }
        throw new IOException("no loadable checkpoint in " + runDir + ": " + String.join("; ", failures));
    }

    private static String abbreviate(String s) {
        return s.length() <= 80 ? s : s.substring(0, 80) + "…";
    }

    /**
     * Loads and verifies one checkpoint directory: the manifest must list the four files (five with muon4j.json), each must
     * have the listed size and SHA-256, and each must parse.
     *
     * @throws IOException naming the missing, truncated or damaged file
     */
    public Checkpoint load(Path dir) throws IOException {
        if (!Files.isDirectory(dir)) {
            throw new IOException("checkpoint directory " + dir + " does not exist");
        }
        Path manifestFile = dir.resolve(MANIFEST_FILE);
        if (!Files.isRegularFile(manifestFile)) {
            throw new IOException("checkpoint " + dir + " is incomplete: " + MANIFEST_FILE + " is missing");
        }
        Map<String, Object> raw = JsonCodec.readObject(manifestFile);
        if (!MANIFEST_FORMAT.equals(raw.get("format"))) {
            throw new IOException(manifestFile + " is not a muon4j checkpoint manifest (format " + raw.get("format") + ")");
        }
        if (!Long.valueOf(MANIFEST_VERSION).equals(raw.get("version"))) {
            throw new IOException(manifestFile + " has manifest version " + raw.get("version") + "; this muon4j reads version "
                    + MANIFEST_VERSION);
        }
        Manifest manifest = JsonCodec.convert(manifestFile, raw, Manifest.class, "the manifest");
        Map<String, FileEntry> files = manifest.files();
        for (String required : REQUIRED) {
            if (!files.containsKey(required)) {
                throw new IOException(manifestFile + " does not list " + required);
            }
        }
        String optimizerFile = files.containsKey(OPTIMIZER_FILE) ? OPTIMIZER_FILE : LEGACY_OPTIMIZER_FILE;
        if (!files.containsKey(optimizerFile)) {
            throw new IOException(manifestFile + " does not list " + OPTIMIZER_FILE + " (nor " + LEGACY_OPTIMIZER_FILE
                    + ", its name in older checkpoints)");
        }
        for (Map.Entry<String, FileEntry> e : files.entrySet()) {
            verify(dir, manifestFile, e.getKey(), e.getValue());
        }
        long step = manifest.step();
        SafeTensors.Contents model = SafeTensors.read(dir.resolve(MODEL_FILE));
        OptimizerState optimizer = OptimizerState.read(dir.resolve(optimizerFile));
        Map<String, Object> config = JsonCodec.readObject(dir.resolve(CONFIG_FILE));
        Map<String, Object> huggingFace = Map.of();
        if (files.containsKey(SETTINGS_FILE)) {
            huggingFace = config;
            config = JsonCodec.readObject(dir.resolve(SETTINGS_FILE));
        }
        Map<String, Object> trainer = JsonCodec.readObject(dir.resolve(TRAINER_FILE));
        checkSteps(dir, step, model.metadata(), optimizerFile, optimizer, trainer);
        checkFinite(dir, model.tensors(), optimizerFile, optimizer);
        return new Checkpoint(dir, step, model.tensors(), optimizer, config, trainer, huggingFace);
    }

    /**
     * Every place that records a checkpoint's step must agree: the directory name, the manifest, the
     * weights' metadata, the optimizer state (steps applied plus skipped) and trainer.json's
     * {@code "step"} when it has one. An edited manifest or a state from another step is refused.
     */
    private static void checkSteps(Path dir, long step, Map<String, String> metadata, String optimizerFile, OptimizerState optimizer,
                                   Map<String, Object> trainer) throws IOException {
        List<String> disagree = new ArrayList<>();
        Path dirName = dir.toAbsolutePath().normalize().getFileName();
        long named = dirName == null ? -1 : stepOf(dirName.toString());
        if (named >= 0 && named != step) {
            disagree.add("the directory name says " + named);
        }
        String meta = metadata.get("step");
        if (meta == null) {
            disagree.add(MODEL_FILE + " has no step in its metadata");
        } else if (!meta.equals(Long.toString(step))) {
            disagree.add(MODEL_FILE + "'s metadata says " + abbreviate(meta));
        }
        if (optimizer.step() + optimizer.skippedSteps() != step) {
            disagree.add(optimizerFile + " says " + (optimizer.step() + optimizer.skippedSteps()) + " (" + optimizer.step()
                    + " applied + " + optimizer.skippedSteps() + " skipped)");
        }
        Object t = trainer.get("step");
        if (t != null && !(t instanceof Long l && l == step)) {
            disagree.add(TRAINER_FILE + " says " + t);
        }
        if (!disagree.isEmpty()) {
            throw new IOException("checkpoint " + dir + " is inconsistent: " + dir.resolve(MANIFEST_FILE) + " says step " + step + " but "
                    + String.join(", ", disagree));
        }
    }

    /** A checkpoint holding NaN or infinity (weights or optimizer state) can only continue a broken run. */
    private static void checkFinite(Path dir, Map<String, TensorData> weights, String optimizerFile, OptimizerState optimizer)
            throws IOException {
        Optional<String> bad = firstNonFinite(weights, optimizerFile, optimizer);
        if (bad.isPresent()) {
            throw new IOException("checkpoint " + dir + " holds a non-finite value: " + bad.get());
        }
    }

    private static Optional<String> firstNonFinite(Map<String, TensorData> weights, String optimizerFile, OptimizerState optimizer) {
        for (Map.Entry<String, TensorData> w : weights.entrySet()) {
            float[] v = w.getValue().data();
            int bad = Kernels.firstNonFinite(v, 0, v.length);
            if (bad >= 0) {
                return Optional.of(MODEL_FILE + " " + w.getKey() + " element " + bad + " is " + v[bad]);
            }
        }
        for (Map.Entry<String, OptimizerState.Entry> e : optimizer.entries().entrySet()) {
            for (Map.Entry<String, float[]> b : e.getValue().buffers().entrySet()) {
                float[] v = b.getValue();
                int bad = Kernels.firstNonFinite(v, 0, v.length);
                if (bad >= 0) {
                    return Optional.of(optimizerFile + " " + HybridOptimizer.describeNonFinite(b.getKey(), e.getKey(), bad, v[bad]));
                }
            }
        }
        return Optional.empty();
    }

    private static void verify(Path dir, Path manifestFile, String name, FileEntry entry) throws IOException {
        if (name.isEmpty() || name.contains("/") || name.contains("\\") || name.equals(".") || name.equals("..")
                || name.chars().anyMatch(c -> c < 0x20)) {
            throw new IOException(manifestFile + " is damaged: invalid file name " + JsonCodec.write(name));
        }
        long size = entry.size();
        String sha256 = entry.sha256();
        Path file;
        try {
            file = dir.resolve(name);
        } catch (InvalidPathException e) {
            throw new IOException(manifestFile + " is damaged: invalid file name " + JsonCodec.write(name) + " (" + e.getMessage() + ")");
        }
        if (!Files.isRegularFile(file)) {
            throw new IOException("checkpoint " + dir + " is incomplete: " + file + " is missing (listed in " + manifestFile + ")");
        }
        long actual = Files.size(file);
        if (actual != size) {
            throw new IOException(file + " is " + (actual < size ? "truncated" : "damaged") + ": it has " + actual
                    + " bytes, " + manifestFile + " says " + size);
        }
        String actualSha = FileUtil.sha256(file);
        if (!actualSha.equalsIgnoreCase(sha256)) {
            throw new IOException(file + " is damaged: its SHA-256 " + actualSha + " does not match " + sha256 + " in "
                    + manifestFile);
        }
    }

    // ------------------------------------------------------------------------------------------ model check

    /**
     * Checks that a checkpoint's weights have exactly the names and shapes of {@code params}.
     *
     * @throws IllegalArgumentException "checkpoint … is from another model" listing missing and
     *                                  unexpected parameter names and shape mismatches
     */
    public static void checkModel(Checkpoint checkpoint, List<Parameter> params) {
        checkModel("checkpoint " + checkpoint.dir(), checkpoint.weights(), params);
    }

    /**
     * Checks that {@code weights} have exactly the names and shapes of {@code params}.
     *
     * @param source names the weights in the error, e.g. "checkpoint /runs/a/step-00000300"
     * @throws IllegalArgumentException "{@code source} is from another model" listing missing and
     *                                  unexpected parameter names and shape mismatches
     */
    public static void checkModel(String source, Map<String, TensorData> weights, List<Parameter> params) {
        List<String> missing = new ArrayList<>();
        List<String> mismatched = new ArrayList<>();
        Set<String> expected = new HashSet<>();
        for (Parameter p : params) {
            for (ExpertTensors.Piece piece : ExpertTensors.pieces(p)) {
                expected.add(piece.name());
                TensorData t = weights.get(piece.name());
                if (t == null) {
                    missing.add(piece.name());
                } else if (!Arrays.equals(t.shape(), piece.shape())) {
                    mismatched.add(piece.name() + " (checkpoint " + Arrays.toString(t.shape()) + ", model "
                            + Arrays.toString(piece.shape()) + ")");
                }
            }
        }
        List<String> unexpected = weights.keySet().stream().filter(n -> !expected.contains(n)).toList();
        if (missing.isEmpty() && unexpected.isEmpty() && mismatched.isEmpty()) {
            return;
        }
        StringBuilder sb = new StringBuilder(source + " is from another model:");
        appendList(sb, "missing parameters", missing);
        appendList(sb, "unexpected parameters", unexpected);
        appendList(sb, "shape mismatches", mismatched);
        throw new IllegalArgumentException(sb.toString());
    }

    private static void appendList(StringBuilder sb, String what, List<String> items) {
        if (items.isEmpty()) {
            return;
        }
        int shown = Math.min(items.size(), 20);
        sb.append(' ').append(what).append(' ').append(items.subList(0, shown));
        if (shown < items.size()) {
            sb.append(" and ").append(items.size() - shown).append(" more");
        }
        sb.append(';');
    }

    /**
     * Copies the checkpoint's weights into the parameters' value arrays after {@link #checkModel}.
     * Nothing is copied when the check fails.
     *
     * @throws IllegalArgumentException when the checkpoint is from another model
     */
    public static void restoreWeights(Checkpoint checkpoint, List<Parameter> params) {
        restoreWeights("checkpoint " + checkpoint.dir(), checkpoint.weights(), params);
    }

    /**
     * Copies {@code weights} into the parameters' value arrays after {@link #checkModel(String, Map, List)}.
     * Nothing is copied when the check fails.
     *
     * @throws IllegalArgumentException when the weights are from another model
     */
    public static void restoreWeights(String source, Map<String, TensorData> weights, List<Parameter> params) {
        checkModel(source, weights, params);
        for (Parameter p : params) {
            for (ExpertTensors.Piece piece : ExpertTensors.pieces(p)) {
                float[] values = weights.get(piece.name()).data();
                System.arraycopy(values, 0, p.value(), piece.offset(), piece.length());
            }
        }
    }
}
