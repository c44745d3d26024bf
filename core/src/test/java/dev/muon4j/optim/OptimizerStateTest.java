package dev.muon4j.optim;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.Backends;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Saving and restoring the hybrid optimizer's state through a file: a restored optimizer over copied
 * parameters continues bit for bit like the original, and step and skipped-step counts survive.
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
}
