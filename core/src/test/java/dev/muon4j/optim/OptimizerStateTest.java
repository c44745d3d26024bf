package dev.muon4j.optim;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.Backends;
import dev.muon4j.io.JsonCodec;
import dev.muon4j.io.Python3;
import dev.muon4j.io.SafeTensors;
import dev.muon4j.io.TensorData;
import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.zip.CRC32;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Saving and restoring the hybrid optimizer's state through a file: a restored optimizer over copied
 * parameters continues bit for bit like the original, and step and skipped-step counts survive. The
 * file is safetensors with a tensor per buffer and the steps, parameters and rules in its metadata;
 * files of the old layout (format versions 1 and 2) still load. A damaged file is refused with an
 * {@code IOException} naming the file and the field (the byte offset in the old layout), even when
 * its checksums have been made to match.
 */
class OptimizerStateTest {
    static Backend backend;

    @TempDir
    Path dir;

    @BeforeAll
    static void open() {
        backend = Backends.openBundled(2);
    }

    @AfterAll
    static void close() throws Exception {
        backend.close();
    }

    private static List<Parameter> parameters(Random random) {
        List<Parameter> params = new ArrayList<>();
        params.add(Parameter.of("embed", ParamRole.EMBEDDING, new int[] {12, 8}, Float64Reference.gaussian(random, 96, 0.1), new float[96]));
        params.add(Parameter.of("layers.0.wq", ParamRole.HIDDEN_MATRIX, new int[] {16, 24}, Float64Reference.gaussian(random, 384, 0.1), new float[384]));
        params.add(Parameter.stackedMatrices("layers.0.experts", 3, 8, 12, Float64Reference.gaussian(random, 288, 0.1), new float[288]));
        params.add(Parameter.of("layers.0.norm", ParamRole.NORM, new int[] {8}, Float64Reference.gaussian(random, 8, 0.1), new float[8]));
        params.add(Parameter.of("head", ParamRole.HEAD, new int[] {12, 8}, Float64Reference.gaussian(random, 96, 0.1), new float[96]));
        return params;
    }

    /** Fresh parameters with the same names, shapes, layouts and copies of the values. */
    private static List<Parameter> copies(List<Parameter> params) {
        List<Parameter> out = new ArrayList<>();
        for (Parameter p : params) {
            Parameter q = Parameter.of(p.name(), p.role(), p.shape(), p.value().clone(), new float[p.size()]);
            if (p.layout() != null && !p.layout().equals(q.layout())) {
                q = q.withLayout(p.layout());
            }
            out.add(q);
        }
        return out;
    }

    private static HybridOptimizer build(List<Parameter> params, NonFinitePolicy policy) {
        return HybridOptimizer.builder(backend)
                .muon(MuonConfig.moonlight().learningRate(0.02).build())
                .adamw(AdamWConfig.builder().learningRate(0.003).weightDecay(0.01).build())
                .schedule(LearningRateSchedule.warmupCosine(2, 10, 0.1))
                .clipGradientNorm(20.0)
                .nonFinite(policy)
                .build(params);
    }

    private static void fillGradients(Random random, List<Parameter> a, List<Parameter> b) {
        for (int i = 0; i < a.size(); i++) {
            Float64Reference.fillGaussian(random, a.get(i).gradient(), 1.0);
            if (b != null) {
                System.arraycopy(a.get(i).gradient(), 0, b.get(i).gradient(), 0, a.get(i).size());
            }
        }
    }

    private static void assertBitEqual(List<Parameter> a, List<Parameter> b, String when) {
        for (int i = 0; i < a.size(); i++) {
            assertTrue(Float64Reference.bitEqual(a.get(i).value(), b.get(i).value()), a.get(i).name() + " differs " + when);
        }
    }

    @Test
    void roundTripThroughFileContinuesBitForBit() throws IOException {
        Random random = new Random(7);
        List<Parameter> original = parameters(random);
        HybridOptimizer first = build(original, NonFinitePolicy.FAIL);
        for (int step = 0; step < 4; step++) {
            fillGradients(random, original, null);
            first.step();
        }
        Path file = dir.resolve("optimizer.state");
        first.saveState().write(file);
        List<Parameter> restoredParams = copies(original);
        HybridOptimizer restored = build(restoredParams, NonFinitePolicy.FAIL);
        restored.loadState(OptimizerState.read(file));
        assertEquals(first.stepCount(), restored.stepCount());
        assertEquals(first.skippedSteps(), restored.skippedSteps());
        assertEquals(first.routes(), restored.routes());
        for (int step = 0; step < 4; step++) {
            fillGradients(random, original, restoredParams);
            StepResult a = first.step();
            StepResult b = restored.step();
            assertEquals(a, b, "step results");
            assertBitEqual(original, restoredParams, "after restored step " + step);
        }
        OptimizerState again = restored.saveState();
        OptimizerState reference = first.saveState();
        for (String name : reference.entries().keySet()) {
            reference.entries().get(name).buffers().forEach((buffer, data) -> assertTrue(
                    Float64Reference.bitEqual(data, again.entries().get(name).buffers().get(buffer)), name + "/" + buffer));
        }
    }

    @Test
    void stateFileRoundTripIsExact() throws IOException {
        Random random = new Random(8);
        List<Parameter> params = parameters(random);
        HybridOptimizer optimizer = build(params, NonFinitePolicy.FAIL);
        for (int step = 0; step < 3; step++) {
            fillGradients(random, params, null);
            optimizer.step();
        }
        OptimizerState saved = optimizer.saveState();
        Path file = dir.resolve("exact.state");
        saved.write(file);
        OptimizerState read = OptimizerState.read(file);
        assertEquals(saved.step(), read.step());
        assertEquals(saved.skippedSteps(), read.skippedSteps());
        assertEquals(List.copyOf(saved.entries().keySet()), List.copyOf(read.entries().keySet()));
        saved.entries().forEach((name, entry) -> {
            OptimizerState.Entry other = read.entries().get(name);
            assertEquals(entry.route(), other.route(), name);
            assertEquals(List.of(box(entry.shape())), List.of(box(other.shape())), name);
            assertEquals(List.copyOf(entry.buffers().keySet()), List.copyOf(other.buffers().keySet()), name);
            entry.buffers().forEach((buffer, data) -> assertTrue(Float64Reference.bitEqual(data, other.buffers().get(buffer)),
                    name + "/" + buffer));
        });
    }

    private static Integer[] box(int[] shape) {
        Integer[] out = new Integer[shape.length];
        for (int i = 0; i < shape.length; i++) {
            out[i] = shape[i];
        }
        return out;
    }

    @Test
    void skippedStepsArePreservedAcrossRestore() throws IOException {
        Random random = new Random(9);
        List<Parameter> original = parameters(random);
        HybridOptimizer first = build(original, NonFinitePolicy.SKIP_STEP);
        fillGradients(random, original, null);
        first.step();
        fillGradients(random, original, null);
        first.step();
        fillGradients(random, original, null);
        original.get(1).gradient()[5] = Float.NaN;
        assertTrue(first.step().skipped());
        assertEquals(2, first.stepCount());
        assertEquals(1, first.skippedSteps());

        Path file = dir.resolve("skipped.state");
        first.saveState().write(file);
        OptimizerState read = OptimizerState.read(file);
        assertEquals(2, read.step());
        assertEquals(1, read.skippedSteps());
        List<Parameter> restoredParams = copies(original);
        HybridOptimizer restored = build(restoredParams, NonFinitePolicy.SKIP_STEP);
        restored.loadState(read);
        assertEquals(2, restored.stepCount());
        assertEquals(1, restored.skippedSteps());

        // Another skipped step, then good ones: both continue alike.
        fillGradients(random, original, restoredParams);
        original.get(3).gradient()[2] = Float.POSITIVE_INFINITY;
        restoredParams.get(3).gradient()[2] = Float.POSITIVE_INFINITY;
        assertTrue(first.step().skipped());
        assertTrue(restored.step().skipped());
        for (int step = 0; step < 3; step++) {
            fillGradients(random, original, restoredParams);
            assertEquals(first.step(), restored.step());
            assertBitEqual(original, restoredParams, "after step " + step);
        }
        assertEquals(5, first.stepCount());
        assertEquals(5, restored.stepCount());
        assertEquals(2, first.skippedSteps());
        assertEquals(2, restored.skippedSteps());
    }

    // ---------------------------------------------------------------------------------------- the file

    @SuppressWarnings("unchecked")
    private static <T> T cast(Object o) {
        return (T) o;
    }

    /** The CRC-32 as the metadata records it: 8 lowercase hex digits. */
    private static String hex(CRC32 crc) {
        return String.format("%08x", crc.getValue());
    }

    /** The metadata's checksum as OptimizerState documents it: the other entries as one compact JSON object, keys sorted. */
    private static String metadataCrc(Map<String, String> metadata) {
        TreeMap<String, String> sorted = new TreeMap<>(metadata);
        sorted.remove("data_crc32");
        sorted.remove("metadata_crc32");
        CRC32 crc = new CRC32();
        crc.update(JsonCodec.write(sorted).getBytes(StandardCharsets.UTF_8));
        return hex(crc);
    }

    @Test
    void theFileIsSafetensorsWithATensorPerBufferAndTheStateInItsMetadata() throws IOException {
        OptimizerState trained = saved(12);
        Map<String, OptimizerState.Entry> entries = new LinkedHashMap<>(trained.entries());
        entries.put("layers.0.scale", new OptimizerState.Entry(Route.ADAMW, new int[] {}, Map.of())); // no buffers
        OptimizerState state = new OptimizerState(trained.step(), 2, entries, trained.rules());
        Path file = dir.resolve("optimizer.safetensors");
        state.write(file);

        SafeTensors.Contents raw = SafeTensors.read(file);
        Map<String, int[]> shapes = new TreeMap<>();
        shapes.put("embed/exp_avg", new int[] {12, 8});
        shapes.put("embed/exp_avg_sq", new int[] {12, 8});
        shapes.put("layers.0.wq/momentum", new int[] {16, 24});
        shapes.put("layers.0.experts/momentum", new int[] {3, 8, 12});
        shapes.put("layers.0.norm/exp_avg", new int[] {8});
        shapes.put("layers.0.norm/exp_avg_sq", new int[] {8});
        shapes.put("head/exp_avg", new int[] {12, 8});
        shapes.put("head/exp_avg_sq", new int[] {12, 8});
        assertEquals(shapes.keySet(), raw.tensors().keySet(), "one tensor per buffer, named <parameter>/<buffer>");
        shapes.forEach((name, shape) -> {
            TensorData t = raw.tensors().get(name);
            assertEquals("F32", t.dtype(), name);
            assertArrayEquals(shape, t.shape(), name);
            String[] parts = name.split("/");
            assertTrue(Float64Reference.bitEqual(state.entries().get(parts[0]).buffers().get(parts[1]), t.data()), name);
        });

        Map<String, String> meta = raw.metadata();
        assertEquals("muon4j-optimizer-state", meta.get("format"));
        assertEquals("3", meta.get("format_version"));
        assertEquals(Long.toString(trained.step()), meta.get("step"));
        assertEquals("2", meta.get("skipped_steps"));
        Map<String, Object> parameters = JsonCodec.parseObject(meta.get("parameters"));
        assertEquals(List.copyOf(entries.keySet()), List.copyOf(parameters.keySet()), "every parameter, in the optimizer's order");
        Map<String, Object> wq = cast(parameters.get("layers.0.wq"));
        assertEquals(Map.of("route", "muon", "shape", List.of(16L, 24L), "rule", "muon", "buffers", List.of("momentum")), wq);
        Map<String, Object> embed = cast(parameters.get("embed"));
        assertEquals(Map.of("route", "adamw", "shape", List.of(12L, 8L), "rule", "adamw", "buffers", List.of("exp_avg", "exp_avg_sq")),
                embed);
        assertEquals(Map.of("route", "adamw", "shape", List.of(), "buffers", List.of()), parameters.get("layers.0.scale"),
                "a parameter without buffers is recorded; its rule was not");
        Map<String, Object> rules = JsonCodec.parseObject(meta.get("rules"));
        assertEquals(List.of("adamw", "muon"), List.copyOf(rules.keySet()), "in the order of the parameters that first name them");
        Map<String, Object> muon = cast(rules.get("muon"));
        assertEquals("muon", muon.get("family"));
        List<Map<String, Object>> stages = cast(muon.get("transforms"));
        assertEquals(List.of("momentum", "orthogonalize", "decoupled_update"), stages.stream().map(t -> t.get("name")).toList());
        // build() uses Moonlight's Muon: classic momentum 0.95 with Nesterov; Keller Jordan's Newton–Schulz, 5 steps.
        assertEquals(Map.of("form", "classic", "nesterov", true, "beta", 0.95), stages.get(0).get("settings"));
        Map<String, Object> newtonSchulz = cast(((Map<String, Object>) cast(stages.get(1).get("settings"))).get("newton_schulz"));
        assertEquals(5L, newtonSchulz.get("steps"));
        assertEquals(List.of(3.4445, -4.7750, 2.0315), newtonSchulz.get("tail"));
        Map<String, Object> adam = cast(((List<Object>) cast(((Map<String, Object>) cast(rules.get("adamw"))).get("transforms"))).get(0));
        assertEquals(Map.of("beta1", 0.9, "beta2", 0.999, "eps", 1e-8), adam.get("settings"), "AdamWConfig's defaults");

        // The checksums, recomputed here from their definitions.
        byte[] bytes = Files.readAllBytes(file);
        int dataStart = 8 + (int) ByteBuffer.wrap(bytes).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong(0);
        CRC32 data = new CRC32();
        data.update(bytes, dataStart, bytes.length - dataStart);
        assertEquals(hex(data), meta.get("data_crc32"));
        assertEquals(metadataCrc(meta), meta.get("metadata_crc32"));

        Path again = dir.resolve("again.safetensors");
        state.write(again);
        assertArrayEquals(bytes, Files.readAllBytes(again), "the same state makes the same bytes");

        OptimizerState read = OptimizerState.read(file);
        assertEquals(state.rules(), read.rules());
        assertEquals(List.copyOf(entries.keySet()), List.copyOf(read.entries().keySet()));
        state.entries().forEach((name, entry) -> {
            OptimizerState.Entry other = read.entries().get(name);
            assertEquals(entry.route(), other.route(), name);
            assertEquals(entry.rule(), other.rule(), name);
            assertArrayEquals(entry.shape(), other.shape(), name);
            assertEquals(List.copyOf(entry.buffers().keySet()), List.copyOf(other.buffers().keySet()), name);
        });
    }

    /**
     * The metadata checksum is computed over JSON text that Python's {@code json.dumps} writes the same way:
     * scripts/read-optimizer-state.py recomputes both checksums of a state whose names go beyond ASCII.
     */
    @Test
    void pythonsReaderAgreesOnTheChecksums() throws Exception {
        Path script = Path.of("..", "scripts", "read-optimizer-state.py");
        assumeTrue(Files.isRegularFile(script), "scripts/read-optimizer-state.py is not beside the core module");
        Python3.assumeAvailable();
        Map<String, OptimizerState.Entry> entries = new LinkedHashMap<>();
        entries.put("caf\u00e9.w\u007f\u2028\"q\"", new OptimizerState.Entry(Route.MUON, new int[] {2, 3},
                Map.of("momentum", new float[] {1, 2, 3, 4, 5, 6})));
        entries.put("\ud83d\ude00.bias", new OptimizerState.Entry(Route.ADAMW, new int[] {2}, Map.of("m", new float[] {-1, 0.5f})));
        Path file = dir.resolve("names.safetensors");
        new OptimizerState(9, 1, entries).write(file);
        assertEquals(entries.keySet(), OptimizerState.read(file).entries().keySet());
        Python3.Run run = Python3.run(script.toString(), file.toString());
        assertEquals(0, run.exitCode(), run.output());
        assertTrue(run.output().contains("2 tensors, 2 parameters") && !run.output().contains("problem"), run.output());
    }

    @Test
    void rulesOfOneNameWithOtherSettingsAreToldApart() throws IOException {
        Random random = new Random(14);
        List<Parameter> params = parameters(random);
        HybridOptimizer optimizer = HybridOptimizer.builder(backend)
                .rule("layers.0.wq", UpdateRule.muon(MuonConfig.builder().momentum(0.9).build()))
                .build(params);
        fillGradients(random, params, null);
        optimizer.step();
        OptimizerState state = optimizer.saveState();
        assertEquals(List.of("adamw", "muon", "muon#2"), List.copyOf(state.rules().keySet()));
        assertEquals("muon", state.entries().get("layers.0.wq").rule());
        assertEquals("muon#2", state.entries().get("layers.0.experts").rule());
        assertEquals(Map.of("form", "ema", "nesterov", true, "beta", 0.9), state.rules().get("muon").stages().get(0).settings());
        Path file = dir.resolve("rules.safetensors");
        state.write(file);
        OptimizerState read = OptimizerState.read(file);
        assertEquals(state.rules(), read.rules());
        assertEquals("muon#2", read.entries().get("layers.0.experts").rule());
    }

    @Test
    void filesOfTheOldLayoutVersionsOneAndTwoStillLoadAndConvert() throws IOException {
        Random random = new Random(13);
        List<Parameter> original = parameters(random);
        HybridOptimizer first = build(original, NonFinitePolicy.FAIL);
        for (int step = 0; step < 3; step++) {
            fillGradients(random, original, null);
            first.step();
        }
        OptimizerState saved = first.saveState();
        for (int version : new int[] {1, 2}) {
            Path old = dir.resolve("v" + version + ".state");
            LegacyStateWriter.write(saved, old, version);
            OptimizerState read = OptimizerState.read(old);
            assertSameState(saved, read, "version " + version);
            assertTrue(read.rules().isEmpty(), "the old layout recorded no rules");
            assertEquals(null, read.entries().get("layers.0.wq").rule());

            // Converting is reading and writing; the optimizer takes either alike and continues bit for bit.
            Path converted = dir.resolve("v" + version + ".safetensors");
            read.write(converted);
            assertSameState(saved, OptimizerState.read(converted), "version " + version + " converted");
            List<Parameter> restoredParams = copies(original);
            HybridOptimizer restored = build(restoredParams, NonFinitePolicy.FAIL);
            restored.loadState(OptimizerState.read(old));
            List<Parameter> reference = copies(original);
            HybridOptimizer again = build(reference, NonFinitePolicy.FAIL);
            again.loadState(saved);
            fillGradients(random, reference, restoredParams);
            assertEquals(again.step(), restored.step());
            assertBitEqual(reference, restoredParams, "after a step from the version " + version + " file");
        }
    }

    private static void assertSameState(OptimizerState want, OptimizerState got, String what) {
        assertEquals(want.step(), got.step(), what);
        assertEquals(want.skippedSteps(), got.skippedSteps(), what);
        assertEquals(List.copyOf(want.entries().keySet()), List.copyOf(got.entries().keySet()), what);
        want.entries().forEach((name, entry) -> {
            OptimizerState.Entry other = got.entries().get(name);
            assertEquals(entry.route(), other.route(), what + ": " + name);
            assertArrayEquals(entry.shape(), other.shape(), what + ": " + name);
            assertEquals(List.copyOf(entry.buffers().keySet()), List.copyOf(other.buffers().keySet()), what + ": " + name);
            entry.buffers().forEach((buffer, data) -> assertTrue(Float64Reference.bitEqual(data, other.buffers().get(buffer)),
                    what + ": " + name + "/" + buffer));
        });
    }

    /** Changes a written state file's tensors and metadata, then writes it back with both checksums made to match. */
    private interface Change {
        void apply(Map<String, TensorData> tensors, Map<String, String> metadata);
    }

    private Path changed(String name, Change change) throws IOException {
        Path file = dir.resolve(name);
        saved(15).write(file);
        SafeTensors.Contents raw = SafeTensors.read(file);
        Map<String, TensorData> tensors = new LinkedHashMap<>(raw.tensors());
        Map<String, String> metadata = new LinkedHashMap<>(raw.metadata());
        change.apply(tensors, metadata);
        if (metadata.containsKey("data_crc32")) {
            metadata.put("data_crc32", String.format("%08x", SafeTensors.dataCrc32(tensors)));
        }
        if (metadata.containsKey("metadata_crc32")) {
            metadata.put("metadata_crc32", metadataCrc(metadata));
        }
        SafeTensors.write(file, tensors, metadata);
        return file;
    }

    private static String replaced(String json, String from, String to) {
        assertTrue(json.contains(from), from + " in " + json);
        return json.replace(from, to);
    }

    @Test
    void damagedSafetensorsStateIsRefusedNamingTheFileAndTheField() throws IOException {
        String wq = "layers.0.wq/momentum";
        refused(changed("missing.safetensors", (t, m) -> t.remove(wq)),
                "lacks tensor 'layers.0.wq/momentum', buffer momentum of parameter layers.0.wq");
        refused(changed("unknown.safetensors", (t, m) -> t.put("layers.0.wq/extra", TensorData.f32(new int[] {1}, new float[1]))),
                "holds tensor 'layers.0.wq/extra', which is no buffer of a parameter");
        refused(changed("transposed.safetensors", (t, m) -> t.put(wq, TensorData.f32(new int[] {24, 16}, t.get(wq).data()))),
                "tensor 'layers.0.wq/momentum' of shape [24, 16], but parameter layers.0.wq has shape [16, 24]");
        refused(changed("shape.safetensors", (t, m) -> m.put("parameters", replaced(m.get("parameters"), "[16,24]", "[16,25]"))),
                "tensor 'layers.0.wq/momentum' of shape [16, 24], but parameter layers.0.wq has shape [16, 25]");
        refused(changed("dtype.safetensors", (t, m) -> t.put(wq, new TensorData("BF16", t.get(wq).shape(), t.get(wq).data()))),
                "tensor 'layers.0.wq/momentum' of dtype BF16");
        refused(changed("format.safetensors", (t, m) -> m.put("format", "weights")),
                "is a safetensors file but not a muon4j optimizer state", "\"format\": \"weights\"");
        refused(changed("noformat.safetensors", (t, m) -> m.clear()), "not a muon4j optimizer state", "no \"format\"");
        refused(changed("step.safetensors", (t, m) -> m.put("step", "-1")), "metadata \"step\" \"-1\", not a count");
        refused(changed("skipped.safetensors", (t, m) -> m.remove("skipped_steps")), "lacks \"skipped_steps\"");
        refused(changed("route.safetensors", (t, m) -> m.put("parameters", replaced(m.get("parameters"), "\"route\":\"muon\"",
                "\"route\":\"sgd\""))), "parameters of layers.0.wq with route \"sgd\"");
        refused(changed("rule.safetensors", (t, m) -> m.put("parameters", replaced(m.get("parameters"), "\"rule\":\"muon\"",
                "\"rule\":\"nope\""))), "parameters of layers.0.wq with rule \"nope\", not one of the rules [adamw, muon]");
        refused(changed("family.safetensors", (t, m) -> m.put("rules", replaced(m.get("rules"), "\"family\":\"muon\"",
                "\"family\":\"adamw\""))), "parameters of layers.0.wq with route muon but rule muon of the adamw family");
        refused(changed("json.safetensors", (t, m) -> m.put("parameters", "{\"w\":")), "metadata \"parameters\" that is not a JSON object");
        refused(changed("buffers.safetensors", (t, m) -> m.put("parameters", replaced(m.get("parameters"), "[\"momentum\"]",
                "[\"momentum\",\"momentum\"]"))), "\"momentum\" is not a new, non-empty buffer name");

        // Without the checksums made to match: the checksums are what fail.
        Path step = dir.resolve("step-edited.safetensors");
        saved(15).write(step);
        String text = Files.readString(step, StandardCharsets.ISO_8859_1);
        Files.writeString(step, replaced(text, "\"step\":\"1\"", "\"step\":\"7\""), StandardCharsets.ISO_8859_1);
        refused(step, "is damaged: checksum mismatch", "metadata_crc32");
        Path flipped = dir.resolve("flipped.safetensors");
        saved(15).write(flipped);
        byte[] bytes = Files.readAllBytes(flipped);
        bytes[bytes.length - 1] ^= 0x01;
        Files.write(flipped, bytes);
        refused(flipped, "is damaged: checksum mismatch", "data_crc32");
    }

    @Test
    void aFileOfNeitherFormatIsRefused() throws IOException {
        Path text = dir.resolve("notes.txt");
        Files.writeString(text, "these are not optimizer states\n");
        refused(text, "is not a muon4j optimizer state file", "safetensors", "MUON4JOS");
        Path tiny = dir.resolve("tiny.state");
        Files.write(tiny, new byte[] {1, 2, 3});
        refused(tiny, "is truncated or not a muon4j optimizer state file: it has only 3 bytes");
        Path weights = dir.resolve("model.safetensors");
        SafeTensors.write(weights, Map.of("w", TensorData.f32(new int[] {2}, new float[] {1, 2})), Map.of("producer", "muon4j"));
        refused(weights, "is a safetensors file but not a muon4j optimizer state");
    }

    // ---------------------------------------------------------------------------------------- damaged files

    /** Writes a file body. */
    private interface Body {
        void write(DataOutputStream out) throws IOException;
    }

    /** A state file of {@code body} followed by its correct CRC-32, as {@link OptimizerState#write} ends one. */
    private Path fileWithChecksum(String name, Body body) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        DataOutputStream out = new DataOutputStream(bytes);
        body.write(out);
        CRC32 crc = new CRC32();
        crc.update(bytes.toByteArray());
        out.writeLong(crc.getValue());
        Path file = dir.resolve(name);
        Files.write(file, bytes.toByteArray());
        return file;
    }

    /** The header of a version-1 file: the hand-written bodies below use that layout (an int length per buffer). */
    private static void header(DataOutputStream out, long step, int parameterCount) throws IOException {
        out.write("MUON4JOS".getBytes(StandardCharsets.US_ASCII));
        out.writeInt(OptimizerState.OLDEST_READABLE_VERSION);
        out.writeLong(step);
        out.writeLong(0);
        out.writeInt(parameterCount);
    }

    /** One parameter with one buffer that claims {@code length} floats and holds {@code floats} zeros. */
    private static void parameter(DataOutputStream out, String name, String route, int[] shape, String buffer, int length,
                                  int floats) throws IOException {
        out.writeUTF(name);
        out.writeUTF(route);
        out.writeInt(shape.length);
        for (int d : shape) {
            out.writeInt(d);
        }
        out.writeInt(1);
        out.writeUTF(buffer);
        out.writeInt(length);
        out.write(new byte[floats * Float.BYTES]);
    }

    private static IOException refused(Path file, String... fragments) {
        IOException e = assertThrows(IOException.class, () -> OptimizerState.read(file));
        assertEquals(IOException.class, e.getClass(), "a plain IOException, not " + e);
        assertTrue(e.getMessage().contains(file.toString()), "names the file: " + e.getMessage());
        for (String f : fragments) {
            assertTrue(e.getMessage().contains(f), "'" + f + "' in: " + e.getMessage());
        }
        return e;
    }

    @Test
    void bufferLengthThatDisagreesWithTheShapeIsRefusedDespiteAGoodChecksum() throws IOException {
        Path file = fileWithChecksum("length.state", out -> {
            header(out, 3, 1);
            parameter(out, "layers.0.q", "MUON", new int[] {8, 16}, "momentum", 100, 100);
        });
        // header 32, name 2 + 10, route 2 + 4, rank 4, shape 8, buffer count 4, buffer name 2 + 8
        refused(file, "is damaged at byte 76: buffer layers.0.q/momentum has 100 floats, the shape [8, 16] holds 128");
    }

    @Test
    void damagedNameWithAGoodChecksumIsANamedError() throws IOException {
        Path file = dir.resolve("name.state");
        LegacyStateWriter.write(saved(10), file, 2);
        byte[] bytes = Files.readAllBytes(file);
        byte[] name = "layers.0.wq".getBytes(StandardCharsets.US_ASCII);
        int at = indexOf(bytes, name);
        bytes[at + 3] = (byte) 0xFF; // no byte of (modified) UTF-8 is 0xFF
        Files.write(file, withChecksum(bytes));
        refused(file, "is damaged at byte " + (at - 2), "is not valid UTF-8");

        // Without the checksum made to match, the checksum is what fails, before any name is decoded.
        Files.write(file, bytes);
        refused(file, "checksum mismatch");
    }

    @Test
    void hugeLengthFieldsAllocateNothing() throws IOException {
        // 46340² floats fit in an int count but would take 8 GiB: more than the file and the heap hold.
        Path shape = fileWithChecksum("huge.state", out -> {
            header(out, 1, 1);
            parameter(out, "embed", "ADAMW", new int[] {46340, 46340}, "exp_avg", 46340 * 46340, 4);
        });
        refused(shape, "buffer embed/exp_avg needs 8589582400 bytes but only 16 remain");
        Path elements = fileWithChecksum("elements.state", out -> {
            header(out, 1, 1);
            parameter(out, "embed", "ADAMW", new int[] {65536, 65536}, "exp_avg", 0, 0);
        });
        refused(elements, "is damaged at byte 46: parameter embed has shape [65536, 65536], more elements than an int counts");
        Path count = fileWithChecksum("count.state", out -> header(out, 1, Integer.MAX_VALUE));
        refused(count, "is damaged at byte 28: parameter count 2147483647 is not between 0 and");
        Path many = fileWithChecksum("many.state", out -> {
            header(out, 1, 1000);
            parameter(out, "embed", "ADAMW", new int[] {2}, "exp_avg", 2, 2);
        });
        refused(many, "parameter count 1000 cannot fit in the");
    }

    @Test
    void everyMalformedFieldIsRefusedWithItsOffset() throws IOException {
        refused(fileWithChecksum("route.state", out -> {
            header(out, 1, 1);
            parameter(out, "w", "SGD", new int[] {2}, "m", 2, 2);
        }), "is damaged at byte 35: parameter w has unknown route 'SGD'");
        refused(fileWithChecksum("rank.state", out -> {
            header(out, 1, 1);
            parameter(out, "w", "MUON", new int[17], "m", 0, 0);
        }), "is damaged at byte 41: parameter w has rank 17");
        refused(fileWithChecksum("dimension.state", out -> {
            header(out, 1, 1);
            parameter(out, "w", "MUON", new int[] {4, -2}, "m", 0, 0);
        }), "is damaged at byte 49: parameter w has negative dimension -2");
        refused(fileWithChecksum("twice.state", out -> {
            header(out, 1, 2);
            parameter(out, "w", "ADAMW", new int[] {2}, "m", 2, 2);
            parameter(out, "w", "ADAMW", new int[] {2}, "m", 2, 2);
        }), "is damaged at byte 69: parameter w appears twice");
        refused(fileWithChecksum("step.state", out -> header(out, -5, 0)), "is damaged at byte 12: the step count -5 is negative");
        refused(fileWithChecksum("after.state", out -> {
            header(out, 1, 1);
            parameter(out, "w", "ADAMW", new int[] {2}, "m", 2, 2);
            out.writeInt(7);
        }), "is damaged at byte 69: 4 unexpected bytes after the last parameter");
        refused(fileWithChecksum("short.state", out -> {
            header(out, 1, 1);
            parameter(out, "w", "ADAMW", new int[] {2}, "m", 2, 1);
        }), "is damaged at byte 61: ends early: buffer w/m needs 8 bytes but only 4 remain");

        Path cut = dir.resolve("cut.state");
        LegacyStateWriter.write(saved(11), cut, 2);
        byte[] bytes = Files.readAllBytes(cut);
        Files.write(cut, withChecksum(Arrays.copyOf(bytes, bytes.length - 20)));
        refused(cut, "ends early");
    }

    @Test
    void writeRefusesStateThatReadWouldRefuse() {
        Map<String, float[]> buffers = new java.util.LinkedHashMap<>();
        for (int b = 0; b < 65; b++) {
            buffers.put("b" + b, new float[1]);
        }
        OptimizerState state = new OptimizerState(1, 0, Map.of("w", new OptimizerState.Entry(Route.ADAMW, new int[] {1}, buffers)));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> state.write(dir.resolve("never.state")));
        assertTrue(e.getMessage().contains("w") && e.getMessage().contains("65 buffers"), e.getMessage());
        assertFalse(Files.exists(dir.resolve("never.state")), "nothing was written");
    }

    @Test
    void buffersOfTheirOwnShapeRoundTripAndADamagedBufferShapeIsNamed() throws IOException {
        // A per-row statistic (NorMuon's) beside a parameter-sized momentum.
        Map<String, float[]> buffers = new java.util.LinkedHashMap<>();
        buffers.put("momentum", new float[] {1, 2, 3, 4, 5, 6});
        buffers.put("row_second_moment", new float[] {0.5f, 0.25f});
        OptimizerState state = new OptimizerState(4, 0, Map.of("w", new OptimizerState.Entry(Route.MUON, new int[] {2, 3}, buffers)));
        Path file = dir.resolve("rows.state");
        state.write(file);
        OptimizerState back = OptimizerState.read(file);
        assertArrayEquals(new float[] {0.5f, 0.25f}, back.entries().get("w").buffers().get("row_second_moment"));
        assertArrayEquals(new float[] {1, 2, 3, 4, 5, 6}, back.entries().get("w").buffers().get("momentum"));
        SafeTensors.Contents raw = SafeTensors.read(file);
        assertArrayEquals(new int[] {2, 3}, raw.tensors().get("w/momentum").shape(), "a parameter-sized buffer has the parameter's shape");
        assertArrayEquals(new int[] {2}, raw.tensors().get("w/row_second_moment").shape(), "any other buffer one dimension");

        // The same state in the old layout, version 2: read alike.
        LegacyStateWriter.write(state, file, 2);
        back = OptimizerState.read(file);
        assertArrayEquals(new float[] {0.5f, 0.25f}, back.entries().get("w").buffers().get("row_second_moment"));
        byte[] bytes = Files.readAllBytes(file);
        assertEquals(2, ByteBuffer.wrap(bytes).getInt(8), "written in version 2");
        // The row statistic's one dimension, 2, made 3: its floats no longer fit before the checksum.
        byte[] name = "row_second_moment".getBytes(StandardCharsets.US_ASCII);
        int dimensionAt = indexOf(bytes, name) + name.length + Integer.BYTES;
        assertEquals(2, ByteBuffer.wrap(bytes).getInt(dimensionAt));
        ByteBuffer.wrap(bytes).putInt(dimensionAt, 3);
        Files.write(file, withChecksum(bytes));
        refused(file, "ends early", "w/row_second_moment");
    }

    private OptimizerState saved(long seed) {
        Random random = new Random(seed);
        List<Parameter> params = parameters(random);
        HybridOptimizer optimizer = build(params, NonFinitePolicy.FAIL);
        fillGradients(random, params, null);
        optimizer.step();
        return optimizer.saveState();
    }

    /** The bytes with their last 8 replaced by the CRC-32 of the others. */
    private static byte[] withChecksum(byte[] bytes) {
        CRC32 crc = new CRC32();
        crc.update(bytes, 0, bytes.length - 8);
        byte[] out = bytes.clone();
        ByteBuffer.wrap(out).putLong(out.length - 8, crc.getValue());
        return out;
    }

    private static int indexOf(byte[] haystack, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= haystack.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (haystack[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return i;
        }
        throw new AssertionError("not found");
    }
}
