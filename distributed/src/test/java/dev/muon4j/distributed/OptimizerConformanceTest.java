package dev.muon4j.distributed;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.VectorBackend;
import dev.muon4j.optim.ConformanceCase;
import dev.muon4j.optim.HybridOptimizer;
import dev.muon4j.optim.NonFiniteGradientException;
import dev.muon4j.optim.OptimizerState;
import dev.muon4j.optim.Parameter;
import dev.muon4j.optim.Preset;
import dev.muon4j.optim.Route;
import dev.muon4j.optim.Transforms;
import dev.muon4j.optim.UpdateRule;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The optimizer conformance suite: every case of {@link ConformanceCase} (each preset, and cautious
 * weight decay and per-head Q/K orthogonalization on Muon presets and on NorMuon) over the same
 * hybrid model, checked for
 * <ul>
 *   <li>its steps against a float64 reference written from the sources ({@link ConformanceCase#reference});</li>
 *   <li>a state saved to a file mid-run, read and loaded into a fresh optimizer, continuing bit for bit
 *       as the uninterrupted run;</li>
 *   <li>bad inputs (non-finite gradients, settings out of range, row blocks that do not divide a fan-out,
 *       a state of the wrong shape or with a buffer missing) refused with the parameter and the value named,
 *       and nothing changed;</li>
 *   <li>two runs equal bit for bit;</li>
 *   <li>1, 2, 3 and 4 in-process ranks of {@link ShardedOptimizer} in both modes equal, bit for bit, to
 *       one process stepping on the ranks' mean gradient (parameters and gathered state).</li>
 * </ul>
 * {@link MpiSelfCheck} runs the same cases over Open MPI ({@link MpiCollectivesTest}).
 */
class OptimizerConformanceTest {
    private static final int STEPS = 4;
    private static Backend backend;

    @TempDir
    Path dir;

    @BeforeAll
    static void open() {
        backend = new VectorBackend(1);
    }

    @AfterAll
    static void close() throws Exception {
        backend.close();
    }

    /** The one list of cases every check runs over. */
    static Stream<ConformanceCase> cases() {
        return Stream.of(ConformanceCase.values());
    }

    static Stream<Arguments> casesOverRanks() {
        return cases().flatMap(c -> Stream.of(ShardedOptimizer.Mode.values())
                .flatMap(mode -> Stream.of(1, 2, 3, 4).map(ranks -> Arguments.of(c, ranks, mode))));
    }

    /** Parameters and state at the end of a run. */
    record Run(List<Parameter> params, OptimizerState state) {
    }

    /** One process for steps [0, steps) on the mean gradient of {@code ranks} ranks ({@link ConformanceCase#meanGradient}). */
    static Run oneProcess(ConformanceCase c, Backend b, int steps, int ranks) {
        List<Parameter> params = ConformanceCase.parameters();
        HybridOptimizer opt = c.settings(b).build(params);
        for (int s = 0; s < steps; s++) {
            ConformanceCase.meanGradient(params, s, ranks);
            opt.step();
        }
        return new Run(params, opt.saveState());
    }

    @ParameterizedTest
    @MethodSource("cases")
    void followsTheFloat64Reference(ConformanceCase c) {
        Run run = oneProcess(c, backend, STEPS, 1);
        ConformanceCase.Reference want = c.reference(STEPS);
        List<Parameter> initial = ConformanceCase.parameters();
        Map<String, Route> routes = c.settings(backend).build(ConformanceCase.parameters()).routes();
        Map<Route, Double> worst = new TreeMap<>();
        double worstState = 0;
        for (int i = 0; i < initial.size(); i++) {
            String name = initial.get(i).name();
            double error = ConformanceCase.errorAgainstReference(run.params().get(i).value(), want.values()[i], initial.get(i).value());
            worst.merge(routes.get(name), error, Math::max);
            assertTrue(error <= c.tolerance(), c + ": " + name + " is " + error + " (relative to its change) from the float64 "
                    + "reference after " + STEPS + " steps, allowed " + c.tolerance());
            Map<String, float[]> buffers = run.state().entries().get(name).buffers();
            assertEquals(want.state().get(i).keySet(), buffers.keySet(), c + ": state buffers of " + name);
            for (Map.Entry<String, double[]> b : want.state().get(i).entrySet()) {
                double stateError = ConformanceCase.relativeError(buffers.get(b.getKey()), b.getValue());
                worstState = Math.max(worstState, stateError);
                assertTrue(stateError <= ConformanceCase.STATE_TOLERANCE, c + ": " + name + "/" + b.getKey() + " is " + stateError
                        + " (relative) from the float64 reference, allowed " + ConformanceCase.STATE_TOLERANCE);
            }
        }
        System.out.printf("conformance %s: largest error against float64 by route %s (allowed %.0e), state %.1e%n", c, worst,
                c.tolerance(), worstState);
    }

    @ParameterizedTest
    @MethodSource("cases")
    void stateSavedToAFileResumesBitForBit(ConformanceCase c) throws Exception {
        Run whole = oneProcess(c, backend, STEPS, 1);

        int half = STEPS / 2;
        Run first = oneProcess(c, backend, half, 1);
        Path file = dir.resolve(c + ".state");
        first.state().write(file);
        List<Parameter> params = ConformanceCase.parameters();
        copyValues(first.params(), params);
        HybridOptimizer resumed = c.settings(backend).build(params);
        resumed.loadState(OptimizerState.read(file));
        assertStateBitIdentical(first.state(), resumed.saveState(), c + ": state read back");
        for (int s = half; s < STEPS; s++) {
            ConformanceCase.fillGradients(params, s, 0, 1);
            resumed.step();
        }
        assertBitIdentical(whole.params(), params, c + ": resumed from a file");
        assertStateBitIdentical(whole.state(), resumed.saveState(), c + ": state after resuming");
    }

    @ParameterizedTest
    @MethodSource("cases")
    void twoRunsAreBitIdentical(ConformanceCase c) throws Exception {
        Run a = oneProcess(c, backend, STEPS, 1);
        try (Backend other = new VectorBackend(1)) {
            Run b = oneProcess(c, other, STEPS, 1);
            assertBitIdentical(a.params(), b.params(), c + ": second run");
            assertStateBitIdentical(a.state(), b.state(), c + ": second run's state");
        }
    }

    @ParameterizedTest
    @MethodSource("cases")
    void badInputsNameTheParameterAndTheValue(ConformanceCase c) {
        List<Parameter> params = ConformanceCase.parameters();
        HybridOptimizer opt = c.settings(backend).build(params);
        ConformanceCase.fillGradients(params, 0, 0, 1);
        opt.step();
        OptimizerState good = opt.saveState();
        List<Parameter> before = copy(params);

        // A non-finite gradient, in a matrix or in the embedding: the step fails before anything changes.
        Parameter qProj = params.get(index(params, ConformanceCase.Q_PROJ));
        for (Parameter p : List.of(qProj, params.getFirst())) {
            for (float bad : new float[] {Float.NaN, Float.NEGATIVE_INFINITY}) {
                ConformanceCase.fillGradients(params, 1, 0, 1);
                p.gradient()[7] = bad;
                NonFiniteGradientException e = assertThrows(NonFiniteGradientException.class, opt::step);
                assertMessage(e, p.name(), "element 7", "is " + bad, "step 2");
                assertBitIdentical(before, params, c + ": after a refused step");
                assertStateBitIdentical(good, opt.saveState(), c + ": state after a refused step");
            }
        }

        // Settings out of range name the setting and the value.
        if (c.preset.usesMuon()) {
            rejects(() -> c.preset.muonSettings().learningRate(-0.01).build(), "Muon learning rate", "-0.01");
            rejects(() -> c.preset.muonSettings().weightDecay(-0.1).build(), "Muon weight decay", "-0.1");
            rejects(() -> c.preset.muonSettings().momentum(1.0).build(), "Muon momentum", "1.0");
            rejects(() -> c.preset.muonSettings().rmsFactor(Double.NaN).build(), "Muon RMS factor", "NaN");
        }
        rejects(() -> c.preset.adamwSettings().learningRate(-0.001).build(), "AdamW learning rate", "-0.001");
        rejects(() -> c.preset.adamwSettings().beta2(1.5).build(), "AdamW beta2", "1.5");
        rejects(() -> c.preset.adamwSettings().eps(0).build(), "AdamW eps", "0.0");
        rejects(() -> c.settings(backend).clipGradientNorm(-1), "gradient clipping norm", "-1.0");
        if (c.preset == Preset.NORMUON) {
            rejects(() -> new Transforms.NorMuon(1.5), "NorMuon beta2", "1.5");
        }

        // Row blocks that do not divide the fan-out name the parameter and both numbers.
        UpdateRule rule = c.settings(backend).defaultRule(c.preset.usesMuon() ? Route.MUON : Route.ADAMW);
        if (c.preset.usesMuon()) {
            // On the preset's builder: in a per-head case the case's own rule for q_proj would match first.
            HybridOptimizer.Builder fiveRowHeads = c.preset.builder(backend).rule(ConformanceCase.Q_PROJ, rule.withRowBlocks(5));
            rejects(() -> fiveRowHeads.build(ConformanceCase.parameters()), ConformanceCase.Q_PROJ, "fan-out 16", "5-row blocks");
        } else {
            rejects(() -> rule.withRowBlocks(5), "update rule adamw", "no Newton–Schulz stage");
        }

        // A state of the wrong shape, with a buffer of the wrong length, or without a buffer or a parameter: refused
        // with the parameter (and the buffer), and the optimizer keeps its state.
        String name = ConformanceCase.Q_PROJ;
        OptimizerState.Entry entry = good.entries().get(name);
        rejectsState(opt, good, with(good, name, new OptimizerState.Entry(entry.route(), new int[] {17, 12}, entry.buffers())),
                "optimizer state of " + name, "shape [17, 12]", "[16, 12]");
        for (String buffer : entry.buffers().keySet()) {
            int length = entry.buffers().get(buffer).length;
            rejectsState(opt, good, withBuffers(good, name, b -> {
                b.put(buffer, new float[length - 1]);
                return b;
            }), name + "/" + buffer, "has " + (length - 1) + " elements", "keeps " + length);
            rejectsState(opt, good, withBuffers(good, name, b -> {
                b.remove(buffer);
                return b;
            }), "optimizer state of " + name, "expected", buffer);
        }
        Map<String, OptimizerState.Entry> fewer = new LinkedHashMap<>(good.entries());
        fewer.remove(name);
        rejectsState(opt, good, new OptimizerState(good.step(), good.skippedSteps(), fewer, good.rules()), "missing [" + name + "]");
    }

    @ParameterizedTest(name = "{0}, {1} ranks, {2}")
    @MethodSource("casesOverRanks")
    void ranksEqualOneProcess(ConformanceCase c, int ranks, ShardedOptimizer.Mode mode) throws Exception {
        Run one = oneProcess(c, backend, STEPS, ranks);
        List<Run> runs = ShardTestSupport.runRanksOk(ranks, (comm, b) -> {
            List<Parameter> params = ConformanceCase.parameters();
            try (ShardedOptimizer opt = new ShardedOptimizer(comm, c.settings(b), params, mode)) {
                for (int s = 0; s < STEPS; s++) {
                    ConformanceCase.fillGradients(params, s, comm.rank(), ranks);
                    opt.step();
                }
                return new Run(params, opt.saveState());
            }
        });
        for (int r = 0; r < ranks; r++) {
            String what = c + ", " + mode + ", rank " + r + " of " + ranks;
            assertBitIdentical(one.params(), runs.get(r).params(), what);
            assertStateBitIdentical(one.state(), runs.get(r).state(), what + ", state");
            // The chains recorded with the state are one process's: the same rules, each parameter under the same one.
            assertTrue(!one.state().rules().isEmpty(), what + ": one process records its rules");
            assertEquals(one.state().rules(), runs.get(r).state().rules(), what + ": recorded rules");
            for (Map.Entry<String, OptimizerState.Entry> e : one.state().entries().entrySet()) {
                assertEquals(e.getValue().rule(), runs.get(r).state().entries().get(e.getKey()).rule(), what + ": rule of " + e.getKey());
            }
        }
    }

    // ---------------------------------------------------------------------------------- helpers

    private static int index(List<Parameter> params, String name) {
        for (int i = 0; i < params.size(); i++) {
            if (params.get(i).name().equals(name)) {
                return i;
            }
        }
        throw new IllegalArgumentException(name);
    }

    private static void copyValues(List<Parameter> from, List<Parameter> to) {
        for (int i = 0; i < from.size(); i++) {
            System.arraycopy(from.get(i).value(), 0, to.get(i).value(), 0, from.get(i).size());
        }
    }

    private static List<Parameter> copy(List<Parameter> params) {
        List<Parameter> out = ConformanceCase.parameters();
        copyValues(params, out);
        return out;
    }

    private static OptimizerState with(OptimizerState state, String name, OptimizerState.Entry entry) {
        Map<String, OptimizerState.Entry> entries = new LinkedHashMap<>(state.entries());
        entries.put(name, entry);
        return new OptimizerState(state.step(), state.skippedSteps(), entries, state.rules());
    }

    private static OptimizerState withBuffers(OptimizerState state, String name, UnaryOperator<Map<String, float[]>> change) {
        OptimizerState.Entry e = state.entries().get(name);
        return with(state, name, new OptimizerState.Entry(e.route(), e.shape(), change.apply(new LinkedHashMap<>(e.buffers()))));
    }

    private static void rejectsState(HybridOptimizer opt, OptimizerState good, OptimizerState bad, String... parts) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> opt.loadState(bad));
        assertMessage(e, parts);
        assertStateBitIdentical(good, opt.saveState(), "state after a refused load");
    }

    private static void rejects(Executable build, String... parts) {
        assertMessage(assertThrows(IllegalArgumentException.class, build), parts);
    }

    private static void assertMessage(Throwable e, String... parts) {
        for (String part : parts) {
            assertTrue(e.getMessage().contains(part), "message lacks '" + part + "': " + e.getMessage());
        }
    }

    static void assertBitIdentical(List<Parameter> want, List<Parameter> got, String what) {
        assertEquals(want.size(), got.size(), what);
        for (int i = 0; i < want.size(); i++) {
            assertFloatsBitIdentical(want.get(i).value(), got.get(i).value(), what + ": " + want.get(i).name());
        }
    }

    static void assertStateBitIdentical(OptimizerState want, OptimizerState got, String what) {
        assertEquals(want.step(), got.step(), what + ": step");
        assertEquals(want.skippedSteps(), got.skippedSteps(), what + ": skipped steps");
        assertEquals(List.copyOf(want.entries().keySet()), List.copyOf(got.entries().keySet()), what + ": parameters");
        for (Map.Entry<String, OptimizerState.Entry> e : want.entries().entrySet()) {
            OptimizerState.Entry g = got.entries().get(e.getKey());
            assertEquals(e.getValue().route(), g.route(), what + ": route of " + e.getKey());
            assertArrayEquals(e.getValue().shape(), g.shape(), what + ": shape of " + e.getKey());
            assertEquals(e.getValue().buffers().keySet(), g.buffers().keySet(), what + ": buffers of " + e.getKey());
            for (Map.Entry<String, float[]> b : e.getValue().buffers().entrySet()) {
                assertFloatsBitIdentical(b.getValue(), g.buffers().get(b.getKey()), what + ": " + e.getKey() + "/" + b.getKey());
            }
        }
    }

    private static void assertFloatsBitIdentical(float[] want, float[] got, String what) {
        assertEquals(want.length, got.length, what + ": length");
        List<String> differ = new ArrayList<>();
        for (int j = 0; j < want.length; j++) {
            if (Float.floatToRawIntBits(want[j]) != Float.floatToRawIntBits(got[j])) {
                differ.add("[" + j + "] " + got[j] + " instead of " + want[j]);
            }
        }
        if (!differ.isEmpty()) {
            fail(what + ": " + differ.size() + " of " + want.length + " values differ, e.g. " + differ.subList(0, Math.min(3, differ.size())));
        }
    }
}
