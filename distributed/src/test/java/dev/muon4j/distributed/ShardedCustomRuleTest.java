package dev.muon4j.distributed;

import static dev.muon4j.distributed.ShardTestSupport.assertBitIdentical;
import static dev.muon4j.distributed.ShardTestSupport.assertClose;
import static dev.muon4j.distributed.ShardTestSupport.assertStateClose;
import static dev.muon4j.distributed.ShardTestSupport.fillGradients;
import static dev.muon4j.distributed.ShardTestSupport.init;
import static dev.muon4j.distributed.ShardTestSupport.model;
import static dev.muon4j.distributed.ShardTestSupport.runRanks;
import static dev.muon4j.distributed.ShardTestSupport.runRanksOk;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.VectorBackend;
import dev.muon4j.optim.AdamWConfig;
import dev.muon4j.optim.HybridOptimizer;
import dev.muon4j.optim.LearningRateSchedule;
import dev.muon4j.optim.MuonConfig;
import dev.muon4j.optim.NewtonSchulzConfig;
import dev.muon4j.optim.OptimizerState;
import dev.muon4j.optim.ParamState;
import dev.muon4j.optim.Parameter;
import dev.muon4j.optim.Route;
import dev.muon4j.optim.StepContext;
import dev.muon4j.optim.TraceStage;
import dev.muon4j.optim.Transforms;
import dev.muon4j.optim.UpdateRule;
import dev.muon4j.optim.UpdateTransform;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * One update path: a rule with a stage of the user's own (stateful, elementwise, before
 * Newton–Schulz on the matrices; alone on the norm) runs sharded with no change to the sharded
 * optimizer, and N ranks in either mode track one process, state included.
 */
class ShardedCustomRuleTest {
    private static final int STEPS = 4;

    /** An elementwise stage that (wrongly) keeps one float per parameter rather than per element. */
    record Counter() implements UpdateTransform {
        @Override
        public String name() {
            return "counter";
        }

        @Override
        public Scope scope() {
            return Scope.ELEMENTWISE;
        }

        @Override
        public Map<String, Integer> state(Parameter parameter) {
            return Map.of("count", 1);
        }

        @Override
        public void apply(StepContext step, ParamState slot, int from, float[] u, int uOff, int len) {
            slot.buffer("count")[0] += 1;
        }
    }

    /**
     * Elementwise state is split with the elements, so an elementwise stage keeping state of
     * another length cannot be sharded: the constructor refuses it, naming stage, buffer and parameter.
     */
    @ParameterizedTest
    @EnumSource(ShardedOptimizer.Mode.class)
    void anElementwiseStageWithStateOfAnotherLengthIsRefused(ShardedOptimizer.Mode mode) throws Exception {
        UpdateRule counted = new UpdateRule("counted_sgd", Route.ADAMW, List.of(new Counter(), new Transforms.DecoupledUpdate()));
        List<ShardTestSupport.Outcome<Object>> outcomes = runRanks(2, (comm, backend) ->
                new ShardedOptimizer(comm, settings(backend).rule("head", counted), model(), mode));
        for (ShardTestSupport.Outcome<Object> o : outcomes) {
            IllegalArgumentException e = assertInstanceOf(IllegalArgumentException.class, o.error(),
                    "rank " + o.rank());
            assertTrue(e.getMessage().contains("counter") && e.getMessage().contains("count ")
                    && e.getMessage().contains("head"), e.getMessage());
        }
    }

    private static HybridOptimizer.Builder settings(Backend backend) {
        UpdateRule tracedMuon = new UpdateRule("traced_muon", Route.MUON, List.of(new TraceStage(),
                new Transforms.Orthogonalize(NewtonSchulzConfig.defaults()), new Transforms.DecoupledUpdate()));
        UpdateRule tracedSgd = new UpdateRule("traced_sgd", Route.ADAMW, List.of(new TraceStage(), new Transforms.DecoupledUpdate()));
        return HybridOptimizer.builder(backend)
                .muon(MuonConfig.moonlight().learningRate(0.02).build())
                .adamw(AdamWConfig.builder().learningRate(0.01).weightDecay(0.1).build())
                .schedule(LearningRateSchedule.warmupCosine(1, STEPS, 0.1))
                .rule("attn.wq", tracedMuon)
                .rule("norm", tracedSgd);
    }

    private record Final(List<Parameter> params, OptimizerState state) {
    }

    @ParameterizedTest
    @CsvSource({"2, DISTRIBUTED_MUON", "3, DISTRIBUTED_MUON", "4, DISTRIBUTED_MUON", "2, WHOLE_MATRIX", "3, WHOLE_MATRIX"})
    void aCustomRuleShardsLikeOneProcess(int ranks, ShardedOptimizer.Mode mode) throws Exception {
        List<Parameter> single = model();
        init(single);
        OptimizerState reference;
        try (Backend backend = new VectorBackend(1)) {
            HybridOptimizer one = settings(backend).build(single);
            for (int s = 0; s < STEPS; s++) {
                fillGradients(single, s, 0, 1);
                one.step();
            }
            reference = one.saveState();
        }
        List<Final> finals = runRanksOk(ranks, (comm, backend) -> {
            List<Parameter> params = model();
            init(params);
            try (ShardedOptimizer opt = new ShardedOptimizer(comm, settings(backend), params, mode)) {
                for (int s = 0; s < STEPS; s++) {
                    fillGradients(params, s, comm.rank(), ranks);
                    opt.step();
                }
                return new Final(params, opt.saveState());
            }
        });
        for (Final f : finals) {
            assertClose(single, f.params(), 1e-5, ranks + " ranks, " + mode);
            assertBitIdentical(finals.get(0).params(), f.params(), "ranks agree");
            assertStateClose(reference, f.state(), 1e-5, ranks + " ranks, " + mode + " state");
        }
        org.junit.jupiter.api.Assertions.assertEquals(java.util.Set.of("trace"), reference.entries().get("attn.wq").buffers().keySet(),
                "the custom rule's own state is what is saved");
    }
}
