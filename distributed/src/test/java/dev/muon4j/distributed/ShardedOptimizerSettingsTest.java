package dev.muon4j.distributed;

import static dev.muon4j.distributed.ShardTestSupport.assertBitIdentical;
import static dev.muon4j.distributed.ShardTestSupport.assertClose;
import static dev.muon4j.distributed.ShardTestSupport.assertStateClose;
import static dev.muon4j.distributed.ShardTestSupport.fillGradients;
import static dev.muon4j.distributed.ShardTestSupport.init;
import static dev.muon4j.distributed.ShardTestSupport.model;
import static dev.muon4j.distributed.ShardTestSupport.runRanksOk;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.VectorBackend;
import dev.muon4j.optim.AdamWConfig;
import dev.muon4j.optim.HybridOptimizer;
import dev.muon4j.optim.LearningRateSchedule;
import dev.muon4j.optim.MuonConfig;
import dev.muon4j.optim.OptimizerState;
import dev.muon4j.optim.ParamOverride;
import dev.muon4j.optim.Parameter;
import dev.muon4j.optim.Route;
import dev.muon4j.optim.StepResult;
import java.util.List;
import java.util.Map;
import java.util.function.UnaryOperator;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Per-parameter overrides, {@code routeAll}, and a rank that contributes no gradient: N ranks end
 * where one {@link HybridOptimizer} with the same builder settings ends, fed the ranks' mean gradient.
 */
class ShardedOptimizerSettingsTest {
    private static final int STEPS = 4;
    private static final double TOLERANCE = 1e-5;

    /** Named builder settings, applied on top of the common Muon/AdamW/schedule settings. */
    enum Settings {
        /** mlp.down forced to AdamW; attn.wq with its own lr 0.05 and no weight decay. */
        OVERRIDES(b -> b.override("mlp.down", ParamOverride.none().withRoute(Route.ADAMW))
                .override("attn.wq", ParamOverride.none().withLearningRate(0.05).withWeightDecay(0))),
        /** Every parameter on AdamW: no Newton–Schulz, no split matrices. */
        ROUTE_ALL_ADAMW(b -> b.routeAll(Route.ADAMW)),
        /** Both at once: routeAll AdamW, but attn.wq pulled back to Muon with its own lr. */
        ROUTE_ALL_ADAMW_WQ_MUON(b -> b.routeAll(Route.ADAMW)
                .override("attn.wq", ParamOverride.none().withRoute(Route.MUON).withLearningRate(0.05).withWeightDecay(0)));

        final UnaryOperator<HybridOptimizer.Builder> apply;

        Settings(UnaryOperator<HybridOptimizer.Builder> apply) {
            this.apply = apply;
        }
    }

    private static HybridOptimizer.Builder builder(Backend backend, Settings settings) {
        MuonConfig muon = MuonConfig.moonlight().learningRate(0.02).weightDecay(0.1).build();
        AdamWConfig adamw = AdamWConfig.builder().learningRate(0.01).weightDecay(0.1).build();
        return settings.apply.apply(HybridOptimizer.builder(backend).muon(muon).adamw(adamw)
                .schedule(LearningRateSchedule.warmupCosine(1, STEPS, 0.1)));
    }

    /** The routes the settings must produce, so the comparison exercises what it claims to. */
    private static void checkRoutes(Settings settings, Map<String, Route> routes) {
        switch (settings) {
            case OVERRIDES -> {
                assertEquals(Route.ADAMW, routes.get("mlp.down"));
                assertEquals(Route.MUON, routes.get("attn.wq"));
                assertEquals(Route.MUON, routes.get("moe.experts"));
            }
            case ROUTE_ALL_ADAMW -> routes.values().forEach(r -> assertEquals(Route.ADAMW, r));
            case ROUTE_ALL_ADAMW_WQ_MUON -> routes.forEach((name, r) -> assertEquals(name.equals("attn.wq") ? Route.MUON : Route.ADAMW, r));
        }
    }

    private record Reference(List<Parameter> params, double[] norms, OptimizerState state) {
    }

    private static Reference reference(Settings settings) {
        List<Parameter> single = model();
        init(single);
        double[] norms = new double[STEPS];
        try (Backend backend = new VectorBackend(1)) {
            HybridOptimizer opt = builder(backend, settings).build(single);
            checkRoutes(settings, opt.routes());
            for (int s = 0; s < STEPS; s++) {
                fillGradients(single, s, 0, 1);
                norms[s] = opt.step().gradientNorm();
            }
            return new Reference(single, norms, opt.saveState());
        }
    }

    private record RankResult(List<Parameter> params, double[] norms, OptimizerState state) {
    }

    @ParameterizedTest(name = "{0}, {1} ranks, {2}")
    @CsvSource({
            "OVERRIDES, 2, DISTRIBUTED_MUON", "OVERRIDES, 3, DISTRIBUTED_MUON",
            "OVERRIDES, 2, WHOLE_MATRIX", "OVERRIDES, 3, WHOLE_MATRIX",
            "ROUTE_ALL_ADAMW, 2, DISTRIBUTED_MUON", "ROUTE_ALL_ADAMW, 3, DISTRIBUTED_MUON",
            "ROUTE_ALL_ADAMW, 2, WHOLE_MATRIX", "ROUTE_ALL_ADAMW, 3, WHOLE_MATRIX",
            "ROUTE_ALL_ADAMW_WQ_MUON, 2, DISTRIBUTED_MUON", "ROUTE_ALL_ADAMW_WQ_MUON, 3, WHOLE_MATRIX"})
    void overridesAndRouteAllMatchOneProcess(Settings settings, int ranks, ShardedOptimizer.Mode mode) throws Exception {
        Reference ref = reference(settings);
        List<RankResult> results = runRanksOk(ranks, (comm, backend) -> {
            List<Parameter> params = model();
            init(params);
            double[] norms = new double[STEPS];
            try (ShardedOptimizer opt = new ShardedOptimizer(comm, builder(backend, settings), params, mode)) {
                for (int s = 0; s < STEPS; s++) {
                    fillGradients(params, s, comm.rank(), ranks);
                    StepResult r = opt.step();
                    assertTrue(!r.skipped());
                    norms[s] = r.gradientNorm();
                }
                return new RankResult(params, norms, opt.saveState());
            }
        });
        for (RankResult r : results) {
            for (int s = 0; s < STEPS; s++) {
                assertEquals(ref.norms()[s], r.norms()[s], TOLERANCE * ref.norms()[s], "gradient norm at step " + s);
            }
            assertClose(ref.params(), r.params(), TOLERANCE, settings + " " + ranks + " ranks " + mode);
            // The state (Muon momentum of attn.wq, AdamW moments of mlp.down, ...) is the one process's too.
            assertStateClose(ref.state(), r.state(), TOLERANCE, settings + " " + ranks + " ranks " + mode + " state");
            assertBitIdentical(results.get(0).params(), r.params(), "ranks agree");
        }
    }

    /**
     * Three ranks, rank 2's share of the batch empty (all-zero gradients), ranks 0 and 1 carrying
     * 1.5× theirs: 1.5·(G − D/2) and 1.5·(G + D/2), whose three-rank mean is G. No rank waits forever,
     * and the result is one process's fed G.
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource({"DISTRIBUTED_MUON", "WHOLE_MATRIX"})
    void aRankWithNoGradientTakesPartAndTheMeanIsKept(ShardedOptimizer.Mode mode) throws Exception {
        int ranks = 3;
        Reference ref = reference(Settings.OVERRIDES);
        List<RankResult> results = runRanksOk(ranks, (comm, backend) -> {
            List<Parameter> params = model();
            init(params);
            double[] norms = new double[STEPS];
            try (ShardedOptimizer opt = new ShardedOptimizer(comm, builder(backend, Settings.OVERRIDES), params, mode)) {
                for (int s = 0; s < STEPS; s++) {
                    if (comm.rank() == 2) {
                        for (Parameter p : params) {
                            java.util.Arrays.fill(p.gradient(), 0f);
                        }
                    } else {
                        // G − D/2 on rank 0, G + D/2 on rank 1 (a 2-rank split), scaled by 1.5
                        fillGradients(params, s, comm.rank(), 2);
                        for (Parameter p : params) {
                            for (int i = 0; i < p.size(); i++) {
                                p.gradient()[i] *= 1.5f;
                            }
                        }
                    }
                    norms[s] = opt.step().gradientNorm();
                }
                return new RankResult(params, norms, opt.saveState());
            }
        });
        for (RankResult r : results) {
            for (int s = 0; s < STEPS; s++) {
                assertEquals(ref.norms()[s], r.norms()[s], TOLERANCE * ref.norms()[s], "gradient norm at step " + s);
            }
            assertClose(ref.params(), r.params(), TOLERANCE, "empty rank 2, " + mode);
            assertStateClose(ref.state(), r.state(), TOLERANCE, "empty rank 2, " + mode + " state");
            assertBitIdentical(results.get(0).params(), r.params(), "ranks agree");
        }
    }

    /** Only hidden matrices (two plain, one stack of experts): every parameter on Muon, no AdamW at all. */
    @ParameterizedTest(name = "pure Muon, {0} ranks, {1}")
    @CsvSource({"2, DISTRIBUTED_MUON", "4, DISTRIBUTED_MUON", "2, WHOLE_MATRIX", "4, WHOLE_MATRIX"})
    void pureMuonMatchesOneProcess(int ranks, ShardedOptimizer.Mode mode) throws Exception {
        java.util.function.Supplier<List<Parameter>> matrices = () -> List.of(
                Parameter.matrix("attn.wq", 12, 20), Parameter.matrix("mlp.down", 20, 12),
                Parameter.stackedMatrices("moe.experts", 3, 6, 4, new float[72], new float[72]));
        List<Parameter> single = matrices.get();
        init(single);
        try (Backend backend = new VectorBackend(1)) {
            HybridOptimizer opt = pureMuon(backend).build(single);
            opt.routes().values().forEach(r -> assertEquals(Route.MUON, r));
            for (int s = 0; s < STEPS; s++) {
                fillGradients(single, s, 0, 1);
                opt.step();
            }
        }
        List<List<Parameter>> results = runRanksOk(ranks, (comm, backend) -> {
            List<Parameter> params = matrices.get();
            init(params);
            try (ShardedOptimizer opt = new ShardedOptimizer(comm, pureMuon(backend), params, mode)) {
                for (int s = 0; s < STEPS; s++) {
                    fillGradients(params, s, comm.rank(), ranks);
                    opt.step();
                }
                assertEquals(0, opt.stateBytes() - 4L * opt.layout().owned(comm.rank()), "Muon keeps one buffer per element");
            }
            return params;
        });
        for (List<Parameter> r : results) {
            assertClose(single, r, TOLERANCE, "pure Muon " + ranks + " ranks " + mode);
        }
    }

    private static HybridOptimizer.Builder pureMuon(Backend backend) {
        return HybridOptimizer.builder(backend).muon(MuonConfig.moonlight().learningRate(0.02).weightDecay(0.1).build())
                .schedule(LearningRateSchedule.warmupCosine(1, STEPS, 0.1)).routeAll(Route.MUON);
    }
}
