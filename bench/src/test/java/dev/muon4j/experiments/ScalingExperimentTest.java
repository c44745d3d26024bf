package dev.muon4j.experiments;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.io.JsonCodec;
import dev.muon4j.nn.DeepSeekConfig;
import dev.muon4j.nn.LlamaConfig;
import dev.muon4j.nn.MoeConfig;
import dev.muon4j.train.OptimizerChoice;
import dev.muon4j.train.TrainConfig;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/**
 * The scaling experiments' grids: the dense grid exactly as its runs recorded it (a grid run directory is refused
 * when its settings changed), and the Mixture-of-Experts grid's models, budgets per active matrix parameter, router
 * settings and learning rates.
 */
class ScalingExperimentTest {
    @Test
    void theExperimentsAreListedByName() {
        assertEquals("scaling", Experiments.byName("scaling").name());
        assertEquals("scaling-moe", Experiments.byName("scaling-moe").name());
        assertTrue(Experiments.byName("scaling-moe").title().contains("Mixture of Experts (MoE)"));
    }

    /**
     * The SHA-256 of every default dense run's id and recorded settings ("id settings-json\n" in grid order), taken from
     * the grid before there were two families: a changed id, model or training setting would make GridRunner refuse the
     * run directories of a grid trained with the earlier code.
     */
    @Test
    void theDenseGridIsTheOneItsRunsRecorded() throws Exception {
        List<GridRun<ScalingExperiment.Point>> grid = new ScalingExperiment().grid(GridSize.DEFAULT);
        assertEquals(48, grid.size());
        MessageDigest sha = MessageDigest.getInstance("SHA-256");
        for (GridRun<ScalingExperiment.Point> r : grid) {
            sha.update((r.id() + " " + JsonCodec.write(JsonCodec.toObject(r.settings())) + "\n").getBytes(StandardCharsets.UTF_8));
        }
        assertEquals("372e350d8c85e8cbd385f1c225104cbb4fa43395532d46c7d30a8c43472698a8", HexFormat.of().formatHex(sha.digest()));
        // The same in words: docs/EXPERIMENTS.md's table of steps, and the trainer's default router bias rate recorded.
        Map<String, Long> steps = grid.stream().filter(r -> r.id().contains("-adamw-lr0.004"))
                .collect(Collectors.toMap(r -> r.id().substring(0, r.id().indexOf("-adamw")), r -> r.train().steps()));
        assertEquals(Map.of("l2w32-8n", 272L, "l2w32-32n", 1_088L, "l2w48-8n", 528L, "l2w48-32n", 2_112L, "l3w64-8n", 1_304L,
                "l3w64-32n", 5_216L, "l3w96-8n", 2_784L, "l3w96-32n", 11_136L), steps);
        for (GridRun<ScalingExperiment.Point> r : grid) {
            assertInstanceOf(LlamaConfig.class, r.model(), r.id());
            assertEquals(TrainConfig.DEFAULT_ROUTER_BIAS_RATE, r.train().routerBiasRate(), r.id());
        }
    }

    @Test
    void theMoeGridCountsItsBudgetsInActiveMatrixParameters() {
        List<GridRun<ScalingExperiment.Point>> grid = new ScalingExperiment(ScalingExperiment.Family.MOE).grid(GridSize.DEFAULT);
        assertEquals(48, grid.size(), "4 sizes × 2 budgets × 2 optimizers × 3 learning rates");
        Set<String> ids = new HashSet<>();
        Map<Integer, ScalingExperiment.Size> dense = new ScalingExperiment().grid(GridSize.DEFAULT).stream()
                .map(r -> r.point().size()).distinct().collect(Collectors.toMap(s -> s.model().trunk().width(), s -> s));
        for (GridRun<ScalingExperiment.Point> r : grid) {
            assertTrue(ids.add(r.id()), r.id());
            assertTrue(r.id().startsWith("m"), "MoE ids differ from the dense grid's: " + r.id());
            DeepSeekConfig m = assertInstanceOf(DeepSeekConfig.class, r.model(), r.id());
            assertNull(m.mla(), "grouped-query attention");
            MoeConfig e = m.moe();
            assertEquals(List.of(8, 2, 2, 1), List.of(e.experts(), e.activeExperts(), e.sharedExperts(), e.firstDenseLayers()), r.id());
            assertEquals(m.trunk().mlpWidth(), 4 * e.expertWidth(), "2 active + 2 shared experts make the dense width: " + r.id());
            assertEquals(2.446, e.routedScale());
            assertEquals(0.01, r.train().routerBiasRate(), r.id());
            assertEquals(64, m.contextLength());
            assertEquals(16, r.train().batchSize());
            // The budget is tokens per active matrix parameter, which leave out the 6 idle routed experts of each MoE layer.
            long n = TrainingFlops.matmulParameters(m);
            long idle = (long) m.expertLayers() * 6 * 3 * e.expertWidth() * m.trunk().width();
            assertEquals(m.hiddenMatrixParameterCount() - idle + 256L * m.trunk().width(), n);
            double k = r.point().tokensPerParameter();
            assertTrue(k == 8 || k == 32, r.id());
            assertEquals(Math.round(k * n / 1024), r.train().steps(), r.id());
            // The sweep's centres are the dense grid's at the same width where it has one.
            ScalingExperiment.Size same = dense.get(m.trunk().width());
            if (same != null) {
                assertEquals(same.adamwRate(), r.point().size().adamwRate(), r.id());
                assertEquals(same.muonRate(), r.point().size().muonRate(), r.id());
            }
            if (r.point().optimizer() == OptimizerChoice.MUON) {
                assertEquals(4 * r.point().learningRate(), r.train().muonLearningRate(), 1e-12, r.id());
            }
        }
    }

    /** A record of {@code run} ended with {@code loss} (NaN: diverged), as GridRunner.load gives it. */
    private static RunRecord<ScalingExperiment.Point> ended(GridRun<ScalingExperiment.Point> run, double loss) {
        boolean diverged = Double.isNaN(loss);
        RunResult r = new RunResult(RunResult.FORMAT, run.id(), diverged ? RunResult.DIVERGED : RunResult.FINISHED, diverged ? "NaN loss" : null,
                Map.of(), 10, 1000, diverged ? null : loss, 1, 1, "2026-11-28T00:00:00Z", "test", "test");
        return new RunRecord<>(run, Path.of("runs", run.id()), r, List.of(), List.of());
    }

    /**
     * The sweep goes on past the end where its best rate lies, halving or doubling (2 significant digits), one rate at
     * a time, at most {@code SWEEP_EXTENSIONS} beyond each end; a best rate inside the sweep, a diverged run at the
     * highest rate and a sweep that has gone as far as it may add nothing.
     */
    @Test
    void sweepsGoOnPastTheEdgeWhereTheirBestRateLies() {
        ScalingExperiment e = new ScalingExperiment(ScalingExperiment.Family.MOE);
        List<GridRun<ScalingExperiment.Point>> grid = e.grid(GridSize.DEFAULT);
        // m2w80 at 32·N with AdamW: 0.002, 0.004, 0.008; with Muon: 0.00063, 0.0013, 0.0025.
        List<GridRun<ScalingExperiment.Point>> adamw = grid.stream().filter(r -> r.id().startsWith("m2w80-32n-adamw")).toList();
        List<GridRun<ScalingExperiment.Point>> muon = grid.stream().filter(r -> r.id().startsWith("m2w80-32n-muon")).toList();
        assertEquals(List.of("m2w80-32n-adamw-lr0.002", "m2w80-32n-adamw-lr0.004", "m2w80-32n-adamw-lr0.008"),
                adamw.stream().map(GridRun::id).toList());
        // AdamW best at its lowest rate, Muon best inside: one run, AdamW at half the lowest.
        List<RunRecord<ScalingExperiment.Point>> done = new java.util.ArrayList<>(List.of(
                ended(adamw.get(0), 1.70), ended(adamw.get(1), 1.72), ended(adamw.get(2), 1.75),
                ended(muon.get(0), 1.63), ended(muon.get(1), 1.62), ended(muon.get(2), 1.64)));
        List<GridRun<ScalingExperiment.Point>> more = e.extend(GridSize.DEFAULT, done);
        assertEquals(List.of("m2w80-32n-adamw-lr0.001"), more.stream().map(GridRun::id).toList());
        GridRun<ScalingExperiment.Point> lower = more.getFirst();
        assertEquals(0.001, lower.point().learningRate());
        assertEquals(adamw.get(0).train().steps(), lower.train().steps(), "the same budget");
        assertEquals(0.001, lower.train().learningRate());
        assertEquals(0.004, lower.train().muonLearningRate());
        assertEquals(adamw.get(0).model(), lower.model());
        assertEquals(adamw.get(0).train().warmupSteps(), lower.train().warmupSteps());
        // Still best at the new lowest: once more, to 0.0005; then the sweep has gone 2 rates below and stops.
        done.add(ended(lower, 1.69));
        more = e.extend(GridSize.DEFAULT, done);
        assertEquals(List.of("m2w80-32n-adamw-lr0.0005"), more.stream().map(GridRun::id).toList());
        done.add(ended(more.getFirst(), 1.68));
        assertEquals(List.of(), e.extend(GridSize.DEFAULT, done), "at most " + ScalingExperiment.SWEEP_EXTENSIONS + " beyond an end");
        // Muon best at its highest rate: twice it, 0.005.
        done.set(3, ended(muon.get(0), 1.71));
        done.set(4, ended(muon.get(1), 1.70));
        assertEquals(List.of("m2w80-32n-muon-lr0.005"), e.extend(GridSize.DEFAULT, done).stream().map(GridRun::id).toList());
        // Still best at each new highest: 0.01 next, then the sweep has gone 2 rates above and stops.
        List<RunRecord<ScalingExperiment.Point>> up = new java.util.ArrayList<>(done);
        up.add(ended(e.extend(GridSize.DEFAULT, up).getFirst(), 1.60));
        List<GridRun<ScalingExperiment.Point>> next = e.extend(GridSize.DEFAULT, up);
        assertEquals(List.of("m2w80-32n-muon-lr0.01"), next.stream().map(GridRun::id).toList());
        up.add(ended(next.getFirst(), 1.59));
        assertEquals(List.of(), e.extend(GridSize.DEFAULT, up), "at most " + ScalingExperiment.SWEEP_EXTENSIONS + " above");
        // ... and a run at a higher rate that diverged bounds the sweep and is never its best.
        done.add(ended(e.extend(GridSize.DEFAULT, done).getFirst(), Double.NaN));
        assertEquals(List.of(), e.extend(GridSize.DEFAULT, done));
        // A rate that does not halve to 2 digits: Muon's lowest 0.00063 goes to 0.00032 (its id says so).
        List<RunRecord<ScalingExperiment.Point>> low = new java.util.ArrayList<>(List.of(
                ended(muon.get(0), 1.60), ended(muon.get(1), 1.62), ended(muon.get(2), 1.64)));
        assertEquals(List.of("m2w80-32n-muon-lr0.00032"), e.extend(GridSize.DEFAULT, low).stream().map(GridRun::id).toList());
    }

    @Test
    void theQuickMoeGridIsSmall() {
        List<GridRun<ScalingExperiment.Point>> grid = new ScalingExperiment(ScalingExperiment.Family.MOE).grid(GridSize.QUICK);
        assertEquals(48, grid.size());
        long tokens = grid.stream().mapToLong(r -> r.train().steps() * r.train().batchSize() * r.model().contextLength()).sum();
        // 328,320 tokens, which the command line trained in 15 s with validation (2 shared cores): far within 2 minutes.
        assertTrue(tokens < 500_000, "the quick grid trains " + tokens + " tokens");
        assertTrue(grid.stream().allMatch(r -> r.model() instanceof DeepSeekConfig));
    }
}
