package dev.muon4j.distributed;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static dev.muon4j.distributed.ShardTestSupport.assertBitIdentical;
import static dev.muon4j.distributed.ShardTestSupport.assertClose;
import static dev.muon4j.distributed.ShardTestSupport.fillGradients;
import static dev.muon4j.distributed.ShardTestSupport.init;
import static dev.muon4j.distributed.ShardTestSupport.model;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.VectorBackend;
import dev.muon4j.optim.AdamWConfig;
import dev.muon4j.optim.HybridOptimizer;
import dev.muon4j.optim.LearningRateSchedule;
import dev.muon4j.optim.MuonConfig;
import dev.muon4j.optim.OptimizerState;
import dev.muon4j.optim.Parameter;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * ZeRO-1 + Distributed Muon on N in-process ranks ends where one process ends, given the same
 * global gradient: each rank sees G + c_r·D with Σ c_r = 0, so the ranks' mean is G.
 */
class ShardedOptimizerTest {
    // model(), init(), fillGradients() and the assertions are ShardTestSupport's.
    private static final int STEPS = 4;

    @ParameterizedTest
    @CsvSource({"1, 0, DISTRIBUTED_MUON", "2, 0, DISTRIBUTED_MUON", "3, 0, DISTRIBUTED_MUON", "4, 0, DISTRIBUTED_MUON",
            "3, 0.5, DISTRIBUTED_MUON", "1, 0, WHOLE_MATRIX", "2, 0, WHOLE_MATRIX", "3, 0.5, WHOLE_MATRIX", "4, 0, WHOLE_MATRIX"})
    void ranksTrackOneProcess(int ranks, double clip, ShardedOptimizer.Mode mode) throws Exception {
        MuonConfig muon = MuonConfig.moonlight().learningRate(0.02).build();
        AdamWConfig adamw = AdamWConfig.builder().learningRate(0.01).weightDecay(0.1).build();
        LearningRateSchedule schedule = LearningRateSchedule.warmupCosine(1, STEPS, 0.1);

        List<Parameter> single = model();
        init(single);
        double[] norms = new double[STEPS];
        try (Backend backend = new VectorBackend(1)) {
            HybridOptimizer reference = HybridOptimizer.builder(backend).muon(muon).adamw(adamw).schedule(schedule)
                    .clipGradientNorm(clip).build(single);
            for (int s = 0; s < STEPS; s++) {
                fillGradients(single, s, 0, 1);
                norms[s] = reference.step().gradientNorm();
            }
        }

        List<Collectives> comms = InProcessCollectives.create(ranks);
        ExecutorService pool = Executors.newFixedThreadPool(ranks);
        try {
            List<Future<List<Parameter>>> results = new ArrayList<>();
            for (int r = 0; r < ranks; r++) {
                Collectives comm = comms.get(r);
                results.add(pool.submit(() -> {
                    List<Parameter> params = model();
                    init(params);
                    try (Backend backend = new VectorBackend(1);
                         ShardedOptimizer opt = new ShardedOptimizer(comm, HybridOptimizer.builder(backend).muon(muon).adamw(adamw)
                                 .schedule(schedule).clipGradientNorm(clip), params, mode)) {
                        for (int s = 0; s < STEPS; s++) {
                            fillGradients(params, s, comm.rank(), ranks);
                            double norm = opt.step().gradientNorm();
                            // The agreed norm is that of the mean gradient (Muon and Adam are blind to a gradient's scale).
                            if (Math.abs(norm - norms[s]) > 1e-5 * norms[s]) {
                                throw new AssertionError("step " + s + " rank " + comm.rank() + ": gradient norm " + norm
                                        + ", one process " + norms[s]);
                            }
                        }
                    }
                    return params;
                }));
            }
            List<List<Parameter>> finals = new ArrayList<>();
            for (Future<List<Parameter>> f : results) {
                finals.add(f.get());
            }
            for (List<Parameter> params : finals) {
                assertClose(single, params, 1e-5, ranks + " ranks");
            }
            // Every rank holds identical parameters after the all-gather.
            for (List<Parameter> params : finals) {
                assertBitIdentical(finals.get(0), params, "ranks agree");
            }
        } finally {
            pool.shutdownNow();
            for (Collectives c : comms) {
                c.close();
            }
        }
    }

    /** Parameters and state of rank 0 after a group of ranks ran steps [from, to). */
    private record GroupResult(List<Parameter> params, OptimizerState state) {
    }

    private static GroupResult runGroup(int ranks, List<Parameter> start, OptimizerState state, int from, int to,
                                        MuonConfig muon, AdamWConfig adamw, LearningRateSchedule schedule,
                                        ShardedOptimizer.Mode mode) throws Exception {
        List<Collectives> comms = InProcessCollectives.create(ranks);
        ExecutorService pool = Executors.newFixedThreadPool(ranks);
        try {
            List<Future<GroupResult>> results = new ArrayList<>();
            for (int r = 0; r < ranks; r++) {
                Collectives comm = comms.get(r);
                results.add(pool.submit(() -> {
                    List<Parameter> params = model();
                    for (int i = 0; i < params.size(); i++) {
                        System.arraycopy(start.get(i).value(), 0, params.get(i).value(), 0, params.get(i).size());
                    }
                    try (Backend backend = new VectorBackend(1);
                         ShardedOptimizer opt = new ShardedOptimizer(comm, HybridOptimizer.builder(backend).muon(muon).adamw(adamw)
                                 .schedule(schedule), params, mode)) {
                        if (state != null) {
                            opt.loadState(state);
                        }
                        for (int s = from; s < to; s++) {
                            fillGradients(params, s, comm.rank(), ranks);
                            opt.step();
                        }
                        return new GroupResult(params, opt.saveState());
                    }
                }));
            }
            GroupResult first = null;
            for (Future<GroupResult> f : results) {
                GroupResult g = f.get();
                first = first == null ? g : first;
            }
            return first;
        } finally {
            pool.shutdownNow();
            for (Collectives c : comms) {
                c.close();
            }
        }
    }

    @org.junit.jupiter.api.Test
    void stateSavedByTwoRanksResumesOnThreeRanksAndOnOneProcess() throws Exception {
        MuonConfig muon = MuonConfig.moonlight().learningRate(0.02).build();
        AdamWConfig adamw = AdamWConfig.builder().learningRate(0.01).weightDecay(0.1).build();
        LearningRateSchedule schedule = LearningRateSchedule.warmupCosine(1, STEPS, 0.1);
        List<Parameter> start = model();
        init(start);

        List<Parameter> single = model();
        init(single);
        try (Backend backend = new VectorBackend(1)) {
            HybridOptimizer reference = HybridOptimizer.builder(backend).muon(muon).adamw(adamw).schedule(schedule).build(single);
            for (int s = 0; s < STEPS; s++) {
                fillGradients(single, s, 0, 1);
                reference.step();
            }
        }

        // Saved by 2 ranks in Moonlight's mode, resumed by 3 ranks owning whole matrices.
        GroupResult half = runGroup(2, start, null, 0, STEPS / 2, muon, adamw, schedule, ShardedOptimizer.Mode.DISTRIBUTED_MUON);
        assertEquals(STEPS / 2, half.state().step());
        GroupResult resumed = runGroup(3, half.params(), half.state(), STEPS / 2, STEPS, muon, adamw, schedule,
                ShardedOptimizer.Mode.WHOLE_MATRIX);

        // The same state file loads into one process too (the single-process format).
        List<Parameter> alone = model();
        for (int i = 0; i < alone.size(); i++) {
            System.arraycopy(half.params().get(i).value(), 0, alone.get(i).value(), 0, alone.get(i).size());
        }
        try (Backend backend = new VectorBackend(1)) {
            HybridOptimizer one = HybridOptimizer.builder(backend).muon(muon).adamw(adamw).schedule(schedule).build(alone);
            one.loadState(half.state());
            for (int s = STEPS / 2; s < STEPS; s++) {
                fillGradients(alone, s, 0, 1);
                one.step();
            }
        }
        assertClose(single, resumed.params(), 1e-5, "2 ranks, then 3");
        assertClose(single, alone, 1e-5, "2 ranks, then one process");
    }
}
