package dev.muon4j.optim;

import com.fasterxml.jackson.annotation.JsonInclude;
import dev.muon4j.io.JsonCodec;
import dev.muon4j.io.SafeTensors;
import dev.muon4j.io.TensorData;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.zip.CRC32;

/**
 * The safetensors layout of {@link OptimizerState} (format version {@value OptimizerState#FORMAT_VERSION}):
 * its writer and its reader. The class comment of {@link OptimizerState} describes the layout.
 */
final class StateFormat {
    /** The {@code "format"} metadata value of a state file. */
    static final String FORMAT = "muon4j-optimizer-state";
    static final String KEY_FORMAT = "format";
    static final String KEY_VERSION = "format_version";
    static final String KEY_STEP = "step";
    static final String KEY_SKIPPED = "skipped_steps";
    static final String KEY_PARAMETERS = "parameters";
    static final String KEY_RULES = "rules";
    static final String KEY_DATA_CRC = "data_crc32";
    static final String KEY_METADATA_CRC = "metadata_crc32";

    private StateFormat() {
    }

    // ------------------------------------------------------------------------------------------ writing

    /** A parameter's entry in the {@code parameters} metadata; {@code rule} is left out when not recorded. */
    private record ParameterEntry(String route, int[] shape, @JsonInclude(JsonInclude.Include.NON_NULL) String rule,
                                  Set<String> buffers) {
    }

    /** An update rule's entry in the {@code rules} metadata. */
    private record RuleEntry(String family, List<StageEntry> transforms) {
    }

    /** One stage of a rule: its name and settings. */
    private record StageEntry(String name, Map<String, Object> settings) {
    }

    static void write(OptimizerState state, Path file) throws IOException {
        Map<String, TensorData> tensors = new LinkedHashMap<>();
        Map<String, ParameterEntry> parameters = new LinkedHashMap<>();
        state.entries().forEach((name, entry) -> {
            int[] shape = entry.shape();
            parameters.put(name, new ParameterEntry(lower(entry.route()), shape, entry.rule(), entry.buffers().keySet()));
            entry.buffers().forEach((buffer, data) ->
                    tensors.put(OptimizerState.tensorName(name, buffer), TensorData.f32(OptimizerState.bufferShape(shape, data.length), data)));
        });
        Map<String, RuleEntry> rules = new LinkedHashMap<>();
        state.rules().forEach((name, rule) -> rules.put(name, new RuleEntry(lower(rule.family()),
                rule.stages().stream().map(s -> new StageEntry(s.name(), s.settings())).toList())));
        Map<String, String> metadata = new LinkedHashMap<>();
        metadata.put(KEY_FORMAT, FORMAT);
        metadata.put(KEY_VERSION, Integer.toString(OptimizerState.FORMAT_VERSION));
        metadata.put(KEY_STEP, Long.toString(state.step()));
        metadata.put(KEY_SKIPPED, Long.toString(state.skippedSteps()));
        metadata.put(KEY_PARAMETERS, JsonCodec.write(parameters));
        metadata.put(KEY_RULES, JsonCodec.write(rules));
        long metadataCrc = metadataCrc32(metadata);
        metadata.put(KEY_DATA_CRC, hex(SafeTensors.dataCrc32(tensors)));
        metadata.put(KEY_METADATA_CRC, hex(metadataCrc));
        SafeTensors.write(file, tensors, metadata);
    }

    /**
     * The CRC-32 of the metadata entries other than the two checksums, written as one compact JSON
     * object with sorted keys (UTF-8; Python: {@code json.dumps(dict(sorted(m.items())),
     * separators=(",", ":"))} for ASCII text).
     */
    static long metadataCrc32(Map<String, String> metadata) {
        TreeMap<String, String> sorted = new TreeMap<>(metadata);
        sorted.remove(KEY_DATA_CRC);
        sorted.remove(KEY_METADATA_CRC);
        CRC32 crc = new CRC32();
        crc.update(JsonCodec.write(sorted).getBytes(StandardCharsets.UTF_8));
        return crc.getValue();
    }

    private static String hex(long crc) {
        return String.format("%08x", crc);
    }

    private static String lower(Route route) {
        return route.name().toLowerCase(Locale.ROOT);
    }

    // ------------------------------------------------------------------------------------------ reading

    static OptimizerState read(Path file) throws IOException {
        return new Reader(file).read();
    }

    /** Checks a state file's metadata and tensors; every error names the file and the field. */
    private static final class Reader {
        private final Path file;

        Reader(Path file) {
            this.file = file;
        }

        OptimizerState read() throws IOException {
            SafeTensors.Contents contents = SafeTensors.read(file);
            Map<String, String> metadata = contents.metadata();
            String format = metadata.get(KEY_FORMAT);
            if (!FORMAT.equals(format)) {
                throw bad("is a safetensors file but not a muon4j optimizer state: its " + SafeTensors.METADATA_KEY + " has "
                        + (format == null ? "no \"" + KEY_FORMAT + "\"" : "\"" + KEY_FORMAT + "\": " + JsonCodec.write(format))
                        + ", not \"" + FORMAT + "\"");
            }
            String version = metadata.get(KEY_VERSION);
            if (!Integer.toString(OptimizerState.FORMAT_VERSION).equals(version)) {
                throw bad("has optimizer state format version " + (version == null ? "(none: no \"" + KEY_VERSION + "\")"
                        : JsonCodec.write(version)) + " in its metadata; this muon4j reads versions " + OptimizerState.OLDEST_READABLE_VERSION
                        + " to " + OptimizerState.FORMAT_VERSION);
            }
            checkCrc(metadata, KEY_METADATA_CRC, metadataCrc32(metadata), "its other metadata entries (the header was changed)");
            checkCrc(metadata, KEY_DATA_CRC, contents.dataCrc32(), "its " + contents.dataBytes() + " data bytes (the tensors' values were changed)");
            long step = count(metadata, KEY_STEP);
            long skipped = count(metadata, KEY_SKIPPED);
            Map<String, OptimizerState.Rule> rules = rules(object(metadata, KEY_RULES));
            Map<String, Object> parameters = object(metadata, KEY_PARAMETERS);

            Map<String, TensorData> tensors = contents.tensors();
            Set<String> used = new HashSet<>();
            Map<String, OptimizerState.Entry> entries = new LinkedHashMap<>();
            for (Map.Entry<String, Object> e : parameters.entrySet()) {
                String name = e.getKey();
                String where = KEY_PARAMETERS + " of " + name;
                if (!(e.getValue() instanceof Map<?, ?> p)) {
                    throw bad("has " + where + " that is not an object");
                }
                Route route = route(p.get("route"), where);
                int[] shape = shape(p.get("shape"), where);
                String rule = null;
                if (p.get("rule") != null) {
                    if (!(p.get("rule") instanceof String r) || !rules.containsKey(r)) {
                        throw bad("has " + where + " with rule " + JsonCodec.write(p.get("rule")) + ", not one of the " + KEY_RULES + " "
                                + rules.keySet());
                    }
                    if (rules.get(r).family() != route) {
                        throw bad("has " + where + " with route " + lower(route) + " but rule " + r + " of the "
                                + lower(rules.get(r).family()) + " family");
                    }
                    rule = r;
                }
                Map<String, float[]> buffers = new LinkedHashMap<>();
                for (String buffer : names(p.get("buffers"), where + ": \"buffers\"")) {
                    String tensor = OptimizerState.tensorName(name, buffer);
                    TensorData t = tensors.get(tensor);
                    if (t == null) {
                        throw bad("lacks tensor '" + tensor + "', buffer " + buffer + " of parameter " + name + " in its metadata's "
                                + KEY_PARAMETERS);
                    }
                    if (!used.add(tensor)) {
                        throw bad("has tensor '" + tensor + "' named by two buffers in its metadata's " + KEY_PARAMETERS);
                    }
                    if (!t.dtype().equals("F32")) {
                        throw bad("has tensor '" + tensor + "' of dtype " + t.dtype() + "; optimizer state is F32");
                    }
                    int[] expected = OptimizerState.bufferShape(shape, t.size());
                    if (!Arrays.equals(t.shape(), expected)) {
                        throw bad("has tensor '" + tensor + "' of shape " + Arrays.toString(t.shape()) + ", but parameter " + name
                                + " has shape " + Arrays.toString(shape) + " in its metadata, so a buffer of " + t.size()
                                + " floats has shape " + Arrays.toString(expected));
                    }
                    buffers.put(buffer, t.data());
                }
                entries.put(name, new OptimizerState.Entry(route, shape, rule, buffers));
            }
            for (String tensor : tensors.keySet()) {
                if (!used.contains(tensor)) {
                    throw bad("holds tensor '" + tensor + "', which is no buffer of a parameter in its metadata's " + KEY_PARAMETERS);
                }
            }
            return new OptimizerState(step, skipped, entries, rules);
        }

        private void checkCrc(Map<String, String> metadata, String key, long actual, String over) throws IOException {
            String stored = metadataOf(metadata, key);
            if (!stored.matches("[0-9a-f]{8}")) {
                throw bad("is damaged: its metadata's \"" + key + "\" is " + JsonCodec.write(stored) + ", not 8 hex digits");
            }
            if (Long.parseLong(stored, 16) != actual) {
                throw bad("is damaged: checksum mismatch, the CRC-32 of " + over + " is " + hex(actual) + " but its metadata's \""
                        + key + "\" says " + stored);
            }
        }

        private String metadataOf(Map<String, String> metadata, String key) throws IOException {
            String value = metadata.get(key);
            if (value == null) {
                throw bad("lacks \"" + key + "\" in its " + SafeTensors.METADATA_KEY);
            }
            return value;
        }

        private long count(Map<String, String> metadata, String key) throws IOException {
            String value = metadataOf(metadata, key);
            long n;
            try {
                n = value.matches("\\d{1,19}") ? Long.parseLong(value) : -1;
            } catch (NumberFormatException e) {
                n = -1;
            }
            if (n < 0) {
                throw bad("has metadata \"" + key + "\" " + JsonCodec.write(value) + ", not a count from 0 to " + Long.MAX_VALUE);
            }
            return n;
        }

        private Map<String, Object> object(Map<String, String> metadata, String key) throws IOException {
            String value = metadataOf(metadata, key);
            try {
                return JsonCodec.parseObject(value);
            } catch (IllegalArgumentException e) {
                throw bad("has metadata \"" + key + "\" that is not a JSON object: " + e.getMessage());
            }
        }

        private Map<String, OptimizerState.Rule> rules(Map<String, Object> json) throws IOException {
            Map<String, OptimizerState.Rule> rules = new LinkedHashMap<>();
            for (Map.Entry<String, Object> e : json.entrySet()) {
                String where = KEY_RULES + " of " + e.getKey();
                if (!(e.getValue() instanceof Map<?, ?> r) || !(r.get("transforms") instanceof List<?> stages)) {
                    throw bad("has " + where + " that is not an object with a \"transforms\" array");
                }
                Route family = route(r.get("family"), where + ": \"family\"");
                List<OptimizerState.Stage> parsed = new ArrayList<>();
                for (Object stage : stages) {
                    if (!(stage instanceof Map<?, ?> s) || !(s.get("name") instanceof String name)
                            || !(s.get("settings") instanceof Map<?, ?> settings)) {
                        throw bad("has " + where + " with a transform that is not {\"name\": string, \"settings\": object}: "
                                + JsonCodec.write(stage));
                    }
                    @SuppressWarnings("unchecked")
                    Map<String, Object> typed = (Map<String, Object>) settings;
                    parsed.add(new OptimizerState.Stage(name, typed));
                }
                rules.put(e.getKey(), new OptimizerState.Rule(family, parsed));
            }
            return rules;
        }

        private Route route(Object value, String where) throws IOException {
            for (Route r : Route.values()) {
                if (lower(r).equals(value)) {
                    return r;
                }
            }
            throw bad("has " + where + " with route " + JsonCodec.write(value) + ", not one of " + Arrays.stream(Route.values())
                    .map(StateFormat::lower).toList());
        }

        /** A shape of rank 0 to {@value OptimizerState#MAX_RANK}, dimensions ≥ 0 whose product fits in an int. */
        private int[] shape(Object value, String where) throws IOException {
            if (!(value instanceof List<?> list) || list.size() > OptimizerState.MAX_RANK) {
                throw bad("has " + where + " with shape " + JsonCodec.write(value) + ", not an array of at most " + OptimizerState.MAX_RANK
                        + " dimensions");
            }
            int[] shape = new int[list.size()];
            for (int i = 0; i < shape.length; i++) {
                if (!(list.get(i) instanceof Long d) || d < 0 || d > Integer.MAX_VALUE) {
                    throw bad("has " + where + " with shape " + JsonCodec.write(value) + ": dimension " + i + " is not an integer from 0 to "
                            + Integer.MAX_VALUE);
                }
                shape[i] = (int) (long) d;
            }
            if (OptimizerState.elementCount(shape) > Integer.MAX_VALUE) {
                throw bad("has " + where + " with shape " + Arrays.toString(shape) + ", more elements than an int counts");
            }
            return shape;
        }

        /** Distinct non-empty buffer names, at most {@value OptimizerState#MAX_BUFFERS}. */
        private List<String> names(Object value, String where) throws IOException {
            if (!(value instanceof List<?> list) || list.size() > OptimizerState.MAX_BUFFERS) {
                throw bad("has " + where + " " + JsonCodec.write(value) + ", not an array of at most " + OptimizerState.MAX_BUFFERS
                        + " buffer names");
            }
            List<String> names = new ArrayList<>();
            for (Object o : list) {
                if (!(o instanceof String s) || s.isEmpty() || names.contains(s)) {
                    throw bad("has " + where + " " + JsonCodec.write(value) + ": " + JsonCodec.write(o) + " is not a new, non-empty buffer name");
                }
                names.add(s);
            }
            return names;
        }

        private IOException bad(String message) {
            return new IOException(file + " " + message);
        }
    }
}
