package dev.muon4j.optim;

import dev.muon4j.io.JsonCodec;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;

/**
 * An optimizer's state, keyed by parameter name (never by position): per parameter its route, its
 * shape, the update rule that keeps its state and named buffers; the step counts; and the
 * configuration of every update rule.
 *
 * <p>{@link #write} writes a <a href="https://github.com/huggingface/safetensors">safetensors</a>
 * file (format version {@value #FORMAT_VERSION}) that Python's {@code safetensors} and PyTorch read:
 * one F32 tensor per buffer, named {@code <parameter>/<buffer>}
 * ({@code model.layers.0.mlp.up_proj.weight/momentum}), of the buffer's own shape (the parameter's
 * shape for a buffer of the parameter's size, one dimension for any other, such as NorMuon's per-row
 * {@code row_second_moment}); and in the header's {@code __metadata__} (strings only, as the format
 * wants):
 * <pre>
 * format           "muon4j-optimizer-state"
 * format_version   "3"
 * step             applied steps, e.g. "300"
 * skipped_steps    steps skipped for non-finite gradients, e.g. "0"
 * parameters       JSON: {"name": {"route": "muon", "shape": [1024, 256], "rule": "muon",
 *                                  "buffers": ["momentum"]}, ...} in the optimizer's parameter order;
 *                  parameters without buffers are listed too; "rule" is left out when not recorded
 * rules            JSON: {"muon": {"family": "muon", "transforms": [{"name": "momentum",
 *                                  "settings": {"form": "ema", "nesterov": true, "beta": 0.95}}, ...]}, ...}
 * data_crc32       CRC-32 of the data section (the bytes after the header), 8 hex digits
 * metadata_crc32   CRC-32 of the other metadata entries written as one compact JSON object with
 *                  sorted keys, 8 hex digits
 * </pre>
 * The two checksums catch a flipped bit anywhere in a state file, also outside a checkpoint; the
 * tensors' own header entries are checked against the metadata instead. The write is atomic: a
 * reader sees the old file or the complete new one, never a part.
 *
 * <p>{@link #read} tells the formats apart by their first bytes: a safetensors file starts with its
 * 8-byte little-endian header size and then <code>'&#123;'</code>; the state files of format versions 1 and 2,
 * muon4j's own layout from before, start with {@code "MUON4JOS"} and still load, so converting one
 * is {@code OptimizerState.read(old).write(new)}.
 */
public final class OptimizerState {
    /** Version of the format this code writes: safetensors with the metadata above. */
    public static final int FORMAT_VERSION = 3;
    /** The oldest format this code reads: version 1, muon4j's own layout, every buffer of its parameter's shape. */
    public static final int OLDEST_READABLE_VERSION = 1;
    /** Highest rank of a parameter's shape. */
    static final int MAX_RANK = 16;
    /** Most buffers one parameter may have. */
    static final int MAX_BUFFERS = 64;

    /**
     * One parameter's state.
     *
     * @param route   the route it was optimised by
     * @param shape   the parameter's shape
     * @param rule    the name of the update rule that keeps its state, a key of {@link #rules()}; null
     *                when not recorded (state of format versions 1 and 2)
     * @param buffers named buffers (e.g. "momentum"), in the order the rule's stages declare them
     */
    public record Entry(Route route, int[] shape, String rule, Map<String, float[]> buffers) {
        /** Copies the shape and the buffers. */
        public Entry {
            Objects.requireNonNull(route, "route");
            shape = shape.clone();
            LinkedHashMap<String, float[]> copy = new LinkedHashMap<>();
            buffers.forEach((k, v) -> copy.put(k, v.clone()));
            buffers = Collections.unmodifiableMap(copy);
        }

        /** An entry whose rule is not recorded. */
        public Entry(Route route, int[] shape, Map<String, float[]> buffers) {
            this(route, shape, null, buffers);
        }

        /** A copy of the shape. */
        @Override
        public int[] shape() {
            return shape.clone();
        }
    }

    /**
     * One stage of a saved update rule: its name and its settings ({@link UpdateTransform#settings}),
     * held as JSON values: strings, booleans, numbers ({@code Long} when integral, else {@code Double}),
     * lists and maps.
     */
    public record Stage(String name, Map<String, Object> settings) {
        /** Copies the settings through JSON, so that settings read back from a file equal the saved ones. */
        public Stage {
            Objects.requireNonNull(name, "stage name");
            settings = Collections.unmodifiableMap(JsonCodec.parseObject(JsonCodec.write(Objects.requireNonNull(settings, "settings"))));
        }
    }

    /**
     * A saved update rule: the chain of stages that kept the state, with their settings.
     *
     * @param family the route the rule belongs to
     * @param stages the stages in order
     */
    public record Rule(Route family, List<Stage> stages) {
        public Rule {
            Objects.requireNonNull(family, "family");
            stages = List.copyOf(stages);
        }

        /** The description of {@code rule}: its family and every stage's name and settings. */
        public static Rule of(UpdateRule rule) {
            List<Stage> stages = new ArrayList<>();
            for (UpdateTransform t : rule.transforms()) {
                stages.add(new Stage(t.name(), t.settings()));
            }
            return new Rule(rule.family(), stages);
        }
    }

    private final long step;
    private final long skippedSteps;
    private final Map<String, Entry> entries;
    private final Map<String, Rule> rules;

    /**
     * A state of {@code step} applied and {@code skippedSteps} skipped steps without recorded rules.
     *
     * @param entries parameter name → entry, in the optimizer's parameter order (copied); no entry may name a rule
     * @throws IllegalArgumentException when a step count is negative or an entry names a rule
     */
    public OptimizerState(long step, long skippedSteps, Map<String, Entry> entries) {
        this(step, skippedSteps, entries, Map.of());
    }

    /**
     * A state of {@code step} applied and {@code skippedSteps} skipped steps.
     *
     * @param entries parameter name → entry, in the optimizer's parameter order (copied)
     * @param rules   rule name → rule, every rule an entry names (copied)
     * @throws IllegalArgumentException when a step count is negative, or an entry names a rule that
     *                                  {@code rules} lacks or that is of another family than its route
     */
    public OptimizerState(long step, long skippedSteps, Map<String, Entry> entries, Map<String, Rule> rules) {
        if (step < 0 || skippedSteps < 0) {
            throw new IllegalArgumentException("step counts must be >= 0, got " + step + " and " + skippedSteps);
        }
        this.step = step;
        this.skippedSteps = skippedSteps;
        this.entries = Collections.unmodifiableMap(new LinkedHashMap<>(entries));
        this.rules = Collections.unmodifiableMap(new LinkedHashMap<>(rules));
        this.entries.forEach((name, entry) -> {
            if (entry.rule() != null) {
                Rule rule = this.rules.get(entry.rule());
                if (rule == null) {
                    throw new IllegalArgumentException("the state of " + name + " names rule " + entry.rule() + ", which is not among "
                            + this.rules.keySet());
                }
                if (rule.family() != entry.route()) {
                    throw new IllegalArgumentException("the state of " + name + " is routed to " + entry.route() + " but its rule "
                            + entry.rule() + " is a " + rule.family() + " rule");
                }
            }
        });
    }

    /**
     * The state of parameters as an optimizer assigned them: each entry names its parameter's rule,
     * and rules of one name but different stages or settings are told apart as {@code name#2},
     * {@code name#3}, ...
     *
     * @param assignments each parameter's route and rule, in the optimizer's parameter order
     * @param buffers     parameter i's buffers
     */
    public static OptimizerState of(long step, long skippedSteps, List<HybridOptimizer.Assignment> assignments,
                                    List<Map<String, float[]>> buffers) {
        if (assignments.size() != buffers.size()) {
            throw new IllegalArgumentException(assignments.size() + " parameters but " + buffers.size() + " sets of buffers");
        }
        Map<String, Rule> saved = new LinkedHashMap<>();
        Map<String, Entry> entries = new LinkedHashMap<>();
        for (int i = 0; i < assignments.size(); i++) {
            HybridOptimizer.Assignment a = assignments.get(i);
            Rule rule = Rule.of(a.rule());
            String key = a.rule().name();
            for (int n = 2; saved.containsKey(key) && !saved.get(key).equals(rule); n++) {
                key = a.rule().name() + "#" + n;
            }
            saved.putIfAbsent(key, rule);
            entries.put(a.parameter().name(), new Entry(a.route(), a.parameter().shape(), key, buffers.get(i)));
        }
        return new OptimizerState(step, skippedSteps, entries, saved);
    }

    /** The number of applied optimizer steps. */
    public long step() {
        return step;
    }

    /** The number of steps skipped for non-finite gradients. */
    public long skippedSteps() {
        return skippedSteps;
    }

    /** Parameter name → entry, in the optimizer's parameter order. */
    public Map<String, Entry> entries() {
        return entries;
    }

    /** Rule name → the rule's stages and settings, for the rules the entries name; empty when not recorded. */
    public Map<String, Rule> rules() {
        return rules;
    }

    /**
     * Writes the state to {@code file} as safetensors, atomically (temporary file in the same
     * directory, fsync, rename).
     *
     * @throws IllegalArgumentException before anything is written, for state that {@link #read} would
     *                                  refuse: a rank above {@value #MAX_RANK}, a negative dimension, more
     *                                  than {@value #MAX_BUFFERS} buffers, an empty buffer name, or two
     *                                  buffers whose tensor names {@code <parameter>/<buffer>} are the same
     */
    public void write(Path file) throws IOException {
        entries.forEach(OptimizerState::checkWritable);
        Set<String> twice = collidingTensorNames(entries);
        if (!twice.isEmpty()) {
            throw new IllegalArgumentException("cannot write the state: tensor names " + twice + " would stand for two buffers each");
        }
        StateFormat.write(this, file);
    }

    private static void checkWritable(String name, Entry entry) {
        int[] shape = entry.shape;
        if (shape.length > MAX_RANK || Arrays.stream(shape).anyMatch(d -> d < 0) || elementCount(shape) > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("cannot write the state of " + name + ": invalid shape " + Arrays.toString(shape));
        }
        if (entry.buffers().size() > MAX_BUFFERS) {
            throw new IllegalArgumentException("cannot write the state of " + name + ": " + entry.buffers().size()
                    + " buffers, at most " + MAX_BUFFERS);
        }
        if (entry.buffers().containsKey("")) {
            throw new IllegalArgumentException("cannot write the state of " + name + ": a buffer has an empty name");
        }
    }

    /**
     * Reads a state file written by {@link #write}, or one of format version 1 or 2, trusting none of
     * its bytes. For safetensors files, the structure is checked as {@link dev.muon4j.io.SafeTensors#read}
     * checks it, then the format and its version, both checksums, the step counts, every parameter's
     * route, shape, rule and buffer list, every rule's family and stages, and that the tensors are
     * exactly the buffers the metadata lists, each F32 of its buffer's shape.
     *
     * @throws IOException naming the file and what is wrong: not a state file, another format
     *                     version, or damage, with the field (or, in the old layout, the byte offset)
     */
    public static OptimizerState read(Path file) throws IOException {
        byte[] head;
        try (InputStream in = Files.newInputStream(file)) {
            head = in.readNBytes(9);
        }
        if (startsWith(head, LegacyStateFormat.MAGIC)) {
            return LegacyStateFormat.read(file);
        }
        if (head.length == 9 && head[8] == '{') {
            return StateFormat.read(file);
        }
        if (head.length < 9 && startsWith(LegacyStateFormat.MAGIC, head)) {
            return LegacyStateFormat.read(file); // a truncated file of the old layout: let its reader say so
        }
        if (head.length < 9) {
            throw new IOException(file + " is truncated or not a muon4j optimizer state file: it has only " + head.length + " bytes");
        }
        throw new IOException(file + " is not a muon4j optimizer state file: it starts neither with a safetensors header"
                + " (an 8-byte little-endian header size, then '{' at byte 8) nor with \"MUON4JOS\" (format versions 1 and 2)");
    }

    private static boolean startsWith(byte[] bytes, byte[] prefix) {
        return bytes.length >= prefix.length && Arrays.equals(bytes, 0, prefix.length, prefix, 0, prefix.length);
    }

    /** A buffer's own shape: the parameter's when it has the parameter's size, else one dimension. */
    static int[] bufferShape(int[] parameterShape, int length) {
        return length == elementCount(parameterShape) ? parameterShape.clone() : new int[] {length};
    }

    /** The name of a buffer's tensor in a state file: {@code <parameter>/<buffer>}. */
    static String tensorName(String parameter, String buffer) {
        return parameter + "/" + buffer;
    }

    /** The product of the dimensions (all ≥ 0), or {@code Long.MAX_VALUE} when it exceeds an int. */
    static long elementCount(int[] shape) {
        long n = 1;
        for (int d : shape) {
            if (d == 0) {
                return 0;
            }
        }
        for (int d : shape) {
            n *= d;
            if (n > Integer.MAX_VALUE) {
                return Long.MAX_VALUE;
            }
        }
        return n;
    }

    /** The tensor names that two buffers would share (a parameter or buffer name holding a '/' can make one). */
    static Set<String> collidingTensorNames(Map<String, Entry> entries) {
        Set<String> seen = new HashSet<>();
        Set<String> twice = new TreeSet<>();
        entries.forEach((name, entry) -> entry.buffers().keySet().forEach(b -> {
            if (!seen.add(tensorName(name, b))) {
                twice.add(tensorName(name, b));
            }
        }));
        return twice;
    }
}
