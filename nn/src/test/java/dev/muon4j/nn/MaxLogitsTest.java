package dev.muon4j.nn;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.autograd.Graph;
import dev.muon4j.autograd.Ops;
import dev.muon4j.autograd.Tensor;
import dev.muon4j.backend.Backend;
import dev.muon4j.backend.VectorBackend;
import dev.muon4j.optim.Parameter;
import java.util.HashMap;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The largest attention logits the model records ({@link DecoderModel#maxLogits()}) against a float64
 * forward of the same weights, for multi-head and grouped-query models, across micro-batches and
 * resets; and {@link DecoderModel#qkClip}: after clipping weights whose logits grew past τ, the same
 * batch's logits are at most τ in every head, each clipped group's largest is τ, and heads under τ
 * keep their weights bit for bit.
 *
 * <p>Bound: the float32 forward's logits differ from float64 by the rounding of a few sums of at
 * most C terms per layer, relative ~1e-6; {@value #TOLERANCE}·max(1, |S|) leaves room while a wrong
 * head, a missing scale 1/√D (a factor 4 here) or a masked key counted would be off by far more.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class MaxLogitsTest {
    static final double TOLERANCE = 1e-4;

    private Backend backend;

    @BeforeAll
    void open() {
        backend = new VectorBackend(1);
    }

    @AfterAll
    void close() {
        backend.close();
    }

    static LlamaConfig config(int heads, int kvHeads) {
        return new LlamaConfig(64, 32, 2, heads, kvHeads, 48, 12, false, 10000, 1e-5, 0.1);
    }

    static int[] tokens(Random r, int n, int vocab) {
        int[] t = new int[n];
        for (int i = 0; i < n; i++) {
            t[i] = r.nextInt(vocab);
        }
        return t;
    }

    /** A model with its query and key projections scaled by {@code qkScale}, so logits reach several units. */
    static DecoderModel model(LlamaConfig c, long seed, double qkScale) {
        DecoderModel m = new DecoderModel(c);
        m.initialize(seed);
        for (Parameter p : m.parameters()) {
            if (p.name().endsWith("q_proj.weight") || p.name().endsWith("k_proj.weight")) {
                float[] v = p.value();
                for (int i = 0; i < v.length; i++) {
                    v[i] *= (float) qkScale;
                }
            }
        }
        return m;
    }

    float[] forwardMaxLogits(DecoderModel m, int[] tokens, int batch, int time) {
        m.resetMaxLogits();
        try (Graph g = new Graph(backend)) {
            m.forward(g, tokens, batch, time);
        }
        return m.maxLogits();
    }

    @ParameterizedTest(name = "H={0} K={1}")
    @CsvSource({"4, 4", "4, 2", "4, 1"})
    void maxLogitsMatchAFloat64Forward(int heads, int kvHeads) {
        LlamaConfig c = config(heads, kvHeads);
        DecoderModel m = model(c, 11, 3);
        int batch = 3;
        int time = 12;
        int[] t = tokens(new Random(heads * 10L + kvHeads), batch * time, c.vocabSize());
        float[] got = forwardMaxLogits(m, t, batch, time);
        double[] want = Float64Llama.maxLogits(c, m, t, batch, time);
        assertEquals(want.length, got.length);
        double worst = 0;
        for (int i = 0; i < want.length; i++) {
            double err = Math.abs(want[i] - got[i]) / Math.max(1, Math.abs(want[i]));
            worst = Math.max(worst, err);
            assertTrue(err <= TOLERANCE, "layer " + i / heads + " head " + i % heads + ": " + got[i] + ", float64 " + want[i]);
        }
        System.out.printf("max logits H=%d K=%d: %s, max rel err %.2e%n", heads, kvHeads, java.util.Arrays.toString(got), worst);
    }

    @Test
    void recordsTheMaximumOverMicroBatchesUntilReset() {
        LlamaConfig c = config(4, 2);
        DecoderModel m = model(c, 5, 3);
        Random r = new Random(3);
        int[] first = tokens(r, 2 * 12, c.vocabSize());
        int[] second = tokens(r, 12, c.vocabSize());
        float[] a = forwardMaxLogits(m, first, 2, 12);
        float[] b = forwardMaxLogits(m, second, 1, 12);
        m.resetMaxLogits();
        try (Graph g = new Graph(backend)) {
            m.forward(g, first, 2, 12);
            g.reset();
            g.setRecording(false); // an inference pass records as well
            m.forward(g, second, 1, 12);
        }
        float[] both = m.maxLogits();
        boolean differ = false;
        for (int i = 0; i < both.length; i++) {
            assertEquals(Math.max(a[i], b[i]), both[i], 0, "entry " + i);
            differ |= a[i] != b[i];
        }
        assertTrue(differ, "the two batches should give different maxima somewhere");
        m.resetMaxLogits();
        for (float v : m.maxLogits()) {
            assertEquals(Float.NEGATIVE_INFINITY, v);
        }
        // The returned array is a copy.
        m.maxLogits()[0] = 123;
        assertEquals(Float.NEGATIVE_INFINITY, m.maxLogits()[0]);
    }

    @Test
    void attentionOpRaisesOnlyItsOwnHeadsEntries() {
        Random r = new Random(9);
        int batch = 2, time = 5, heads = 3, kvHeads = 1, d = 4;
        float[] q = randn(r, batch * time * heads * d, 2);
        float[] k = randn(r, batch * time * kvHeads * d, 2);
        float[] v = randn(r, batch * time * kvHeads * d, 1);
        float[] max = {7, -1, -1, -1, 7};
        try (Graph g = new Graph(backend)) {
            Ops.causalAttention(g, g.constant(q, batch * time, heads * d), g.constant(k, batch * time, kvHeads * d),
                    g.constant(v, batch * time, kvHeads * d), batch, time, heads, kvHeads, max, 1);
        }
        assertEquals(7, max[0], 0, "entry before the offset untouched");
        assertEquals(7, max[4], 0, "entry after the heads untouched");
        for (int h = 0; h < heads; h++) {
            double want = Double.NEGATIVE_INFINITY;
            for (int b = 0; b < batch; b++) {
                for (int i = 0; i < time; i++) {
                    for (int j = 0; j <= i; j++) {
                        double dot = 0;
                        for (int x = 0; x < d; x++) {
                            dot += (double) q[(b * time + i) * heads * d + h * d + x] * k[(b * time + j) * kvHeads * d + x];
                        }
                        want = Math.max(want, dot / Math.sqrt(d));
                    }
                }
            }
            assertEquals(Math.max(-1, want), max[1 + h], 1e-5 * Math.max(1, Math.abs(want)), "head " + h);
        }
        float[] small = new float[3];
        try (Graph g = new Graph(backend)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Ops.causalAttention(g,
                    g.constant(q, batch * time, heads * d), g.constant(k, batch * time, kvHeads * d),
                    g.constant(v, batch * time, kvHeads * d), batch, time, heads, kvHeads, small, 1));
            assertTrue(e.getMessage().contains("3 heads at 1"), e.getMessage());
        }
    }

    @ParameterizedTest(name = "H={0} K={1}")
    @CsvSource({"4, 4", "4, 2"})
    void clippedWeightsBringEveryHeadToAtMostTau(int heads, int kvHeads) {
        LlamaConfig c = config(heads, kvHeads);
        DecoderModel m = model(c, 17, 4);
        int batch = 2;
        int time = 12;
        int[] t = tokens(new Random(21), batch * time, c.vocabSize());
        float[] before = forwardMaxLogits(m, t, batch, time);
        // τ halfway between the smallest and the largest key group's maximum: some groups clip, some do not.
        int group = heads / kvHeads;
        double lowest = Double.POSITIVE_INFINITY;
        double highest = Double.NEGATIVE_INFINITY;
        for (int start = 0; start < before.length; start += group) {
            double groupMax = Double.NEGATIVE_INFINITY;
            for (int h = start; h < start + group; h++) {
                groupMax = Math.max(groupMax, before[h]);
            }
            lowest = Math.min(lowest, groupMax);
            highest = Math.max(highest, groupMax);
        }
        double tau = (lowest + highest) / 2;
        assertTrue(tau > 0 && highest > lowest, "logits of the scaled model: " + java.util.Arrays.toString(before));
        Map<String, float[]> old = new HashMap<>();
        for (Parameter p : m.parameters()) {
            old.put(p.name(), p.value().clone());
        }
        double[] s = new double[before.length];
        for (int i = 0; i < s.length; i++) {
            s[i] = before[i];
        }
        int scaled = m.qkClip(tau, s);
        assertTrue(scaled > 0 && scaled < before.length, scaled + " of " + before.length + " heads scaled");

        // Clipping layer 0 changes layer 1's input, so only layer 0's logits are a pure function of the clip.
        float[] after = forwardMaxLogits(m, t, batch, time);
        int hd = c.headDim();
        int cols = c.width();
        int counted = 0;
        for (int layer = 0; layer < c.layers(); layer++) {
            float[] wq = parameter(m, layer, "q_proj").value();
            float[] wk = parameter(m, layer, "k_proj").value();
            float[] wq0 = old.get(name(layer, "q_proj"));
            float[] wk0 = old.get(name(layer, "k_proj"));
            for (int g = 0; g < kvHeads; g++) {
                double groupMax = Double.NEGATIVE_INFINITY;
                for (int h = g * group; h < (g + 1) * group; h++) {
                    groupMax = Math.max(groupMax, before[layer * heads + h]);
                }
                boolean clipped = groupMax > tau;
                counted += clipped ? group : 0;
                for (int h = g * group; h < (g + 1) * group; h++) {
                    for (int i = h * hd * cols; i < (h + 1) * hd * cols; i++) {
                        if (!clipped) {
                            assertEquals(Float.floatToRawIntBits(wq0[i]), Float.floatToRawIntBits(wq[i]), "layer " + layer + " W_q " + i);
                        } else {
                            assertEquals((float) (wq0[i] * Math.sqrt(tau / groupMax)), wq[i], 0, "layer " + layer + " W_q " + i);
                        }
                    }
                }
                for (int i = g * hd * cols; i < (g + 1) * hd * cols; i++) {
                    if (!clipped) {
                        assertEquals(Float.floatToRawIntBits(wk0[i]), Float.floatToRawIntBits(wk[i]), "layer " + layer + " W_k " + i);
                    }
                }
                if (layer == 0) {
                    double newMax = Double.NEGATIVE_INFINITY;
                    for (int h = g * group; h < (g + 1) * group; h++) {
                        float v = after[h];
                        assertTrue(v <= tau * (1 + 1e-5), "head " + h + " after the clip: " + v + " > τ = " + tau);
                        if (!clipped) {
                            assertEquals(before[h], v, 0, "head " + h + " was under τ: its logits are unchanged");
                        }
                        newMax = Math.max(newMax, v);
                    }
                    if (clipped) {
                        assertEquals(tau, newMax, 1e-5 * tau, "group " + g + ": its largest logit lands on τ");
                    }
                }
            }
        }
        assertEquals(counted, scaled);
        // The other weights are untouched.
        for (Parameter p : m.parameters()) {
            if (!p.name().contains("q_proj") && !p.name().contains("k_proj")) {
                assertTrue(java.util.Arrays.equals(old.get(p.name()), p.value()), p.name());
            }
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> m.qkClip(tau, new double[3]));
        assertTrue(e.getMessage().contains("3 max logits for 2 layers of " + heads + " heads"), e.getMessage());
    }

    static String name(int layer, String proj) {
        return "model.layers." + layer + ".self_attn." + proj + ".weight";
    }

    static Parameter parameter(DecoderModel m, int layer, String proj) {
        String n = name(layer, proj);
        return m.parameters().stream().filter(p -> p.name().equals(n)).findFirst().orElseThrow();
    }

    static float[] randn(Random r, int n, double scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (r.nextGaussian() * scale);
        }
        return a;
    }

    /** A float64 Llama forward through the blocks, keeping each layer's and head's largest attention logit. */
    static final class Float64Llama {
        static double[] maxLogits(LlamaConfig c, DecoderModel m, int[] tokens, int batch, int time) {
            Map<String, float[]> w = new HashMap<>();
            for (Parameter p : m.parameters()) {
                w.put(p.name(), p.value());
            }
            int n = batch * time;
            int width = c.width();
            int heads = c.heads();
            int kv = c.kvHeads();
            int d = c.headDim();
            int group = heads / kv;
            double eps = (float) c.normEps();
            double[] x = new double[n * width];
            float[] embed = w.get("model.embed_tokens.weight");
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < width; j++) {
                    x[i * width + j] = embed[tokens[i] * width + j];
                }
            }
            double[] out = new double[c.layers() * heads];
            for (int layer = 0; layer < c.layers(); layer++) {
                String p = "model.layers." + layer + ".";
                double[] a = rmsNorm(x, n, width, w.get(p + "input_layernorm.weight"), eps);
                double[] q = rope(linear(a, n, width, w.get(p + "self_attn.q_proj.weight"), heads * d), n, time, heads, d, c.ropeTheta());
                double[] k = rope(linear(a, n, width, w.get(p + "self_attn.k_proj.weight"), kv * d), n, time, kv, d, c.ropeTheta());
                double[] v = linear(a, n, width, w.get(p + "self_attn.v_proj.weight"), kv * d);
                double[] att = new double[n * heads * d];
                for (int h = 0; h < heads; h++) {
                    int kh = h / group;
                    double best = Double.NEGATIVE_INFINITY;
                    for (int b = 0; b < batch; b++) {
                        for (int i = 0; i < time; i++) {
                            double[] s = new double[i + 1];
                            double rowMax = Double.NEGATIVE_INFINITY;
                            for (int j = 0; j <= i; j++) {
                                double dot = 0;
                                for (int e = 0; e < d; e++) {
                                    dot += q[(b * time + i) * heads * d + h * d + e] * k[(b * time + j) * kv * d + kh * d + e];
                                }
                                s[j] = dot / Math.sqrt(d);
                                rowMax = Math.max(rowMax, s[j]);
                            }
                            best = Math.max(best, rowMax);
                            double sum = 0;
                            for (int j = 0; j <= i; j++) {
                                s[j] = Math.exp(s[j] - rowMax);
                                sum += s[j];
                            }
                            for (int e = 0; e < d; e++) {
                                double acc = 0;
                                for (int j = 0; j <= i; j++) {
                                    acc += s[j] / sum * v[(b * time + j) * kv * d + kh * d + e];
                                }
                                att[(b * time + i) * heads * d + h * d + e] = acc;
                            }
                        }
                    }
                    out[layer * heads + h] = best;
                }
                add(x, linear(att, n, heads * d, w.get(p + "self_attn.o_proj.weight"), width));
                double[] mm = rmsNorm(x, n, width, w.get(p + "post_attention_layernorm.weight"), eps);
                int f = c.mlpWidth();
                double[] gate = linear(mm, n, width, w.get(p + "mlp.gate_proj.weight"), f);
                double[] up = linear(mm, n, width, w.get(p + "mlp.up_proj.weight"), f);
                for (int i = 0; i < gate.length; i++) {
                    gate[i] = gate[i] / (1 + Math.exp(-gate[i])) * up[i];
                }
                add(x, linear(gate, n, f, w.get(p + "mlp.down_proj.weight"), width));
            }
            return out;
        }

        static double[] linear(double[] x, int n, int in, float[] w, int out) {
            double[] y = new double[n * out];
            for (int i = 0; i < n; i++) {
                for (int o = 0; o < out; o++) {
                    double acc = 0;
                    for (int j = 0; j < in; j++) {
                        acc += x[i * in + j] * w[o * in + j];
                    }
                    y[i * out + o] = acc;
                }
            }
            return y;
        }

        static double[] rmsNorm(double[] x, int n, int width, float[] gain, double eps) {
            double[] y = new double[x.length];
            for (int i = 0; i < n; i++) {
                double ms = 0;
                for (int j = 0; j < width; j++) {
                    ms += x[i * width + j] * x[i * width + j];
                }
                double inv = 1 / Math.sqrt(ms / width + eps);
                for (int j = 0; j < width; j++) {
                    y[i * width + j] = x[i * width + j] * inv * gain[j];
                }
            }
            return y;
        }

        /** Rotate-half RoPE: channel e &lt; D/2 pairs with e + D/2, angle t·θ^(−2e/D), t = row mod T. */
        static double[] rope(double[] x, int n, int time, int heads, int d, double theta) {
            double[] y = new double[x.length];
            int half = d / 2;
            for (int row = 0; row < n; row++) {
                int t = row % time;
                for (int h = 0; h < heads; h++) {
                    int base = row * heads * d + h * d;
                    for (int e = 0; e < d; e++) {
                        double angle = t * Math.pow(theta, -2.0 * (e % half) / d);
                        double rotated = e < half ? -x[base + e + half] : x[base + e - half];
                        y[base + e] = x[base + e] * Math.cos(angle) + rotated * Math.sin(angle);
                    }
                }
            }
            return y;
        }

        static void add(double[] x, double[] y) {
            for (int i = 0; i < x.length; i++) {
                x[i] += y[i];
            }
        }
    }
}
