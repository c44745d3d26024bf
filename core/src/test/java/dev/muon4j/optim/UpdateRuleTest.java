package dev.muon4j.optim;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.VectorBackend;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Update rules as chains: a stage of the user's own slots into a rule and runs in place, with its
 * state saved and loaded by name; rules are chosen per parameter by name pattern; malformed chains
 * are refused with the reason.
 */
class UpdateRuleTest {
    static UpdateRule tracedSgd() {
        return new UpdateRule("traced_sgd", Route.ADAMW, List.of(new TraceStage(), new Transforms.DecoupledUpdate()));
    }

    @Test
    void aCustomStageRunsWhereThePatternSaysAndMatchesTheHandComputedUpdate() {
        Parameter a = Parameter.zeros("layers.0.norm", ParamRole.NORM, 3);
        Parameter b = Parameter.zeros("layers.1.norm", ParamRole.NORM, 3);
        Parameter head = Parameter.zeros("head", ParamRole.HEAD, 2, 3);
        try (Backend backend = new VectorBackend(1)) {
            HybridOptimizer opt = HybridOptimizer.builder(backend)
                    .adamw(AdamWConfig.builder().learningRate(0.1).weightDecay(0).build())
                    .rule("layers.*.norm", tracedSgd())
                    .build(List.of(a, b, head));
            float[][] grads = {{1, -2, 0.5f}, {2, 0, -1}};
            float[] w = new float[3];
            double[] t = new double[3];
            for (float[] g : grads) {
                System.arraycopy(g, 0, a.gradient(), 0, 3);
                System.arraycopy(g, 0, b.gradient(), 0, 3);
                head.gradient()[0] = 1;
                opt.step();
                for (int i = 0; i < 3; i++) {
                    double u = g[i] + t[i];
                    t[i] = 0.5 * t[i] + u;
                    w[i] -= (float) (0.1 * u);
                }
            }
            for (Parameter p : List.of(a, b)) {
                for (int i = 0; i < 3; i++) {
                    assertEquals(w[i], p.value()[i], 1e-6, p.name() + "[" + i + "]");
                }
            }
            OptimizerState state = opt.saveState();
            assertEquals(List.of("trace"), List.copyOf(state.entries().get("layers.0.norm").buffers().keySet()));
            assertEquals(List.of("exp_avg", "exp_avg_sq"), List.copyOf(state.entries().get("head").buffers().keySet()),
                    "the head does not match the pattern: AdamW");
            assertEquals((float) t[1], state.entries().get("layers.1.norm").buffers().get("trace")[1], 1e-6);

            // Loaded into a fresh optimizer, the next step is the same.
            HybridOptimizer again = HybridOptimizer.builder(backend)
                    .adamw(AdamWConfig.builder().learningRate(0.1).weightDecay(0).build())
                    .rule("layers.*.norm", tracedSgd())
                    .build(List.of(copy(a), copy(b), copy(head)));
            again.loadState(state);
            assertEquals(state.entries().keySet(), again.saveState().entries().keySet());
            float[] before = again.saveState().entries().get("layers.0.norm").buffers().get("trace");
            assertEquals(t[2], before[2], 1e-6);
        }
    }

    static Parameter copy(Parameter p) {
        Parameter c = Parameter.zeros(p.name(), p.role(), p.shape());
        System.arraycopy(p.value(), 0, c.value(), 0, p.size());
        return c;
    }

    @Test
    void malformedChainsAreRefusedWithTheReason() {
        IllegalArgumentException noEnd = assertThrows(IllegalArgumentException.class,
                () -> new UpdateRule("x", Route.ADAMW, List.of(new TraceStage())));
        assertTrue(noEnd.getMessage().contains("must end with the decoupled update"), noEnd.getMessage());
        UpdateTransform ns = new Transforms.Orthogonalize(NewtonSchulzConfig.defaults());
        IllegalArgumentException twoRuns = assertThrows(IllegalArgumentException.class,
                () -> new UpdateRule("x", Route.MUON, List.of(ns, new TraceStage(), ns, new Transforms.DecoupledUpdate())));
        assertTrue(twoRuns.getMessage().contains("two separate runs of matrix stages"), twoRuns.getMessage());
        Parameter m = Parameter.matrix("w", 4, 3);
        UpdateRule twice = new UpdateRule("x", Route.MUON, List.of(new TraceStage(), new TraceStage(), new Transforms.DecoupledUpdate()));
        IllegalArgumentException dup = assertThrows(IllegalArgumentException.class, () -> twice.check(m));
        assertTrue(dup.getMessage().contains("two stages keep a buffer named trace"), dup.getMessage());
        UpdateRule muon = UpdateRule.muon(MuonConfig.builder().build());
        IllegalArgumentException noMatrix = assertThrows(IllegalArgumentException.class,
                () -> muon.check(Parameter.zeros("norm", ParamRole.NORM, 3)));
        assertTrue(noMatrix.getMessage().contains("norm") && noMatrix.getMessage().contains("no matrix layout"), noMatrix.getMessage());
    }

    @Test
    void aRuleOfAnotherFamilyThanTheOverriddenRouteIsRefused() {
        Parameter w = Parameter.matrix("layers.0.w", 4, 3);
        try (Backend backend = new VectorBackend(1)) {
            HybridOptimizer.Builder b = HybridOptimizer.builder(backend).rule("layers.*", tracedSgd())
                    .override("layers.0.w", ParamOverride.none().withRoute(Route.MUON));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> b.build(List.of(w)));
            assertTrue(e.getMessage().contains("layers.0.w") && e.getMessage().contains("traced_sgd")
                    && e.getMessage().contains("MUON"), e.getMessage());
        }
    }

    @Test
    void aRuleByRoleSendsEveryParameterOfThatRoleUnlessAPatternNamesIt() {
        Parameter embed = Parameter.zeros("embed", ParamRole.EMBEDDING, 4, 3);
        Parameter norm0 = Parameter.zeros("layers.0.norm", ParamRole.NORM, 3);
        Parameter norm1 = Parameter.zeros("layers.1.norm", ParamRole.NORM, 3);
        Parameter w = Parameter.matrix("layers.0.w", 4, 3);
        try (Backend backend = new VectorBackend(1)) {
            UpdateRule adamw = UpdateRule.adamw(AdamWConfig.builder().build());
            UpdateRule cautious = UpdateRule.muon(MuonConfig.builder().build()).withWeightDecay(Transforms.WeightDecayMode.CAUTIOUS);
            List<HybridOptimizer.Assignment> a = HybridOptimizer.builder(backend)
                    .rule("layers.1.norm", adamw)
                    .rule(ParamRole.NORM, tracedSgd())
                    .rule(ParamRole.HIDDEN_MATRIX, cautious)
                    .assign(List.of(embed, norm0, norm1, w));
            assertEquals("adamw", a.get(0).rule().name(), "no rule for embeddings: the route's default");
            assertEquals("traced_sgd", a.get(1).rule().name(), "the role's rule");
            assertEquals("adamw", a.get(2).rule().name(), "a pattern wins over the role");
            assertEquals("muon+cautious_wd", a.get(3).rule().name());
            assertEquals(Route.MUON, a.get(3).route());
            // A role's rule of another family than an override's route is refused, naming both.
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> HybridOptimizer.builder(backend)
                    .rule(ParamRole.HIDDEN_MATRIX, cautious).override("layers.0.w", ParamOverride.none().withRoute(Route.ADAMW))
                    .assign(List.of(w)));
            assertTrue(e.getMessage().contains("layers.0.w") && e.getMessage().contains("muon+cautious_wd"), e.getMessage());
        }
    }
}
