package dev.muon4j.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.Backends;
import dev.muon4j.data.ByteTokenizer;
import dev.muon4j.data.Corpus;
import dev.muon4j.data.TokenDataset;
import dev.muon4j.io.JsonCodec;
import dev.muon4j.io.SafeTensors;
import dev.muon4j.io.TensorData;
import dev.muon4j.optim.OptimizerState;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.IntStream;
import java.util.zip.CRC32;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Damaged checkpoints are refused by name and never crash a reader. A real checkpoint (a tiny model
 * trained for three steps with Muon and AdamW) is mutated a few hundred times from a fixed seed:
 * single bit flips, several bytes overwritten, truncations, appended bytes, and fields set huge,
 * negative or zero (the header size and the numbers in the header of both safetensors files, the
 * model's and the optimizer state's; the state's step counts, format version and shapes in its
 * metadata; the manifest's sizes and step; the numbers of config.json and trainer.json). The same
 * checkpoint in the layout of older versions, its state in {@code optimizer.state} (format version
 * 2), has that file mutated too: its step counts, parameter count, string lengths, ranks,
 * dimensions, buffer counts and buffer lengths. Each mutation is read twice:
 *
 * <ol>
 *   <li>through {@link CheckpointStore#load}, where the manifest's SHA-256 catches the damage;</li>
 *   <li>straight through the file's parser with its integrity checks satisfied (the state files'
 *       CRC-32s recomputed; the model's safetensors and JSON have none), so that the parser itself
 *       meets the damage.</li>
 * </ol>
 *
 * <p>Every read either returns data identical to the original, bit for bit, or fails with an
 * {@code IOException} whose message names the file. A parser, reading content that no checksum
 * protects any more, may also return other well-formed data (a flipped float, a renamed key). Nothing
 * else may come out: no other exception, no {@code OutOfMemoryError} (the reads run in this JVM,
 * whose heap the build limits to 4 GB), no read that does not finish.
 */
class CheckpointFuzzTest {
    private static final long SEED = 0x6d756f6e346aL;
    private static final Duration LIMIT = Duration.ofSeconds(20);
    private static final String MODEL = CheckpointStore.MODEL_FILE;
    private static final String STATE = CheckpointStore.OPTIMIZER_FILE;
    /** The optimizer state of the old layout (format version 2), in a copy of the checkpoint turned into that layout. */
    private static final String LEGACY = CheckpointStore.LEGACY_OPTIMIZER_FILE;
    private static final String MANIFEST = CheckpointStore.MANIFEST_FILE;
    private static final String CONFIG = CheckpointStore.CONFIG_FILE;
    private static final String TRAINER = CheckpointStore.TRAINER_FILE;
    private static final String SETTINGS = CheckpointStore.SETTINGS_FILE;
    private static final List<String> FILES = List.of(MODEL, STATE, MANIFEST, CONFIG, SETTINGS, TRAINER);
    /** What targeted mutations write in place of a JSON number: zero, negative, huge, out of range, fractional. */
    private static final List<String> JSON_NUMBERS = List.of("0", "-1", "9223372036854775807", "-9223372036854775808",
            "99999999999999999999", "1e400", "2.5");

    @TempDir
    static Path tmp;
    /** The saved checkpoint directory, never changed. */
    static Path saved;
    static Backend backend;

    @BeforeAll
    static void train() throws IOException {
        backend = Backends.openBundled(2);
        TokenDataset data = TokenDataset.of(Corpus.ofText("sentence", TrainerTest.SENTENCE.repeat(60)), new ByteTokenizer(), 0.1,
                TrainerTest.T);
        Path run = tmp.resolve("run");
        TrainConfig config = TrainerTest.config(OptimizerChoice.MUON, 1e-2, 3, 1, 7, 3);
        new Trainer(backend, TrainerTest.tiny(32), config, data, run, message -> { }, null).run(false);
        saved = new CheckpointStore(run).latest().orElseThrow().dir();
    }

    @AfterAll
    static void close() {
        backend.close();
    }

    private static Path copyOf(Path dir, Path to) throws IOException {
        Files.createDirectories(to);
        for (String name : FILES) {
            Files.copy(dir.resolve(name), to.resolve(name));
        }
        return to;
    }

    // ---------------------------------------------------------------------------------------- mutations

    /** A file's damaged bytes and how they were damaged. */
    private record Mutation(String file, String what, byte[] bytes) {
    }

    /** An integer field of the state file: its offset and width in bytes (2, 4 or 8). */
    private record Field(String name, int at, int width) {
    }

    private static List<Mutation> mutations(Map<String, byte[]> originals, Random random) {
        List<Mutation> out = new ArrayList<>();
        byte[] model = originals.get(MODEL);
        int headerEnd = 8 + (int) ByteBuffer.wrap(model).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        generic(out, MODEL, model, range(0, headerEnd), random, 30, 10, 10, 5);
        safetensorsFields(out, MODEL, model, headerEnd, random, 14);

        byte[] state = originals.get(STATE);
        int stateHeaderEnd = 8 + (int) ByteBuffer.wrap(state).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        generic(out, STATE, state, range(0, stateHeaderEnd), random, 30, 10, 10, 5);
        safetensorsFields(out, STATE, state, stateHeaderEnd, random, 20);
        for (String key : List.of("step", "skipped_steps", "format_version")) {
            String header = new String(state, 8, stateHeaderEnd - 8, StandardCharsets.UTF_8);
            Matcher m = Pattern.compile("\"" + key + "\":\"(\\d+)\"").matcher(header);
            assertTrue(m.find(), key + " in the state's metadata");
            for (String value : JSON_NUMBERS) {
                out.add(headerReplaced(STATE, state, stateHeaderEnd, header, new int[] {m.start(1), m.end(1)}, value));
            }
        }

        byte[] legacy = originals.get(LEGACY);
        List<Field> fields = stateFields(legacy);
        generic(out, LEGACY, legacy, structure(legacy, fields), random, 20, 6, 6, 3);
        stateFieldMutations(out, legacy, fields, random, 30);

        byte[] manifest = originals.get(MANIFEST);
        generic(out, MANIFEST, manifest, null, random, 20, 6, 6, 3);
        for (int[] span : spans(Pattern.compile("\"(?:size|step)\": (-?\\d+)"), manifest)) {
            for (String value : JSON_NUMBERS) {
                out.add(replaced(MANIFEST, manifest, span, value));
            }
        }
        Pattern number = Pattern.compile("\": (-?\\d[\\d.eE+-]*)");
        for (String file : List.of(CONFIG, SETTINGS, TRAINER)) {
            byte[] json = originals.get(file);
            generic(out, file, json, null, random, 12, 4, 4, 3);
            List<int[]> spans = spans(number, json);
            for (int i = 0; i < 6; i++) {
                String value = JSON_NUMBERS.get(random.nextInt(JSON_NUMBERS.size()));
                out.add(replaced(file, json, spans.get(random.nextInt(spans.size())), value));
            }
        }
        out.removeIf(m -> Arrays.equals(m.bytes, originals.get(m.file))); // a value set to what it was
        return out;
    }

    /**
     * Bit flips (every other one at a position of {@code structure} when given), runs of 2 to 8
     * bytes overwritten at random positions, truncations (the first to nothing), appended bytes.
     */
    private static void generic(List<Mutation> out, String file, byte[] original, int[] structure, Random random,
                                int flips, int rewrites, int cuts, int appends) {
        for (int i = 0; i < flips; i++) {
            int at = structure != null && i % 2 == 0 ? structure[random.nextInt(structure.length)] : random.nextInt(original.length);
            int bit = random.nextInt(8);
            byte[] bytes = original.clone();
            bytes[at] ^= (byte) (1 << bit);
            out.add(new Mutation(file, "bit " + bit + " of byte " + at + " flipped", bytes));
        }
        for (int i = 0; i < rewrites; i++) {
            byte[] bytes = original.clone();
            int[] positions = new int[2 + random.nextInt(7)];
            for (int k = 0; k < positions.length; k++) {
                positions[k] = random.nextInt(original.length);
                bytes[positions[k]] = (byte) random.nextInt(256);
            }
            out.add(new Mutation(file, "bytes " + Arrays.toString(positions) + " overwritten", bytes));
        }
        for (int i = 0; i < cuts; i++) {
            int length = i == 0 ? 0 : random.nextInt(original.length);
            out.add(new Mutation(file, "truncated to " + length + " bytes", Arrays.copyOf(original, length)));
        }
        for (int i = 0; i < appends; i++) {
            byte[] bytes = Arrays.copyOf(original, original.length + 1 + random.nextInt(64));
            byte[] extra = new byte[bytes.length - original.length];
            random.nextBytes(extra);
            System.arraycopy(extra, 0, bytes, original.length, extra.length);
            out.add(new Mutation(file, extra.length + " bytes appended", bytes));
        }
    }

    /** The header size set to insane, negative, zero and near values; numbers of the header JSON replaced. */
    private static void safetensorsFields(List<Mutation> out, String file, byte[] original, int headerEnd, Random random, int numbers) {
        long size = headerEnd - 8;
        for (long value : new long[] {0, 1, -1, Long.MIN_VALUE, Long.MAX_VALUE, SafeTensors.MAX_HEADER_SIZE + 1, 1L << 32,
                size - 8, size + 8, original.length}) {
            byte[] bytes = original.clone();
            ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).putLong(0, value);
            out.add(new Mutation(file, "header size set to " + value, bytes));
        }
        String header = new String(original, 8, (int) size, StandardCharsets.UTF_8);
        List<int[]> spans = spans(Pattern.compile("[\\[,](\\d+)"), header.getBytes(StandardCharsets.UTF_8));
        for (int i = 0; i < numbers; i++) {
            int[] span = spans.get(random.nextInt(spans.size()));
            String value = JSON_NUMBERS.get(random.nextInt(JSON_NUMBERS.size()));
            out.add(headerReplaced(file, original, headerEnd, header, span, value));
        }
    }

    /** The header's text at {@code span} replaced by {@code value}, the header size adjusted. */
    private static Mutation headerReplaced(String file, byte[] original, int headerEnd, String header, int[] span, String value) {
        byte[] changed = (header.substring(0, span[0]) + value + header.substring(span[1])).getBytes(StandardCharsets.UTF_8);
        ByteBuffer bytes = ByteBuffer.allocate(8 + changed.length + original.length - headerEnd).order(ByteOrder.LITTLE_ENDIAN);
        bytes.putLong(changed.length).put(changed).put(original, headerEnd, original.length - headerEnd);
        return new Mutation(file, "header text " + header.substring(span[0], span[1]) + " at byte " + (8 + span[0])
                + " set to " + value + " (header size adjusted)", bytes.array());
    }

    /** The integer fields of a state file of the old layout, format version 2 (each buffer its own shape). */
    private static List<Field> stateFields(byte[] bytes) {
        ByteBuffer in = ByteBuffer.wrap(bytes);
        List<Field> fields = new ArrayList<>(List.of(new Field("step", 12, 8), new Field("skipped steps", 20, 8),
                new Field("parameter count", 28, 4)));
        int at = 32;
        for (int p = in.getInt(28); p > 0; p--) {
            fields.add(new Field("name length", at, 2));
            at += 2 + Short.toUnsignedInt(in.getShort(at));
            fields.add(new Field("route length", at, 2));
            at += 2 + Short.toUnsignedInt(in.getShort(at));
            int rank = in.getInt(at);
            fields.add(new Field("rank", at, 4));
            at += 4;
            for (int i = 0; i < rank; i++, at += 4) {
                fields.add(new Field("dimension", at, 4));
            }
            int buffers = in.getInt(at);
            fields.add(new Field("buffer count", at, 4));
            at += 4;
            for (int b = 0; b < buffers; b++) {
                fields.add(new Field("buffer name length", at, 2));
                at += 2 + Short.toUnsignedInt(in.getShort(at));
                int bufferRank = in.getInt(at);
                fields.add(new Field("buffer rank", at, 4));
                at += 4;
                long floats = 1;
                for (int i = 0; i < bufferRank; i++, at += 4) {
                    fields.add(new Field("buffer dimension", at, 4));
                    floats *= in.getInt(at);
                }
                at += (int) (4 * floats);
            }
        }
        assertEquals(bytes.length - 8, at, "the state file's layout");
        return fields;
    }

    /** The positions of every byte that is not a float value: the header, the fields, the strings. */
    private static int[] structure(byte[] bytes, List<Field> fields) {
        List<Integer> positions = new ArrayList<>();
        for (int i = 0; i < 32; i++) {
            positions.add(i);
        }
        for (Field f : fields) {
            int end = f.at + f.width + (f.width == 2 ? Short.toUnsignedInt(ByteBuffer.wrap(bytes).getShort(f.at)) : 0);
            for (int i = f.at; i < end; i++) {
                positions.add(i);
            }
        }
        return positions.stream().distinct().mapToInt(Integer::intValue).toArray();
    }

    /** Every value into the step counts and the parameter count; random values into {@code picks} other fields. */
    private static void stateFieldMutations(List<Mutation> out, byte[] original, List<Field> fields, Random random, int picks) {
        for (Field f : fields.subList(0, 3)) {
            for (long value : values(f, original)) {
                out.add(stateField(original, f, value));
            }
        }
        List<Field> others = fields.subList(3, fields.size());
        for (int i = 0; i < picks; i++) {
            Field f = others.get(random.nextInt(others.size()));
            long[] values = values(f, original);
            out.add(stateField(original, f, values[random.nextInt(values.length)]));
        }
    }

    private static long[] values(Field f, byte[] bytes) {
        ByteBuffer in = ByteBuffer.wrap(bytes);
        return switch (f.width) {
            case 8 -> new long[] {0, -1, Long.MIN_VALUE, Long.MAX_VALUE, in.getLong(f.at) + 1};
            case 4 -> {
                long now = in.getInt(f.at);
                yield new long[] {0, -1, Integer.MIN_VALUE, Integer.MAX_VALUE, now + 1, now - 1, now * 2, 1 << 30};
            }
            default -> {
                long now = Short.toUnsignedInt(in.getShort(f.at));
                yield new long[] {0, 0xFFFF, 0x8000, now + 1, now - 1};
            }
        };
    }

    private static Mutation stateField(byte[] original, Field f, long value) {
        ByteBuffer bytes = ByteBuffer.wrap(original.clone());
        switch (f.width) {
            case 8 -> bytes.putLong(f.at, value);
            case 4 -> bytes.putInt(f.at, (int) value);
            default -> bytes.putShort(f.at, (short) value);
        }
        return new Mutation(LEGACY, f.name + " at byte " + f.at + " set to " + value, bytes.array());
    }

    /** The spans of group 1 of every match in the (ASCII) text. */
    private static List<int[]> spans(Pattern pattern, byte[] text) {
        Matcher m = pattern.matcher(new String(text, StandardCharsets.UTF_8));
        List<int[]> spans = new ArrayList<>();
        while (m.find()) {
            spans.add(new int[] {m.start(1), m.end(1)});
        }
        assertFalse(spans.isEmpty(), "no match of " + pattern);
        return spans;
    }

    private static Mutation replaced(String file, byte[] json, int[] span, String value) {
        String text = new String(json, StandardCharsets.UTF_8);
        String was = text.substring(span[0], span[1]);
        byte[] bytes = (text.substring(0, span[0]) + value + text.substring(span[1])).getBytes(StandardCharsets.UTF_8);
        return new Mutation(file, "number " + was + " at byte " + span[0] + " set to " + value, bytes);
    }

    private static int[] range(int from, int to) {
        return IntStream.range(from, to).toArray();
    }

    // ---------------------------------------------------------------------------------------- reading

    private enum Outcome { IDENTICAL, OTHER_DATA, NAMED_ERROR }

    /** Outcome counts of one file's mutations, read through the store and through the parser. */
    private static final class Tally {
        int mutations;
        final Map<Outcome, Integer> store = new EnumMap<>(Outcome.class);
        final Map<Outcome, Integer> parser = new EnumMap<>(Outcome.class);

        int count(Map<Outcome, Integer> counts, Outcome o) {
            return counts.getOrDefault(o, 0);
        }
    }

    /** A read of damaged bytes: what it returned, compared with the original's. */
    private interface Read {
        boolean identical() throws IOException;
    }

    /** Runs a read and classifies it; a broken rule goes to {@code failures}. */
    private static Outcome classify(Read read, Path file, String where, List<String> failures) {
        try {
            return read.identical() ? Outcome.IDENTICAL : Outcome.OTHER_DATA;
        } catch (IOException e) {
            if (e.getMessage() != null && e.getMessage().contains(file.toString())) {
                return Outcome.NAMED_ERROR;
            }
            failures.add(where + ": the IOException does not name " + file + ": " + e);
        } catch (Throwable e) {
            failures.add(where + ": " + e + (e.getStackTrace().length > 0 ? " at " + e.getStackTrace()[0] : ""));
        }
        return null;
    }

    @Test
    void everyMutationLoadsTheOriginalOrFailsNamingTheFile() throws IOException {
        long started = System.nanoTime();
        Path work = copyOf(saved, tmp.resolve("store").resolve(saved.getFileName()));
        Path old = copyOf(saved, tmp.resolve("old-layout").resolve(saved.getFileName()));
        TrainerTest.toOldLayout(old);
        Path parsed = Files.createDirectories(tmp.resolve("parser"));
        CheckpointStore store = new CheckpointStore(work.getParent());
        CheckpointStore oldStore = new CheckpointStore(old.getParent());
        CheckpointStore.Checkpoint reference = store.load(work);
        assertTrue(same(reference, oldStore.load(old)), "the checkpoint in the old layout loads the same");
        Map<String, byte[]> originals = new LinkedHashMap<>();
        for (String name : FILES) {
            originals.put(name, Files.readAllBytes(work.resolve(name)));
        }
        originals.put(LEGACY, Files.readAllBytes(old.resolve(LEGACY)));
        Map<String, Object> manifest = JsonCodec.readObject(work.resolve(MANIFEST));
        List<Mutation> mutations = mutations(originals, new Random(SEED));

        Map<String, Tally> tallies = new LinkedHashMap<>();
        FILES.forEach(name -> tallies.put(name, new Tally()));
        tallies.put(LEGACY, new Tally());
        List<String> failures = new ArrayList<>();
        for (Mutation m : mutations) {
            String where = m.file + ", " + m.what;
            Tally tally = tallies.get(m.file);
            tally.mutations++;
            assertTimeoutPreemptively(LIMIT, () -> {
                boolean legacy = m.file.equals(LEGACY);
                Path dir = legacy ? old : work;
                Path inStore = dir.resolve(m.file);
                Files.write(inStore, m.bytes);
                Outcome viaStore;
                try {
                    viaStore = classify(() -> same(reference, (legacy ? oldStore : store).load(dir)), inStore,
                            where + ", through the store", failures);
                } finally {
                    Files.write(inStore, originals.get(m.file));
                }
                Path file = parsed.resolve(m.file);
                Files.write(file, m.file.equals(STATE) ? withChecksums(m.bytes) : legacy ? withChecksum(m.bytes) : m.bytes);
                Outcome viaParser = classify(() -> switch (m.file) {
                    case MODEL -> sameTensors(reference.weights(), SafeTensors.read(file).tensors());
                    case STATE, LEGACY -> sameState(reference.optimizer(), wellFormed(OptimizerState.read(file), reference.optimizer(), where,
                            failures));
                    case MANIFEST -> manifest.equals(JsonCodec.readObject(file));
                    case CONFIG -> reference.huggingFace().equals(JsonCodec.readObject(file));
                    case SETTINGS -> reference.config().equals(JsonCodec.readObject(file));
                    default -> reference.trainer().equals(JsonCodec.readObject(file));
                }, file, where + ", through the parser", failures);
                if (viaStore == Outcome.OTHER_DATA) {
                    failures.add(where + ": the store loaded data other than the original");
                }
                if (viaStore != null) {
                    tally.store.merge(viaStore, 1, Integer::sum);
                }
                if (viaParser != null) {
                    tally.parser.merge(viaParser, 1, Integer::sum);
                }
            }, () -> where + " was not read within " + LIMIT);
        }
        double seconds = (System.nanoTime() - started) / 1e9;

        System.out.printf("checkpoint fuzz: %d mutations of %s in %.1f s (seed %d)%n", mutations.size(), saved.getFileName(),
                seconds, SEED);
        System.out.printf("  %-21s %9s | store: %9s %11s | parser: %9s %10s %11s%n", "file", "mutations", "identical", "named error",
                "identical", "other data", "named error");
        for (Map.Entry<String, Tally> e : tallies.entrySet()) {
            Tally t = e.getValue();
            System.out.printf("  %-21s %9d | %16d %11d | %17d %10d %11d%n", e.getKey(), t.mutations,
                    t.count(t.store, Outcome.IDENTICAL), t.count(t.store, Outcome.NAMED_ERROR), t.count(t.parser, Outcome.IDENTICAL),
                    t.count(t.parser, Outcome.OTHER_DATA), t.count(t.parser, Outcome.NAMED_ERROR));
        }
        assertTrue(failures.isEmpty(), failures.size() + " reads broke the rule:\n" + String.join("\n",
                failures.subList(0, Math.min(30, failures.size()))));
        assertTrue(mutations.size() >= 250, "mutations: " + mutations.size());
        for (Map.Entry<String, Tally> e : tallies.entrySet()) {
            Tally t = e.getValue();
            if (!e.getKey().equals(MANIFEST)) {
                assertEquals(t.mutations, t.count(t.store, Outcome.NAMED_ERROR),
                        e.getKey() + ": the manifest's SHA-256 catches every change");
            }
            assertTrue(t.count(t.parser, Outcome.NAMED_ERROR) > t.mutations / 4,
                    e.getKey() + ": the parser refuses much of the damage");
        }
        assertTrue(seconds < 60, "the fuzz took " + seconds + " s");
    }

    /**
     * A safetensors state file with the CRC-32s in its metadata made to match its bytes, when its
     * header still parses and holds them: patched in place (8 hex digits each), so nothing moves.
     */
    private static byte[] withChecksums(byte[] bytes) {
        if (bytes.length < 8) {
            return bytes;
        }
        long n = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        if (n < 2 || n > bytes.length - 8) {
            return bytes;
        }
        Map<String, Object> header;
        try {
            header = JsonCodec.parseObject(new String(bytes, 8, (int) n, StandardCharsets.UTF_8));
        } catch (IllegalArgumentException e) {
            return bytes;
        }
        if (!(header.get(SafeTensors.METADATA_KEY) instanceof Map<?, ?> metadata)) {
            return bytes;
        }
        TreeMap<String, Object> others = new TreeMap<>();
        metadata.forEach((k, v) -> others.put((String) k, v));
        others.remove("data_crc32");
        others.remove("metadata_crc32");
        CRC32 meta = new CRC32();
        meta.update(JsonCodec.write(others).getBytes(StandardCharsets.UTF_8));
        CRC32 data = new CRC32();
        data.update(bytes, 8 + (int) n, bytes.length - 8 - (int) n);
        byte[] out = bytes.clone();
        String text = new String(bytes, 8, (int) n, StandardCharsets.ISO_8859_1);
        for (Map.Entry<String, CRC32> e : Map.of("data_crc32", data, "metadata_crc32", meta).entrySet()) {
            Matcher m = Pattern.compile("\"" + e.getKey() + "\":\"([0-9a-f]{8})\"").matcher(text);
            if (m.find()) {
                byte[] digits = String.format("%08x", e.getValue().getValue()).getBytes(StandardCharsets.US_ASCII);
                System.arraycopy(digits, 0, out, 8 + m.start(1), 8);
            }
        }
        return out;
    }

    /** The bytes with their last 8 (where a state file of the old layout keeps its CRC-32) replaced by the CRC-32 of the others. */
    private static byte[] withChecksum(byte[] bytes) {
        if (bytes.length < 8) {
            return bytes;
        }
        CRC32 crc = new CRC32();
        crc.update(bytes, 0, bytes.length - 8);
        byte[] out = bytes.clone();
        ByteBuffer.wrap(out).putLong(out.length - 8, crc.getValue());
        return out;
    }

    /**
     * The state, after noting in {@code failures} any buffer an optimizer would take although its
     * length is not what was saved: in format version 2 a buffer has its own shape, so a parameter
     * shape changed on its own still parses, but then it differs from the parameter's shape, which
     * an optimizer's {@code loadState} refuses naming the parameter. What must never happen is a
     * buffer of another length under an unchanged parameter shape.
     */
    private static OptimizerState wellFormed(OptimizerState state, OptimizerState original, String where, List<String> failures) {
        state.entries().forEach((name, entry) -> {
            OptimizerState.Entry was = original.entries().get(name);
            boolean sameShape = was != null && Arrays.equals(was.shape(), entry.shape());
            entry.buffers().forEach((buffer, data) -> {
                float[] before = was == null ? null : was.buffers().get(buffer);
                if (sameShape && before != null && data.length != before.length) {
                    failures.add(where + ": the parser returned buffer " + name + "/" + buffer + " of " + data.length
                            + " floats under the unchanged shape " + Arrays.toString(entry.shape()) + " (saved: " + before.length + ")");
                }
            });
        });
        return state;
    }

    private static boolean same(CheckpointStore.Checkpoint a, CheckpointStore.Checkpoint b) {
        return a.step() == b.step() && sameTensors(a.weights(), b.weights()) && sameState(a.optimizer(), b.optimizer())
                && a.config().equals(b.config()) && a.trainer().equals(b.trainer()) && a.huggingFace().equals(b.huggingFace());
    }

    private static boolean sameTensors(Map<String, TensorData> a, Map<String, TensorData> b) {
        if (!List.copyOf(a.keySet()).equals(List.copyOf(b.keySet()))) {
            return false;
        }
        return a.entrySet().stream().allMatch(e -> {
            TensorData x = e.getValue();
            TensorData y = b.get(e.getKey());
            return x.dtype().equals(y.dtype()) && Arrays.equals(x.shape(), y.shape()) && sameBits(x.data(), y.data());
        });
    }

    private static boolean sameState(OptimizerState a, OptimizerState b) {
        if (a.step() != b.step() || a.skippedSteps() != b.skippedSteps()
                || !List.copyOf(a.entries().keySet()).equals(List.copyOf(b.entries().keySet()))) {
            return false;
        }
        return a.entries().entrySet().stream().allMatch(e -> {
            OptimizerState.Entry x = e.getValue();
            OptimizerState.Entry y = b.entries().get(e.getKey());
            return x.route() == y.route() && Arrays.equals(x.shape(), y.shape())
                    && List.copyOf(x.buffers().keySet()).equals(List.copyOf(y.buffers().keySet()))
                    && x.buffers().entrySet().stream().allMatch(f -> sameBits(f.getValue(), y.buffers().get(f.getKey())));
        });
    }

    private static boolean sameBits(float[] a, float[] b) {
        if (a.length != b.length) {
            return false;
        }
        for (int i = 0; i < a.length; i++) {
            if (Float.floatToRawIntBits(a[i]) != Float.floatToRawIntBits(b[i])) {
                return false;
            }
        }
        return true;
    }
}
