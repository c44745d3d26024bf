package dev.muon4j.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.muon4j.io.JsonCodec;
import dev.muon4j.optim.OptimizerState;
import dev.muon4j.optim.ParamRole;
import dev.muon4j.optim.Parameter;
import dev.muon4j.optim.Route;
import java.io.FilterOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The checkpoint store: bit-exact round trips, the latest pointer, pruning, damaged, truncated and
 * missing files, checkpoints of another model, leftovers of crashes, and failed writes.
 */
class CheckpointStoreTest {
    @TempDir
    Path runDir;

    final List<String> warnings = new ArrayList<>();

    private CheckpointStore store(int keep) {
        return new CheckpointStore(runDir, keep, warnings::add);
    }

    private static float[] gaussian(Random random, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (random.nextGaussian() * 0.1);
        }
        return a;
    }

    private static List<Parameter> model(long seed) {
        Random random = new Random(seed);
        List<Parameter> params = new ArrayList<>();
        params.add(Parameter.of("embed", ParamRole.EMBEDDING, new int[] {12, 8}, gaussian(random, 96), new float[96]));
        params.add(Parameter.of("layers.0.wq", ParamRole.HIDDEN_MATRIX, new int[] {16, 8}, gaussian(random, 128), new float[128]));
        params.add(Parameter.of("layers.0.norm", ParamRole.NORM, new int[] {8}, gaussian(random, 8), new float[8]));
        params.add(Parameter.of("head", ParamRole.HEAD, new int[] {12, 8}, gaussian(random, 96), new float[96]));
        return params;
    }

    private static List<Parameter> zeroCopy(List<Parameter> params) {
        return params.stream().map(p -> Parameter.zeros(p.name(), p.role(), p.shape())).toList();
    }

    private static OptimizerState state(List<Parameter> params, long step) {
        Random random = new Random(step);
        Map<String, OptimizerState.Entry> entries = new LinkedHashMap<>();
        for (Parameter p : params) {
            Map<String, float[]> buffers = new LinkedHashMap<>();
            if (p.role() == ParamRole.HIDDEN_MATRIX) {
                buffers.put("momentum", gaussian(random, p.size()));
                entries.put(p.name(), new OptimizerState.Entry(Route.MUON, p.shape(), buffers));
            } else {
                buffers.put("m", gaussian(random, p.size()));
                buffers.put("v", gaussian(random, p.size()));
                entries.put(p.name(), new OptimizerState.Entry(Route.ADAMW, p.shape(), buffers));
            }
        }
        return new OptimizerState(step - 1, 1, entries); // step - 1 applied + 1 skipped: the checkpoint's step
    }

    private static Map<String, Object> config() {
        Map<String, Object> model = new LinkedHashMap<>();
        model.put("dim", 8L);
        model.put("vocab", 12L);
        model.put("rope_theta", 10000.0);
        Map<String, Object> config = new LinkedHashMap<>();
        config.put("model", model);
        config.put("train", Map.of("lr", 0.02, "batch", 4L));
        return config;
    }

    private static Map<String, Object> trainer(long step) {
        Map<String, Object> t = new LinkedHashMap<>();
        t.put("step", step);
        t.put("data_position", step * 4096);
        t.put("seed", 42L);
        t.put("losses", List.of(3.5, 3.25, 2.875));
        return t;
    }

    private Path save(CheckpointStore store, long step, List<Parameter> params) throws IOException {
        return store.save(step, params, state(params, step), config(), trainer(step));
    }

    private static void assertBitEqual(float[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what);
        for (int i = 0; i < expected.length; i++) {
            assertEquals(Float.floatToRawIntBits(expected[i]), Float.floatToRawIntBits(actual[i]), what + "[" + i + "]");
        }
    }

    private List<String> listRunDir() throws IOException {
        try (Stream<Path> s = Files.list(runDir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    void saveAndLoadRoundTripIsBitExact() throws IOException {
        CheckpointStore store = store(3);
        List<Parameter> params = model(1);
        params.get(0).value()[0] = -0.0f;
        params.get(0).value()[1] = Float.MIN_VALUE;
        OptimizerState state = state(params, 100);
        Path dir = store.save(100, params, state, config(), trainer(100));

        assertEquals(runDir.resolve("step-00000100"), dir);
        assertEquals("step-00000100\n", Files.readString(runDir.resolve("latest")));
        try (Stream<Path> s = Files.list(dir)) {
            assertEquals(List.of("MANIFEST.json", "config.json", "model.safetensors", "optimizer.safetensors", "trainer.json"),
                    s.map(p -> p.getFileName().toString()).sorted().toList());
        }
        Map<String, Object> manifest = JsonCodec.parseObject(Files.readString(dir.resolve("MANIFEST.json")));
        assertEquals(100L, manifest.get("step"));
        @SuppressWarnings("unchecked")
        Map<String, Map<String, Object>> files = (Map<String, Map<String, Object>>) manifest.get("files");
        for (String name : List.of("model.safetensors", "optimizer.safetensors", "config.json", "trainer.json")) {
            assertEquals(Files.size(dir.resolve(name)), files.get(name).get("size"), name);
            assertEquals(FileUtil.sha256(dir.resolve(name)), files.get(name).get("sha256"), name);
        }

        CheckpointStore.Checkpoint c = store.latest().orElseThrow();
        assertEquals(dir, c.dir());
        assertEquals(100, c.step());
        assertEquals(config(), c.config());
        assertEquals(trainer(100), c.trainer());
        assertEquals(List.of("embed", "head", "layers.0.norm", "layers.0.wq"), List.copyOf(c.weights().keySet()));
        for (Parameter p : params) {
            assertArrayEquals(p.shape(), c.weights().get(p.name()).shape());
            assertBitEqual(p.value(), c.weights().get(p.name()).data(), p.name());
        }
        assertEquals(state.step(), c.optimizer().step());
        assertEquals(state.skippedSteps(), c.optimizer().skippedSteps());
        assertEquals(state.entries().keySet(), c.optimizer().entries().keySet());
        for (var e : state.entries().entrySet()) {
            OptimizerState.Entry read = c.optimizer().entries().get(e.getKey());
            assertEquals(e.getValue().route(), read.route());
            assertArrayEquals(e.getValue().shape(), read.shape());
            assertEquals(e.getValue().buffers().keySet(), read.buffers().keySet());
            e.getValue().buffers().forEach((b, v) -> assertBitEqual(v, read.buffers().get(b), e.getKey() + "/" + b));
        }

        List<Parameter> fresh = zeroCopy(params);
        CheckpointStore.restoreWeights(c, fresh);
        for (int i = 0; i < params.size(); i++) {
            assertBitEqual(params.get(i).value(), fresh.get(i).value(), params.get(i).name());
        }
        assertEquals(List.of("latest", "step-00000100"), listRunDir(), "nothing else in the run directory");
        assertTrue(warnings.isEmpty(), warnings.toString());
    }

    @Test
    void emptyRunDirectoryHasNoCheckpoint() throws IOException {
        assertTrue(store(3).latest().isEmpty());
        assertTrue(new CheckpointStore(runDir.resolve("not-yet")).latest().isEmpty());
    }

    @Test
    void latestPointerFollowsTheNewestSave() throws IOException {
        CheckpointStore store = store(3);
        List<Parameter> params = model(1);
        save(store, 100, params);
        params.get(1).value()[3] = 123f;
        save(store, 200, params);
        assertEquals("step-00000200\n", Files.readString(runDir.resolve("latest")));
        CheckpointStore.Checkpoint c = store.latest().orElseThrow();
        assertEquals(200, c.step());
        assertEquals(123f, c.weights().get("layers.0.wq").data()[3]);
        assertEquals(trainer(200), c.trainer());
        // the pointer, not the highest number, decides
        Files.writeString(runDir.resolve("latest"), "step-00000100\n");
        assertEquals(100, store.latest().orElseThrow().step());
        assertTrue(warnings.isEmpty(), warnings.toString());
    }

    @Test
    void pruningKeepsTheNewestK() throws IOException {
        CheckpointStore store = store(2);
        List<Parameter> params = model(1);
        for (long step = 100; step <= 500; step += 100) {
            save(store, step, params);
        }
        assertEquals(List.of("latest", "step-00000400", "step-00000500"), listRunDir());
        assertEquals(List.of(runDir.resolve("step-00000400"), runDir.resolve("step-00000500")), store.checkpoints());

        CheckpointStore defaults = new CheckpointStore(runDir);
        assertEquals(3, defaults.keep());
        save(defaults, 600, params);
        save(defaults, 700, params);
        assertEquals(List.of("latest", "step-00000500", "step-00000600", "step-00000700"), listRunDir());
        assertThrows(IllegalArgumentException.class, () -> new CheckpointStore(runDir, 0));
    }

    @Test
    void resavingAStepReplacesIt() throws IOException {
        CheckpointStore store = store(3);
        List<Parameter> params = model(1);
        save(store, 100, params);
        params.get(2).value()[0] = 9f;
        save(store, 100, params);
        assertEquals(9f, store.latest().orElseThrow().weights().get("layers.0.norm").data()[0]);
        save(store, 200, params);
        assertEquals(List.of("latest", "step-00000100", "step-00000200"), listRunDir());
    }

    private static void flipByte(Path file, long position) throws IOException {
        byte[] bytes = Files.readAllBytes(file);
        bytes[(int) position] ^= 0x01;
        Files.write(file, bytes);
    }

    @Test
    void flippedByteIsDetectedAndNamed() throws IOException {
        CheckpointStore store = store(3);
        List<Parameter> params = model(1);
        save(store, 100, params);
        Path dir = save(store, 200, params);
        Path model = dir.resolve("model.safetensors");
        flipByte(model, Files.size(model) - 3);

        IOException e = assertThrows(IOException.class, () -> store.load(dir));
        assertTrue(e.getMessage().contains(model.toString()), e.getMessage());
        assertTrue(e.getMessage().contains("damaged") && e.getMessage().contains("SHA-256"), e.getMessage());

        CheckpointStore.Checkpoint c = store.latest().orElseThrow();
        assertEquals(100, c.step(), "falls back to the previous complete checkpoint");
        assertEquals(1, warnings.size());
        assertTrue(warnings.getFirst().contains("step-00000200") && warnings.getFirst().contains("damaged")
                && warnings.getFirst().contains("falling back") && warnings.getFirst().contains("step-00000100"), warnings.getFirst());
    }

    @Test
    void truncatedFileIsDetectedAndNamed() throws IOException {
        CheckpointStore store = store(3);
        Path dir = save(store, 100, model(1));
        Path optimizer = dir.resolve("optimizer.safetensors");
        byte[] bytes = Files.readAllBytes(optimizer);
        Files.write(optimizer, java.util.Arrays.copyOf(bytes, bytes.length - 10));
        IOException e = assertThrows(IOException.class, () -> store.load(dir));
        assertTrue(e.getMessage().contains(optimizer.toString()) && e.getMessage().contains("truncated"), e.getMessage());
        IOException none = assertThrows(IOException.class, store::latest, "the only checkpoint is damaged: no silent fresh start");
        assertTrue(none.getMessage().contains("no loadable checkpoint") && none.getMessage().contains("optimizer.safetensors"), none.getMessage());
    }

    @Test
    void missingFileIsDetectedAndNamed() throws IOException {
        CheckpointStore store = store(3);
        Path dir = save(store, 100, model(1));
        Files.delete(dir.resolve("trainer.json"));
        IOException e = assertThrows(IOException.class, () -> store.load(dir));
        assertTrue(e.getMessage().contains("trainer.json") && e.getMessage().contains("missing"), e.getMessage());

        Files.delete(dir.resolve("MANIFEST.json"));
        e = assertThrows(IOException.class, () -> store.load(dir));
        assertTrue(e.getMessage().contains("MANIFEST.json") && e.getMessage().contains("missing"), e.getMessage());
    }

    @Test
    void damagedManifestIsDetected() throws IOException {
        CheckpointStore store = store(3);
        Path dir = save(store, 100, model(1));
        Files.writeString(dir.resolve("MANIFEST.json"), "{\"format\": \"muon4j-checkpoint\", ");
        IOException e = assertThrows(IOException.class, () -> store.load(dir));
        assertTrue(e.getMessage().contains("MANIFEST.json") && e.getMessage().contains("damaged"), e.getMessage());
    }

    @Test
    void checkpointOfAnotherModelIsRejected() throws IOException {
        CheckpointStore store = store(3);
        save(store, 100, model(1));
        CheckpointStore.Checkpoint c = store.latest().orElseThrow();

        List<Parameter> renamed = new ArrayList<>(zeroCopy(model(1)));
        renamed.set(3, Parameter.zeros("output", ParamRole.HEAD, 12, 8));
        renamed.add(Parameter.zeros("layers.1.wq", ParamRole.HIDDEN_MATRIX, 16, 8));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CheckpointStore.restoreWeights(c, renamed));
        assertTrue(e.getMessage().contains("is from another model"), e.getMessage());
        assertTrue(e.getMessage().contains("missing parameters [output, layers.1.wq]"), e.getMessage());
        assertTrue(e.getMessage().contains("unexpected parameters [head]"), e.getMessage());

        List<Parameter> reshaped = new ArrayList<>(zeroCopy(model(1)));
        reshaped.set(0, Parameter.zeros("embed", ParamRole.EMBEDDING, 8, 12));
        e = assertThrows(IllegalArgumentException.class, () -> CheckpointStore.restoreWeights(c, reshaped));
        assertTrue(e.getMessage().contains("is from another model"), e.getMessage());
        assertTrue(e.getMessage().contains("shape mismatches [embed (checkpoint [12, 8], model [8, 12])]"), e.getMessage());
        assertFalse(e.getMessage().contains("missing"), e.getMessage());
        for (Parameter p : reshaped) {
            for (float v : p.value()) {
                assertEquals(0f, v, "nothing copied when the check fails");
            }
        }
    }

    @Test
    void leftoverTmpAndDanglingLatestStillLoadTheNewestComplete() throws IOException {
        CheckpointStore store = store(5);
        List<Parameter> params = model(1);
        save(store, 100, params);
        save(store, 200, params);
        // a crash in the middle of saving step 300: a half-written temporary directory
        Path leftover = runDir.resolve(".tmp-step-00000300-abcdef");
        Files.createDirectories(leftover);
        Files.writeString(leftover.resolve("model.safetensors"), "half");
        // and 'latest' names a directory that is gone
        Files.writeString(runDir.resolve("latest"), "step-00000300\n");

        CheckpointStore.Checkpoint c = store.latest().orElseThrow();
        assertEquals(200, c.step());
        assertEquals(1, warnings.size());
        assertTrue(warnings.getFirst().contains("step-00000300") && warnings.getFirst().contains("does not exist")
                && warnings.getFirst().contains("step-00000200"), warnings.getFirst());

        // 'latest' missing altogether
        Files.delete(runDir.resolve("latest"));
        assertEquals(200, store.latest().orElseThrow().step());
        assertTrue(warnings.getLast().contains("no 'latest' file"), warnings.getLast());
        // garbage in 'latest'
        Files.writeString(runDir.resolve("latest"), "../../etc\n");
        assertEquals(200, store.latest().orElseThrow().step());
        assertTrue(warnings.getLast().contains("does not name a checkpoint"), warnings.getLast());

        save(store, 300, params);
        assertFalse(Files.exists(leftover), "the next save cleans leftovers");
        assertEquals(List.of("latest", "step-00000100", "step-00000200", "step-00000300"), listRunDir());
        assertEquals(300, store.latest().orElseThrow().step());
    }

    /** A stream that fails like a full disk after {@code limit} bytes. */
    private static final class FullDisk extends FilterOutputStream {
        private long left;

        FullDisk(OutputStream out, long limit) {
            super(out);
            this.left = limit;
        }

        @Override
        public void write(int b) throws IOException {
            if (left-- <= 0) {
                throw new IOException("No space left on device");
            }
            out.write(b);
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            if (len > left) {
                out.write(b, off, (int) Math.max(0, left));
                left = 0;
                throw new IOException("No space left on device");
            }
            left -= len;
            out.write(b, off, len);
        }
    }

    private CheckpointStore failingOn(String prefix, long limit) {
        return new CheckpointStore(runDir, 3, warnings::add,
                (name, out) -> name.startsWith(prefix) ? new FullDisk(out, limit) : out);
    }

    @Test
    void failedWriteKeepsThePreviousCheckpoint() throws IOException {
        List<Parameter> params = model(1);
        Path first = save(store(3), 100, params);
        float[] before = params.get(1).value().clone();
        params.get(1).value()[0] = 55f;

        for (String failing : List.of("model.safetensors", "config.json", "trainer.json", "MANIFEST.json")) {
            CheckpointStore store = failingOn(failing, 100);
            IOException e = assertThrows(IOException.class, () -> save(store, 200, params), failing);
            assertTrue(e.getMessage().contains("checkpoint step-00000200 was not written"), e.getMessage());
            assertTrue(e.getMessage().contains("No space left on device"), e.getMessage());
            assertTrue(e.getMessage().contains("the previous checkpoint " + first + " is kept"), e.getMessage());
            assertEquals(List.of("latest", "step-00000100"), listRunDir(), "temporary directory removed, nothing else changed");
            CheckpointStore.Checkpoint c = store.latest().orElseThrow();
            assertEquals(100, c.step());
            assertBitEqual(before, c.weights().get("layers.0.wq").data(), "previous weights");
        }

        // the failure hits the 'latest' pointer: the new directory is complete, the pointer still names the old one
        CheckpointStore store = failingOn(".tmp-latest", 0);
        IOException e = assertThrows(IOException.class, () -> save(store, 200, params));
        assertTrue(e.getMessage().contains("could not be replaced") && e.getMessage().contains("still names the previous"), e.getMessage());
        assertEquals(100, store.latest().orElseThrow().step());
        assertEquals(List.of("latest", "step-00000100", "step-00000200"), listRunDir());
        assertTrue(warnings.isEmpty(), warnings.toString());

        // and a later successful save goes on normally
        save(store(3), 300, params);
        assertEquals(300, store(3).latest().orElseThrow().step());
    }

    @Test
    void failedFirstWriteSaysThereIsNoEarlierCheckpoint() {
        CheckpointStore store = failingOn("model.safetensors", 10);
        IOException e = assertThrows(IOException.class, () -> save(store, 100, model(1)));
        assertTrue(e.getMessage().contains("was not written") && e.getMessage().contains("no earlier checkpoint"), e.getMessage());
    }

    @Test
    void checkpointFilesGetTheUsualPermissions() throws IOException {
        assumeTrue(FileSystems.getDefault().supportedFileAttributeViews().contains("posix"), "POSIX permissions");
        Path reference = Files.createFile(runDir.resolve("reference"));
        Path referenceDir = Files.createDirectory(runDir.resolve("reference-dir"));
        Set<PosixFilePermission> file = Files.getPosixFilePermissions(reference);
        Set<PosixFilePermission> directory = Files.getPosixFilePermissions(referenceDir);
        Path dir = save(store(3), 7, model(1));
        assertEquals(directory, Files.getPosixFilePermissions(dir), "the checkpoint directory, as any new directory (0755 under umask 022)");
        assertEquals(file, Files.getPosixFilePermissions(runDir.resolve(CheckpointStore.LATEST_FILE)), CheckpointStore.LATEST_FILE);
        try (Stream<Path> s = Files.list(dir)) {
            for (Path p : s.toList()) {
                assertEquals(file, Files.getPosixFilePermissions(p), p.getFileName() + ", as any new file (0644 under umask 022)");
            }
        }
    }

    /** Writes the manifest with {@code edit} applied to its text. */
    private static void editManifest(Path dir, String from, String to) throws IOException {
        Path manifest = dir.resolve(CheckpointStore.MANIFEST_FILE);
        String text = Files.readString(manifest);
        assertTrue(text.contains(from), from);
        Files.writeString(manifest, text.replace(from, to));
    }

    @Test
    void aManifestOfTheWrongShapeIsRefusedNamingTheField() throws IOException {
        CheckpointStore store = store(3);
        Path dir = save(store, 5, model(1));
        String manifest = Files.readString(dir.resolve(CheckpointStore.MANIFEST_FILE));
        String[][] edits = {
            {"\"step\": 5", "\"step\": \"5\"", "invalid field /step"},
            {"\"step\": 5", "\"step\": -5", "the manifest is invalid: the step is -5, below 0"},
            {"\"step\": 5", "\"step\": 5.5", "invalid field /step"},
            {"\"version\": 1", "\"version\": 2", "has manifest version 2; this muon4j reads version 1"},
            {"\"format\": \"muon4j-checkpoint\"", "\"format\": \"other\"", "not a muon4j checkpoint manifest (format other)"},
            {"\"size\": ", "\"bytes\": ", "invalid field /files/model.safetensors"},
            {"\"sha256\": \"", "\"sha256\": \"x", "invalid field /files/model.safetensors", "not 64 hex digits"},
            {"\"step\": 5,", "\"step\": 5, \"step\": 6,", "is damaged at byte", "Duplicate field 'step'"},
            {"\"files\": {", "\"files\": {\"x.json\": null, ", "the manifest is invalid: the entry of x.json is null"},
            {"\"step\": 5,", "\"step\": 5, \"other\": 1,", "invalid field /other", "Unrecognized field \"other\""},
        };
        for (String[] edit : edits) {
            editManifest(dir, edit[0], edit[1]);
            IOException e = assertThrows(IOException.class, () -> store.load(dir), edit[1]);
            assertTrue(e.getMessage().contains(dir.resolve(CheckpointStore.MANIFEST_FILE).toString()), e.getMessage());
            for (int i = 2; i < edit.length; i++) {
                assertTrue(e.getMessage().contains(edit[i]), edit[i] + " in: " + e.getMessage());
            }
            Files.writeString(dir.resolve(CheckpointStore.MANIFEST_FILE), manifest);
        }
        Path file = dir.resolve(CheckpointStore.MANIFEST_FILE);
        Files.writeString(file, "{\"format\": \"muon4j-checkpoint\", \"version\": 1, \"step\": 5, \"files\": null}");
        IOException e = assertThrows(IOException.class, () -> store.load(dir));
        assertTrue(e.getMessage().contains("the manifest is invalid: it has no \"files\" object"), e.getMessage());
        Files.writeString(file, "{\"format\": \"muon4j-checkpoint\", \"version\": 1, \"step\": 5}");
        e = assertThrows(IOException.class, () -> store.load(dir));
        assertTrue(e.getMessage().contains("'files'"), e.getMessage());
        Files.writeString(file, manifest);
        assertEquals(5, store.load(dir).step());
    }

    @Test
    void invalidJsonValuesAreRejectedBeforeWriting() throws IOException {
        CheckpointStore store = store(3);
        List<Parameter> params = model(1);
        Map<String, Object> trainer = new LinkedHashMap<>(trainer(100));
        trainer.put("loss", Double.NaN);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> store.save(100, params, state(params, 100), config(), trainer));
        assertTrue(e.getMessage().contains("trainer.json") && e.getMessage().contains("/loss is NaN"), e.getMessage());
        assertFalse(Files.exists(runDir.resolve("step-00000100")));
        List<Parameter> twice = List.of(params.get(0), params.get(0));
        assertThrows(IllegalArgumentException.class, () -> store.save(100, twice, state(params, 100), config(), trainer(100)));
    }
}
