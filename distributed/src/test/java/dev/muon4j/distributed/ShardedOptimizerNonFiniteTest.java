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
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.VectorBackend;
import dev.muon4j.optim.AdamWConfig;
import dev.muon4j.optim.HybridOptimizer;
import dev.muon4j.optim.LearningRateSchedule;
import dev.muon4j.optim.MuonConfig;
import dev.muon4j.optim.NonFiniteGradientException;
import dev.muon4j.optim.NonFinitePolicy;
import dev.muon4j.optim.OptimizerState;
import dev.muon4j.optim.Parameter;
import dev.muon4j.optim.StepResult;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * A NaN in one rank's gradient of one parameter: under FAIL every rank throws naming it (none
 * hangs, nothing changes); under SKIP_STEP every rank skips the same step and training goes on as
 * one process that skipped it.
 */
class ShardedOptimizerNonFiniteTest {
    private static final String BAD = "mlp.down";
    /** Element of {@link #BAD} that holds the NaN; with 2 ranks in Distributed Muon it sits at shard index 385 of rank 0. */
    private static final int BAD_ELEMENT = 5;
    private static final int BAD_RANK = 1;
    private static final double TOLERANCE = 1e-5;

    private static HybridOptimizer.Builder builder(Backend backend, NonFinitePolicy policy) {
        return HybridOptimizer.builder(backend)
                .muon(MuonConfig.moonlight().learningRate(0.02).build())
                .adamw(AdamWConfig.builder().learningRate(0.01).weightDecay(0.1).build())
                .schedule(LearningRateSchedule.warmupCosine(1, 6, 0.1))
                .nonFinite(policy);
    }

    private static void poison(List<Parameter> params) {
        params.get(index(params, BAD)).gradient()[BAD_ELEMENT] = Float.NaN;
    }

    private record FailResult(boolean ownsBadElement, NonFiniteGradientException error, boolean unchanged,
                              long stepsAfterFailure, List<Parameter> params) {
    }

    /**
     * FAIL: step 0 is good; at step 1 rank 1's gradient of mlp.down holds a NaN. Every rank throws
     * {@link NonFiniteGradientException} naming mlp.down; the rank that owns the element reports its
     * index inside the parameter and NaN; no parameter changed; the group is still usable, and two
     * more good steps end where one process ends after three good steps.
     */
    @ParameterizedTest(name = "{0} ranks, {1}")
    @CsvSource({"2, DISTRIBUTED_MUON", "3, DISTRIBUTED_MUON", "2, WHOLE_MATRIX", "3, WHOLE_MATRIX"})
    void failThrowsOnEveryRankNamingTheParameter(int ranks, ShardedOptimizer.Mode mode) throws Exception {
        List<Parameter> single = model();
        init(single);
        try (Backend backend = new VectorBackend(1)) {
            HybridOptimizer ref = builder(backend, NonFinitePolicy.FAIL).build(single);
            fillGradients(single, 0, 0, 1);
            ref.step();
            // One process fed the mean gradient (which holds the NaN) fails the same way.
            fillGradients(single, 1, 0, 1);
            poison(single);
            NonFiniteGradientException e = assertThrows(NonFiniteGradientException.class, ref::step);
            assertEquals(BAD, e.parameter());
            assertEquals(BAD_ELEMENT, e.index());
            for (int s = 1; s < 3; s++) {
                fillGradients(single, s, 0, 1);
                ref.step();
            }
        }

        List<ShardTestSupport.Outcome<FailResult>> outcomes = runRanks(ranks, (comm, backend) -> {
            List<Parameter> params = model();
            init(params);
            try (ShardedOptimizer opt = new ShardedOptimizer(comm, builder(backend, NonFinitePolicy.FAIL), params, mode)) {
                fillGradients(params, 0, comm.rank(), ranks);
                opt.step();
                List<Parameter> before = copyValues(params);
                fillGradients(params, 1, comm.rank(), ranks);
                if (comm.rank() == BAD_RANK) {
                    poison(params);
                }
                NonFiniteGradientException error = null;
                try {
                    opt.step();
                } catch (NonFiniteGradientException e) {
                    error = e;
                }
                boolean unchanged = true;
                for (int i = 0; i < params.size(); i++) {
                    unchanged &= java.util.Arrays.equals(before.get(i).value(), params.get(i).value());
                }
                long stepsAfterFailure = opt.stepCount();
                if (error != null) {
                    // Nothing changed and the group still works: redo the steps with good gradients.
                    for (int s = 1; s < 3; s++) {
                        fillGradients(params, s, comm.rank(), ranks);
                        opt.step();
                    }
                }
                boolean owns = opt.layout().owner(index(params, BAD), BAD_ELEMENT) == comm.rank();
                return new FailResult(owns, error, unchanged, stepsAfterFailure, params);
            }
        });
        int finders = 0;
        for (ShardTestSupport.Outcome<FailResult> o : outcomes) {
            FailResult r = o.get();
            finders += r.ownsBadElement() ? 1 : 0;
            assertNotNull(r.error(), "rank " + o.rank() + " did not throw");
            assertTrue(r.error().getMessage().contains(BAD), "rank " + o.rank() + ": " + r.error().getMessage());
            assertTrue(r.unchanged(), "rank " + o.rank() + ": parameters changed by a failed step");
            assertEquals(1, r.stepsAfterFailure(), "rank " + o.rank() + ": step count after the failed step");
            if (r.ownsBadElement()) {
                // The rank holding the reduced gradient element says where it is, as one process does.
                assertEquals(BAD, r.error().parameter());
                assertEquals(BAD_ELEMENT, r.error().index(), "element index inside " + BAD + ": " + r.error().getMessage());
                assertTrue(Float.isNaN(r.error().value()));
            }
            assertClose(single, r.params(), TOLERANCE, ranks + " ranks " + mode + " after a failed step");
        }
        assertEquals(1, finders);
    }

    /**
     * NaNs in two ranks' gradients of two parameters (rank 0: head, rank 2: embed): every rank
     * names the same parameter (the one found by the lowest rank holding a bad element).
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource({"DISTRIBUTED_MUON", "WHOLE_MATRIX"})
    void ranksAgreeOnWhichParameterToName(ShardedOptimizer.Mode mode) throws Exception {
        int ranks = 3;
        List<ShardTestSupport.Outcome<Object>> outcomes = runRanks(ranks, (comm, backend) -> {
            List<Parameter> params = model();
            init(params);
            try (ShardedOptimizer opt = new ShardedOptimizer(comm, builder(backend, NonFinitePolicy.FAIL), params, mode)) {
                fillGradients(params, 0, comm.rank(), ranks);
                if (comm.rank() == 0) {
                    params.get(index(params, "head")).gradient()[119] = Float.POSITIVE_INFINITY;
                }
                if (comm.rank() == 2) {
                    params.get(index(params, "embed")).gradient()[0] = Float.NaN;
                }
                opt.step();
                return null;
            }
        });
        String named = null;
        for (ShardTestSupport.Outcome<Object> o : outcomes) {
            NonFiniteGradientException e = assertInstanceOf(NonFiniteGradientException.class, o.error(), "rank " + o.rank());
            String p = e.getMessage().contains("embed") ? "embed" : e.getMessage().contains("head") ? "head" : null;
            assertNotNull(p, e.getMessage());
            assertFalse(e.getMessage().contains("embed") && e.getMessage().contains("head"), e.getMessage());
            named = named == null ? p : named;
            assertEquals(named, p, "rank " + o.rank() + " names another parameter than rank 0");
        }
    }

    private record SkipResult(List<Parameter> params, OptimizerState state) {
    }

    /**
     * SKIP_STEP: five step calls, the second with a NaN in rank 1's gradient of mlp.down. Every rank
     * gets skipped = true (NaN norm) at that call, its parameters are bit-for-bit unchanged,
     * skippedSteps() = 1 and stepCount() stays 1; the next good steps continue exactly as a
     * {@link HybridOptimizer} that skipped the same step.
     */
    @ParameterizedTest(name = "{0} ranks, {1}")
    @CsvSource({"2, DISTRIBUTED_MUON", "3, DISTRIBUTED_MUON", "2, WHOLE_MATRIX", "3, WHOLE_MATRIX"})
    void skipStepSkipsOnEveryRankAndTrainingGoesOn(int ranks, ShardedOptimizer.Mode mode) throws Exception {
        int calls = 5;
        int badCall = 1;
        List<Parameter> single = model();
        init(single);
        OptimizerState refState;
        try (Backend backend = new VectorBackend(1)) {
            HybridOptimizer ref = builder(backend, NonFinitePolicy.SKIP_STEP).build(single);
            for (int c = 0; c < calls; c++) {
                fillGradients(single, c, 0, 1);
                if (c == badCall) {
                    poison(single);
                }
                assertEquals(c == badCall, ref.step().skipped());
            }
            assertEquals(1, ref.skippedSteps());
            refState = ref.saveState();
        }

        List<SkipResult> results = runRanksOk(ranks, (comm, backend) -> {
            List<Parameter> params = model();
            init(params);
            try (ShardedOptimizer opt = new ShardedOptimizer(comm, builder(backend, NonFinitePolicy.SKIP_STEP), params, mode)) {
                for (int c = 0; c < calls; c++) {
                    fillGradients(params, c, comm.rank(), ranks);
                    if (c == badCall && comm.rank() == BAD_RANK) {
                        poison(params);
                    }
                    List<Parameter> before = copyValues(params);
                    StepResult r = opt.step();
                    if (c == badCall) {
                        assertTrue(r.skipped(), "rank " + comm.rank() + " did not skip");
                        assertTrue(Double.isNaN(r.gradientNorm()));
                        assertEquals(1, r.step());
                        assertBitIdentical(before, params, "rank " + comm.rank() + " after a skipped step");
                        assertEquals(1, opt.skippedSteps());
                        assertEquals(1, opt.stepCount());
                    } else {
                        assertFalse(r.skipped(), "rank " + comm.rank() + " skipped call " + c);
                    }
                }
                assertEquals(1, opt.skippedSteps());
                assertEquals(calls - 1, opt.stepCount());
                return new SkipResult(params, opt.saveState());
            }
        });
        for (SkipResult r : results) {
            assertClose(single, r.params(), TOLERANCE, ranks + " ranks " + mode + " after a skipped step");
            assertStateClose(refState, r.state(), TOLERANCE, ranks + " ranks " + mode + " state");
            assertBitIdentical(results.get(0).params(), r.params(), "ranks agree");
        }
    }
}
