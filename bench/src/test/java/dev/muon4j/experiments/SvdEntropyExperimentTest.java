package dev.muon4j.experiments;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.Backends;
import dev.muon4j.data.TokenDataset;
import dev.muon4j.nn.DeepSeekConfig;
import dev.muon4j.optim.MatrixLayout;
import dev.muon4j.optim.Parameter;
import dev.muon4j.train.OptimizerChoice;
import dev.muon4j.train.TrainedModel;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The svd-entropy experiment: matrices fall into the groups the report names; the grid trains each model with
 * both optimizers on otherwise equal settings; the entropies a run records are those of its weights, checked
 * against singular values computed here by one-sided Jacobi in float64; and a run cut off and resumed records
 * the same entropies at the same steps as one trained without a cut.
 */
class SvdEntropyExperimentTest {
    static Backend backend;
    static TokenDataset data;

    @TempDir
    Path tmp;

    @BeforeAll
    static void open() {
        backend = Backends.openBundled(2);
        data = MatrixStatsObserverTest.pangrams(16);
    }

    @AfterAll
    static void close() {
        backend.close();
    }

    @Test
    void matricesFallIntoTheirGroups() {
        Map<String, String> expected = Map.ofEntries(
                Map.entry("model.layers.0.self_attn.q_proj.weight", "q"),
                Map.entry("model.layers.3.self_attn.k_proj.weight", "k"),
                Map.entry("model.layers.3.self_attn.v_proj.weight", "v"),
                Map.entry("model.layers.1.self_attn.kv_a_proj_with_mqa.weight", "kv_a"),
                Map.entry("model.layers.1.self_attn.kv_b_proj.weight", "kv_b"),
                Map.entry("model.layers.12.self_attn.o_proj.weight", "o"),
                Map.entry("model.layers.0.mlp.gate_proj.weight", "gate"),
                Map.entry("model.layers.0.mlp.up_proj.weight", "up"),
                Map.entry("model.layers.0.mlp.down_proj.weight", "down"),
                Map.entry("model.layers.1.mlp.gate.weight", "router"),
                Map.entry("model.layers.1.mlp.experts.down_proj.weight", "experts"),
                Map.entry("model.layers.1.mlp.shared_experts.up_proj.weight", "shared experts"),
                Map.entry("lm_head.weight", "lm_head"));
        expected.forEach((name, group) -> assertEquals(group, SvdEntropyExperiment.group(name), name));

        List<SvdEntropyExperiment.GroupInfo> groups = SvdEntropyExperiment.groups(
                SvdEntropyExperiment.model(SvdEntropyExperiment.Family.MOE, GridSize.DEFAULT));
        assertEquals(List.of("q", "kv_a", "kv_b", "o", "gate", "up", "down", "router", "experts", "shared experts"),
                groups.stream().map(SvdEntropyExperiment.GroupInfo::name).toList());
        SvdEntropyExperiment.GroupInfo experts = groups.get(8);
        // 3 MoE layers × 3 stacks × 16 experts, each its own matrix.
        assertEquals(144, experts.matrices());
        assertEquals("144 matrices, 128×192 and 192×128", experts.describe());
        assertEquals("3 matrices, 16×192", groups.get(7).describe());
    }

    @Test
    void eachModelIsTrainedByBothOptimizersOnOtherwiseEqualSettings() {
        SvdEntropyExperiment e = new SvdEntropyExperiment();
        for (GridSize size : GridSize.values()) {
            List<GridRun<SvdEntropyExperiment.Arm>> grid = e.grid(size);
            assertEquals(List.of("dense-adamw", "dense-muon", "moe-adamw", "moe-muon"), grid.stream().map(GridRun::id).toList());
            for (int i = 0; i < 4; i += 2) {
                GridRun<SvdEntropyExperiment.Arm> adamw = grid.get(i);
                GridRun<SvdEntropyExperiment.Arm> muon = grid.get(i + 1);
                assertEquals(adamw.model(), muon.model());
                assertEquals(OptimizerChoice.ADAMW, adamw.train().optimizer());
                assertEquals(adamw.train().withOptimizer(OptimizerChoice.MUON), muon.train(), "only the optimizer differs");
                assertTrue(adamw.measurements().svdEntropy());
            }
            assertEquals(((DeepSeekConfig) grid.get(2).model()).trunk(), grid.get(0).model(), "the dense model is the MoE model's trunk");
        }
        GridRun<SvdEntropyExperiment.Arm> run = e.grid(GridSize.DEFAULT).getFirst();
        // 3,000 steps of 16 × 128 tokens, the compare settings.
        assertEquals(3_000, run.train().steps());
        assertEquals(16 * 128, run.train().sequencesPerStep() * run.model().contextLength());
        assertEquals(0.01, run.train().routerBiasRate());
        assertEquals(1.2e-2, run.train().muonLearningRate(), 1e-15);
    }

    /** The quick grid's MoE Muon run trained into {@code out}; stopped on request after {@code stopAfter} polls (0: never). */
    private static RunRecord<SvdEntropyExperiment.Arm> trainMoeMuon(Path out, int stopAfter) throws IOException {
        GridRun<SvdEntropyExperiment.Arm> run = new SvdEntropyExperiment().grid(GridSize.QUICK).get(3);
        AtomicInteger polls = new AtomicInteger();
        GridRunner runner = new GridRunner(backend, t -> data, out, new PrintWriter(new StringWriter()),
                () -> stopAfter > 0 && polls.incrementAndGet() > stopAfter, false);
        GridRunner.Summary s = runner.train(List.of(run));
        if (stopAfter > 0) {
            assertTrue(s.stopped(), "the run was cut off");
            return null;
        }
        return GridRunner.load(out, List.of(run)).getFirst();
    }

    @Test
    void recordedEntropiesAreThoseOfTheWeightsAndSurviveAResume() throws IOException {
        RunRecord<SvdEntropyExperiment.Arm> whole = trainMoeMuon(tmp.resolve("whole"), 0);
        trainMoeMuon(tmp.resolve("cut"), 18);
        RunRecord<SvdEntropyExperiment.Arm> resumed = trainMoeMuon(tmp.resolve("cut"), 0);
        double[] steps = {1, 5, 10, 15, 20, 25, 30, 35, 40};
        assertArrayEquals(steps, whole.stepsOf("svd_entropy"));
        assertArrayEquals(steps, resumed.stepsOf("svd_entropy"), "the measurements before the cut are kept, none twice");
        List<Map<String, Object>> a = whole.stepsWith("svd_entropy");
        List<Map<String, Object>> b = resumed.stepsWith("svd_entropy");
        for (int i = 0; i < steps.length; i++) {
            assertEquals(a.get(i).get("svd_entropy"), b.get(i).get("svd_entropy"), "step " + steps[i]);
        }
        assertNotEquals(a.getFirst().get("svd_entropy"), a.getLast().get("svd_entropy"), "the entropies move with training");

        // The last measurement is of the final weights: recompute every matrix's entropy from them in float64.
        SvdEntropyExperiment.Entropies recorded = SvdEntropyExperiment.Entropies.of(whole);
        Map<String, Double> last = recorded.values().getLast();
        TrainedModel trained = TrainedModel.load(whole.dir(), w -> { });
        int checked = 0;
        for (Parameter p : trained.model().parameters()) {
            MatrixLayout m = p.layout();
            if (m == null) {
                continue;
            }
            for (int e = 0; e < m.count(); e++) {
                String name = m.count() == 1 ? p.name() : p.name() + "[" + e + "]";
                double reference = entropy(jacobiSingularValues(p.value(), e * m.fanOut() * m.fanIn(), m.fanOut(), m.fanIn()));
                // Recorded to 6 significant digits from float32 singular values.
                assertEquals(reference, last.get(name), 2e-5, name);
                checked++;
            }
        }
        assertEquals(27, checked, "8 attention, 3 dense, 1 router, 3 shared and 12 expert matrices");
        assertEquals(27, last.size());
    }

    /** H = −Σ pᵢ ln pᵢ / ln n with pᵢ = σᵢ²/Σσⱼ², written out again here. */
    static double entropy(double[] sigma) {
        double total = 0;
        for (double s : sigma) {
            total += s * s;
        }
        double h = 0;
        for (double s : sigma) {
            double p = s * s / total;
            h -= p > 0 ? p * Math.log(p) : 0;
        }
        return h / Math.log(sigma.length);
    }

    /** The min(rows, cols) singular values of a row-major float matrix by one-sided Jacobi rotations in float64. */
    static double[] jacobiSingularValues(float[] w, int offset, int rows, int cols) {
        boolean tall = rows >= cols;
        int m = tall ? rows : cols;
        int n = tall ? cols : rows;
        double[][] a = new double[n][m];  // a[column][row] of the tall orientation
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < cols; j++) {
                double v = w[offset + i * cols + j];
                if (tall) {
                    a[j][i] = v;
                } else {
                    a[i][j] = v;
                }
            }
        }
        for (int sweep = 0; sweep < 100; sweep++) {
            boolean rotated = false;
            for (int p = 0; p < n - 1; p++) {
                for (int q = p + 1; q < n; q++) {
                    double alpha = 0;
                    double beta = 0;
                    double gamma = 0;
                    for (int r = 0; r < m; r++) {
                        alpha += a[p][r] * a[p][r];
                        beta += a[q][r] * a[q][r];
                        gamma += a[p][r] * a[q][r];
                    }
                    if (Math.abs(gamma) <= 1e-15 * Math.sqrt(alpha * beta)) {
                        continue;
                    }
                    rotated = true;
                    double zeta = (beta - alpha) / (2 * gamma);
                    double t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
                    double c = 1 / Math.sqrt(1 + t * t);
                    double s = c * t;
                    for (int r = 0; r < m; r++) {
                        double ap = a[p][r];
                        double aq = a[q][r];
                        a[p][r] = c * ap - s * aq;
                        a[q][r] = s * ap + c * aq;
                    }
                }
            }
            if (!rotated) {
                break;
            }
        }
        double[] sigma = new double[n];
        for (int j = 0; j < n; j++) {
            double sum = 0;
            for (double v : a[j]) {
                sum += v * v;
            }
            sigma[j] = Math.sqrt(sum);
        }
        return sigma;
    }
}
