package dev.muon4j.distributed;

import static dev.muon4j.distributed.ShardTestSupport.assertBitIdentical;
import static dev.muon4j.distributed.ShardTestSupport.assertClose;
import static dev.muon4j.distributed.ShardTestSupport.assertStateClose;
import static dev.muon4j.distributed.ShardTestSupport.copyValues;
import static dev.muon4j.distributed.ShardTestSupport.fillGradients;
import static dev.muon4j.distributed.ShardTestSupport.index;
import static dev.muon4j.distributed.ShardTestSupport.init;
import static dev.muon4j.distributed.ShardTestSupport.model;
import static dev.muon4j.distributed.ShardTestSupport.runRanks;
import static dev.muon4j.distributed.ShardTestSupport.runRanksOk;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.VectorBackend;
import dev.muon4j.optim.AdamWConfig;
import dev.muon4j.optim.HybridOptimizer;
import dev.muon4j.optim.LearningRateSchedule;
import dev.muon4j.optim.MatrixLayout;
import dev.muon4j.optim.MuonConfig;
import dev.muon4j.optim.OptimizerState;
import dev.muon4j.optim.ParamState;
import dev.muon4j.optim.Parameter;
import dev.muon4j.optim.Route;
import dev.muon4j.optim.StepContext;
import dev.muon4j.optim.Transforms;
import dev.muon4j.optim.UpdateRule;
import dev.muon4j.optim.UpdateTransform;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * State kept by a matrix stage (one float per row of every matrix, as NorMuon keeps), sharded:
 * every rank owning part of a matrix parameter allocates the whole state and keeps in it the rows of
 * the matrices (experts) it runs, zeros elsewhere; N ranks in either mode track one process; the
 * state saves, loads (across rank counts and modes), is checked and is searched for non-finite
 * values like the rest of the state.
 */
class ShardedMatrixStateTest {
    private static final int STEPS = 4;
    private static final double TOLERANCE = 1e-5;
    private static final String ROW_EMA = "row_ema";
    /** The model's Muon matrices; all of them get the row-scaled rule. */
    private static final List<String> MATRICES = List.of("attn.wq", "mlp.down", "moe.experts");

    /**
     * Per row r of every matrix: {@code e_r ← 0.9·e_r + 0.1·mean_j(u_rj²)}, then
     * {@code u_rj ← u_rj / (√e_r + 1e-8)}; state {@code row_ema}, one float per row of every matrix.
     */
    record RowScale() implements UpdateTransform {
        @Override
        public String name() {
            return "row_scale";
        }

        @Override
        public Scope scope() {
            return Scope.MATRIX;
        }

        @Override
        public Map<String, Integer> state(Parameter parameter) {
            MatrixLayout m = parameter.layout();
            return Map.of(ROW_EMA, m.count() * m.fanOut());
        }

        @Override
        public void apply(StepContext step, ParamState slot, int from, float[] u, int uOff, int len) {
            MatrixLayout m = slot.parameter().layout();
            float[] e = slot.buffer(ROW_EMA);
            int firstRow = from / m.fanIn();
            for (int row = 0; row < len / m.fanIn(); row++) {
                int at = uOff + row * m.fanIn();
                double squares = 0;
                for (int j = 0; j < m.fanIn(); j++) {
                    squares += (double) u[at + j] * u[at + j];
                }
                int r = firstRow + row;
                e[r] = (float) (0.9 * e[r] + 0.1 * (squares / m.fanIn()));
                float scale = (float) (1 / (Math.sqrt(e[r]) + 1e-8));
                for (int j = 0; j < m.fanIn(); j++) {
                    u[at + j] *= scale;
                }
            }
        }
    }

    private static HybridOptimizer.Builder settings(Backend backend) {
        MuonConfig muon = MuonConfig.moonlight().learningRate(0.02).build();
        UpdateRule rowScaled = new UpdateRule("row_scaled_muon", Route.MUON, List.of(
                new Transforms.Momentum(muon.momentumForm(), muon.nesterov(), muon.momentum()),
                new Transforms.Orthogonalize(muon.newtonSchulz()), new RowScale(), new Transforms.DecoupledUpdate()));
        HybridOptimizer.Builder b = HybridOptimizer.builder(backend)
                .muon(muon)
                .adamw(AdamWConfig.builder().learningRate(0.01).weightDecay(0.1).build())
                .schedule(LearningRateSchedule.warmupCosine(1, STEPS, 0.1));
        for (String matrix : MATRICES) {
            b.rule(matrix, rowScaled);
        }
        return b;
    }

    private record Run(List<Parameter> params, OptimizerState state) {
    }

    /** One process from the start for {@code steps} steps. */
    private static Run oneProcess(int steps) {
        List<Parameter> params = model();
        init(params);
        try (Backend backend = new VectorBackend(1)) {
            HybridOptimizer opt = settings(backend).build(params);
            for (int s = 0; s < steps; s++) {
                fillGradients(params, s, 0, 1);
                opt.step();
            }
            return new Run(params, opt.saveState());
        }
    }

    private static OptimizerState withBuffer(OptimizerState state, String parameter, String buffer, float[] values) {
        Map<String, OptimizerState.Entry> entries = new LinkedHashMap<>();
        state.entries().forEach((name, e) -> {
            Map<String, float[]> buffers = new LinkedHashMap<>(e.buffers());
            if (name.equals(parameter)) {
                buffers.put(buffer, values);
            }
            entries.put(name, new OptimizerState.Entry(e.route(), e.shape(), buffers));
        });
        return new OptimizerState(state.step(), state.skippedSteps(), entries);
    }

    private static void assertStateBitIdentical(OptimizerState want, OptimizerState got, String what) {
        assertEquals(want.step(), got.step(), what + ": step");
        assertEquals(want.skippedSteps(), got.skippedSteps(), what + ": skipped");
        assertEquals(want.entries().keySet(), got.entries().keySet(), what + ": parameters");
        want.entries().forEach((name, e) -> {
            assertEquals(e.buffers().keySet(), got.entries().get(name).buffers().keySet(), what + ": buffers of " + name);
            e.buffers().forEach((b, values) -> assertArrayEquals(values, got.entries().get(name).buffers().get(b),
                    what + ": " + name + "/" + b));
        });
    }

    /** The ranks that own part of parameter {@code name}: the ones that run its matrix stages. */
    private static Set<Integer> owners(ShardLayout layout, String name) {
        long[] counts = layout.counts(index(layout.parameters(), name));
        Set<Integer> owners = new TreeSet<>();
        for (int r = 0; r < counts.length; r++) {
            if (counts[r] > 0) {
                owners.add(r);
            }
        }
        return owners;
    }

    private record Ranked(int rank, List<Parameter> params, OptimizerState everywhere, OptimizerState onRoot,
                          Map<String, float[]> rowEma, long stateBytes, long expectedStateBytes, ShardLayout layout) {
    }

    /**
     * N ranks in either mode, 4 steps: the parameters are within 1e-5 of one process and identical
     * across ranks; saveState() on every rank and saveStateOn(0) on rank 0 equal the process's state,
     * row_ema included; exactly the ranks owning part of a matrix parameter hold its row_ema (each
     * expert of a stack has one owner in WHOLE_MATRIX), allocated whole, with the saved rows of the
     * matrices the rank runs and zeros elsewhere; stateBytes counts what a rank holds.
     */
    @ParameterizedTest(name = "{0} ranks, {1}")
    @CsvSource({"1, DISTRIBUTED_MUON", "2, DISTRIBUTED_MUON", "3, DISTRIBUTED_MUON", "4, DISTRIBUTED_MUON",
            "1, WHOLE_MATRIX", "2, WHOLE_MATRIX", "3, WHOLE_MATRIX", "4, WHOLE_MATRIX"})
    void matrixStageStateShardsLikeOneProcess(int ranks, ShardedOptimizer.Mode mode) throws Exception {
        Run single = oneProcess(STEPS);
        for (String matrix : MATRICES) {
            MatrixLayout m = single.params().get(index(single.params(), matrix)).layout();
            float[] ema = single.state().entries().get(matrix).buffers().get(ROW_EMA);
            assertNotNull(ema, "one process keeps " + ROW_EMA + " for " + matrix);
            assertEquals(m.count() * m.fanOut(), ema.length, matrix + "/" + ROW_EMA + " has one float per row");
            for (float v : ema) {
                assertTrue(v > 0, matrix + "/" + ROW_EMA + " was updated: " + v);
            }
        }
        List<Ranked> results = runRanksOk(ranks, (comm, backend) -> {
            List<Parameter> params = model();
            init(params);
            try (ShardedOptimizer opt = new ShardedOptimizer(comm, settings(backend), params, mode)) {
                for (int s = 0; s < STEPS; s++) {
                    fillGradients(params, s, comm.rank(), ranks);
                    opt.step();
                }
                OptimizerState everywhere = opt.saveState();
                OptimizerState onRoot = opt.saveStateOn(0);
                Map<String, float[]> rowEma = new LinkedHashMap<>();
                long expectedBytes = 0;
                for (ShardLayout.Piece piece : opt.layout().pieces(comm.rank())) {
                    Parameter p = params.get(piece.parameter());
                    for (Map.Entry<String, float[]> b : opt.heldState(p.name()).entrySet()) {
                        boolean sliced = !b.getKey().equals(ROW_EMA);
                        expectedBytes += 4L * (sliced ? piece.length() : b.getValue().length);
                        assertEquals(sliced ? piece.length() : single.state().entries().get(p.name()).buffers().get(ROW_EMA).length,
                                b.getValue().length, "rank " + comm.rank() + ": " + p.name() + "/" + b.getKey());
                    }
                }
                for (String matrix : MATRICES) {
                    float[] ema = opt.heldState(matrix).get(ROW_EMA);
                    if (ema != null) {
                        rowEma.put(matrix, ema);
                    }
                }
                return new Ranked(comm.rank(), params, everywhere, onRoot, rowEma, opt.stateBytes(), expectedBytes, opt.layout());
            }
        });
        String what = ranks + " ranks, " + mode;
        ShardLayout layout = results.get(0).layout();
        for (Ranked r : results) {
            assertClose(single.params(), r.params(), TOLERANCE, what + ", rank " + r.rank());
            assertBitIdentical(results.get(0).params(), r.params(), what + ": rank " + r.rank() + " agrees with rank 0");
            assertStateClose(single.state(), r.everywhere(), TOLERANCE, what + ", rank " + r.rank() + " saveState()");
            if (r.rank() == 0) {
                assertNotNull(r.onRoot(), what + ": saveStateOn(0) on rank 0");
                assertStateClose(single.state(), r.onRoot(), TOLERANCE, what + ", saveStateOn(0)");
                assertStateBitIdentical(r.everywhere(), r.onRoot(), what + ": saveStateOn(0) vs saveState()");
            } else {
                assertNull(r.onRoot(), what + ": saveStateOn(0) on rank " + r.rank());
            }
            assertEquals(r.expectedStateBytes(), r.stateBytes(), what + ": stateBytes of rank " + r.rank());
        }
        long sum = results.stream().mapToLong(Ranked::stateBytes).sum();
        for (String matrix : MATRICES) {
            Set<Integer> owners = owners(layout, matrix);
            int index = index(layout.parameters(), matrix);
            MatrixLayout m = layout.parameters().get(index).layout();
            if (mode == ShardedOptimizer.Mode.WHOLE_MATRIX) {
                for (int e = 0; e < m.count(); e++) {
                    long[] counts = ShardTestSupport.ownedCounts(layout, index, (long) e * m.matrixSize(), m.matrixSize());
                    assertEquals(1, java.util.Arrays.stream(counts).filter(c -> c > 0).count(),
                            what + ": matrix " + e + " of " + matrix + " has one owner");
                }
            }
            Set<Integer> holders = new TreeSet<>();
            for (Ranked r : results) {
                if (r.rowEma().containsKey(matrix)) {
                    holders.add(r.rank());
                }
            }
            assertEquals(owners, holders, what + ": the ranks holding " + matrix + "/" + ROW_EMA);
            float[] saved = results.get(0).everywhere().entries().get(matrix).buffers().get(ROW_EMA);
            for (Ranked r : results) {
                float[] copy = r.rowEma().get(matrix);
                if (copy != null) {
                    for (int j = 0; j < saved.length; j++) {
                        boolean runs = ShardTestSupport.runner(layout, index, j / m.fanOut()) == r.rank();
                        float want = runs ? saved[j] : 0f;
                        if (Float.floatToRawIntBits(copy[j]) != Float.floatToRawIntBits(want)) {
                            fail(what + ": rank " + r.rank() + "'s " + matrix + "/" + ROW_EMA + "[" + j + "] is " + copy[j]
                                    + ", want " + want + (runs ? " (saved: it runs that matrix)" : " (another rank runs that matrix)"));
                        }
                    }
                }
            }
        }
        long copies = 0;
        for (String matrix : MATRICES) {
            copies += (long) (owners(layout, matrix).size() - 1) * single.state().entries().get(matrix).buffers().get(ROW_EMA).length;
        }
        long singleBytes = 0;
        for (OptimizerState.Entry e : single.state().entries().values()) {
            for (float[] b : e.buffers().values()) {
                singleBytes += 4L * b.length;
            }
        }
        assertEquals(singleBytes + 4 * copies, sum,
                what + ": the ranks hold one process's state plus the extra copies of row_ema of split matrices");
    }

    private record Loaded(OptimizerState afterLoad, List<Parameter> params, OptimizerState end) {
    }

    /**
     * A state saved by 2 ranks of one mode (on rank 0) halfway loads on 3 ranks of the other mode,
     * with loadState on every rank and with loadStateFrom(0): the state after loading is the saved
     * one, bit for bit; training on, both end bit-identically, and within 1e-5 of one process that
     * ran all the steps, state included.
     */
    @ParameterizedTest(name = "saved by 2 ranks of {0}")
    @CsvSource({"DISTRIBUTED_MUON, WHOLE_MATRIX", "WHOLE_MATRIX, DISTRIBUTED_MUON"})
    void aStateSavedOnTwoRanksLoadsOnThreeOfTheOtherMode(ShardedOptimizer.Mode savedBy, ShardedOptimizer.Mode loadedBy)
            throws Exception {
        Run single = oneProcess(STEPS);
        List<Run> halfway = runRanksOk(2, (comm, backend) -> {
            List<Parameter> params = model();
            init(params);
            try (ShardedOptimizer opt = new ShardedOptimizer(comm, settings(backend), params, savedBy)) {
                for (int s = 0; s < STEPS / 2; s++) {
                    fillGradients(params, s, comm.rank(), 2);
                    opt.step();
                }
                return new Run(params, opt.saveStateOn(0));
            }
        });
        Run saved = halfway.get(0);
        assertStateClose(oneProcess(STEPS / 2).state(), saved.state(), TOLERANCE, "the state saved by 2 ranks of " + savedBy);

        List<List<Loaded>> byMethod = new ArrayList<>();
        for (boolean fromRoot : new boolean[] {true, false}) {
            byMethod.add(runRanksOk(3, (comm, backend) -> {
                List<Parameter> params = copyValues(saved.params());
                try (ShardedOptimizer opt = new ShardedOptimizer(comm, settings(backend), params, loadedBy)) {
                    if (fromRoot) {
                        opt.loadStateFrom(0, comm.rank() == 0 ? saved.state() : null);
                    } else {
                        opt.loadState(saved.state());
                    }
                    OptimizerState afterLoad = opt.saveState();
                    for (int s = STEPS / 2; s < STEPS; s++) {
                        fillGradients(params, s, comm.rank(), 3);
                        opt.step();
                    }
                    return new Loaded(afterLoad, params, opt.saveState());
                }
            }));
        }
        for (int r = 0; r < 3; r++) {
            Loaded fromRoot = byMethod.get(0).get(r);
            Loaded everywhere = byMethod.get(1).get(r);
            String what = "rank " + r + " of 3, " + loadedBy;
            assertStateBitIdentical(saved.state(), fromRoot.afterLoad(), what + ", loadStateFrom(0)");
            assertStateBitIdentical(saved.state(), everywhere.afterLoad(), what + ", loadState");
            assertBitIdentical(everywhere.params(), fromRoot.params(), what + ": loadStateFrom vs loadState");
            assertBitIdentical(byMethod.get(0).get(0).params(), fromRoot.params(), what + " agrees with rank 0");
            assertClose(single.params(), fromRoot.params(), TOLERANCE, what + " vs one process");
            assertStateClose(single.state(), fromRoot.end(), TOLERANCE, what + " state vs one process");
        }
    }

    private record Refused(Throwable error, long step, OptimizerState state) {
    }

    /**
     * A state whose mlp.down/row_ema has the wrong length (fan-in's 12 instead of fan-out's 20; or
     * one float too many) is refused on every rank, by loadState and by loadStateFrom(0), with a
     * message naming the parameter and the buffer; no rank hangs and no rank's state changes.
     */
    @ParameterizedTest(name = "{0} ranks, {1}, row_ema of {2}")
    @CsvSource({"2, DISTRIBUTED_MUON, 12", "3, DISTRIBUTED_MUON, 21", "2, WHOLE_MATRIX, 12", "3, WHOLE_MATRIX, 21"})
    void aRowEmaOfTheWrongLengthIsRefusedOnEveryRank(int ranks, ShardedOptimizer.Mode mode, int length) throws Exception {
        Run halfway = oneProcess(STEPS / 2);
        OptimizerState bad = withBuffer(halfway.state(), "mlp.down", ROW_EMA, new float[length]);
        for (boolean fromRoot : new boolean[] {true, false}) {
            List<ShardTestSupport.Outcome<Refused>> outcomes = runRanks(ranks, (comm, backend) -> {
                try (ShardedOptimizer opt = new ShardedOptimizer(comm, settings(backend), copyValues(halfway.params()), mode)) {
                    Throwable error = null;
                    try {
                        if (fromRoot) {
                            opt.loadStateFrom(0, comm.rank() == 0 ? bad : halfway.state());
                        } else {
                            opt.loadState(bad);
                        }
                    } catch (RuntimeException e) {
                        error = e;
                    }
                    return new Refused(error, opt.stepCount(), opt.saveState());
                }
            });
            for (ShardTestSupport.Outcome<Refused> o : outcomes) {
                Refused r = o.get();
                String what = (fromRoot ? "loadStateFrom(0)" : "loadState") + ", rank " + o.rank();
                IllegalArgumentException e = assertInstanceOf(IllegalArgumentException.class, r.error(), what);
                assertTrue(e.getMessage().contains("mlp.down") && e.getMessage().contains(ROW_EMA)
                        && e.getMessage().contains(String.valueOf(length)), what + ": " + e.getMessage());
                assertEquals(0, r.step(), what + ": step count changed");
                r.state().entries().forEach((name, entry) -> entry.buffers().forEach((b, values) -> {
                    for (float v : values) {
                        assertEquals(0f, v, what + ": " + name + "/" + b + " changed");
                    }
                }));
            }
        }
    }

    /**
     * A NaN planted in row {@code row} of a matrix's row_ema is reported, as one process reports it,
     * by the rank that runs that row's matrix (expert), and by no other rank; a clean state by none.
     */
    @ParameterizedTest(name = "{0} ranks, {1}, {2}/row_ema[{3}]")
    @CsvSource({"4, DISTRIBUTED_MUON, attn.wq, 11", "3, DISTRIBUTED_MUON, mlp.down, 0", "4, DISTRIBUTED_MUON, moe.experts, 17",
            "3, WHOLE_MATRIX, mlp.down, 19", "4, WHOLE_MATRIX, moe.experts, 5", "1, WHOLE_MATRIX, attn.wq, 3"})
    void aNonFiniteRowEmaIsReportedByItsOwnersOnly(int ranks, ShardedOptimizer.Mode mode, String matrix, int row) throws Exception {
        Run halfway = oneProcess(STEPS / 2);
        float[] ema = halfway.state().entries().get(matrix).buffers().get(ROW_EMA).clone();
        ema[row] = Float.NaN;
        OptimizerState bad = withBuffer(halfway.state(), matrix, ROW_EMA, ema);
        String expected = HybridOptimizer.describeNonFinite(ROW_EMA, matrix, row, Float.NaN);
        try (Backend backend = new VectorBackend(1)) {
            HybridOptimizer one = settings(backend).build(copyValues(halfway.params()));
            one.loadState(bad);
            assertEquals(Optional.of(expected), one.findNonFiniteState(), "one process");
        }
        record Found(Optional<String> withNaN, Optional<String> clean, ShardLayout layout) {
        }
        List<Found> found = runRanksOk(ranks, (comm, backend) -> {
            try (ShardedOptimizer opt = new ShardedOptimizer(comm, settings(backend), copyValues(halfway.params()), mode)) {
                opt.loadState(bad);
                Optional<String> withNaN = opt.findNonFiniteState();
                opt.loadState(halfway.state());
                return new Found(withNaN, opt.findNonFiniteState(), opt.layout());
            }
        });
        ShardLayout layout = found.get(0).layout();
        Set<Integer> owners = owners(layout, matrix);
        if (ranks > 1) {
            assertTrue(owners.size() < ranks, "some rank owns nothing of " + matrix + ": " + owners);
        }
        int index = index(layout.parameters(), matrix);
        int runner = ShardTestSupport.runner(layout, index, row / layout.parameters().get(index).layout().fanOut());
        for (int r = 0; r < ranks; r++) {
            Optional<String> want = r == runner ? Optional.of(expected) : Optional.empty();
            assertEquals(want, found.get(r).withNaN(), "rank " + r + " (owners of " + matrix + ": " + owners + ", runner of row "
                    + row + ": " + runner + ")");
            assertEquals(Optional.empty(), found.get(r).clean(), "rank " + r + " with a clean state");
        }
    }
}
