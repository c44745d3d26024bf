package dev.muon4j.experiments;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.Backends;
import dev.muon4j.data.ByteTokenizer;
import dev.muon4j.data.Corpus;
import dev.muon4j.data.TokenDataset;
import dev.muon4j.nn.LlamaConfig;
import dev.muon4j.optim.MatrixLayout;
import dev.muon4j.optim.ParamRole;
import dev.muon4j.optim.Parameter;
import dev.muon4j.train.MuonVariant;
import dev.muon4j.train.OptimizerChoice;
import dev.muon4j.train.ScheduleKind;
import dev.muon4j.train.TrainConfig;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The measurements of {@link MatrixStatsObserver}: the update per unit learning rate recovered from
 * the weights before and after a step on a hand-made case, and on real runs the values the optimizers'
 * arithmetic fixes: AdamW's first update is sign(g), RMS 1; Muon's update has the RMS its scale gives
 * an orthogonal matrix, 0.2·σ with Moonlight's scale and σ/√fan-in with Keller Jordan's, σ the RMS of
 * Newton–Schulz's singular values (0.68 to 1.13 by design, DESIGN.md).
 */
class MatrixStatsObserverTest {
    static final int T = 16;
    static Backend backend;
    static TokenDataset data;

    @TempDir
    Path tmp;

    @BeforeAll
    static void open() {
        backend = Backends.openBundled(2);
        data = pangrams(T);
    }

    /** Two pangrams repeated, as byte tokens in windows of {@code context}: data for the tests' tiny runs. */
    static TokenDataset pangrams(int context) {
        return TokenDataset.of(Corpus.ofText("text", "Sphinx of black quartz, judge my vow. Pack my box with five dozen liquor jugs! "
                .repeat(40)), new ByteTokenizer(), 0.1, context);
    }

    @AfterAll
    static void close() {
        backend.close();
    }

    @Test
    void recoversTheUpdateFromTheWeightsBeforeAndAfter() {
        // W' = W·(1 − η·λ) − η·u with η 0.1, λ 0.5, u (0.3, −0.4): RMS(u) = √((0.09 + 0.16)/2).
        float[] before = {1f, 2f};
        double lr = 0.1;
        double decay = 0.5;
        float[] after = {(float) (1 * (1 - lr * decay) - lr * 0.3), (float) (2 * (1 - lr * decay) + lr * 0.4)};
        assertEquals(Math.sqrt(0.125), MatrixStatsObserver.updateRms(before, after, 2, lr, decay), 1e-6);
        assertTrue(Double.isNaN(MatrixStatsObserver.updateRms(before, after, 2, 0, decay)), "no rate, no update per unit rate");
        assertEquals(Math.sqrt(2.5), MatrixStatsObserver.rms(before, 2), 1e-12);
        assertEquals(0.0123457, MatrixStatsObserver.round(0.012345678));
        assertNull(MatrixStatsObserver.round(Double.NaN), "JSON holds no NaN");
    }

    /** The update RMS of every hidden matrix at the measured steps of one run: name → values; also the layouts. */
    private Map<String, double[]> run(String id, OptimizerChoice o, MuonVariant variant, Map<String, MatrixLayout> layouts)
            throws IOException {
        LlamaConfig model = new LlamaConfig(256, 32, 2, 2, 2, 96, T, false, 10000, 1e-5, 0.02);
        for (Parameter p : model.create().parameters()) {
            if (p.role() == ParamRole.HIDDEN_MATRIX) {
                layouts.put(p.name(), p.layout());
            }
        }
        TrainConfig c = new TrainConfig(o, 3e-3, 1e-2, 0.1, 0.9, 0.95, 0.95, ScheduleKind.COSINE, 2, 12, 0.1, 8, 1, 1.0, 1, 12, 2, 12, 1)
                .withMuon(variant, false, false);
        GridRun<String> r = new GridRun<>(id, id, model, c, new Measurements(4, true, false, false));
        GridRunner runner = new GridRunner(backend, t -> data, tmp, new PrintWriter(new StringWriter()), () -> false, false);
        runner.train(List.of(r));
        Map<String, double[]> all = GridRunner.load(tmp, List.of(r)).getFirst().perMatrix("update_rms");
        Map<String, double[]> hidden = new LinkedHashMap<>();
        for (String name : layouts.keySet()) {
            hidden.put(name, all.get(name));
        }
        return hidden;
    }

    @Test
    void adamwsFirstUpdateIsTheSignOfTheGradient() throws IOException {
        Map<String, double[]> rms = run("adamw", OptimizerChoice.ADAMW, MuonVariant.MOONLIGHT, new LinkedHashMap<>());
        assertEquals(14, rms.size(), "q, k, v, o, gate, up, down of 2 layers: " + rms.keySet());
        rms.forEach((name, v) -> {
            // Step 1: m̂ = g, v̂ = g², so u = g/(|g| + 1e-8): ±1 wherever |g| ≫ 1e-8, a little less where the gradient
            // is that small (the query and key projections' gradients at initialisation are).
            assertTrue(v[0] > 0.99 && v[0] <= 1 + 1e-5, name + " at step 1: " + v[0]);
            // Later the moments average several gradients and the RMS falls below 1.
            assertTrue(v[v.length - 1] < 1 && v[v.length - 1] > 0.05, name + " at the last step: " + v[v.length - 1]);
        });
    }

    @Test
    void muonsScalesGiveTheRmsOfAnOrthogonalUpdate() throws IOException {
        Map<String, MatrixLayout> layouts = new LinkedHashMap<>();
        Map<String, double[]> match = run("match", OptimizerChoice.MUON, MuonVariant.MOONLIGHT, layouts);
        Map<String, double[]> original = run("original", OptimizerChoice.MUON, MuonVariant.KELLER, layouts);
        for (String name : layouts.keySet()) {
            int fanIn = layouts.get(name).fanIn();
            for (int i = 0; i < match.get(name).length; i++) {
                double sigma = match.get(name)[i] / 0.2;
                assertTrue(sigma > 0.6 && sigma < 1.15, name + " measurement " + i + ": MATCH_RMS_ADAMW gives 0.2·σ, σ = " + sigma);
                double sigmaOriginal = original.get(name)[i] * Math.sqrt(fanIn);
                assertTrue(sigmaOriginal > 0.6 && sigmaOriginal < 1.15, name + " measurement " + i + ": ORIGINAL gives σ/√" + fanIn
                        + ", σ = " + sigmaOriginal);
            }
        }
    }
}
