package dev.muon4j.autograd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.Backends;
import dev.muon4j.backend.VectorBackend;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * Causal attention computed by blocks (only the part of S the mask leaves) against a naive float64
 * causal attention written out here, forward and backward, and against the whole-matrix
 * computation ({@code blockRows ≥ T}).
 *
 * <p>The reference: for query position t of head h (key/value head h / (H/K)),
 * {@code s_j = q_t·k_j/√D} for j ≤ t, {@code p = softmax(s)}, {@code o_t = Σ p_j v_j}; with the
 * output gradient g_t: {@code dp_j = g_t·v_j}, {@code ds_j = p_j (dp_j − Σ_i p_i dp_i)},
 * {@code dq_t += Σ ds_j k_j/√D}, {@code dk_j += ds_j q_t/√D}, {@code dv_j += p_j g_t}.
 *
 * <p>Bound: |float32 − float64| ≤ {@value #TOLERANCE}·max(1, |reference|). The float32 op rounds
 * sums of up to T·D ≈ 4·10³ terms (T ≤ 256 here) of order-one products: a relative error of
 * √(terms)·ε ≈ 4·10⁻⁶ per sum, a few such sums in a row for the gradients; an indexing, masking or
 * missing-block error is of order 10⁻¹–1. Observed errors are printed.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class AttentionBlocksTest {
    static final double TOLERANCE = 2e-5;

    private Backend vector;
    private Backend openBlas;

    @BeforeAll
    void open() {
        vector = new VectorBackend(1);
        openBlas = Backends.openBundled(2);
    }

    @AfterAll
    void close() {
        vector.close();
        openBlas.close();
    }

    /** Output, gradients of q, k, v for the projected loss Σ o ⊙ g, and each head's largest logit, in float64. */
    record Reference(double[] out, double[] dq, double[] dk, double[] dv, double[] maxLogits) {
    }

    static Reference naive(float[] q, float[] k, float[] v, float[] gOut, int batch, int time, int heads, int kvHeads,
                           int d, int dv) {
        int qw = heads * d;
        int kw = kvHeads * d;
        int vw = kvHeads * dv;
        int ow = heads * dv;
        int group = heads / kvHeads;
        double scale = 1 / Math.sqrt(d);
        double[] out = new double[batch * time * ow];
        double[] dq = new double[q.length];
        double[] dk = new double[k.length];
        double[] dV = new double[v.length];
        double[] maxLogits = new double[heads];
        java.util.Arrays.fill(maxLogits, Double.NEGATIVE_INFINITY);
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                int kh = h / group;
                for (int t = 0; t < time; t++) {
                    int qRow = (b * time + t) * qw + h * d;
                    int oRow = (b * time + t) * ow + h * dv;
                    double[] p = new double[t + 1];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j <= t; j++) {
                        double dot = 0;
                        for (int c = 0; c < d; c++) {
                            dot += (double) q[qRow + c] * k[(b * time + j) * kw + kh * d + c];
                        }
                        p[j] = dot * scale;
                        max = Math.max(max, p[j]);
                    }
                    maxLogits[h] = Math.max(maxLogits[h], max);
                    double sum = 0;
                    for (int j = 0; j <= t; j++) {
                        p[j] = Math.exp(p[j] - max);
                        sum += p[j];
                    }
                    for (int j = 0; j <= t; j++) {
                        p[j] /= sum;
                    }
                    double[] dp = new double[t + 1];
                    double pdp = 0;
                    for (int j = 0; j <= t; j++) {
                        int vRow = (b * time + j) * vw + kh * dv;
                        for (int c = 0; c < dv; c++) {
                            out[oRow + c] += p[j] * v[vRow + c];
                            dp[j] += (double) gOut[oRow + c] * v[vRow + c];
                            dV[vRow + c] += p[j] * gOut[oRow + c];
                        }
                        pdp += p[j] * dp[j];
                    }
                    for (int j = 0; j <= t; j++) {
                        double ds = p[j] * (dp[j] - pdp) * scale;
                        int kRow = (b * time + j) * kw + kh * d;
                        for (int c = 0; c < d; c++) {
                            dq[qRow + c] += ds * k[kRow + c];
                            dk[kRow + c] += ds * q[qRow + c];
                        }
                    }
                }
            }
        }
        return new Reference(out, dq, dk, dV, maxLogits);
    }

    /** The op's output, gradients and max logits, in float32, with blocks of {@code blockRows}. */
    record Result(float[] out, float[] dq, float[] dk, float[] dv, float[] maxLogits) {
    }

    static Result run(Backend backend, float[] q, float[] k, float[] v, float[] gOut, int batch, int time, int heads,
                      int kvHeads, int d, int dv, int blockRows) {
        int n = batch * time;
        float[] maxLogits = new float[heads + 2];
        java.util.Arrays.fill(maxLogits, Float.NEGATIVE_INFINITY);
        try (Graph g = new Graph(backend)) {
            Tensor tq = g.variable(q.clone(), n, heads * d);
            Tensor tk = g.variable(k.clone(), n, kvHeads * d);
            Tensor tv = g.variable(v.clone(), n, kvHeads * dv);
            // offset 1: the op must write maxLogits[1 .. 1+H) and nothing else
            Tensor y = AttentionOps.causal(g, tq, tk, tv, batch, time, heads, kvHeads, dv, maxLogits, 1, blockRows);
            float[] out = java.util.Arrays.copyOf(y.data(), y.size());
            g.backward(GradientCheckTest.projectedLoss(g, y, gOut));
            assertEquals(Float.NEGATIVE_INFINITY, maxLogits[0], "max logits: entry before the offset written");
            assertEquals(Float.NEGATIVE_INFINITY, maxLogits[heads + 1], "max logits: entry after the heads written");
            return new Result(out, java.util.Arrays.copyOf(tq.grad(), tq.size()), java.util.Arrays.copyOf(tk.grad(), tk.size()),
                    java.util.Arrays.copyOf(tv.grad(), tv.size()),
                    java.util.Arrays.copyOfRange(maxLogits, 1, heads + 1));
        }
    }

    static double compare(String what, double[] expected, float[] actual) {
        assertEquals(expected.length, actual.length, what + ": length");
        double worst = 0;
        for (int i = 0; i < expected.length; i++) {
            double err = Math.abs(expected[i] - actual[i]) / Math.max(1, Math.abs(expected[i]));
            worst = Math.max(worst, err);
            assertTrue(err <= TOLERANCE, what + ": element " + i + " is " + actual[i] + ", float64 reference " + expected[i]);
        }
        return worst;
    }

    private void check(int batch, int time, int heads, int kvHeads, int d, int dv, int blockRows, long seed) {
        Random rnd = new Random(seed);
        float[] q = GradientCheckTest.randn(rnd, batch * time * heads * d, 1.5);
        float[] k = GradientCheckTest.randn(rnd, batch * time * kvHeads * d, 1.5);
        float[] v = GradientCheckTest.randn(rnd, batch * time * kvHeads * dv, 1);
        float[] gOut = GradientCheckTest.randn(rnd, batch * time * heads * dv, 1);
        Reference ref = naive(q, k, v, gOut, batch, time, heads, kvHeads, d, dv);
        for (Backend backend : new Backend[] {vector, openBlas}) {
            String what = "B=" + batch + " T=" + time + " H=" + heads + " K=" + kvHeads + " D=" + d + " Dv=" + dv
                    + " blocks of " + blockRows + " (" + backend.kind() + ")";
            Result r = run(backend, q, k, v, gOut, batch, time, heads, kvHeads, d, dv, blockRows);
            double worst = compare(what + " output", ref.out(), r.out());
            worst = Math.max(worst, compare(what + " dq", ref.dq(), r.dq()));
            worst = Math.max(worst, compare(what + " dk", ref.dk(), r.dk()));
            worst = Math.max(worst, compare(what + " dv", ref.dv(), r.dv()));
            worst = Math.max(worst, compare(what + " max logits", ref.maxLogits(), r.maxLogits()));
            // the whole-matrix computation agrees too
            Result full = run(backend, q, k, v, gOut, batch, time, heads, kvHeads, d, dv, Integer.MAX_VALUE);
            compare(what + " whole-matrix output", ref.out(), full.out());
            compare(what + " whole-matrix dq", ref.dq(), full.dq());
            compare(what + " whole-matrix dk", ref.dk(), full.dk());
            compare(what + " whole-matrix dv", ref.dv(), full.dv());
            System.out.printf("attention %-60s max rel err %.2e%n", what, worst);
        }
    }

    @Test
    void timeNotAMultipleOfTheBlock() {
        check(2, 13, 4, 2, 8, 8, 4, 1);
        check(1, AttentionOps.BLOCK_ROWS * 3 / 2 + 3, 6, 6, 16, 16, AttentionOps.BLOCK_ROWS, 2);
    }

    @Test
    void timeSmallerThanABlock() {
        check(2, 5, 4, 2, 8, 8, 8, 3);
        check(2, 37, 3, 1, 8, 8, AttentionOps.BLOCK_ROWS, 4);
    }

    @Test
    void oneStep() {
        check(3, 1, 4, 2, 8, 8, 4, 5);
        check(2, 1, 2, 2, 4, 4, 1, 6);
    }

    @Test
    void severalBlocks() {
        check(2, 12, 4, 4, 8, 8, 3, 7);
        check(1, 9, 2, 1, 4, 4, 1, 8);
        check(1, 2 * AttentionOps.BLOCK_ROWS, 2, 1, 16, 16, AttentionOps.BLOCK_ROWS, 9);
    }

    @Test
    void groupedKeyValueHeadsWithValueHeadsOfTheirOwnWidth() {
        check(2, 11, 6, 2, 8, 5, 4, 10);
        check(2, 11, 4, 1, 6, 12, 3, 11);
        check(1, AttentionOps.BLOCK_ROWS + 6, 4, 2, 12, 8, AttentionOps.BLOCK_ROWS, 12);
    }

    @Test
    void blockRowsMustBePositive() {
        try (Graph g = new Graph(vector)) {
            Tensor q = g.constant(new float[8], 2, 4);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> AttentionOps.causal(g, q, q, q, 1, 2, 1, 1, 4, null, 0, 0));
            assertTrue(e.getMessage().contains("block rows"), e.getMessage());
        }
    }
}
