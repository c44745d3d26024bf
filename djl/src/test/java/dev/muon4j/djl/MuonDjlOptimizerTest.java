package dev.muon4j.djl;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.tracker.Tracker;
import dev.muon4j.backend.Backend;
import dev.muon4j.backend.BackendConfig;
import dev.muon4j.backend.BackendKind;
import dev.muon4j.backend.Backends;
import dev.muon4j.optim.AdamWConfig;
import dev.muon4j.optim.HybridOptimizer;
import dev.muon4j.optim.MuonConfig;
import dev.muon4j.optim.NonFiniteGradientException;
import dev.muon4j.optim.Optimizers;
import dev.muon4j.optim.ParamRole;
import dev.muon4j.optim.Parameter;
import dev.muon4j.optim.Route;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * {@link MuonDjlOptimizer} on PyTorch NDArrays against muon4j-core's own optimizers on the same
 * values: the same backend, the same arithmetic, so the weights and state must be equal bit for
 * bit. Then the routing and the errors.
 */
class MuonDjlOptimizerTest {
    static Backend backend;
    static NDManager manager;

    @BeforeAll
    static void open() {
        backend = Backends.open(new BackendConfig(BackendKind.VECTOR, 1));
        manager = NDManager.newBaseManager(Device.cpu(), "PyTorch");
    }

    @AfterAll
    static void close() {
        manager.close();
        backend.close();
    }

    static float[] random(Random r, int n, double scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (r.nextGaussian() * scale);
        }
        return a;
    }

    /**
     * Three Muon updates of a tall 2-D DJL weight (EMA and classic momentum, both scale modes,
     * decay on) against {@link Optimizers#muon} of muon4j-core on a {@link Parameter} holding the same
     * values and gradients: weights and momentum bit for bit equal.
     */
    @Test
    void muonUpdateOfAMatrixIsTheCoresOwn() {
        for (MuonConfig config : List.of(
                MuonConfig.builder().learningRate(0.02).weightDecay(0.1).build(),
                MuonConfig.moonlight().learningRate(3e-3).build())) {
            Random r = new Random(7);
            int out = 12;
            int in = 8;
            float[] w0 = random(r, out * in, 0.3);
            NDArray weight = manager.create(w0.clone(), new Shape(out, in));
            Parameter core = Parameter.of("w", ParamRole.HIDDEN_MATRIX, new int[] {out, in}, w0.clone(), new float[out * in]);
            HybridOptimizer reference = Optimizers.muon(backend, config, List.of(core));
            try (MuonDjlOptimizer djl = MuonDjlOptimizer.builder().optMuon(config).optBackend(backend).build()) {
                for (int step = 0; step < 3; step++) {
                    float[] g = random(r, out * in, 1.0);
                    System.arraycopy(g, 0, core.gradient(), 0, g.length);
                    reference.step();
                    try (NDArray grad = manager.create(g, new Shape(out, in))) {
                        djl.update("w", weight, grad);
                    }
                    assertArrayEquals(core.value(), weight.toFloatArray(), 0f, config.momentumForm() + " step " + step);
                }
                assertArrayEquals(reference.saveState().entries().get("w").buffers().get(HybridOptimizer.MOMENTUM),
                        djl.state("w", Device.cpu(), HybridOptimizer.MOMENTUM), 0f);
                assertEquals(Map.of("w", Route.MUON), djl.routes());
            }
            assertFalse(java.util.Arrays.equals(w0, weight.toFloatArray()), "the weight moved");
            weight.close();
        }
    }

    /**
     * A bias, a 2-D weight the predicate names and a scalar go to AdamW, each equal bit for bit to
     * {@link Optimizers#adamw} of the core over three steps; a 4-D kernel goes to Muon.
     */
    @Test
    void vectorsScalarsAndNamedMatricesGoToAdamW() {
        AdamWConfig config = AdamWConfig.builder().learningRate(1e-2).weightDecay(0.05).build();
        Random r = new Random(11);
        Map<String, int[]> shapes = new java.util.LinkedHashMap<>();
        shapes.put("bias", new int[] {5});
        shapes.put("head", new int[] {3, 5});
        shapes.put("scale", new int[] {});
        try (MuonDjlOptimizer djl = MuonDjlOptimizer.builder().optAdamW(config).optAdamWFor(Set.of("head")::contains)
                .optBackend(backend).build()) {
            for (Map.Entry<String, int[]> e : shapes.entrySet()) {
                int[] shape = e.getValue();
                long[] dims = java.util.Arrays.stream(shape).asLongStream().toArray();
                int n = java.util.Arrays.stream(shape).reduce(1, (a, b) -> a * b);
                float[] w0 = random(r, n, 0.5);
                NDArray weight = manager.create(w0.clone(), new Shape(dims));
                Parameter core = Parameter.of(e.getKey(), ParamRole.BIAS, shape, w0.clone(), new float[n]);
                HybridOptimizer reference = Optimizers.adamw(backend, config, List.of(core));
                for (int step = 0; step < 3; step++) {
                    float[] g = random(r, n, 1.0);
                    System.arraycopy(g, 0, core.gradient(), 0, n);
                    reference.step();
                    try (NDArray grad = manager.create(g, new Shape(dims))) {
                        djl.update(e.getKey(), weight, grad);
                    }
                    assertArrayEquals(core.value(), weight.toFloatArray(), 0f, e.getKey() + " step " + step);
                }
                assertArrayEquals(reference.saveState().entries().get(e.getKey()).buffers().get(HybridOptimizer.EXP_AVG_SQ),
                        djl.state(e.getKey(), Device.cpu(), HybridOptimizer.EXP_AVG_SQ), 0f);
                weight.close();
            }
            try (NDArray kernel = manager.randomNormal(new Shape(4, 2, 3, 3)); NDArray grad = manager.randomNormal(new Shape(4, 2, 3, 3))) {
                djl.update("conv", kernel, grad);
            }
            assertEquals(Map.of("bias", Route.ADAMW, "head", Route.ADAMW, "scale", Route.ADAMW, "conv", Route.MUON), djl.routes());
            assertThrows(IllegalArgumentException.class, () -> djl.state("bias", Device.cpu(), HybridOptimizer.MOMENTUM));
        }
    }

    /** A tracker's rate replaces the config's, asked at DJL's update count: rate 0 at the second update leaves the weight as it was. */
    @Test
    void learningRateTrackerIsAskedAtTheUpdateCount() {
        MuonConfig config = MuonConfig.builder().learningRate(0.5).weightDecay(0).build();
        List<Integer> asked = new java.util.ArrayList<>();
        Tracker firstOnly = count -> {
            asked.add(count);
            return count == 1 ? 0.02f : 0f;
        };
        try (MuonDjlOptimizer djl = MuonDjlOptimizer.builder().optMuon(config).optLearningRateTracker(firstOnly)
                .optBackend(backend).build();
             NDArray weight = manager.randomNormal(new Shape(4, 4));
             NDArray grad = manager.randomNormal(new Shape(4, 4))) {
            float[] before = weight.toFloatArray();
            djl.update("w", weight, grad);
            float[] once = weight.toFloatArray();
            djl.update("w", weight, grad);
            assertEquals(List.of(1, 2), asked);
            assertFalse(java.util.Arrays.equals(before, once));
            assertArrayEquals(once, weight.toFloatArray(), 0f);
        }
    }

    @Test
    void badInputIsRefusedNamingTheParameter() {
        SequentialBlock net = new SequentialBlock().add(Linear.builder().setUnits(4).build()).add(Activation::relu);
        net.initialize(manager, DataType.FLOAT32, new Shape(1, 3));
        Set<String> ids = MuonDjlOptimizer.parameterIds(net, "01Linear_weight"::equals);
        assertEquals(1, ids.size(), "the Linear weight's id");
        String weightId = ids.iterator().next();
        try (MuonDjlOptimizer djl = MuonDjlOptimizer.builder().optParameterNames(net).optBackend(backend).build();
             NDArray w = manager.randomNormal(new Shape(4, 3));
             NDArray wrongShape = manager.randomNormal(new Shape(3, 4));
             NDArray doubles = manager.randomNormal(new Shape(4, 3)).toType(DataType.FLOAT64, false);
             NDArray nan = manager.create(new float[] {0, 1, Float.NaN, 2, 3, 4, 5, 6, 7, 8, 9, 10}, new Shape(4, 3))) {
            var e = assertThrows(IllegalArgumentException.class, () -> djl.update(weightId, w, wrongShape));
            assertTrue(e.getMessage().contains("01Linear_weight (" + weightId + ")") && e.getMessage().contains("(3, 4)"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> djl.update(weightId, doubles, doubles));
            assertTrue(e.getMessage().contains("01Linear_weight") && e.getMessage().contains("float64"), e.getMessage());
            float[] before = w.toFloatArray();
            var nonFinite = assertThrows(NonFiniteGradientException.class, () -> djl.update(weightId, w, nan));
            assertTrue(nonFinite.getMessage().contains("01Linear_weight") && nonFinite.index() == 2, nonFinite.getMessage());
            assertArrayEquals(before, w.toFloatArray(), 0f, "nothing changed");
            try (NDArray g = manager.randomNormal(new Shape(4, 3)); NDArray other = manager.randomNormal(new Shape(2, 6))) {
                djl.update(weightId, w, g);
                e = assertThrows(IllegalArgumentException.class, () -> djl.update(weightId, other, other));
                assertTrue(e.getMessage().contains("01Linear_weight") && e.getMessage().contains("[4, 3]"), e.getMessage());
            }
        }
        var e = assertThrows(IllegalArgumentException.class,
                () -> MuonDjlOptimizer.builder().optWeightDecays(1e-4f).optBackend(backend).build());
        assertTrue(e.getMessage().contains("MuonConfig.weightDecay"), e.getMessage());
        try (MuonDjlOptimizer djl = MuonDjlOptimizer.builder().optLearningRateTracker(Tracker.fixed(Float.NaN))
                .optBackend(backend).build();
             NDArray w = manager.randomNormal(new Shape(2, 2))) {
            e = assertThrows(IllegalArgumentException.class, () -> djl.update("p", w, w.duplicate()));
            assertTrue(e.getMessage().contains("parameter p") && e.getMessage().contains("NaN"), e.getMessage());
        }
    }
}
