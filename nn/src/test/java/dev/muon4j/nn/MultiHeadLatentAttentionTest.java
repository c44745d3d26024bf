package dev.muon4j.nn;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.autograd.Graph;
import dev.muon4j.autograd.Ops;
import dev.muon4j.autograd.Rope;
import dev.muon4j.autograd.Tensor;
import dev.muon4j.backend.Backend;
import dev.muon4j.backend.VectorBackend;
import dev.muon4j.optim.ParamRole;
import dev.muon4j.optim.Parameter;
import dev.muon4j.optim.QkClip;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@link MultiHeadLatentAttention} against a naive float64 reference written here, token by token and
 * head by head as Hugging Face's {@code DeepseekV3Attention} reads (latent projections, RMSNorm of the
 * latents, per-head content and rotary parts, one rotary key for all heads, the scale 1/√(Dn + Dr)),
 * with and without a query rank; its max logits against the same reference; the gradient of the whole
 * layer with respect to its input and every parameter against central differences; Kimi K2's QK-clip
 * for MLA; the parameter names and shapes of Hugging Face; bad settings; a DeepSeek model with MLA.
 *
 * <p>Shapes: C = 12, H = 3, R_q = 8 (or none), R_kv = 6, Dn = 4, Dr = 4, Dv = 5, B = 2, T = 6.
 *
 * <p>Bound of the forward: float32 sums of at most 15 products per projection, a float32 rotary table
 * and softmax against float64; relative ~1e-6 of the output's scale. {@value #TOLERANCE} leaves room,
 * while a missing latent norm, a rotary key per head, a scale of 1/√Dn or a value sliced from the
 * wrong columns are off by 10⁻²–1. Finite differences: as {@code GradientCheckTest} (step
 * 10⁻²·max(1, |w|), float32 forward, loss summed in double, bound {@value #FD_TOLERANCE} on the
 * relative L2 error of each input's gradient).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class MultiHeadLatentAttentionTest {
    static final double TOLERANCE = 2e-5;
    static final double FD_TOLERANCE = 2e-3;
    static final double STEP = 1e-2;
    static final int WIDTH = 12;
    static final int HEADS = 3;
    static final int BATCH = 2;
    static final int TIME = 6;
    static final double THETA = 10000;

    private Backend backend;

    @BeforeAll
    void open() {
        backend = new VectorBackend(1);
    }

    @AfterAll
    void close() {
        backend.close();
    }

    static MlaConfig config(int queryRank) {
        return new MlaConfig(queryRank, 6, 4, 4, 5);
    }

    /** An attention with N(0, 0.4²) weights (q and k projections × qkScale) and norm gains in [0.5, 1.5]. */
    static MultiHeadLatentAttention attention(MlaConfig c, long seed, double qkScale) {
        MultiHeadLatentAttention a = new MultiHeadLatentAttention("self_attn.", WIDTH, HEADS, c, new Rope(c.ropeHeadDim(), 8, THETA));
        Random r = new Random(seed);
        for (Parameter p : a.parameters()) {
            float[] v = p.value();
            boolean qk = !p.name().endsWith("o_proj.weight");
            for (int i = 0; i < v.length; i++) {
                v[i] = p.role() == ParamRole.NORM ? (float) (0.5 + r.nextDouble())
                        : (float) (r.nextGaussian() * 0.4 * (qk ? qkScale : 1));
            }
        }
        return a;
    }

    static float[] input(long seed) {
        Random r = new Random(seed);
        float[] x = new float[BATCH * TIME * WIDTH];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) r.nextGaussian();
        }
        return x;
    }

    static Parameter named(MultiHeadLatentAttention a, String suffix) {
        return a.parameters().stream().filter(p -> p.name().endsWith(suffix)).findFirst().orElse(null);
    }

    // ---- the float64 reference -----------------------------------------------------------------

    /** y = W·x for W (rows, cols) row-major, in double. */
    static double[] matVec(float[] w, int rows, int cols, double[] x) {
        double[] y = new double[rows];
        for (int i = 0; i < rows; i++) {
            double s = 0;
            for (int j = 0; j < cols; j++) {
                s += (double) w[i * cols + j] * x[j];
            }
            y[i] = s;
        }
        return y;
    }

    static double[] rmsNorm(double[] x, float[] gain, double eps) {
        double ms = 0;
        for (double v : x) {
            ms += v * v;
        }
        double inv = 1 / Math.sqrt(ms / x.length + eps);
        double[] y = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            y[i] = x[i] * inv * gain[i];
        }
        return y;
    }

    /** Rotate-half RoPE of one rotary part at position t: pairs (i, i + D/2) by t·θ^(−2i/D). */
    static double[] rope(double[] x, int t) {
        int d = x.length;
        int half = d / 2;
        double[] y = new double[d];
        for (int i = 0; i < half; i++) {
            double angle = t * Math.pow(THETA, -2.0 * i / d);
            double c = Math.cos(angle);
            double s = Math.sin(angle);
            y[i] = x[i] * c - x[i + half] * s;
            y[i + half] = x[i + half] * c + x[i] * s;
        }
        return y;
    }

    /** The layer's output (B·T·C) and, into {@code maxLogits} (length H), each head's largest logit. */
    static double[] reference(MultiHeadLatentAttention a, float[] x, double[] maxLogits) {
        MlaConfig c = a.config();
        int dn = c.nopeHeadDim();
        int dr = c.ropeHeadDim();
        int dv = c.valueHeadDim();
        int dq = dn + dr;
        int n = BATCH * TIME;
        double[][] query = new double[n][];   // per row: H·(Dn+Dr), rotary parts rotated
        double[][] key = new double[n][];     // per row: H·(Dn+Dr)
        double[][] value = new double[n][];   // per row: H·Dv
        for (int row = 0; row < n; row++) {
            int t = row % TIME;
            double[] xr = new double[WIDTH];
            for (int j = 0; j < WIDTH; j++) {
                xr[j] = x[row * WIDTH + j];
            }
            double[] q;
            if (c.hasQueryRank()) {
                double[] qa = rmsNorm(matVec(named(a, "q_a_proj.weight").value(), c.queryRank(), WIDTH, xr),
                        named(a, "q_a_layernorm.weight").value(), 1e-6);
                q = matVec(named(a, "q_b_proj.weight").value(), HEADS * dq, c.queryRank(), qa);
            } else {
                q = matVec(named(a, "q_proj.weight").value(), HEADS * dq, WIDTH, xr);
            }
            double[] kva = matVec(named(a, "kv_a_proj_with_mqa.weight").value(), c.kvRank() + dr, WIDTH, xr);
            double[] latent = rmsNorm(Arrays.copyOfRange(kva, 0, c.kvRank()), named(a, "kv_a_layernorm.weight").value(), 1e-6);
            double[] kRot = rope(Arrays.copyOfRange(kva, c.kvRank(), c.kvRank() + dr), t);
            double[] kv = matVec(named(a, "kv_b_proj.weight").value(), HEADS * (dn + dv), c.kvRank(), latent);
            query[row] = new double[HEADS * dq];
            key[row] = new double[HEADS * dq];
            value[row] = new double[HEADS * dv];
            for (int h = 0; h < HEADS; h++) {
                System.arraycopy(q, h * dq, query[row], h * dq, dn);
                System.arraycopy(rope(Arrays.copyOfRange(q, h * dq + dn, h * dq + dq), t), 0, query[row], h * dq + dn, dr);
                System.arraycopy(kv, h * (dn + dv), key[row], h * dq, dn);
                System.arraycopy(kRot, 0, key[row], h * dq + dn, dr);
                System.arraycopy(kv, h * (dn + dv) + dn, value[row], h * dv, dv);
            }
        }
        Arrays.fill(maxLogits, Double.NEGATIVE_INFINITY);
        double[] y = new double[n * WIDTH];
        float[] wo = named(a, "o_proj.weight").value();
        for (int b = 0; b < BATCH; b++) {
            for (int i = 0; i < TIME; i++) {
                int row = b * TIME + i;
                double[] o = new double[HEADS * dv];
                for (int h = 0; h < HEADS; h++) {
                    double[] s = new double[i + 1];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j <= i; j++) {
                        double dot = 0;
                        for (int e = 0; e < dq; e++) {
                            dot += query[row][h * dq + e] * key[b * TIME + j][h * dq + e];
                        }
                        s[j] = dot / Math.sqrt(dq);
                        max = Math.max(max, s[j]);
                    }
                    maxLogits[h] = Math.max(maxLogits[h], max);
                    double sum = 0;
                    for (int j = 0; j <= i; j++) {
                        s[j] = Math.exp(s[j] - max);
                        sum += s[j];
                    }
                    for (int j = 0; j <= i; j++) {
                        for (int e = 0; e < dv; e++) {
                            o[h * dv + e] += s[j] / sum * value[b * TIME + j][h * dv + e];
                        }
                    }
                }
                double[] out = matVec(wo, WIDTH, HEADS * dv, o);
                System.arraycopy(out, 0, y, row * WIDTH, WIDTH);
            }
        }
        return y;
    }

    /** The float32 forward's output; the attention's max logits are reset first. */
    float[] forward(MultiHeadLatentAttention a, float[] x) {
        a.resetMaxLogits();
        try (Graph g = new Graph(backend)) {
            g.setRecording(false);
            Tensor y = a.forward(g, g.constant(x, BATCH * TIME, WIDTH), BATCH, TIME);
            assertArrayEquals(new int[] {BATCH * TIME, WIDTH}, y.shape());
            return Arrays.copyOf(y.data(), y.size());
        }
    }

    @ParameterizedTest(name = "query rank {0}")
    @ValueSource(ints = {0, 8})
    void forwardAndMaxLogitsMatchTheFloat64Reference(int queryRank) {
        MultiHeadLatentAttention a = attention(config(queryRank), 11 + queryRank, 1.5);
        float[] x = input(5);
        float[] got = forward(a, x);
        float[] gotMax = a.maxLogits();
        double[] wantMax = new double[HEADS];
        double[] want = reference(a, x, wantMax);
        double scale = 0;
        for (double v : want) {
            scale = Math.max(scale, Math.abs(v));
        }
        double worst = 0;
        for (int i = 0; i < want.length; i++) {
            worst = Math.max(worst, Math.abs(want[i] - got[i]) / scale);
        }
        double worstLogit = 0;
        for (int h = 0; h < HEADS; h++) {
            worstLogit = Math.max(worstLogit, Math.abs(wantMax[h] - gotMax[h]) / Math.max(1, Math.abs(wantMax[h])));
        }
        System.out.printf("MLA query rank %d: output max err %.2e of max |y| %.3f; max logits %s, rel err %.2e%n", queryRank, worst, scale,
                Arrays.toString(gotMax), worstLogit);
        assertTrue(scale > 0.1, "the output should not be trivially small: " + scale);
        assertTrue(worst <= TOLERANCE, "output off the float64 reference by " + worst + " of its scale");
        assertTrue(worstLogit <= TOLERANCE, "max logits " + Arrays.toString(gotMax) + ", float64 " + Arrays.toString(wantMax));
    }

    /** L = Σ y ⊙ r in double over the float32 forward. */
    double projected(MultiHeadLatentAttention a, float[] x, float[] r) {
        float[] y = forward(a, x);
        double s = 0;
        for (int i = 0; i < y.length; i++) {
            s += (double) y[i] * r[i];
        }
        return s;
    }

    @ParameterizedTest(name = "query rank {0}")
    @ValueSource(ints = {0, 8})
    void gradientsOfTheWholeLayerMatchCentralDifferences(int queryRank) {
        MultiHeadLatentAttention a = attention(config(queryRank), 21 + queryRank, 1);
        float[] x = input(6);
        Random rnd = new Random(7);
        float[] r = new float[BATCH * TIME * WIDTH];
        for (int i = 0; i < r.length; i++) {
            r[i] = (float) ((0.5 + rnd.nextDouble()) * (rnd.nextBoolean() ? 1 : -1));
        }
        for (Parameter p : a.parameters()) {
            Arrays.fill(p.gradient(), 0f);
        }
        float[] dx;
        try (Graph g = new Graph(backend)) {
            Tensor xt = g.variable(x, BATCH * TIME, WIDTH);
            Tensor y = a.forward(g, xt, BATCH, TIME);
            g.backward(Ops.linear(g, Ops.reshape(g, y, 1, y.size()), g.constant(r, 1, y.size())));
            dx = xt.grad().clone();
        }
        Map<String, float[]> values = new LinkedHashMap<>();
        Map<String, float[]> grads = new LinkedHashMap<>();
        values.put("x", x);
        grads.put("x", dx);
        for (Parameter p : a.parameters()) {
            values.put(p.name(), p.value());
            grads.put(p.name(), p.gradient().clone());
        }
        for (String name : values.keySet()) {
            float[] v = values.get(name);
            float[] an = grads.get(name);
            double diff = 0;
            double norm = 0;
            for (int i = 0; i < v.length; i++) {
                float old = v[i];
                double h = STEP * Math.max(1, Math.abs(old));
                float plus = (float) (old + h);
                float minus = (float) (old - h);
                v[i] = plus;
                double lp = projected(a, x, r);
                v[i] = minus;
                double lm = projected(a, x, r);
                v[i] = old;
                double fd = (lp - lm) / ((double) plus - minus);
                diff += (fd - an[i]) * (fd - an[i]);
                norm += (double) an[i] * an[i];
            }
            double rel = Math.sqrt(diff / norm);
            System.out.printf("gradcheck MLA (query rank %d) d/d%-35s %4d coords  rel err %.2e  |g| %.2e%n", queryRank, name, v.length, rel,
                    Math.sqrt(norm));
            assertTrue(norm > 0, name + ": zero gradient");
            assertTrue(rel <= FD_TOLERANCE, "MLA d/d" + name + ": relative error " + rel);
        }
    }

    /**
     * Logits of several units; τ halfway between the smallest and largest head's maximum. After the clip
     * the clipped heads' rows are scaled as the K2 report says (content query and key × √γ, rotary query
     * × γ, value rows and the shared rotary key not at all), the same input's largest logit of each
     * clipped head lands on τ, and the other heads keep their weights and their largest logits bit for bit.
     */
    @ParameterizedTest(name = "query rank {0}")
    @ValueSource(ints = {0, 8})
    void qkClipBringsTheHeadsAboveTauDownToTau(int queryRank) {
        MlaConfig c = config(queryRank);
        MultiHeadLatentAttention a = attention(c, 31 + queryRank, 2.5);
        float[] x = input(8);
        forward(a, x);
        float[] before = a.maxLogits();
        double lowest = Double.POSITIVE_INFINITY;
        double highest = Double.NEGATIVE_INFINITY;
        for (float v : before) {
            lowest = Math.min(lowest, v);
            highest = Math.max(highest, v);
        }
        double tau = (lowest + highest) / 2;
        assertTrue(tau > 0 && highest > lowest, "max logits " + Arrays.toString(before));
        Map<String, float[]> old = new HashMap<>();
        for (Parameter p : a.parameters()) {
            old.put(p.name(), p.value().clone());
        }
        double[] s = new double[HEADS + 2];
        s[0] = 1e9; // entries outside [offset, offset + H) are not read
        for (int h = 0; h < HEADS; h++) {
            s[1 + h] = before[h];
        }
        s[HEADS + 1] = 1e9;
        int scaled = a.qkClip(tau, s, 1);

        int dn = c.nopeHeadDim();
        int dr = c.ropeHeadDim();
        int dv = c.valueHeadDim();
        Parameter q = named(a, queryRank > 0 ? "q_b_proj.weight" : "q_proj.weight");
        Parameter kvB = named(a, "kv_b_proj.weight");
        int qCols = q.shape()[1];
        int kvCols = kvB.shape()[1];
        int expected = 0;
        for (int h = 0; h < HEADS; h++) {
            boolean clipped = before[h] > tau;
            expected += clipped ? 1 : 0;
            double gamma = clipped ? tau / before[h] : 1;
            for (int row = 0; row < dn + dr; row++) {
                double factor = !clipped ? 1 : row < dn ? Math.sqrt(gamma) : gamma;
                for (int j = 0; j < qCols; j++) {
                    int i = (h * (dn + dr) + row) * qCols + j;
                    float want = clipped ? (float) (old.get(q.name())[i] * factor) : old.get(q.name())[i];
                    assertEquals(want, q.value()[i], 0, "head " + h + " query row " + row);
                }
            }
            for (int row = 0; row < dn + dv; row++) {
                double factor = clipped && row < dn ? Math.sqrt(gamma) : 1;
                for (int j = 0; j < kvCols; j++) {
                    int i = (h * (dn + dv) + row) * kvCols + j;
                    float want = factor != 1 ? (float) (old.get(kvB.name())[i] * factor) : old.get(kvB.name())[i];
                    assertEquals(want, kvB.value()[i], 0, "head " + h + " kv_b row " + row);
                }
            }
        }
        assertEquals(expected, scaled);
        assertTrue(scaled > 0 && scaled < HEADS, scaled + " of " + HEADS + " heads clipped");
        for (Parameter p : a.parameters()) {
            if (p != q && p != kvB) {
                assertArrayEquals(old.get(p.name()), p.value(), p.name() + " untouched (the shared rotary key, latents, norms, o_proj)");
            }
        }
        forward(a, x);
        float[] after = a.maxLogits();
        System.out.printf("MLA QK-clip (query rank %d) τ = %.4f: before %s, after %s%n", queryRank, tau, Arrays.toString(before),
                Arrays.toString(after));
        for (int h = 0; h < HEADS; h++) {
            if (before[h] > tau) {
                assertTrue(after[h] <= tau * (1 + 1e-5), "head " + h + " after the clip: " + after[h] + " > τ = " + tau);
                assertEquals(tau, after[h], 1e-5 * tau, "head " + h + ": its largest logit lands on τ");
            } else {
                assertEquals(before[h], after[h], 0, "head " + h + " under τ: its largest logit bit for bit");
            }
        }
    }

    @Test
    void qkClipOfMlaIsPerHeadAndChecksItsArguments() {
        float[] wq = new float[2 * 3 * 2];   // H = 2 heads of Dn + Dr = 1 + 2 rows, 2 columns
        float[] wkvB = new float[2 * 4 * 3]; // H = 2 heads of Dn + Dv = 1 + 3 rows, 3 columns
        Arrays.fill(wq, 1f);
        Arrays.fill(wkvB, 1f);
        assertEquals(1, QkClip.clipLatent(wq, wkvB, 2, 1, 2, 3, new double[] {4, 0.5}, 1));
        // head 0: γ = 1/4; content query ×1/2, rotary query ×1/4, content key ×1/2; head 1 untouched
        assertArrayEquals(new float[] {0.5f, 0.5f, 0.25f, 0.25f, 0.25f, 0.25f, 1, 1, 1, 1, 1, 1}, wq);
        float[] kvWant = new float[24];
        Arrays.fill(kvWant, 1f);
        Arrays.fill(kvWant, 0, 3, 0.5f);
        assertArrayEquals(kvWant, wkvB);
        var e = assertThrows(IllegalArgumentException.class, () -> QkClip.clipLatent(wq, new float[23], 2, 1, 2, 3, new double[2], 1));
        assertTrue(e.getMessage().contains("23") && e.getMessage().contains("H·(Dn + Dv) = 8"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> QkClip.clipLatent(wq, wkvB, 2, 1, 2, 3, new double[3], 1));
        assertTrue(e.getMessage().contains("3 max logits for 2 heads"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> QkClip.clipLatent(wq, wkvB, 2, 1, 2, 3, new double[2], -1));
        assertTrue(e.getMessage().contains("-1"), e.getMessage());
    }

    @Test
    void parameterNamesAndShapesAreHuggingFaces() {
        // DeepseekV3Attention: q_proj (H·qk_head_dim, hidden) or q_a_proj (q_lora_rank, hidden), q_a_layernorm (q_lora_rank),
        // q_b_proj (H·qk_head_dim, q_lora_rank); kv_a_proj_with_mqa (kv_lora_rank + qk_rope_head_dim, hidden); kv_a_layernorm
        // (kv_lora_rank); kv_b_proj (H·(qk_nope_head_dim + v_head_dim), kv_lora_rank); o_proj (hidden, H·v_head_dim).
        Map<String, int[]> plain = new LinkedHashMap<>();
        plain.put("self_attn.q_proj.weight", new int[] {24, 12});
        plain.put("self_attn.kv_a_proj_with_mqa.weight", new int[] {10, 12});
        plain.put("self_attn.kv_a_layernorm.weight", new int[] {6});
        plain.put("self_attn.kv_b_proj.weight", new int[] {27, 6});
        plain.put("self_attn.o_proj.weight", new int[] {12, 15});
        assertShapes(plain, attention(config(0), 1, 1));
        Map<String, int[]> ranked = new LinkedHashMap<>();
        ranked.put("self_attn.q_a_proj.weight", new int[] {8, 12});
        ranked.put("self_attn.q_a_layernorm.weight", new int[] {8});
        ranked.put("self_attn.q_b_proj.weight", new int[] {24, 8});
        ranked.put("self_attn.kv_a_proj_with_mqa.weight", new int[] {10, 12});
        ranked.put("self_attn.kv_a_layernorm.weight", new int[] {6});
        ranked.put("self_attn.kv_b_proj.weight", new int[] {27, 6});
        ranked.put("self_attn.o_proj.weight", new int[] {12, 15});
        MultiHeadLatentAttention a = attention(config(8), 1, 1);
        assertShapes(ranked, a);
        for (Parameter p : a.parameters()) {
            assertEquals(p.name().endsWith("layernorm.weight") ? ParamRole.NORM : ParamRole.HIDDEN_MATRIX, p.role(), p.name());
        }
        List<Attention.HeadRows> rows = a.headRows();
        assertEquals(List.of("self_attn.q_b_proj.weight", "self_attn.kv_b_proj.weight"), rows.stream().map(r -> r.parameter().name()).toList());
        assertEquals(List.of(8, 9), rows.stream().map(Attention.HeadRows::rowsPerHead).toList());
        assertEquals(24 / 8, a.headRows().getFirst().parameter().shape()[0] / 8, "H blocks");
        assertEquals("self_attn.q_proj.weight", attention(config(0), 1, 1).headRows().getFirst().parameter().name());
        // Moonlight-16B-A3B (moonshotai/Moonlight-16B-A3B config.json): no query rank, 512, 128, 64, 128.
        assertEquals(new MlaConfig(0, 512, 128, 64, 128), MlaConfig.moonlight());
        assertFalse(MlaConfig.moonlight().hasQueryRank());
        assertEquals(192, MlaConfig.moonlight().queryHeadDim());
    }

    static void assertShapes(Map<String, int[]> want, MultiHeadLatentAttention a) {
        assertEquals(new ArrayList<>(want.keySet()), a.parameters().stream().map(Parameter::name).toList());
        for (Parameter p : a.parameters()) {
            assertArrayEquals(want.get(p.name()), p.shape(), p.name());
        }
    }

    @Test
    void badSettingsAreNamed() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new MlaConfig(-1, 6, 4, 4, 5)).getMessage()
                .contains("query rank must be >= 0 (0 for none), got -1"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new MlaConfig(0, 0, 4, 4, 5)).getMessage()
                .contains("key-value rank must be >= 1, got 0"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new MlaConfig(0, 6, 0, 4, 5)).getMessage()
                .contains("content head dimension must be >= 1, got 0"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new MlaConfig(0, 6, 4, 3, 5)).getMessage()
                .contains("rotary head dimension must be even and >= 2, got 3"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new MlaConfig(0, 6, 4, 4, -2)).getMessage()
                .contains("value head dimension must be >= 1, got -2"));
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> new MultiHeadLatentAttention("a.", WIDTH, HEADS, config(0), new Rope(6, 8, THETA))).getMessage()
                .contains("head dimension 6, the rotary parts have 4"));
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> new MultiHeadLatentAttention("a.", WIDTH, 0, config(0), new Rope(4, 8, THETA))).getMessage()
                .contains("got 12 and 0"));
    }

    // ---- wired into a DeepSeek model --------------------------------------------------------------

    static final LlamaConfig TRUNK = new LlamaConfig(16, WIDTH, 2, HEADS, HEADS, 12, 8, false, THETA, 1e-5, 0.1);
    static final MoeConfig MOE = new MoeConfig(4, 2, 3, 1, 2.446, 1);

    @Test
    void aDeepSeekModelWithMlaTrainsAndKeepsGroupedQueryAttentionWithout() {
        DeepSeekConfig withMla = new DeepSeekConfig(TRUNK, MOE, config(0));
        assertInstanceOf(MultiHeadLatentAttention.class, withMla.attention(0, "p.", withMla.rope()));
        assertInstanceOf(GroupedQueryAttention.class, new DeepSeekConfig(TRUNK, MOE).attention(0, "p.", TRUNK.rope()));
        assertNull(new DeepSeekConfig(TRUNK, MOE).mla());
        assertEquals(config(0).toMap(), withMla.toMap().get("mla"));
        assertFalse(new DeepSeekConfig(TRUNK, MOE).toMap().containsKey("mla"));
        assertEquals(4, withMla.rope().headDim(), "RoPE over the rotary head dimension");

        DecoderModel model = withMla.create();
        List<String> names = model.parameters().stream().map(Parameter::name).toList();
        for (int layer = 0; layer < 2; layer++) {
            String p = "model.layers." + layer + ".self_attn.";
            for (String n : List.of("q_proj.weight", "kv_a_proj_with_mqa.weight", "kv_a_layernorm.weight", "kv_b_proj.weight", "o_proj.weight")) {
                assertTrue(names.contains(p + n), p + n + " in " + names);
            }
            assertFalse(names.contains(p + "k_proj.weight"));
        }
        assertTrue(names.contains("model.layers.1.mlp.experts.gate_proj.weight"), "the MoE layer stays");
        assertEquals(4, model.headRows().size(), "q_proj and kv_b_proj of two layers");
        model.initialize(3);
        assertEquals(1f, model.parameters().stream().filter(p -> p.name().endsWith("kv_a_layernorm.weight")).findFirst().orElseThrow()
                .value()[0], "latent norm gains start at 1");
        int[] tokens = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
        int[] targets = {2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13};
        try (Graph g = new Graph(backend)) {
            Tensor loss = model.loss(g, tokens, targets, 2, 6);
            assertTrue(Float.isFinite(loss.item()) && loss.item() > 0, "loss " + loss.item());
            g.backward(loss);
        }
        for (Parameter p : model.parameters()) {
            if (p.name().contains("self_attn.")) {
                double norm = 0;
                for (float v : p.gradient()) {
                    norm += (double) v * v;
                }
                assertTrue(norm > 0 && Double.isFinite(norm), p.name() + " gradient norm " + norm);
            }
        }
        float[] maxLogits = model.maxLogits();
        assertEquals(2 * HEADS, maxLogits.length);
        for (float v : maxLogits) {
            assertTrue(Float.isFinite(v), Arrays.toString(maxLogits));
        }
        double[] s = new double[maxLogits.length];
        Arrays.fill(s, 1e3);
        assertEquals(2 * HEADS, model.qkClip(1, s), "every head of both layers above τ");
    }
}
