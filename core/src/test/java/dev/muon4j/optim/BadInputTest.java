package dev.muon4j.optim;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.Backends;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;

/**
 * Bad inputs give clear exceptions that name the offending parameter, setting or value, and leave
 * parameters and optimizer state untouched: non-finite gradients (FAIL and SKIP_STEP), mismatched
 * arrays, mismatched or damaged optimizer state, and invalid hyperparameters.
 */
class BadInputTest {
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

    private static Parameter hidden(Random random, String name, int rows, int cols) {
        return Parameter.of(name, ParamRole.HIDDEN_MATRIX, new int[] {rows, cols},
                Float64Reference.gaussian(random, rows * cols, 0.1), new float[rows * cols]);
    }

    private static Parameter vector(Random random, String name, ParamRole role, int n) {
        return Parameter.of(name, role, new int[] {n}, Float64Reference.gaussian(random, n, 0.1), new float[n]);
    }

    private static void fill(Random random, List<Parameter> params) {
        for (Parameter p : params) {
            Float64Reference.fillGaussian(random, p.gradient(), 1.0);
        }
    }

    private static float[][] values(List<Parameter> params) {
        return params.stream().map(p -> p.value().clone()).toArray(float[][]::new);
    }

    private static void assertValuesUnchanged(float[][] before, List<Parameter> params) {
        for (int i = 0; i < params.size(); i++) {
            assertTrue(Float64Reference.bitEqual(before[i], params.get(i).value()), params.get(i).name() + " was modified");
        }
    }

    private static void assertStateUnchanged(OptimizerState before, OptimizerState after) {
        assertEquals(before.step(), after.step());
        assertEquals(before.skippedSteps(), after.skippedSteps());
        before.entries().forEach((name, entry) -> entry.buffers().forEach((buffer, data) -> assertTrue(
                Float64Reference.bitEqual(data, after.entries().get(name).buffers().get(buffer)), name + "/" + buffer + " was modified")));
    }

    private static void assertMessage(Throwable e, String... parts) {
        for (String part : parts) {
            assertTrue(e.getMessage().contains(part), "message '" + e.getMessage() + "' should contain '" + part + "'");
        }
    }

    // ---- non-finite gradients ----

    @Test
    void nonFiniteGradientWithFailNamesParameterIndexAndValue() {
        Random random = new Random(1);
        List<Parameter> params = List.of(hidden(random, "layers.0.wq", 16, 24), vector(random, "layers.0.norm", ParamRole.NORM, 40),
                vector(random, "layers.0.bias", ParamRole.BIAS, 40));
        HybridOptimizer optimizer = HybridOptimizer.builder(backend).nonFinite(NonFinitePolicy.FAIL).build(params);
        fill(random, params);
        optimizer.step();

        for (int index : new int[] {3, 37}) {
            fill(random, params);
            params.get(2).gradient()[index] = Float.NaN;
            float[][] before = values(params);
            OptimizerState state = optimizer.saveState();
            NonFiniteGradientException e = assertThrows(NonFiniteGradientException.class, optimizer::step);
            assertEquals("layers.0.bias", e.parameter());
            assertEquals(index, e.index());
            assertTrue(Float.isNaN(e.value()));
            assertMessage(e, "layers.0.bias", "element " + index, "NaN");
            assertValuesUnchanged(before, params);
            assertStateUnchanged(state, optimizer.saveState());
            assertEquals(1, optimizer.stepCount());
            assertEquals(0, optimizer.skippedSteps());
        }

        fill(random, params);
        params.get(0).gradient()[100] = Float.NEGATIVE_INFINITY;
        NonFiniteGradientException e = assertThrows(NonFiniteGradientException.class, optimizer::step);
        assertEquals("layers.0.wq", e.parameter());
        assertEquals(100, e.index());
        assertEquals(Float.NEGATIVE_INFINITY, e.value());
        assertMessage(e, "layers.0.wq", "100", "-Infinity");
    }

    @Test
    void nonFiniteGradientWithSkipLeavesEverythingButTheSkipCount() {
        Random random = new Random(2);
        List<Parameter> params = List.of(hidden(random, "layers.0.wq", 16, 24), vector(random, "layers.0.norm", ParamRole.NORM, 40));
        HybridOptimizer optimizer = HybridOptimizer.builder(backend).nonFinite(NonFinitePolicy.SKIP_STEP)
                .clipGradientNorm(1.0).build(params);
        fill(random, params);
        optimizer.step();
        fill(random, params);
        params.get(1).gradient()[39] = Float.POSITIVE_INFINITY;
        float[][] before = values(params);
        float[] gradientBefore = params.get(0).gradient().clone();
        OptimizerState state = optimizer.saveState();
        StepResult result = optimizer.step();
        assertTrue(result.skipped());
        assertFalse(result.clipped());
        assertEquals(1, result.step());
        assertValuesUnchanged(before, params);
        assertTrue(Float64Reference.bitEqual(gradientBefore, params.get(0).gradient()), "gradient clipped on a skipped step");
        assertEquals(1, optimizer.stepCount());
        assertEquals(1, optimizer.skippedSteps());
        OptimizerState after = optimizer.saveState();
        assertEquals(1, after.skippedSteps());
        state.entries().forEach((name, entry) -> entry.buffers().forEach((buffer, data) -> assertTrue(
                Float64Reference.bitEqual(data, after.entries().get(name).buffers().get(buffer)), name + "/" + buffer)));

        fill(random, params);
        assertFalse(optimizer.step().skipped());
        assertEquals(2, optimizer.stepCount());
        assertEquals(1, optimizer.skippedSteps());
    }

    @Test
    void gradientLengthMustMatchValueLength() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Parameter.of("layers.3.bias", ParamRole.BIAS, new int[] {8}, new float[8], new float[7]));
        assertMessage(e, "layers.3.bias", "gradient has 7", "8");
        IllegalArgumentException v = assertThrows(IllegalArgumentException.class,
                () -> Parameter.of("layers.3.wo", ParamRole.HIDDEN_MATRIX, new int[] {4, 4}, new float[15], new float[16]));
        assertMessage(v, "layers.3.wo", "value has 15", "16");
        IllegalArgumentException s = assertThrows(IllegalArgumentException.class,
                () -> Parameter.stackedMatrices("experts", 3, 4, 4, new float[48], new float[47]));
        assertMessage(s, "experts", "47");
    }

    // ---- optimizer state that does not fit ----

    private static HybridOptimizer trained(Random random, List<Parameter> params) {
        HybridOptimizer optimizer = HybridOptimizer.builder(backend).build(params);
        fill(random, params);
        optimizer.step();
        return optimizer;
    }

    @Test
    void stateWithMissingNameFails() {
        Random random = new Random(3);
        OptimizerState state = trained(random, List.of(hidden(random, "layers.0.wq", 16, 24),
                vector(random, "final_norm", ParamRole.NORM, 8))).saveState();
        HybridOptimizer target = HybridOptimizer.builder(backend).build(List.of(hidden(random, "layers.0.wq", 16, 24),
                vector(random, "final_norm", ParamRole.NORM, 8), hidden(random, "layers.1.wk", 16, 16)));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> target.loadState(state));
        assertMessage(e, "missing", "layers.1.wk");
        assertEquals(0, target.stepCount());
    }

    @Test
    void stateWithUnknownNameFails() {
        Random random = new Random(4);
        OptimizerState state = trained(random, List.of(hidden(random, "layers.0.wq", 16, 24),
                vector(random, "final_norm", ParamRole.NORM, 8))).saveState();
        HybridOptimizer target = HybridOptimizer.builder(backend).build(List.of(hidden(random, "layers.0.wq", 16, 24)));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> target.loadState(state));
        assertMessage(e, "unknown", "final_norm");
    }

    @Test
    void stateWithDifferentShapeFails() {
        Random random = new Random(5);
        OptimizerState state = trained(random, List.of(hidden(random, "layers.0.wq", 16, 24))).saveState();
        HybridOptimizer target = HybridOptimizer.builder(backend).build(List.of(hidden(random, "layers.0.wq", 24, 16)));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> target.loadState(state));
        assertMessage(e, "layers.0.wq", "[16, 24]", "[24, 16]");
    }

    @Test
    void stateWithDifferentRouteFails() {
        Random random = new Random(6);
        OptimizerState state = trained(random, List.of(hidden(random, "layers.0.wq", 16, 24))).saveState();
        HybridOptimizer target = HybridOptimizer.builder(backend)
                .override("layers.0.wq", ParamOverride.none().withRoute(Route.ADAMW))
                .build(List.of(hidden(random, "layers.0.wq", 16, 24)));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> target.loadState(state));
        assertMessage(e, "layers.0.wq", "MUON", "ADAMW");
    }

    @Test
    void stateWithWrongBufferLengthFailsAndChangesNothing() {
        Random random = new Random(7);
        List<Parameter> params = List.of(hidden(random, "layers.0.wq", 16, 24), vector(random, "final_norm", ParamRole.NORM, 8));
        HybridOptimizer optimizer = trained(random, params);
        OptimizerState before = optimizer.saveState();
        Map<String, OptimizerState.Entry> entries = new LinkedHashMap<>();
        entries.put("layers.0.wq", new OptimizerState.Entry(Route.MUON, new int[] {16, 24},
                Map.of(HybridOptimizer.MOMENTUM, Float64Reference.gaussian(random, 384, 1.0))));
        entries.put("final_norm", new OptimizerState.Entry(Route.ADAMW, new int[] {8},
                Map.of(HybridOptimizer.EXP_AVG, new float[8], HybridOptimizer.EXP_AVG_SQ, new float[5])));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> optimizer.loadState(new OptimizerState(7, 0, entries)));
        assertMessage(e, "final_norm", "exp_avg_sq", "5");
        assertStateUnchanged(before, optimizer.saveState());
        assertEquals(1, optimizer.stepCount());

        Map<String, OptimizerState.Entry> renamed = new LinkedHashMap<>(entries);
        renamed.put("final_norm", new OptimizerState.Entry(Route.ADAMW, new int[] {8},
                Map.of(HybridOptimizer.EXP_AVG, new float[8], "second_moment", new float[8])));
        IllegalArgumentException b = assertThrows(IllegalArgumentException.class,
                () -> optimizer.loadState(new OptimizerState(7, 0, renamed)));
        assertMessage(b, "final_norm", "second_moment");
        assertStateUnchanged(before, optimizer.saveState());
    }

    // ---- damaged state files ----

    private Path stateFile(String name) throws IOException {
        Random random = new Random(8);
        OptimizerState state = trained(random, List.of(hidden(random, "layers.0.wq", 16, 24),
                vector(random, "final_norm", ParamRole.NORM, 8))).saveState();
        Path file = dir.resolve(name);
        state.write(file);
        return file;
    }

    @Test
    void stateFileWithAnotherFormatVersionFails() throws IOException {
        Path file = stateFile("version.state");
        String bytes = Files.readString(file, StandardCharsets.ISO_8859_1);
        String version = "\"format_version\":\"" + OptimizerState.FORMAT_VERSION + "\"";
        assertTrue(bytes.contains(version), "the header holds " + version);
        Files.writeString(file, bytes.replace(version, "\"format_version\":\"" + (OptimizerState.FORMAT_VERSION + 1) + "\""),
                StandardCharsets.ISO_8859_1);
        IOException e = assertThrows(IOException.class, () -> OptimizerState.read(file));
        assertMessage(e, "format version \"" + (OptimizerState.FORMAT_VERSION + 1) + "\"", "reads versions 1 to 3", "version.state");

        // A file of the old layout that claims version 3, which only exists as safetensors.
        Path old = dir.resolve("old-version.state");
        byte[] legacy = LegacyStateWriter.bytes(OptimizerState.read(stateFile("source.state")), 2);
        ByteBuffer.wrap(legacy).putInt(8, OptimizerState.FORMAT_VERSION);
        Files.write(old, legacy);
        e = assertThrows(IOException.class, () -> OptimizerState.read(old));
        assertMessage(e, "format version 3 (at byte 8)", "versions 1 to 2 of this layout", "old-version.state");
    }

    @Test
    void stateFileWithBadMagicFails() throws IOException {
        Path file = stateFile("magic.state");
        byte[] bytes = Files.readAllBytes(file);
        bytes[8] = '[';
        Files.write(file, bytes);
        IOException e = assertThrows(IOException.class, () -> OptimizerState.read(file));
        assertMessage(e, "is not a muon4j optimizer state file", "magic.state");

        Path old = dir.resolve("old-magic.state");
        byte[] legacy = LegacyStateWriter.bytes(OptimizerState.read(stateFile("source.state")), 2);
        legacy[0] = 'X';
        Files.write(old, legacy);
        e = assertThrows(IOException.class, () -> OptimizerState.read(old));
        assertMessage(e, "is not a muon4j optimizer state file", "old-magic.state");
    }

    @Test
    void truncatedStateFileFails() throws IOException {
        Path file = stateFile("truncated.state");
        byte[] bytes = Files.readAllBytes(file);
        for (int keep : new int[] {bytes.length / 2, bytes.length - 3, 30, 4}) {
            Files.write(file, Arrays.copyOf(bytes, keep));
            IOException e = assertThrows(IOException.class, () -> OptimizerState.read(file), "kept " + keep + " bytes");
            assertMessage(e, "truncated", "truncated.state");
        }
    }

    @Test
    void flippedByteFailsTheChecksum() throws IOException {
        Path file = stateFile("flipped.state");
        byte[] bytes = Files.readAllBytes(file);
        // Inside the last tensor's floats.
        bytes[bytes.length - 5] ^= 0x10;
        Files.write(file, bytes);
        IOException e = assertThrows(IOException.class, () -> OptimizerState.read(file));
        assertMessage(e, "checksum mismatch", "data_crc32", "flipped.state");

        // In the old layout, just before the 8-byte checksum.
        Path old = dir.resolve("old-flipped.state");
        byte[] legacy = LegacyStateWriter.bytes(OptimizerState.read(stateFile("source.state")), 2);
        legacy[legacy.length - 8 - 5] ^= 0x10;
        Files.write(old, legacy);
        e = assertThrows(IOException.class, () -> OptimizerState.read(old));
        assertMessage(e, "checksum mismatch", "old-flipped.state");
    }

    // ---- hyperparameters ----

    private static void rejects(Executable build, String... parts) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, build);
        assertMessage(e, parts);
    }

    @Test
    void invalidMuonSettingsFail() {
        rejects(() -> MuonConfig.builder().learningRate(-0.01).build(), "Muon learning rate", "-0.01");
        rejects(() -> MuonConfig.builder().learningRate(Double.NaN).build(), "Muon learning rate", "NaN");
        rejects(() -> MuonConfig.builder().learningRate(Double.POSITIVE_INFINITY).build(), "Muon learning rate", "Infinity");
        rejects(() -> MuonConfig.builder().weightDecay(-0.1).build(), "Muon weight decay", "-0.1");
        rejects(() -> MuonConfig.builder().weightDecay(Double.NaN).build(), "Muon weight decay", "NaN");
        rejects(() -> MuonConfig.builder().weightDecay(Double.POSITIVE_INFINITY).build(), "Muon weight decay", "Infinity");
        rejects(() -> MuonConfig.builder().momentum(1.0).build(), "Muon momentum", "1.0");
        rejects(() -> MuonConfig.builder().momentum(1.5).build(), "Muon momentum", "1.5");
        rejects(() -> MuonConfig.builder().momentum(-0.1).build(), "Muon momentum", "-0.1");
        rejects(() -> MuonConfig.builder().momentum(Double.NaN).build(), "Muon momentum", "NaN");
        rejects(() -> MuonConfig.builder().rmsFactor(0).build(), "Muon RMS factor", "0.0");
        assertThrows(NullPointerException.class, () -> MuonConfig.builder().scaleMode(null).build());
    }

    @Test
    void invalidAdamWSettingsFail() {
        rejects(() -> AdamWConfig.builder().learningRate(-1e-3).build(), "AdamW learning rate", "-0.001");
        rejects(() -> AdamWConfig.builder().learningRate(Double.NaN).build(), "AdamW learning rate", "NaN");
        rejects(() -> AdamWConfig.builder().learningRate(Double.NEGATIVE_INFINITY).build(), "AdamW learning rate", "-Infinity");
        rejects(() -> AdamWConfig.builder().weightDecay(-0.01).build(), "AdamW weight decay", "-0.01");
        rejects(() -> AdamWConfig.builder().weightDecay(Double.NaN).build(), "AdamW weight decay", "NaN");
        rejects(() -> AdamWConfig.builder().weightDecay(Double.POSITIVE_INFINITY).build(), "AdamW weight decay", "Infinity");
        rejects(() -> AdamWConfig.builder().beta1(1.0).build(), "AdamW beta1", "1.0");
        rejects(() -> AdamWConfig.builder().beta2(1.0).build(), "AdamW beta2", "1.0");
        rejects(() -> AdamWConfig.builder().beta2(1.2).build(), "AdamW beta2", "1.2");
        rejects(() -> AdamWConfig.builder().beta1(-0.5).build(), "AdamW beta1", "-0.5");
        rejects(() -> AdamWConfig.builder().eps(0).build(), "AdamW eps", "0.0");
        rejects(() -> AdamWConfig.builder().eps(-1e-8).build(), "AdamW eps", "-1.0E-8");
        rejects(() -> AdamWConfig.builder().eps(Double.NaN).build(), "AdamW eps", "NaN");
    }

    @Test
    void invalidOtherSettingsFail() {
        rejects(() -> NewtonSchulzConfig.defaults().withSteps(0), "Newton–Schulz steps", "0");
        rejects(() -> NewtonSchulzConfig.defaults().withSteps(-2), "Newton–Schulz steps", "-2");
        rejects(() -> NewtonSchulzConfig.defaults().withEps(Double.NaN), "Newton–Schulz eps", "NaN");
        rejects(() -> ParamOverride.none().withLearningRate(-1), "override learning rate", "-1.0");
        rejects(() -> ParamOverride.none().withWeightDecay(Double.NaN), "override weight decay", "NaN");
        rejects(() -> HybridOptimizer.builder(backend).clipGradientNorm(-1), "gradient clipping norm", "-1.0");
        rejects(() -> HybridOptimizer.builder(backend).build(List.of()), "at least one parameter");
    }
}
