package dev.muon4j.distributed;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.BackendKind;
import dev.muon4j.backend.VectorBackend;
import dev.muon4j.optim.ConformanceCase;
import dev.muon4j.optim.HybridOptimizer;
import dev.muon4j.optim.MatrixLayout;
import dev.muon4j.optim.OptimizerState;
import dev.muon4j.optim.ParamRole;
import dev.muon4j.optim.Parameter;
import dev.muon4j.optim.Route;
import dev.muon4j.optim.Transforms;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Mixture-of-Experts stacks sharded: each expert's matrix is its own unit of matrix work. Over 1–4
 * in-process ranks in both modes, a model with two stacks of 6 experts (8×12 and 12×8), two plain
 * matrices and AdamW parameters equals one process bit for bit, with Muon (Moonlight) and NorMuon
 * (per-row state of every expert); its state saved on one rank count and mode loads on another and
 * continues bit for bit; every expert is orthogonalized exactly once per step across all ranks; a
 * split expert moves only its own parts, never more than gathering the whole stack moved; and a
 * stage whose state ties the experts together keeps each stack on one rank.
 */
class ShardedExpertsTest {
    private static final int STEPS = 4;
    private static final int EXPERTS = 6;
    private static final String UP = "model.layers.0.mlp.experts.up_proj.weight";
    private static final String DOWN = "model.layers.0.mlp.experts.down_proj.weight";

    /**
     * 2028 elements: embedding 16×12, norm 12, q_proj 16×12, the up stack 6×(8×12), the down stack
     * 6×(12×8), a shared expert 24×12 and the head 16×12. With 2, 3 and 4 ranks the element-wise
     * shards' boundaries fall inside experts of the stacks (2: down's expert 0; 3: up's expert 2,
     * down's expert 3; 4: up's expert 1, down's experts 0 and 5).
     */
    static List<Parameter> model() {
        List<Parameter> params = List.of(
                Parameter.zeros("model.embed_tokens.weight", ParamRole.EMBEDDING, 16, 12),
                Parameter.zeros("model.layers.0.post_attention_layernorm.weight", ParamRole.NORM, 12),
                Parameter.matrix("model.layers.0.self_attn.q_proj.weight", 16, 12),
                Parameter.stackedMatrices(UP, EXPERTS, 8, 12, new float[EXPERTS * 96], new float[EXPERTS * 96]),
                Parameter.stackedMatrices(DOWN, EXPERTS, 12, 8, new float[EXPERTS * 96], new float[EXPERTS * 96]),
                Parameter.matrix("model.layers.0.mlp.shared_experts.up_proj.weight", 24, 12),
                Parameter.zeros("lm_head.weight", ParamRole.HEAD, 16, 12));
        SplittableRandom random = new SplittableRandom(23);
        for (Parameter p : params) {
            float center = p.role() == ParamRole.NORM ? 1f : 0f;
            for (int i = 0; i < p.size(); i++) {
                p.value()[i] = center + (float) (0.1 * random.nextGaussian());
            }
        }
        return params;
    }

    /** Muon matrices of {@link #model()}: q_proj, 6 + 6 experts, the shared expert. */
    private static final int MATRICES = 1 + EXPERTS + EXPERTS + 1;

    private record Run(List<Parameter> params, OptimizerState state) {
    }

    /** One process stepping on the ranks' mean gradient: step s with the mean of {@code ranks[s]} ranks ({@link ConformanceCase#meanGradient}). */
    private static Run oneProcess(ConformanceCase c, int[] ranks) {
        List<Parameter> params = model();
        try (Backend backend = new VectorBackend(1)) {
            HybridOptimizer opt = c.settings(backend).build(params);
            for (int s = 0; s < ranks.length; s++) {
                ConformanceCase.meanGradient(params, s, ranks[s]);
                opt.step();
            }
            return new Run(params, opt.saveState());
        }
    }

    private static int[] repeat(int ranks, int steps) {
        int[] r = new int[steps];
        java.util.Arrays.fill(r, ranks);
        return r;
    }

    private static void copyValues(List<Parameter> from, List<Parameter> to) {
        for (int i = 0; i < from.size(); i++) {
            System.arraycopy(from.get(i).value(), 0, to.get(i).value(), 0, from.get(i).size());
        }
    }

    private record Ranked(Run run, OptimizerState onRoot, ShardLayout layout) {
    }

    /**
     * N ranks in either mode, Muon and NorMuon: parameters and the state gathered on every rank and
     * on rank 0 alone equal one process bit for bit; with several ranks a stack is split between
     * ranks (in WHOLE_MATRIX at expert boundaries only).
     */
    @ParameterizedTest(name = "{0}, {1} ranks, {2}")
    @CsvSource({"MOONLIGHT, 1, DISTRIBUTED_MUON", "MOONLIGHT, 2, DISTRIBUTED_MUON", "MOONLIGHT, 3, DISTRIBUTED_MUON",
            "MOONLIGHT, 4, DISTRIBUTED_MUON", "MOONLIGHT, 1, WHOLE_MATRIX", "MOONLIGHT, 2, WHOLE_MATRIX", "MOONLIGHT, 3, WHOLE_MATRIX",
            "MOONLIGHT, 4, WHOLE_MATRIX", "NORMUON, 1, DISTRIBUTED_MUON", "NORMUON, 2, DISTRIBUTED_MUON", "NORMUON, 3, DISTRIBUTED_MUON",
            "NORMUON, 4, DISTRIBUTED_MUON", "NORMUON, 1, WHOLE_MATRIX", "NORMUON, 2, WHOLE_MATRIX", "NORMUON, 3, WHOLE_MATRIX",
            "NORMUON, 4, WHOLE_MATRIX"})
    void expertsShardLikeOneProcess(ConformanceCase c, int ranks, ShardedOptimizer.Mode mode) throws Exception {
        Run one = oneProcess(c, repeat(ranks, STEPS));
        List<Ranked> runs = ShardTestSupport.runRanksOk(ranks, (comm, backend) -> {
            List<Parameter> params = model();
            try (ShardedOptimizer opt = new ShardedOptimizer(comm, c.settings(backend), params, mode)) {
                for (int s = 0; s < STEPS; s++) {
                    ConformanceCase.fillGradients(params, s, comm.rank(), ranks);
                    opt.step();
                }
                OptimizerState everywhere = opt.saveState();
                return new Ranked(new Run(params, everywhere), opt.saveStateOn(0), opt.layout());
            }
        });
        String what = c + ", " + mode + ", " + ranks + " ranks";
        if (c == ConformanceCase.NORMUON) {
            assertNotNull(one.state().entries().get(UP).buffers().get(Transforms.NorMuon.ROW_SECOND_MOMENT), "NorMuon keeps rows");
        }
        for (int r = 0; r < ranks; r++) {
            ShardTestSupport.assertBitIdentical(one.params(), runs.get(r).run().params(), what + ", rank " + r);
            assertStateBitIdentical(one.state(), runs.get(r).run().state(), what + ", rank " + r + " saveState()");
            if (r == 0) {
                assertStateBitIdentical(one.state(), runs.get(0).onRoot(), what + ", saveStateOn(0)");
            } else {
                assertNull(runs.get(r).onRoot(), what + ": saveStateOn(0) on rank " + r);
            }
        }
        ShardLayout layout = runs.get(0).layout();
        if (ranks > 1) {
            int up = ShardTestSupport.index(layout.parameters(), UP);
            int down = ShardTestSupport.index(layout.parameters(), DOWN);
            assertTrue(layout.wholeOwner(up) < 0 || layout.wholeOwner(down) < 0, what + ": a stack is split between ranks");
        }
        if (mode == ShardedOptimizer.Mode.WHOLE_MATRIX) {
            for (int i = 0; i < layout.parameters().size(); i++) {
                MatrixLayout m = layout.parameters().get(i).layout();
                if (layout.parameters().get(i).role() != ParamRole.HIDDEN_MATRIX) {
                    continue;
                }
                for (int e = 0; e < m.count(); e++) {
                    long[] counts = ShardTestSupport.ownedCounts(layout, i, (long) e * m.matrixSize(), m.matrixSize());
                    assertEquals(1, java.util.Arrays.stream(counts).filter(n -> n > 0).count(),
                            what + ": matrix " + e + " of " + layout.parameters().get(i).name() + " has one owner");
                }
            }
        }
    }

    /**
     * NorMuon's state saved halfway on rank 0 of one rank count and mode loads on another (with
     * loadStateFrom(0) and with loadState): right after loading it gathers back to the saved state bit
     * for bit, and training on ends bit for bit where one process ends that steps on the same means.
     */
    @ParameterizedTest(name = "{0} ranks {1} to {2} ranks {3}")
    @CsvSource({"2, DISTRIBUTED_MUON, 3, WHOLE_MATRIX", "3, WHOLE_MATRIX, 4, DISTRIBUTED_MUON", "4, DISTRIBUTED_MUON, 2, DISTRIBUTED_MUON",
            "4, WHOLE_MATRIX, 1, WHOLE_MATRIX", "1, DISTRIBUTED_MUON, 4, WHOLE_MATRIX"})
    void stateSavedOnSomeRanksResumesOnOthersBitForBit(int savedOn, ShardedOptimizer.Mode savedBy, int loadedOn,
                                                       ShardedOptimizer.Mode loadedBy) throws Exception {
        ConformanceCase c = ConformanceCase.NORMUON;
        int half = STEPS / 2;
        int[] means = new int[STEPS];
        for (int s = 0; s < STEPS; s++) {
            means[s] = s < half ? savedOn : loadedOn;
        }
        Run whole = oneProcess(c, means);
        List<Run> first = ShardTestSupport.runRanksOk(savedOn, (comm, backend) -> {
            List<Parameter> params = model();
            try (ShardedOptimizer opt = new ShardedOptimizer(comm, c.settings(backend), params, savedBy)) {
                for (int s = 0; s < half; s++) {
                    ConformanceCase.fillGradients(params, s, comm.rank(), savedOn);
                    opt.step();
                }
                return new Run(params, opt.saveStateOn(0));
            }
        });
        Run saved = first.get(0);
        for (boolean fromRoot : new boolean[] {true, false}) {
            String what = savedOn + " ranks " + savedBy + " to " + loadedOn + " ranks " + loadedBy
                    + (fromRoot ? ", loadStateFrom(0)" : ", loadState");
            List<Run[]> runs = ShardTestSupport.runRanksOk(loadedOn, (comm, backend) -> {
                List<Parameter> params = model();
                copyValues(saved.params(), params);
                try (ShardedOptimizer opt = new ShardedOptimizer(comm, c.settings(backend), params, loadedBy)) {
                    if (fromRoot) {
                        opt.loadStateFrom(0, comm.rank() == 0 ? saved.state() : null);
                    } else {
                        opt.loadState(saved.state());
                    }
                    OptimizerState afterLoad = opt.saveState();
                    for (int s = half; s < STEPS; s++) {
                        ConformanceCase.fillGradients(params, s, comm.rank(), loadedOn);
                        opt.step();
                    }
                    return new Run[] {new Run(null, afterLoad), new Run(params, opt.saveState())};
                }
            });
            for (int r = 0; r < loadedOn; r++) {
                assertStateBitIdentical(saved.state(), runs.get(r)[0].state(), what + ", rank " + r + " right after loading");
                ShardTestSupport.assertBitIdentical(whole.params(), runs.get(r)[1].params(), what + ", rank " + r);
                assertStateBitIdentical(whole.state(), runs.get(r)[1].state(), what + ", rank " + r + " state");
            }
        }
    }

    /**
     * A matrix stage whose state couples a stack's matrices: one float counting the matrices it has
     * scaled, each matrix scaled by 1 / (1 + count / 64) at its turn, so the result depends on the order
     * matrices are run in.
     */
    record Countdown() implements dev.muon4j.optim.UpdateTransform {
        @Override
        public String name() {
            return "countdown";
        }

        @Override
        public Scope scope() {
            return Scope.MATRIX;
        }

        @Override
        public java.util.Map<String, Integer> state(Parameter parameter) {
            return java.util.Map.of("matrices_scaled", 1);
        }

        @Override
        public void apply(dev.muon4j.optim.StepContext step, dev.muon4j.optim.ParamState slot, int from, float[] u, int uOff, int len) {
            float[] count = slot.buffer("matrices_scaled");
            int size = slot.parameter().layout().matrixSize();
            for (int k = 0; k < len; k += size) {
                count[0] += 1;
                dev.muon4j.backend.Kernels.scale(u, uOff + k, size, 1f / (1 + count[0] / 64));
            }
        }
    }

    /**
     * A matrix stage keeping state of a length that is not a multiple of the expert count ties a
     * stack's experts together: the stack is then one unit, run whole on one rank in matrix order, and
     * N ranks in either mode equal one process bit for bit, state included.
     */
    @ParameterizedTest(name = "{0} ranks, {1}")
    @CsvSource({"2, DISTRIBUTED_MUON", "4, DISTRIBUTED_MUON", "2, WHOLE_MATRIX", "3, WHOLE_MATRIX"})
    void aStageCouplingTheExpertsRunsTheStackOnOneRank(int ranks, ShardedOptimizer.Mode mode) throws Exception {
        java.util.function.Function<Backend, HybridOptimizer.Builder> settings = backend -> {
            HybridOptimizer.Builder b = ConformanceCase.MOONLIGHT.settings(backend);
            dev.muon4j.optim.UpdateRule muon = dev.muon4j.optim.UpdateRule.muon(b.muonConfig());
            List<dev.muon4j.optim.UpdateTransform> stages = new java.util.ArrayList<>(muon.transforms());
            stages.add(2, new Countdown());
            return b.muonRule(new dev.muon4j.optim.UpdateRule("countdown_muon", Route.MUON, stages));
        };
        List<Parameter> single = model();
        OptimizerState want;
        try (Backend backend = new VectorBackend(1)) {
            HybridOptimizer opt = settings.apply(backend).build(single);
            for (int s = 0; s < STEPS; s++) {
                ConformanceCase.meanGradient(single, s, ranks);
                opt.step();
            }
            want = opt.saveState();
        }
        assertEquals(STEPS * EXPERTS, want.entries().get(UP).buffers().get("matrices_scaled")[0], "one process counts every expert");
        List<Ranked> runs = ShardTestSupport.runRanksOk(ranks, (comm, backend) -> {
            List<Parameter> params = model();
            try (ShardedOptimizer opt = new ShardedOptimizer(comm, settings.apply(backend), params, mode)) {
                for (int s = 0; s < STEPS; s++) {
                    ConformanceCase.fillGradients(params, s, comm.rank(), ranks);
                    opt.step();
                }
                return new Ranked(new Run(params, opt.saveState()), null, opt.layout());
            }
        });
        for (int r = 0; r < ranks; r++) {
            ShardTestSupport.assertBitIdentical(single, runs.get(r).run().params(), ranks + " ranks, " + mode + ", rank " + r);
            assertStateBitIdentical(want, runs.get(r).run().state(), ranks + " ranks, " + mode + ", rank " + r + " state");
        }
        if (mode == ShardedOptimizer.Mode.WHOLE_MATRIX) {
            ShardLayout layout = runs.get(0).layout();
            assertTrue(layout.wholeOwner(ShardTestSupport.index(layout.parameters(), UP)) >= 0, "the up stack has one owner");
            assertTrue(layout.wholeOwner(ShardTestSupport.index(layout.parameters(), DOWN)) >= 0, "the down stack has one owner");
        }
    }

    /** A real backend that counts the multiply-adds of every product it computes (Newton–Schulz's). */
    static final class CountingBackend implements Backend {
        private final Backend inner;
        final AtomicLong multiplyAdds = new AtomicLong();

        CountingBackend(Backend inner) {
            this.inner = inner;
        }

        @Override
        public String description() {
            return "counting " + inner.description();
        }

        @Override
        public BackendKind kind() {
            return inner.kind();
        }

        @Override
        public int threads() {
            return inner.threads();
        }

        @Override
        public void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha, float[] a, int aOffset, int lda,
                         float[] b, int bOffset, int ldb, float beta, float[] c, int cOffset, int ldc) {
            multiplyAdds.addAndGet((long) m * n * k);
            inner.gemm(transA, transB, m, n, k, alpha, a, aOffset, lda, b, bOffset, ldb, beta, c, cOffset, ldc);
        }

        @Override
        public void syrk(boolean trans, int n, int k, float alpha, float[] a, int aOffset, int lda, float beta, float[] c, int cOffset,
                         int ldc) {
            multiplyAdds.addAndGet((long) n * n * k);
            inner.syrk(trans, n, k, alpha, a, aOffset, lda, beta, c, cOffset, ldc);
        }

        @Override
        public void symm(int m, int n, float alpha, float[] s, int sOffset, int lds, float[] b, int bOffset, int ldb, float beta,
                         float[] c, int cOffset, int ldc) {
            multiplyAdds.addAndGet((long) m * m * n);
            inner.symm(m, n, alpha, s, sOffset, lds, b, bOffset, ldb, beta, c, cOffset, ldc);
        }

        @Override
        public void close() {
            inner.close();
        }
    }

    private record Work(int rank, long matrices, long multiplyAdds, long sent, long received, ShardLayout layout, List<Route> routes) {
    }

    /**
     * One step over N ranks: every Muon matrix, each expert of a stack included, is orthogonalized
     * exactly once across all ranks: the matrices the ranks report ({@link ShardedOptimizer.StepStats#newtonSchulzMatrices})
     * add up to the model's 14 and each rank's are the matrices it runs (the rank owning the most of
     * each); the products a counting backend saw on all ranks add up to one process's, to the
     * multiply-add. In DISTRIBUTED_MUON, gathering each split stack whole to every owner would have
     * run Σ (owners of a parameter) × (its matrices): 20, 26 and 32 on 2, 3 and 4 ranks. Traffic: each split expert moves only its owners'
     * parts, no more than all-gathering the whole split parameters did.
     */
    @ParameterizedTest(name = "{0} ranks, {1}")
    @CsvSource({"1, DISTRIBUTED_MUON", "2, DISTRIBUTED_MUON", "3, DISTRIBUTED_MUON", "4, DISTRIBUTED_MUON", "1, WHOLE_MATRIX",
            "2, WHOLE_MATRIX", "3, WHOLE_MATRIX", "4, WHOLE_MATRIX"})
    void eachExpertIsOrthogonalizedOnceAcrossRanks(int ranks, ShardedOptimizer.Mode mode) throws Exception {
        ConformanceCase c = ConformanceCase.MOONLIGHT;
        long oneProcessWork;
        try (CountingBackend backend = new CountingBackend(new VectorBackend(1))) {
            List<Parameter> params = model();
            HybridOptimizer opt = c.settings(backend).build(params);
            ConformanceCase.meanGradient(params, 0, ranks);
            opt.step();
            oneProcessWork = backend.multiplyAdds.get();
        }
        List<Work> work = ShardTestSupport.runRanksOk(ranks, (comm, inner) -> {
            CountingBackend backend = new CountingBackend(inner);
            List<Parameter> params = model();
            try (ShardedOptimizer opt = new ShardedOptimizer(comm, c.settings(backend), params, mode)) {
                ConformanceCase.fillGradients(params, 0, comm.rank(), ranks);
                opt.step();
                List<Route> routes = c.settings(backend).assign(params).stream().map(HybridOptimizer.Assignment::route).toList();
                ShardedOptimizer.StepStats stats = opt.lastStep();
                return new Work(comm.rank(), stats.newtonSchulzMatrices(), backend.multiplyAdds.get(), stats.bytesSent(),
                        stats.bytesReceived(), opt.layout(), routes);
            }
        });
        ShardLayout layout = work.get(0).layout();
        long matrices = 0;
        long multiplyAdds = 0;
        long wholeStacks = 0;
        StringBuilder perRank = new StringBuilder();
        for (Work w : work) {
            long runs = 0;
            for (int i = 0; i < layout.parameters().size(); i++) {
                if (w.routes().get(i) == Route.MUON) {
                    for (int e = 0; e < layout.parameters().get(i).layout().count(); e++) {
                        runs += ShardTestSupport.runner(layout, i, e) == w.rank() ? 1 : 0;
                    }
                }
            }
            assertEquals(runs, w.matrices(), ranks + " ranks, " + mode + ": matrices rank " + w.rank() + " orthogonalized");
            matrices += w.matrices();
            multiplyAdds += w.multiplyAdds();
            perRank.append(' ').append(w.matrices());
            long[] traffic = ShardedOptimizerTrafficTest.matrixTraffic(layout, w.routes(), w.rank());
            long[] before = ShardedOptimizerTrafficTest.wholeParameterAllGather(layout, w.routes(), w.rank());
            long base = 4L * (2L * (ranks - 1) * layout.shardSize() + (2L * (ranks - 1) * ranks + ranks - 1) / ranks + 2L * (ranks - 1));
            assertEquals(base + 4 * traffic[0], w.sent(), ranks + " ranks, " + mode + ": bytes rank " + w.rank() + " sent");
            assertEquals(base + 4 * traffic[1], w.received(), ranks + " ranks, " + mode + ": bytes rank " + w.rank() + " received");
            assertTrue(traffic[0] <= before[0] && traffic[1] <= before[1], ranks + " ranks, " + mode + ", rank " + w.rank());
        }
        for (int i = 0; i < layout.parameters().size(); i++) {
            if (work.get(0).routes().get(i) == Route.MUON) {
                long owners = java.util.Arrays.stream(layout.counts(i)).filter(n -> n > 0).count();
                wholeStacks += owners * layout.parameters().get(i).layout().count();
            }
        }
        assertEquals(MATRICES, matrices, ranks + " ranks, " + mode + ": matrices orthogonalized on all ranks together");
        assertEquals(oneProcessWork, multiplyAdds, ranks + " ranks, " + mode + ": multiply-adds on all ranks together");
        System.out.printf("%d ranks, %s: matrices orthogonalized per rank%s (total %d%s)%n", ranks, mode, perRank, matrices,
                mode == ShardedOptimizer.Mode.DISTRIBUTED_MUON ? "; every owner of a split stack orthogonalizing it whole: " + wholeStacks : "");
    }

    private static void assertStateBitIdentical(OptimizerState want, OptimizerState got, String what) {
        assertNotNull(got, what);
        assertEquals(want.step(), got.step(), what + ": step");
        assertEquals(want.skippedSteps(), got.skippedSteps(), what + ": skipped");
        assertEquals(want.entries().keySet(), got.entries().keySet(), what + ": parameters");
        want.entries().forEach((name, e) -> {
            assertEquals(e.route(), got.entries().get(name).route(), what + ": route of " + name);
            assertEquals(e.buffers().keySet(), got.entries().get(name).buffers().keySet(), what + ": buffers of " + name);
            e.buffers().forEach((b, values) -> {
                float[] g = got.entries().get(name).buffers().get(b);
                assertEquals(values.length, g.length, what + ": length of " + name + "/" + b);
                for (int j = 0; j < values.length; j++) {
                    if (Float.floatToRawIntBits(values[j]) != Float.floatToRawIntBits(g[j])) {
                        fail(what + ": " + name + "/" + b + "[" + j + "] is " + g[j] + ", one process has " + values[j]);
                    }
                }
            });
        });
    }
}
