package dev.muon4j.distributed;

import static dev.muon4j.distributed.ShardTestSupport.assertBitIdentical;
import static dev.muon4j.distributed.ShardTestSupport.assertClose;
import static dev.muon4j.distributed.ShardTestSupport.copyValues;
import static dev.muon4j.distributed.ShardTestSupport.fillGradients;
import static dev.muon4j.distributed.ShardTestSupport.init;
import static dev.muon4j.distributed.ShardTestSupport.model;
import static dev.muon4j.distributed.ShardTestSupport.runRanks;
import static dev.muon4j.distributed.ShardTestSupport.runRanksOk;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.VectorBackend;
import dev.muon4j.optim.AdamWConfig;
import dev.muon4j.optim.HybridOptimizer;
import dev.muon4j.optim.LearningRateSchedule;
import dev.muon4j.optim.MuonConfig;
import dev.muon4j.optim.OptimizerState;
import dev.muon4j.optim.Parameter;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Loading a state that only the root rank holds, its failure on every rank when it does not fit,
 * and broadcasting parameters from one rank.
 */
class ShardedOptimizerStateLoadTest {
    private static final int STEPS = 4;
    private static final double TOLERANCE = 1e-5;

    private static HybridOptimizer.Builder builder(Backend backend) {
        return HybridOptimizer.builder(backend)
                .muon(MuonConfig.moonlight().learningRate(0.02).build())
                .adamw(AdamWConfig.builder().learningRate(0.01).weightDecay(0.1).build())
                .schedule(LearningRateSchedule.warmupCosine(1, STEPS, 0.1));
    }

    private record Saved(List<Parameter> params, OptimizerState state) {
    }

    /** One process after two steps; the state says 1 skipped step too, so both counters travel. */
    private static Saved halfway() {
        List<Parameter> params = model();
        init(params);
        try (Backend backend = new VectorBackend(1)) {
            HybridOptimizer opt = builder(backend).build(params);
            for (int s = 0; s < STEPS / 2; s++) {
                fillGradients(params, s, 0, 1);
                opt.step();
            }
            OptimizerState state = opt.saveState();
            return new Saved(params, new OptimizerState(state.step(), 1, state.entries(), state.rules()));
        }
    }

    private static void assertStateBitIdentical(OptimizerState want, OptimizerState got, String what) {
        assertEquals(want.step(), got.step(), what + ": step");
        assertEquals(want.skippedSteps(), got.skippedSteps(), what + ": skipped");
        assertEquals(want.entries().keySet(), got.entries().keySet());
        want.entries().forEach((name, e) -> {
            assertEquals(e.route(), got.entries().get(name).route());
            e.buffers().forEach((b, values) -> assertArrayEquals(values, got.entries().get(name).buffers().get(b),
                    what + ": " + name + "/" + b));
        });
    }

    private record Loaded(OptimizerState afterLoad, long step, long skipped, List<Parameter> params) {
    }

    /**
     * State only on rank 0 (the others pass null) loads with loadStateFrom(0, ·) into exactly what
     * loadState on every rank gives: the saved state, bit for bit, with its step and skip counts;
     * training on from either ends bit-identically, and where one process that loaded the state ends.
     */
    @ParameterizedTest(name = "{0} ranks, {1}")
    @CsvSource({"2, DISTRIBUTED_MUON", "3, DISTRIBUTED_MUON", "2, WHOLE_MATRIX", "3, WHOLE_MATRIX"})
    void loadFromRootMatchesLoadOnEveryRank(int ranks, ShardedOptimizer.Mode mode) throws Exception {
        Saved saved = halfway();
        List<Parameter> single = copyValues(saved.params());
        try (Backend backend = new VectorBackend(1)) {
            HybridOptimizer opt = builder(backend).build(single);
            opt.loadState(saved.state());
            for (int s = STEPS / 2; s < STEPS; s++) {
                fillGradients(single, s, 0, 1);
                opt.step();
            }
        }
        List<List<Loaded>> byMethod = new java.util.ArrayList<>();
        for (boolean fromRoot : new boolean[] {true, false}) {
            byMethod.add(runRanksOk(ranks, (comm, backend) -> {
                List<Parameter> params = copyValues(saved.params());
                try (ShardedOptimizer opt = new ShardedOptimizer(comm, builder(backend), params, mode)) {
                    if (fromRoot) {
                        opt.loadStateFrom(0, comm.rank() == 0 ? saved.state() : null);
                    } else {
                        opt.loadState(saved.state());
                    }
                    OptimizerState afterLoad = opt.saveState();
                    long step = opt.stepCount();
                    long skipped = opt.skippedSteps();
                    for (int s = STEPS / 2; s < STEPS; s++) {
                        fillGradients(params, s, comm.rank(), ranks);
                        opt.step();
                    }
                    return new Loaded(afterLoad, step, skipped, params);
                }
            }));
        }
        for (int r = 0; r < ranks; r++) {
            Loaded fromRoot = byMethod.get(0).get(r);
            Loaded everywhere = byMethod.get(1).get(r);
            assertEquals(STEPS / 2, fromRoot.step(), "rank " + r + " step count");
            assertEquals(1, fromRoot.skipped(), "rank " + r + " skipped count");
            assertStateBitIdentical(saved.state(), fromRoot.afterLoad(), "rank " + r + " loadStateFrom");
            assertStateBitIdentical(saved.state(), everywhere.afterLoad(), "rank " + r + " loadState");
            assertBitIdentical(everywhere.params(), fromRoot.params(), "rank " + r + " loadStateFrom vs loadState");
            assertClose(single, fromRoot.params(), TOLERANCE, "rank " + r + " vs one process");
        }
    }

    /**
     * A NaN or infinity in the state is reported by the one rank holding that element, naming the
     * buffer, the parameter and the element (as one process names it); a clean state by none.
     */
    @ParameterizedTest(name = "{0} ranks, {1}, {2}/{3}[{4}]")
    @CsvSource({"2, DISTRIBUTED_MUON, mlp.down, momentum, 5", "3, DISTRIBUTED_MUON, head, exp_avg_sq, 100",
            "3, WHOLE_MATRIX, attn.wq, momentum, 239", "4, DISTRIBUTED_MUON, embed, exp_avg, 0", "1, DISTRIBUTED_MUON, norm, exp_avg, 19"})
    void aNonFiniteStateValueIsFoundByTheRankHoldingIt(int ranks, ShardedOptimizer.Mode mode, String parameter, String buffer,
                                                        int element) throws Exception {
        Saved saved = halfway();
        Map<String, OptimizerState.Entry> entries = new LinkedHashMap<>();
        saved.state().entries().forEach((name, e) -> {
            Map<String, float[]> buffers = new LinkedHashMap<>(e.buffers());
            if (name.equals(parameter)) {
                float[] b = buffers.get(buffer).clone();
                b[element] = buffer.equals("exp_avg_sq") ? Float.POSITIVE_INFINITY : Float.NaN;
                buffers.put(buffer, b);
            }
            entries.put(name, new OptimizerState.Entry(e.route(), e.shape(), buffers));
        });
        OptimizerState bad = new OptimizerState(saved.state().step(), saved.state().skippedSteps(), entries);
        float value = buffer.equals("exp_avg_sq") ? Float.POSITIVE_INFINITY : Float.NaN;
        String expected = HybridOptimizer.describeNonFinite(buffer, parameter, element, value);
        try (Backend backend = new VectorBackend(1)) {
            HybridOptimizer one = builder(backend).build(copyValues(saved.params()));
            one.loadState(bad);
            assertEquals(java.util.Optional.of(expected), one.findNonFiniteState());
            one.loadState(saved.state());
            assertEquals(java.util.Optional.empty(), one.findNonFiniteState());
        }
        List<List<java.util.Optional<String>>> found = runRanksOk(ranks, (comm, backend) -> {
            try (ShardedOptimizer opt = new ShardedOptimizer(comm, builder(backend), copyValues(saved.params()), mode)) {
                opt.loadState(bad);
                java.util.Optional<String> withBad = opt.findNonFiniteState();
                opt.loadState(saved.state());
                return List.of(withBad, opt.findNonFiniteState());
            }
        });
        List<String> reports = found.stream().map(l -> l.get(0)).flatMap(java.util.Optional::stream).toList();
        assertEquals(List.of(expected), reports, "exactly the owner reports it");
        assertTrue(found.stream().allMatch(l -> l.get(1).isEmpty()), "a clean state: no rank reports anything");
    }

    private record Refused(Throwable error, long step, OptimizerState state) {
    }

    /**
     * A state that does not fit on the root (mlp.down saved with shape [12, 20] instead of
     * [20, 12]; or no state at all on the root): every rank throws IllegalArgumentException, none
     * hangs, the root's message names mlp.down, and no rank's state changed. Non-root ranks'
     * arguments are ignored, even when they are wrong.
     */
    @ParameterizedTest(name = "{0} ranks, {1}, root {2}")
    @CsvSource({"2, DISTRIBUTED_MUON, 0", "3, DISTRIBUTED_MUON, 0", "3, WHOLE_MATRIX, 0", "3, DISTRIBUTED_MUON, 2"})
    void aStateThatDoesNotFitFailsOnEveryRank(int ranks, ShardedOptimizer.Mode mode, int root) throws Exception {
        Saved saved = halfway();
        Map<String, OptimizerState.Entry> entries = new LinkedHashMap<>(saved.state().entries());
        OptimizerState.Entry down = entries.get("mlp.down");
        entries.put("mlp.down", new OptimizerState.Entry(down.route(), new int[] {12, 20}, down.buffers()));
        OptimizerState transposed = new OptimizerState(saved.state().step(), 0, entries, saved.state().rules());

        for (OptimizerState bad : new OptimizerState[] {transposed, null}) {
            List<ShardTestSupport.Outcome<Refused>> outcomes = runRanks(ranks, (comm, backend) -> {
                List<Parameter> params = copyValues(saved.params());
                try (ShardedOptimizer opt = new ShardedOptimizer(comm, builder(backend), params, mode)) {
                    Throwable error = null;
                    try {
                        // Elsewhere a good state, which must not be used.
                        opt.loadStateFrom(root, comm.rank() == root ? bad : saved.state());
                    } catch (RuntimeException e) {
                        error = e;
                    }
                    return new Refused(error, opt.stepCount(), opt.saveState());
                }
            });
            for (ShardTestSupport.Outcome<Refused> o : outcomes) {
                Refused r = o.get();
                IllegalArgumentException e = assertInstanceOf(IllegalArgumentException.class, r.error(),
                        "rank " + o.rank() + " with " + (bad == null ? "no state" : "a transposed state") + " on the root");
                // The root gives the reason; the others point at the root.
                String expected = o.rank() != root ? "rank " + root : bad == null ? "state on the root rank" : "mlp.down";
                assertTrue(e.getMessage().contains(expected), "rank " + o.rank() + ": " + e.getMessage());
                // Nothing changed: a fresh optimizer's state.
                assertEquals(0, r.step());
                assertEquals(0, r.state().skippedSteps());
                r.state().entries().forEach((name, entry) -> entry.buffers().forEach((b, values) -> {
                    for (float v : values) {
                        assertEquals(0f, v, "rank " + o.rank() + ": " + name + "/" + b + " changed");
                    }
                }));
            }
        }
    }

    /**
     * Ranks start from different values (rank r seeded with r); after broadcastParameters(root)
     * every rank holds the root's values bit for bit, whatever the mode.
     */
    @ParameterizedTest(name = "{0} ranks, {1}, root {2}")
    @CsvSource({"2, DISTRIBUTED_MUON, 0", "3, DISTRIBUTED_MUON, 0", "3, WHOLE_MATRIX, 0", "4, WHOLE_MATRIX, 0",
            "3, DISTRIBUTED_MUON, 2"})
    void broadcastParametersCopiesTheRootBitForBit(int ranks, ShardedOptimizer.Mode mode, int root) throws Exception {
        List<Parameter> want = model();
        init(want, 100 + root);
        List<List<Parameter>> results = runRanksOk(ranks, (comm, backend) -> {
            List<Parameter> params = model();
            init(params, 100 + comm.rank());
            try (ShardedOptimizer opt = new ShardedOptimizer(comm, builder(backend), params, mode)) {
                opt.broadcastParameters(root);
            }
            return params;
        });
        for (int r = 0; r < ranks; r++) {
            assertBitIdentical(want, results.get(r), "rank " + r + " after broadcastParameters(" + root + ")");
        }
    }
}
