package dev.muon4j.autograd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.VectorBackend;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * Forward values of causal attention, RoPE, RMSNorm and cross-entropy against plain float64
 * formulas. Bound: |float32 − float64| ≤ {@value #TOLERANCE}·max(1, |reference|): the float32 ops
 * round each of their few (≤ 20-term) sums and their exp/cos/sin tables at ε = 6·10⁻⁸, so a few
 * 10⁻⁷ is expected (observed errors are printed); an indexing or masking error is of order 1.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ForwardReferenceTest {
    static final double TOLERANCE = 2e-6;

    private Backend backend;

    @BeforeAll
    void open() {
        backend = new VectorBackend(1);
    }

    @AfterAll
    void close() {
        backend.close();
    }

    static float[] randn(Random rnd, int n, double scale) {
        return GradientCheckTest.randn(rnd, n, scale);
    }

    static double check(String what, double[] expected, float[] actual) {
        double worst = 0;
        for (int i = 0; i < expected.length; i++) {
            double err = Math.abs(expected[i] - actual[i]) / Math.max(1, Math.abs(expected[i]));
            worst = Math.max(worst, err);
            assertTrue(err <= TOLERANCE, what + ": element " + i + " is " + actual[i] + ", float64 reference " + expected[i]);
        }
        System.out.printf("forward %-36s max rel err %.2e%n", what, worst);
        return worst;
    }

    /** Naive float64 causal attention: position t attends to 0..t; query head h reads kv head h / (H/K). */
    static double[] naiveAttention(float[] q, float[] k, float[] v, int batch, int time, int heads, int kvHeads, int d) {
        int qw = heads * d;
        int kw = kvHeads * d;
        int group = heads / kvHeads;
        double[] out = new double[batch * time * qw];
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                int kh = h / group;
                for (int t = 0; t < time; t++) {
                    double[] s = new double[t + 1];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j <= t; j++) {
                        double dot = 0;
                        for (int c = 0; c < d; c++) {
                            dot += (double) q[(b * time + t) * qw + h * d + c] * k[(b * time + j) * kw + kh * d + c];
                        }
                        s[j] = dot / Math.sqrt(d);
                        max = Math.max(max, s[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j <= t; j++) {
                        s[j] = Math.exp(s[j] - max);
                        sum += s[j];
                    }
                    for (int c = 0; c < d; c++) {
                        double acc = 0;
                        for (int j = 0; j <= t; j++) {
                            acc += s[j] / sum * v[(b * time + j) * kw + kh * d + c];
                        }
                        out[(b * time + t) * qw + h * d + c] = acc;
                    }
                }
            }
        }
        return out;
    }

    private void attentionCase(int batch, int time, int heads, int kvHeads, int d, long seed) {
        Random rnd = new Random(seed);
        float[] q = randn(rnd, batch * time * heads * d, 1.5);
        float[] k = randn(rnd, batch * time * kvHeads * d, 1.5);
        float[] v = randn(rnd, batch * time * kvHeads * d, 1);
        String what = "attention B=" + batch + " T=" + time + " H=" + heads + " K=" + kvHeads + " D=" + d;
        float[] out;
        try (Graph g = new Graph(backend)) {
            Tensor y = Ops.causalAttention(g, g.constant(q, batch * time, heads * d), g.constant(k, batch * time, kvHeads * d),
                    g.constant(v, batch * time, kvHeads * d), batch, time, heads, kvHeads);
            out = y.data().clone();
            check(what, naiveAttention(q, k, v, batch, time, heads, kvHeads, d), out);
        }
        // Masking: changing keys and values of the last position leaves every earlier position's output unchanged.
        int kw = kvHeads * d;
        for (int b = 0; b < batch; b++) {
            for (int c = 0; c < kw; c++) {
                k[(b * time + time - 1) * kw + c] += 3f;
                v[(b * time + time - 1) * kw + c] -= 5f;
            }
        }
        try (Graph g = new Graph(backend)) {
            Tensor y = Ops.causalAttention(g, g.constant(q, batch * time, heads * d), g.constant(k, batch * time, kw),
                    g.constant(v, batch * time, kw), batch, time, heads, kvHeads);
            int qw = heads * d;
            for (int b = 0; b < batch; b++) {
                for (int t = 0; t < time; t++) {
                    for (int c = 0; c < qw; c++) {
                        int i = (b * time + t) * qw + c;
                        if (t < time - 1) {
                            assertEquals(out[i], y.data()[i], 0f, what + ": position " + t + " saw the future");
                        }
                    }
                }
            }
        }
    }

    @Test
    void causalAttentionMatchesFloat64() {
        attentionCase(2, 5, 4, 2, 3, 1);
        attentionCase(2, 5, 4, 4, 3, 2);
        attentionCase(2, 5, 4, 1, 8, 3);
        attentionCase(1, 19, 6, 3, 16, 4);
    }

    @Test
    void ropeMatchesRotateHalf() {
        int batch = 2;
        int time = 7;
        int heads = 3;
        int d = 8;
        double theta = 10000;
        Random rnd = new Random(5);
        float[] x = randn(rnd, batch * time * heads * d, 1);
        Rope rope = new Rope(d, 16, theta);
        try (Graph g = new Graph(backend)) {
            Tensor y = Ops.rope(g, rope, g.constant(x, batch * time, heads * d), time);
            double[] ref = new double[x.length];
            int half = d / 2;
            for (int row = 0; row < batch * time; row++) {
                int t = row % time;
                for (int h = 0; h < heads; h++) {
                    int base = row * heads * d + h * d;
                    for (int i = 0; i < d; i++) {
                        int pair = i % half;
                        double angle = t * Math.pow(theta, -2.0 * pair / d);
                        // x·cos + rotate_half(x)·sin, rotate_half([x1, x2]) = [−x2, x1]
                        double rotated = i < half ? -x[base + i + half] : x[base + i - half];
                        ref[base + i] = x[base + i] * Math.cos(angle) + rotated * Math.sin(angle);
                    }
                }
            }
            check("rope B=2 T=7 3 heads of 8", ref, y.data());
        }
    }

    @Test
    void rmsNormMatchesFloat64() {
        int n = 5;
        int c = 37;
        float eps = 1e-5f;
        Random rnd = new Random(6);
        float[] x = randn(rnd, n * c, 2);
        float[] gain = randn(rnd, c, 1);
        try (Graph g = new Graph(backend)) {
            Tensor y = Ops.rmsNorm(g, g.constant(x, n, c), g.constant(gain, c), eps);
            double[] ref = new double[n * c];
            for (int r = 0; r < n; r++) {
                double ms = 0;
                for (int i = 0; i < c; i++) {
                    ms += (double) x[r * c + i] * x[r * c + i];
                }
                double inv = 1 / Math.sqrt(ms / c + eps);
                for (int i = 0; i < c; i++) {
                    ref[r * c + i] = x[r * c + i] * inv * gain[i];
                }
            }
            check("rmsNorm 5x37", ref, y.data());
        }
    }

    @Test
    void crossEntropyMatchesFloat64() {
        for (double scale : new double[] {1, 30}) {
            int n = 6;
            int vocab = 23;
            Random rnd = new Random(7);
            float[] logits = randn(rnd, n * vocab, scale);
            int[] targets = {0, 22, 5, 5, 11, 3};
            try (Graph g = new Graph(backend)) {
                Tensor loss = Ops.crossEntropy(g, g.constant(logits, n, vocab), targets);
                double total = 0;
                for (int r = 0; r < n; r++) {
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < vocab; j++) {
                        max = Math.max(max, logits[r * vocab + j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < vocab; j++) {
                        sum += Math.exp(logits[r * vocab + j] - max);
                    }
                    total += max + Math.log(sum) - logits[r * vocab + targets[r]];
                }
                check("crossEntropy 6x23, logit scale " + scale, new double[] {total / n}, new float[] {loss.item()});
            }
        }
    }
}
