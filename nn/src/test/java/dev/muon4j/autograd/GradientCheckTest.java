package dev.muon4j.autograd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.Backends;
import dev.muon4j.backend.VectorBackend;
import dev.muon4j.optim.ParamRole;
import dev.muon4j.optim.Parameter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Finite-difference check of every operation in {@link Ops}, plus gradient bookkeeping
 * (accumulation, no gradient for constants), agreement between backends and shape errors.
 *
 * <p><b>Method.</b> Each op's output y is reduced to a scalar by a fixed random projection
 * {@code L = Σ y ⊙ r}, r a constant with |r_i| ∈ [0.5, 1.5] and random signs. The analytic
 * gradient comes from the tape with the loss built as {@code linear(reshape(y, 1, n), r (1, n))}
 * (so dL/dy = r exactly). The finite-difference side evaluates the op in float32 with recording
 * off and forms {@code L} from its float32 outputs by summing in double, so the only float32
 * noise left is the op's own rounding. Central differences with step
 * {@value #STEP}·max(1, |x_j|); the quotient divides by the step actually taken,
 * {@code (float)(x+h) − (float)(x−h)}. Tensors up to {@value #ALL_COORDINATES_UP_TO} elements are
 * checked at every coordinate, larger ones at {@value #SAMPLED_COORDINATES} random coordinates.
 *
 * <p><b>Tolerance.</b> The error measure is {@code ‖g_fd − g_an‖₂ / ‖g_an‖₂} over the checked
 * coordinates of one input. Bound: {@value #TOLERANCE}. Noise estimate: the op's outputs carry a
 * relative float32 error of a few ulps (ε = 6·10⁻⁸), so L carries about
 * ε·√n·max|y| ≈ 10⁻⁶ for the n ≤ 200 outputs here; divided by 2h = 2·10⁻² that is ≈ 5·10⁻⁵ per
 * coordinate against gradient entries of order 0.1–1. Truncation error h²·f'''/6 ≈ 2·10⁻⁵·f''' is
 * zero for ops linear in the checked input and small for the smooth ones (inputs of order 1).
 * Observed errors (VectorBackend, 1 thread) are 10⁻⁸–5·10⁻⁵ for the single ops and up to
 * 4·10⁻⁴ for the composite decoder block (several nonlinear ops in a row), printed by the test; a real gradient
 * bug (a missing term, a wrong index, a wrong transpose) gives errors of order 10⁻¹–1.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class GradientCheckTest {
    static final double STEP = 1e-2;
    static final double TOLERANCE = 2e-3;
    static final int ALL_COORDINATES_UP_TO = 128;
    static final int SAMPLED_COORDINATES = 48;
    /** Backends must agree to within this, relative to max(1, |value|). */
    static final double BACKEND_TOLERANCE = 1e-5;

    private final Map<String, Backend> backends = new LinkedHashMap<>();
    private Backend reference;

    @BeforeAll
    void open() {
        reference = new VectorBackend(1);
        backends.put("vector-1", reference);
        backends.put("vector-2", new VectorBackend(2));
        backends.put("openblas-2", Backends.openBundled(2));
        // two one-thread workers side by side in groupedLinear
        backends.put("onednn-2", Backends.openOneDnn(2));
    }

    @AfterAll
    void close() {
        backends.values().forEach(Backend::close);
    }

    /** The operation under test, applied to fresh leaf tensors (one per {@link In}). */
    @FunctionalInterface
    interface Op {
        Tensor apply(Graph g, Tensor[] in);
    }

    /** An input: its values, shape, and whether the gradient with respect to it is checked. */
    record In(String name, float[] data, int[] shape, boolean wrt) {
        int size() {
            return Tensor.sizeOf(shape);
        }
    }

    record Case(String name, Op op, In... inputs) {
        @Override
        public String toString() {
            return name;
        }
    }

    static In wrt(String name, float[] data, int... shape) {
        return new In(name, data, shape, true);
    }

    static In fixed(String name, float[] data, int... shape) {
        return new In(name, data, shape, false);
    }

    static float[] randn(Random rnd, int n, double scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (rnd.nextGaussian() * scale);
        }
        return a;
    }

    static float[] uniform(Random rnd, int n, double lo, double hi) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (lo + (hi - lo) * rnd.nextDouble());
        }
        return a;
    }

    /** Every op of {@link Ops}, in the configurations the brief asks for. Fixed seeds: deterministic. */
    static List<Case> cases() {
        Random rnd = new Random(12345);
        List<Case> cases = new ArrayList<>();
        cases.add(new Case("linear (rank-3 x)", (g, in) -> Ops.linear(g, in[0], in[1]),
                wrt("x", randn(rnd, 2 * 3 * 5, 1), 2, 3, 5), wrt("w", randn(rnd, 4 * 5, 1), 4, 5)));
        cases.add(new Case("matmul batched 3-D", (g, in) -> Ops.matmul(g, in[0], in[1]),
                wrt("a", randn(rnd, 3 * 4 * 5, 1), 3, 4, 5), wrt("b", randn(rnd, 3 * 5 * 2, 1), 3, 5, 2)));
        cases.add(new Case("matmul shared 2-D b", (g, in) -> Ops.matmul(g, in[0], in[1]),
                wrt("a", randn(rnd, 3 * 4 * 5, 1), 3, 4, 5), wrt("b", randn(rnd, 5 * 2, 1), 5, 2)));
        cases.add(new Case("add", (g, in) -> Ops.add(g, in[0], in[1]),
                wrt("a", randn(rnd, 4 * 9, 1), 4, 9), wrt("b", randn(rnd, 4 * 9, 1), 4, 9)));
        cases.add(new Case("add (x + x)", (g, in) -> Ops.add(g, in[0], in[0]),
                wrt("x", randn(rnd, 4 * 9, 1), 4, 9)));
        cases.add(new Case("mul", (g, in) -> Ops.mul(g, in[0], in[1]),
                wrt("a", randn(rnd, 4 * 9, 1), 4, 9), wrt("b", randn(rnd, 4 * 9, 1), 4, 9)));
        cases.add(new Case("mul (x ⊙ x)", (g, in) -> Ops.mul(g, in[0], in[0]),
                wrt("x", randn(rnd, 4 * 9, 1), 4, 9)));
        cases.add(new Case("silu", (g, in) -> Ops.silu(g, in[0]),
                wrt("x", uniform(rnd, 5 * 7, -4, 4), 5, 7)));
        cases.add(new Case("swiglu (both inputs)", (g, in) -> Ops.swiglu(g, in[0], in[1]),
                wrt("gate", uniform(rnd, 5 * 7, -4, 4), 5, 7), wrt("up", randn(rnd, 5 * 7, 1), 5, 7)));
        cases.add(new Case("swiglu (gate only)", (g, in) -> Ops.swiglu(g, in[0], in[1]),
                wrt("gate", uniform(rnd, 5 * 7, -4, 4), 5, 7), fixed("up", randn(rnd, 5 * 7, 1), 5, 7)));
        cases.add(new Case("swiglu (up only)", (g, in) -> Ops.swiglu(g, in[0], in[1]),
                fixed("gate", uniform(rnd, 5 * 7, -4, 4), 5, 7), wrt("up", randn(rnd, 5 * 7, 1), 5, 7)));
        int[] tokens = {3, 1, 3, 0, 3, 6, 1};
        cases.add(new Case("embedding (repeated tokens)", (g, in) -> Ops.embedding(g, in[0], tokens),
                wrt("table", randn(rnd, 7 * 5, 1), 7, 5)));
        cases.add(new Case("rmsNorm", (g, in) -> Ops.rmsNorm(g, in[0], in[1], 1e-5f),
                wrt("x", randn(rnd, 4 * 12, 1), 4, 12), wrt("gain", uniform(rnd, 12, 0.5, 1.5), 12)));
        Rope rope = new Rope(6, 8, 10000);
        cases.add(new Case("rope (B=2, T=5, 3 heads of 6)", (g, in) -> Ops.rope(g, rope, in[0], 5),
                wrt("x", randn(rnd, 10 * 18, 1), 10, 18)));
        cases.add(new Case("causalAttention B=2 T=5 H=4 K=2 D=3", (g, in) -> Ops.causalAttention(g, in[0], in[1], in[2], 2, 5, 4, 2),
                wrt("q", randn(rnd, 10 * 12, 1), 10, 12), wrt("k", randn(rnd, 10 * 6, 1), 10, 6),
                wrt("v", randn(rnd, 10 * 6, 1), 10, 6)));
        cases.add(new Case("causalAttention B=2 T=5 H=K=4 D=3", (g, in) -> Ops.causalAttention(g, in[0], in[1], in[2], 2, 5, 4, 4),
                wrt("q", randn(rnd, 10 * 12, 1), 10, 12), wrt("k", randn(rnd, 10 * 12, 1), 10, 12),
                wrt("v", randn(rnd, 10 * 12, 1), 10, 12)));
        // Value heads wider or narrower than query/key heads (Multi-head Latent Attention's Dv ≠ Dn + Dr).
        cases.add(new Case("causalAttention Dv=5 B=2 T=5 H=4 K=2 D=3", (g, in) -> Ops.causalAttention(g, in[0], in[1], in[2], 2, 5, 4, 2, 5,
                new float[4], 0),
                wrt("q", randn(rnd, 10 * 12, 1), 10, 12), wrt("k", randn(rnd, 10 * 6, 1), 10, 6),
                wrt("v", randn(rnd, 10 * 10, 1), 10, 10)));
        cases.add(new Case("causalAttention Dv=2 B=2 T=4 H=K=3 D=4", (g, in) -> Ops.causalAttention(g, in[0], in[1], in[2], 2, 4, 3, 3, 2,
                new float[3], 0),
                wrt("q", randn(rnd, 8 * 12, 1), 8, 12), wrt("k", randn(rnd, 8 * 12, 1), 8, 12),
                wrt("v", randn(rnd, 8 * 6, 1), 8, 6)));
        // Query/key blocks smaller than T (AttentionOps skips the masked blocks): T = 7 in blocks of 3
        // (the last one short), blocks of 1, and grouped heads with Dv ≠ D in blocks of 2.
        cases.add(new Case("causalAttention blocks of 3 B=2 T=7 H=4 K=2 D=3", (g, in) -> AttentionOps.causal(g, in[0], in[1], in[2],
                2, 7, 4, 2, 3, new float[4], 0, 3),
                wrt("q", randn(rnd, 14 * 12, 1), 14, 12), wrt("k", randn(rnd, 14 * 6, 1), 14, 6),
                wrt("v", randn(rnd, 14 * 6, 1), 14, 6)));
        cases.add(new Case("causalAttention blocks of 1 B=1 T=5 H=K=2 D=4", (g, in) -> AttentionOps.causal(g, in[0], in[1], in[2],
                1, 5, 2, 2, 4, null, 0, 1),
                wrt("q", randn(rnd, 5 * 8, 1), 5, 8), wrt("k", randn(rnd, 5 * 8, 1), 5, 8),
                wrt("v", randn(rnd, 5 * 8, 1), 5, 8)));
        cases.add(new Case("causalAttention blocks of 2 Dv=5 B=2 T=5 H=4 K=2 D=3", (g, in) -> AttentionOps.causal(g, in[0], in[1], in[2],
                2, 5, 4, 2, 5, new float[4], 0, 2),
                wrt("q", randn(rnd, 10 * 12, 1), 10, 12), wrt("k", randn(rnd, 10 * 6, 1), 10, 6),
                wrt("v", randn(rnd, 10 * 10, 1), 10, 10)));
        // Head column operations: slices of each head, a plain column slice, per-head concatenation, a part repeated per head.
        cases.add(new Case("sliceHeads (3 heads, columns 1..4 of 5)", (g, in) -> Ops.sliceHeads(g, in[0], 3, 1, 3),
                wrt("x", randn(rnd, 4 * 15, 1), 4, 15)));
        cases.add(new Case("sliceHeads (1 head: a column slice)", (g, in) -> Ops.sliceHeads(g, in[0], 1, 4, 3),
                wrt("x", randn(rnd, 5 * 7, 1), 5, 7)));
        cases.add(new Case("concatHeads (3 heads of 2 + 3)", (g, in) -> Ops.concatHeads(g, in[0], in[1], 3),
                wrt("a", randn(rnd, 4 * 6, 1), 4, 6), wrt("b", randn(rnd, 4 * 9, 1), 4, 9)));
        cases.add(new Case("concatHeads (b only)", (g, in) -> Ops.concatHeads(g, in[0], in[1], 2),
                fixed("a", randn(rnd, 3 * 4, 1), 3, 4), wrt("b", randn(rnd, 3 * 2, 1), 3, 2)));
        cases.add(new Case("repeatHeads (4 heads)", (g, in) -> Ops.repeatHeads(g, in[0], 4),
                wrt("x", randn(rnd, 5 * 3, 1), 5, 3)));
        // Multi-head latent attention from the ops, as dev.muon4j.nn.MultiHeadLatentAttention composes them:
        // C = 6, H = 2, R_kv = 4, Dn = 2, Dr = 2, Dv = 3, B = 2, T = 3.
        Rope rope2 = new Rope(2, 4, 10000);
        cases.add(new Case("latent attention composite", (g, in) -> {
            Tensor q = Ops.linear(g, in[0], in[1]);                                          // (6, 2·4)
            Tensor query = Ops.concatHeads(g, Ops.sliceHeads(g, q, 2, 0, 2), Ops.rope(g, rope2, Ops.sliceHeads(g, q, 2, 2, 2), 3), 2);
            Tensor kvA = Ops.linear(g, in[0], in[2]);                                        // (6, 4 + 2)
            Tensor latent = Ops.rmsNorm(g, Ops.sliceHeads(g, kvA, 1, 0, 4), in[3], 1e-6f);  // (6, 4)
            Tensor kRot = Ops.rope(g, rope2, Ops.sliceHeads(g, kvA, 1, 4, 2), 3);           // (6, 2)
            Tensor kv = Ops.linear(g, latent, in[4]);                                        // (6, 2·5)
            Tensor key = Ops.concatHeads(g, Ops.sliceHeads(g, kv, 2, 0, 2), Ops.repeatHeads(g, kRot, 2), 2);
            Tensor value = Ops.sliceHeads(g, kv, 2, 2, 3);                                   // (6, 2·3)
            return Ops.linear(g, Ops.causalAttention(g, query, key, value, 2, 3, 2, 2, 3, new float[2], 0), in[5]);
        }, wrt("x", randn(rnd, 6 * 6, 1), 6, 6), wrt("wq", randn(rnd, 8 * 6, 0.5), 8, 6),
                wrt("wkvA", randn(rnd, 6 * 6, 0.5), 6, 6), wrt("kvNorm", uniform(rnd, 4, 0.5, 1.5), 4),
                wrt("wkvB", randn(rnd, 10 * 4, 0.5), 10, 4), wrt("wo", randn(rnd, 6 * 6, 0.5), 6, 6)));
        int[] targets = {2, 0, 6, 2, 5, 1};
        cases.add(new Case("crossEntropy", (g, in) -> Ops.crossEntropy(g, in[0], targets),
                wrt("logits", randn(rnd, 6 * 7, 2), 6, 7)));
        cases.add(new Case("reshape", (g, in) -> Ops.mul(g, Ops.reshape(g, in[0], 3, 8), in[1]),
                wrt("x", randn(rnd, 24, 1), 2, 3, 4), wrt("y", randn(rnd, 24, 1), 3, 8)));
        cases.add(new Case("sigmoid", (g, in) -> Ops.sigmoid(g, in[0]),
                wrt("x", uniform(rnd, 5 * 7, -4, 4), 5, 7)));
        // Mixture-of-Experts: 4 tokens, 5 experts, 2 chosen each (expert 3 by nobody, expert 1 by three tokens).
        int[] chosen = {1, 4, 0, 1, 2, 1, 4, 0};
        cases.add(new Case("topKGates (scale 2.446)", (g, in) -> Ops.topKGates(g, in[0], chosen, 2, 2.446),
                wrt("scores", uniform(rnd, 4 * 5, 0.05, 0.95), 4, 5)));
        int[] gathered = {2, 0, 2, 3, 1, 2, 0};
        cases.add(new Case("gatherRows (repeated rows)", (g, in) -> Ops.gatherRows(g, in[0], gathered),
                wrt("x", randn(rnd, 4 * 6, 1), 4, 6)));
        int[] offsets = {0, 2, 2, 5, 7};
        cases.add(new Case("groupedLinear (an expert without rows)", (g, in) -> Ops.groupedLinear(g, in[0], in[1], offsets),
                wrt("x", randn(rnd, 7 * 5, 1), 7, 5), wrt("w", randn(rnd, 4 * 3 * 5, 1), 4, 3, 5)));
        int[] slots = {3, 0, 5, 1, 2, 7, 6, 4};
        cases.add(new Case("combine", (g, in) -> Ops.combine(g, in[0], in[1], slots),
                wrt("y", randn(rnd, 8 * 6, 1), 8, 6), wrt("gates", uniform(rnd, 4 * 2, 0.1, 1.5), 4, 2)));
        int[] balanceChoice = {0, 2, 1, 2, 2, 3, 0, 1, 3, 0, 2, 1};
        cases.add(new Case("balanceLoss (2 sequences of 3, α 0.1)", (g, in) -> Ops.balanceLoss(g, in[0], balanceChoice, 2, 3, 2, 0.1),
                wrt("scores", uniform(rnd, 6 * 4, 0.05, 0.95), 6, 4)));
        // A small decoder step end to end: embedding → RMSNorm → q, k, v → RoPE → attention → output → loss.
        int[] seq = {1, 4, 4, 2, 0, 3, 1, 1};
        int[] next = {4, 4, 2, 0, 3, 1, 1, 2};
        Rope rope4 = new Rope(4, 4, 10000);
        cases.add(new Case("decoder block composite", (g, in) -> {
            Tensor h = Ops.rmsNorm(g, Ops.embedding(g, in[0], seq), in[1], 1e-5f);
            Tensor q = Ops.rope(g, rope4, Ops.linear(g, h, in[2]), 4);
            Tensor k = Ops.rope(g, rope4, Ops.linear(g, h, in[3]), 4);
            Tensor v = Ops.linear(g, h, in[4]);
            Tensor a = Ops.add(g, h, Ops.causalAttention(g, q, k, v, 2, 4, 2, 1));
            Tensor f = Ops.swiglu(g, Ops.silu(g, a), a);
            return Ops.crossEntropy(g, Ops.linear(g, f, in[5]), next);
        }, wrt("table", randn(rnd, 5 * 8, 1), 5, 8), wrt("gain", uniform(rnd, 8, 0.5, 1.5), 8),
                wrt("wq", randn(rnd, 8 * 8, 0.4), 8, 8), wrt("wk", randn(rnd, 4 * 8, 0.4), 4, 8),
                wrt("wv", randn(rnd, 4 * 8, 0.4), 4, 8), wrt("wo", randn(rnd, 5 * 8, 0.4), 5, 8)));
        return cases;
    }

    Stream<Case> allCases() {
        return cases().stream();
    }

    /** r with |r_i| ∈ [0.5, 1.5] and random signs, seeded by the case name. */
    static float[] projection(String name, int n) {
        Random rnd = new Random(name.hashCode() * 31L + n);
        float[] r = new float[n];
        for (int i = 0; i < n; i++) {
            r[i] = (float) ((0.5 + rnd.nextDouble()) * (rnd.nextBoolean() ? 1 : -1));
        }
        return r;
    }

    /** L = Σ y ⊙ r through the tape: linear of y viewed as a (1, n) row with r as a (1, n) weight. */
    static Tensor projectedLoss(Graph g, Tensor y, float[] r) {
        int n = y.size();
        return Ops.linear(g, Ops.reshape(g, y, 1, n), g.constant(r, 1, n));
    }

    /** Output values and the gradients of L = Σ y ⊙ r with respect to each checked input (null for the others). */
    record Analytic(float[] output, float loss, float[][] grads) {
    }

    static Analytic analytic(Backend backend, Case c) {
        try (Graph g = new Graph(backend)) {
            Tensor[] ts = new Tensor[c.inputs().length];
            for (int i = 0; i < ts.length; i++) {
                In in = c.inputs()[i];
                ts[i] = in.wrt() ? g.variable(in.data(), in.shape()) : g.constant(in.data(), in.shape());
            }
            Tensor y = c.op().apply(g, ts);
            float[] r = projection(c.name(), y.size());
            Tensor loss = projectedLoss(g, y, r);
            assertArrayEquals(new int[] {1, 1}, loss.shape());
            g.backward(loss);
            float[][] grads = new float[ts.length][];
            for (int i = 0; i < ts.length; i++) {
                if (c.inputs()[i].wrt()) {
                    assertNotNull(ts[i].grad(), c.name() + ": no gradient for " + c.inputs()[i].name());
                    grads[i] = Arrays.copyOf(ts[i].grad(), ts[i].size());
                } else {
                    assertNull(ts[i].grad(), c.name() + ": constant " + c.inputs()[i].name() + " got a gradient array");
                }
            }
            return new Analytic(Arrays.copyOf(y.data(), y.size()), loss.item(), grads);
        }
    }

    /** L = Σ y ⊙ r with y evaluated in float32 (recording off) and the sum taken in double. */
    static double projectedValue(Graph g, Case c, float[] r) {
        g.reset();
        Tensor[] ts = new Tensor[c.inputs().length];
        for (int i = 0; i < ts.length; i++) {
            ts[i] = g.constant(c.inputs()[i].data(), c.inputs()[i].shape());
        }
        Tensor y = c.op().apply(g, ts);
        double sum = 0;
        for (int i = 0; i < r.length; i++) {
            sum += (double) y.data()[i] * r[i];
        }
        return sum;
    }

    static int[] coordinates(int size, Random rnd) {
        if (size <= ALL_COORDINATES_UP_TO) {
            int[] all = new int[size];
            Arrays.setAll(all, i -> i);
            return all;
        }
        List<Integer> shuffled = new ArrayList<>();
        for (int i = 0; i < size; i++) {
            shuffled.add(i);
        }
        java.util.Collections.shuffle(shuffled, rnd);
        return shuffled.subList(0, SAMPLED_COORDINATES).stream().mapToInt(Integer::intValue).sorted().toArray();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("allCases")
    void analyticGradientMatchesCentralDifferences(Case c) {
        Analytic an = analytic(reference, c);
        float[] r = projection(c.name(), an.output().length);
        // The projected loss through the tape equals Σ y ⊙ r (sanity check of reshape + linear as a reduction).
        double direct = 0;
        double magnitude = 0;
        for (int i = 0; i < r.length; i++) {
            direct += (double) an.output()[i] * r[i];
            magnitude += Math.abs((double) an.output()[i] * r[i]);
        }
        assertEquals(direct, an.loss(), 1e-6 * Math.max(1, magnitude), c.name() + ": projected loss");

        Random rnd = new Random(c.name().hashCode());
        try (Graph g = new Graph(reference)) {
            g.setRecording(false);
            for (int i = 0; i < c.inputs().length; i++) {
                In in = c.inputs()[i];
                if (!in.wrt()) {
                    continue;
                }
                float[] x = in.data();
                int[] coords = coordinates(in.size(), rnd);
                double diff2 = 0;
                double norm2 = 0;
                double worst = 0;
                for (int j : coords) {
                    float orig = x[j];
                    double h = STEP * Math.max(1, Math.abs(orig));
                    float plus = (float) (orig + h);
                    float minus = (float) (orig - h);
                    x[j] = plus;
                    double lp = projectedValue(g, c, r);
                    x[j] = minus;
                    double lm = projectedValue(g, c, r);
                    x[j] = orig;
                    double fd = (lp - lm) / ((double) plus - (double) minus);
                    double a = an.grads()[i][j];
                    diff2 += (fd - a) * (fd - a);
                    norm2 += a * a;
                    worst = Math.max(worst, Math.abs(fd - a));
                }
                assertTrue(norm2 > 0, c.name() + ": gradient w.r.t. " + in.name() + " is zero at every checked coordinate");
                double rel = Math.sqrt(diff2 / norm2);
                System.out.printf("gradcheck %-40s d/d%-6s %3d coords  rel err %.2e  max abs err %.2e  |g| %.2e%n",
                        c.name(), in.name(), coords.length, rel, worst, Math.sqrt(norm2));
                assertTrue(rel <= TOLERANCE, c.name() + ": gradient w.r.t. " + in.name() + " off by relative " + rel);
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("allCases")
    void backendsAgree(Case c) {
        Analytic ref = analytic(reference, c);
        for (Map.Entry<String, Backend> e : backends.entrySet()) {
            if (e.getValue() == reference) {
                continue;
            }
            Analytic other = analytic(e.getValue(), c);
            assertClose(ref.output(), other.output(), c.name() + " output on " + e.getKey());
            for (int i = 0; i < ref.grads().length; i++) {
                if (ref.grads()[i] != null) {
                    assertClose(ref.grads()[i], other.grads()[i], c.name() + " d/d" + c.inputs()[i].name() + " on " + e.getKey());
                }
            }
        }
    }

    static void assertClose(float[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what + ": length");
        for (int i = 0; i < expected.length; i++) {
            double tol = BACKEND_TOLERANCE * Math.max(1, Math.abs(expected[i]));
            assertTrue(Math.abs(expected[i] - actual[i]) <= tol,
                    what + ": element " + i + " is " + actual[i] + ", reference " + expected[i]);
        }
    }

    // ---- gradient bookkeeping ----------------------------------------------------------------

    /** A training step on parameters: embedding → RMSNorm → linear → cross-entropy. */
    private static void step(Graph g, Parameter table, Parameter gain, Parameter w, int[] tokens, int[] targets) {
        Tensor h = Ops.rmsNorm(g, Ops.embedding(g, g.parameter(table), tokens), g.parameter(gain), 1e-5f);
        Tensor loss = Ops.crossEntropy(g, Ops.linear(g, h, g.parameter(w)), targets);
        g.backward(loss);
        g.reset();
    }

    @Test
    void parameterGradientsAccumulateOverSteps() {
        Random rnd = new Random(7);
        Parameter table = Parameter.of("table", ParamRole.EMBEDDING, new int[] {6, 8}, randn(rnd, 48, 1), new float[48]);
        Parameter gain = Parameter.of("gain", ParamRole.NORM, new int[] {8}, uniform(rnd, 8, 0.5, 1.5), new float[8]);
        Parameter w = Parameter.of("w", ParamRole.HEAD, new int[] {6, 8}, randn(rnd, 48, 0.5), new float[48]);
        int[] tokens = {0, 5, 5, 2};
        int[] targets = {5, 5, 2, 1};
        try (Graph g = new Graph(reference)) {
            step(g, table, gain, w, tokens, targets);
            float[][] once = {table.gradient().clone(), gain.gradient().clone(), w.gradient().clone()};
            for (float[] grad : once) {
                assertTrue(norm(grad) > 0);
            }
            step(g, table, gain, w, tokens, targets);
            float[][] twice = {table.gradient(), gain.gradient(), w.gradient()};
            for (int p = 0; p < once.length; p++) {
                for (int i = 0; i < once[p].length; i++) {
                    // Not bit-exact: a repeated token's rows and the GEMM's partial sums are added onto the
                    // first step's gradient one by one, so allow a few float32 ulps.
                    assertEquals(2 * once[p][i], twice[p][i], 1e-6f * Math.abs(2 * once[p][i]), "parameter " + p + " element " + i);
                }
            }
        }
    }

    @Test
    void variableGradientsAccumulateAndSurviveReset() {
        Random rnd = new Random(8);
        // x, the linear's output and the SiLU's output all have 20 elements, so after reset the pool
        // has arrays of that size on hand for the next step's intermediates.
        float[] x = randn(rnd, 20, 1);
        float[] w = randn(rnd, 25, 1);
        float[] r = projection("acc", 20);
        try (Graph g = new Graph(reference)) {
            Tensor xt = g.variable(x, 4, 5);
            Tensor wt = g.variable(w, 5, 5);
            g.backward(projectedLoss(g, Ops.silu(g, Ops.linear(g, xt, wt)), r));
            float[] once = Arrays.copyOf(xt.grad(), 20);
            float[] onceW = Arrays.copyOf(wt.grad(), 25);
            // After reset the leaves' gradients are still theirs: the next step, whose intermediates take
            // pool arrays of the same size, adds to them instead of overwriting them.
            g.reset();
            g.backward(projectedLoss(g, Ops.silu(g, Ops.linear(g, xt, wt)), r));
            for (int i = 0; i < 20; i++) {
                assertEquals(2 * once[i], xt.grad()[i], 1e-6f * Math.abs(2 * once[i]), "x element " + i);
            }
            // A third step without reset: gradients add up again.
            g.backward(projectedLoss(g, Ops.silu(g, Ops.linear(g, xt, wt)), r));
            for (int i = 0; i < 20; i++) {
                assertEquals(3 * once[i], xt.grad()[i], 1e-6f * Math.abs(3 * once[i]), "x element " + i);
            }
            for (int i = 0; i < 25; i++) {
                assertEquals(3 * onceW[i], wt.grad()[i], 1e-6f * Math.abs(3 * onceW[i]), "w element " + i);
            }
        }
    }

    @Test
    void constantsGetNoGradientArray() {
        Random rnd = new Random(9);
        try (Graph g = new Graph(reference)) {
            Tensor x = g.constant(randn(rnd, 20, 1), 4, 5);
            Tensor w = g.variable(randn(rnd, 15, 1), 3, 5);
            Tensor gain = g.constant(uniform(rnd, 3, 0.5, 1.5), 3);
            Tensor a = g.constant(randn(rnd, 12, 1), 4, 3);
            Tensor y = Ops.mul(g, Ops.rmsNorm(g, Ops.linear(g, x, w), gain, 1e-5f), a);
            Tensor q = g.variable(randn(rnd, 8 * 4, 1), 8, 4);
            Tensor k = g.constant(randn(rnd, 8 * 2, 1), 8, 2);
            Tensor v = g.constant(randn(rnd, 8 * 2, 1), 8, 2);
            Tensor att = Ops.causalAttention(g, q, k, v, 2, 4, 2, 1);
            Tensor loss = Ops.add(g, projectedLoss(g, y, projection("c1", 12)), projectedLoss(g, att, projection("c2", 32)));
            assertTrue(loss.requiresGrad());
            g.backward(loss);
            assertNotNull(w.grad());
            assertNotNull(q.grad());
            assertNull(x.grad());
            assertNull(gain.grad());
            assertNull(a.grad());
            assertNull(k.grad());
            assertNull(v.grad());

            // Nothing needs a gradient: the result does not either, and backward refuses it.
            Tensor c = Ops.crossEntropy(g, Ops.silu(g, x), new int[] {0, 1, 2, 3});
            assertFalse(c.requiresGrad());
            assertThrows(IllegalStateException.class, () -> g.backward(c));
            assertNull(x.grad());
        }
    }

    // ---- shape errors --------------------------------------------------------------------------

    @Test
    void badShapesAreRejectedWithTheShapesNamed() {
        try (Graph g = new Graph(reference)) {
            Tensor x = g.variable(new float[15], 3, 5);
            Tensor w = g.variable(new float[24], 4, 6);
            var e = assertThrows(IllegalArgumentException.class, () -> Ops.linear(g, x, w));
            assertTrue(e.getMessage().contains("[3, 5]") && e.getMessage().contains("[4, 6]"), e.getMessage());

            Tensor q = g.variable(new float[10 * 12], 10, 12);
            Tensor k = g.variable(new float[10 * 9], 10, 9);
            e = assertThrows(IllegalArgumentException.class, () -> Ops.causalAttention(g, q, k, k, 2, 5, 4, 3));
            assertTrue(e.getMessage().contains("4") && e.getMessage().contains("3"), e.getMessage());

            Tensor v = g.variable(new float[10 * 8], 10, 8);
            Tensor k2 = g.variable(new float[10 * 6], 10, 6);
            e = assertThrows(IllegalArgumentException.class, () -> Ops.causalAttention(g, q, k2, v, 2, 5, 4, 2, 3, new float[4], 0));
            assertTrue(e.getMessage().contains("v (B·T, 6)") && e.getMessage().contains("8"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Ops.sliceHeads(g, q, 4, 2, 2));
            assertTrue(e.getMessage().contains("[2, 4)") && e.getMessage().contains("width 3"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Ops.sliceHeads(g, q, 5, 0, 1));
            assertTrue(e.getMessage().contains("width 12") && e.getMessage().contains("5 heads"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Ops.concatHeads(g, q, k, 2));
            assertTrue(e.getMessage().contains("12") && e.getMessage().contains("9") && e.getMessage().contains("2 heads"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Ops.repeatHeads(g, q, 0));
            assertTrue(e.getMessage().contains("got 0"), e.getMessage());

            Tensor table = g.variable(new float[35], 7, 5);
            e = assertThrows(IllegalArgumentException.class, () -> Ops.embedding(g, table, new int[] {1, 7, 2}));
            assertTrue(e.getMessage().contains("7") && e.getMessage().contains("position 1"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Ops.embedding(g, table, new int[] {-1}));
            assertTrue(e.getMessage().contains("-1"), e.getMessage());

            Tensor logits = g.variable(new float[12], 3, 4);
            e = assertThrows(IllegalArgumentException.class, () -> Ops.crossEntropy(g, logits, new int[] {0, 4, 1}));
            assertTrue(e.getMessage().contains("target 4") && e.getMessage().contains("[0, 4)"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Ops.crossEntropy(g, logits, new int[] {0, 1}));
            assertTrue(e.getMessage().contains("[3, 4]"), e.getMessage());

            e = assertThrows(IllegalArgumentException.class, () -> Ops.reshape(g, x, 4, 4));
            assertTrue(e.getMessage().contains("[3, 5]") && e.getMessage().contains("[4, 4]"), e.getMessage());
        }
    }

    static double norm(float[] a) {
        double s = 0;
        for (float v : a) {
            s += (double) v * v;
        }
        return Math.sqrt(s);
    }
}
