package dev.muon4j.nn;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.autograd.Graph;
import dev.muon4j.autograd.Ops;
import dev.muon4j.autograd.Tensor;
import dev.muon4j.backend.Backend;
import dev.muon4j.backend.VectorBackend;
import dev.muon4j.optim.Parameter;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * The Mixture-of-Experts layer against a naive float64 reference written here (token by token,
 * expert by expert, as the DeepSeek-V3 report's equations 12–16 read): the choice (ties to the
 * lower expert, the bias steering only the choice), the gates, the shared experts and the combine;
 * the gradients of an MoE block end to end against central differences; and auxiliary-loss-free
 * balancing of a deliberately skewed router.
 *
 * <p>Bound of the forward: float32 sums of at most C or F products against float64, relative
 * ~1e-6 of the output's scale; {@value #TOLERANCE} leaves room, while a wrong gate normalisation,
 * a missed shared expert or a token sent to the wrong expert is off by 10⁻²–1.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class MixtureOfExpertsTest {
    static final double TOLERANCE = 2e-5;
    static final int WIDTH = 6;

    private Backend backend;

    @BeforeAll
    void open() {
        backend = new VectorBackend(1);
    }

    @AfterAll
    void close() {
        backend.close();
    }

    static void fill(Random r, float[] a, double scale) {
        for (int i = 0; i < a.length; i++) {
            a[i] = (float) (r.nextGaussian() * scale);
        }
    }

    static MixtureOfExperts layer(Random r, MoeConfig config) {
        MixtureOfExperts moe = new MixtureOfExperts("mlp.", WIDTH, config);
        for (Parameter p : moe.parameters()) {
            fill(r, p.value(), 0.5);
        }
        return moe;
    }

    static Parameter named(List<Parameter> ps, String suffix) {
        return ps.stream().filter(p -> p.name().endsWith(suffix)).findFirst().orElseThrow();
    }

    static double sigmoid(double x) {
        return 1 / (1 + Math.exp(-x));
    }

    /** SwiGLU of one row in float64: down · (silu(gate·x) ⊙ up·x), matrices at the given offsets. */
    static double[] swiglu(double[] x, float[] gate, float[] up, float[] down, int offUp, int offDown, int hidden) {
        int c = x.length;
        double[] h = new double[hidden];
        for (int j = 0; j < hidden; j++) {
            double a = 0;
            double b = 0;
            for (int i = 0; i < c; i++) {
                a += gate[offUp + j * c + i] * x[i];
                b += up[offUp + j * c + i] * x[i];
            }
            h[j] = a * sigmoid(a) * b;
        }
        double[] y = new double[c];
        for (int i = 0; i < c; i++) {
            for (int j = 0; j < hidden; j++) {
                y[i] += down[offDown + i * hidden + j] * h[j];
            }
        }
        return y;
    }

    /** The layer's output, token by token in float64 (the choice from s + b in float64, ties to the lower expert). */
    static double[] reference(MixtureOfExperts moe, float[] x, int tokens) {
        MoeConfig cfg = moe.config();
        List<Parameter> ps = moe.parameters();
        float[] router = named(ps, "gate.weight").value();
        float[] gate = named(ps, "experts.gate_proj.weight").value();
        float[] up = named(ps, "experts.up_proj.weight").value();
        float[] down = named(ps, "experts.down_proj.weight").value();
        float[] bias = moe.buffers().getFirst().value();
        int e = cfg.experts();
        int f = cfg.expertWidth();
        double[] out = new double[tokens * WIDTH];
        for (int t = 0; t < tokens; t++) {
            double[] xt = new double[WIDTH];
            for (int i = 0; i < WIDTH; i++) {
                xt[i] = x[t * WIDTH + i];
            }
            double[] s = new double[e];
            for (int j = 0; j < e; j++) {
                double u = 0;
                for (int i = 0; i < WIDTH; i++) {
                    u += router[j * WIDTH + i] * xt[i];
                }
                s[j] = sigmoid(u);
            }
            Integer[] order = new Integer[e];
            Arrays.setAll(order, j -> j);
            Arrays.sort(order, (a, b) -> {
                int byScore = Double.compare(s[b] + bias[b], s[a] + bias[a]);
                return byScore != 0 ? byScore : Integer.compare(a, b);
            });
            double sum = 0;
            for (int j = 0; j < cfg.activeExperts(); j++) {
                sum += s[order[j]];
            }
            for (int j = 0; j < cfg.activeExperts(); j++) {
                int ex = order[j];
                double g = cfg.routedScale() * s[ex] / (sum + 1e-20);
                double[] y = swiglu(xt, gate, up, down, ex * f * WIDTH, ex * WIDTH * f, f);
                for (int i = 0; i < WIDTH; i++) {
                    out[t * WIDTH + i] += g * y[i];
                }
            }
            if (cfg.sharedExperts() > 0) {
                int hidden = cfg.sharedExperts() * f;
                double[] y = swiglu(xt, named(ps, "shared_experts.gate_proj.weight").value(),
                        named(ps, "shared_experts.up_proj.weight").value(), named(ps, "shared_experts.down_proj.weight").value(), 0, 0,
                        hidden);
                for (int i = 0; i < WIDTH; i++) {
                    out[t * WIDTH + i] += y[i];
                }
            }
        }
        return out;
    }

    float[] forward(MixtureOfExperts moe, float[] x, int tokens) {
        try (Graph g = new Graph(backend)) {
            g.setRecording(false);
            return Arrays.copyOf(moe.forward(g, g.constant(x, tokens, WIDTH)).data(), tokens * WIDTH);
        }
    }

    static void assertClose(double[] want, float[] got, String what) {
        double scale = 0;
        double worst = 0;
        for (int i = 0; i < want.length; i++) {
            scale = Math.max(scale, Math.abs(want[i]));
            worst = Math.max(worst, Math.abs(want[i] - got[i]));
        }
        assertTrue(worst <= TOLERANCE * Math.max(1, scale), what + ": largest difference " + worst + " at scale " + scale);
    }

    @Test
    void dispatchBreaksTiesTowardsTheLowerExpertAndGroupsRowsByExpertInTokenOrder() {
        float[] scores = {
                0.5f, 0.9f, 0.5f, 0.1f,   // token 0: expert 1, then a tie between 0 and 2 → 0
                0.2f, 0.2f, 0.2f, 0.2f,   // token 1: all equal → 0, 1
                0.1f, 0.3f, 0.8f, 0.8f};  // token 2: tie between 2 and 3 → 2, 3
        Dispatch d = Dispatch.choose(scores, new float[4], 3, 2);
        assertArrayEquals(new int[] {1, 0, 0, 1, 2, 3}, d.chosen());
        assertArrayEquals(new int[] {0, 2, 4, 5, 6}, d.offsets());
        // Expert 0: token 0 (slot 1), token 1 (slot 2); expert 1: token 0 (slot 0), token 1 (slot 3); 2: slot 4; 3: slot 5.
        assertArrayEquals(new int[] {1, 2, 0, 3, 4, 5}, d.slotOfRow());
        assertArrayEquals(new int[] {0, 1, 0, 1, 2, 2}, d.tokenOfRow());
        // The bias moves the choice: +0.5 on expert 3 brings it in for every token (s + b: 0.6, 0.7, 1.3).
        Dispatch biased = Dispatch.choose(scores, new float[] {0, 0, 0, 0.5f}, 3, 2);
        assertArrayEquals(new int[] {1, 3, 3, 0, 3, 2}, biased.chosen());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Dispatch.choose(scores, new float[4], 3, 5));
        assertTrue(e.getMessage().contains("5 experts per token of 4"), e.getMessage());
    }

    @Test
    void forwardMatchesTheFloat64ReferenceWithSharedExpertsAndTies() {
        Random r = new Random(7);
        MoeConfig cfg = new MoeConfig(5, 2, 4, 2, 2.446, 0);
        MixtureOfExperts moe = layer(r, cfg);
        // Experts 3 and 4 get the same router row: their scores tie exactly for every token.
        float[] router = named(moe.parameters(), "gate.weight").value();
        System.arraycopy(router, 3 * WIDTH, router, 4 * WIDTH, WIDTH);
        int tokens = 9;
        float[] x = new float[tokens * WIDTH];
        fill(r, x, 1);
        assertClose(reference(moe, x, tokens), forward(moe, x, tokens), "MoE with 2 shared experts");
        float[] loads = moe.loads();
        assertEquals(tokens * cfg.activeExperts(), sum(loads), "every token counted K times");
        // Experts 3 and 4 tie for every token: 4 is chosen only beside 3, 3 also alone.
        assertTrue(loads[3] > loads[4], "ties go to the lower expert: loads " + Arrays.toString(loads));

        MixtureOfExperts routedOnly = layer(new Random(8), new MoeConfig(5, 3, 4, 0, 1.0, 0));
        assertEquals(4, routedOnly.parameters().size(), "router and three stacked projections, no shared experts");
        assertClose(reference(routedOnly, x, tokens), forward(routedOnly, x, tokens), "MoE without shared experts");
    }

    @Test
    void theBiasSteersTheChoiceButIsNotInTheGates() {
        Random r = new Random(11);
        MoeConfig cfg = new MoeConfig(4, 2, 3, 0, 1.5, 0);
        MixtureOfExperts moe = layer(r, cfg);
        int tokens = 6;
        float[] x = new float[tokens * WIDTH];
        fill(r, x, 1);
        float[] before = forward(moe, x, tokens);
        // A large bias on expert 2 sends every token there; the reference computes gates from s alone.
        moe.buffers().getFirst().value()[2] = 10f;
        moe.resetLoads();
        float[] after = forward(moe, x, tokens);
        assertEquals(tokens, moe.loads()[2], "every token chose expert 2");
        assertClose(reference(moe, x, tokens), after, "gates of s alone, choice by s + b");
        assertTrue(!Arrays.equals(before, after), "the choice changed the output");
    }

    static float sum(float[] a) {
        float s = 0;
        for (float v : a) {
            s += v;
        }
        return s;
    }

    /** L = Σ r ⊙ (x + MoE(rmsNorm(x))): an MoE block, the loss a fixed projection. */
    double blockLoss(MixtureOfExperts moe, Parameter gain, float[] x, int tokens, float[] r, boolean backward, float[] dx) {
        try (Graph g = new Graph(backend)) {
            g.setRecording(backward);
            Tensor in = backward ? g.variable(x, tokens, WIDTH) : g.constant(x, tokens, WIDTH);
            Tensor h = Ops.add(g, in, moe.forward(g, Ops.rmsNorm(g, in, g.parameter(gain), 1e-5f)));
            double sum = 0;
            for (int i = 0; i < r.length; i++) {
                sum += (double) h.data()[i] * r[i];
            }
            if (backward) {
                g.backward(Ops.linear(g, Ops.reshape(g, h, 1, r.length), g.constant(r, 1, r.length)));
                System.arraycopy(in.grad(), 0, dx, 0, dx.length);
            }
            return sum;
        }
    }

    /**
     * Central differences (step 1e-3·max(1, |v|)) of an MoE block against the tape, for the input,
     * the router and every projection. A coordinate whose perturbation changes any token's choice
     * is skipped (the loss is not differentiable across a change of expert); at most a few are.
     * Bound 2e-3 of the relative L2 error, as GradientCheckTest: float32 noise of L over 2h is about 1e-4 here.
     */
    @Test
    void gradientsOfAnMoeBlockMatchCentralDifferences() {
        Random rnd = new Random(3);
        MoeConfig cfg = new MoeConfig(4, 2, 3, 1, 2.446, 0);
        MixtureOfExperts moe = layer(rnd, cfg);
        Parameter gain = Parameter.zeros("norm", dev.muon4j.optim.ParamRole.NORM, WIDTH);
        Arrays.fill(gain.value(), 1f);
        int tokens = 5;
        float[] x = new float[tokens * WIDTH];
        fill(rnd, x, 1);
        float[] r = new float[tokens * WIDTH];
        for (int i = 0; i < r.length; i++) {
            r[i] = (float) ((0.5 + rnd.nextDouble()) * (rnd.nextBoolean() ? 1 : -1));
        }
        float[] dx = new float[x.length];
        for (Parameter p : moe.parameters()) {
            Arrays.fill(p.gradient(), 0f);
        }
        blockLoss(moe, gain, x, tokens, r, true, dx);
        int[] baseChoice = choice(moe, gain, x, tokens);
        int skipped = 0;
        int checked = 0;
        List<float[]> values = new java.util.ArrayList<>();
        List<float[]> grads = new java.util.ArrayList<>();
        List<String> names = new java.util.ArrayList<>();
        values.add(x);
        grads.add(dx);
        names.add("x");
        for (Parameter p : moe.parameters()) {
            values.add(p.value());
            grads.add(p.gradient().clone());
            names.add(p.name());
        }
        for (int v = 0; v < values.size(); v++) {
            float[] a = values.get(v);
            double diff = 0;
            double norm = 0;
            for (int i = 0; i < a.length; i++) {
                float old = a[i];
                double h = 1e-3 * Math.max(1, Math.abs(old));
                a[i] = (float) (old + h);
                float up = a[i];
                boolean sameUp = Arrays.equals(baseChoice, choice(moe, gain, x, tokens));
                double lUp = blockLoss(moe, gain, x, tokens, r, false, null);
                a[i] = (float) (old - h);
                float downValue = a[i];
                boolean sameDown = Arrays.equals(baseChoice, choice(moe, gain, x, tokens));
                double lDown = blockLoss(moe, gain, x, tokens, r, false, null);
                a[i] = old;
                if (!sameUp || !sameDown) {
                    skipped++;
                    continue;
                }
                checked++;
                double fd = (lUp - lDown) / ((double) up - downValue);
                double an = grads.get(v)[i];
                diff += (fd - an) * (fd - an);
                norm += an * an;
            }
            double rel = Math.sqrt(diff) / Math.max(Math.sqrt(norm), 1e-12);
            System.out.printf("gradcheck MoE block d/d%-40s rel err %.2e%n", names.get(v), rel);
            assertTrue(rel < 2e-3, "MoE block d/d" + names.get(v) + ": relative error " + rel);
        }
        assertTrue(skipped <= checked / 50, skipped + " coordinates changed the routing, " + checked + " checked");
    }

    /** The experts the block routes each token to, with the current values. */
    int[] choice(MixtureOfExperts moe, Parameter gain, float[] x, int tokens) {
        try (Graph g = new Graph(backend)) {
            g.setRecording(false);
            Tensor n = Ops.rmsNorm(g, g.constant(x, tokens, WIDTH), g.parameter(gain), 1e-5f);
            Tensor s = Ops.sigmoid(g, Ops.linear(g, n, g.parameter(named(moe.parameters(), "gate.weight"))));
            return Dispatch.choose(s.data(), moe.buffers().getFirst().value(), tokens, moe.config().activeExperts()).chosen();
        }
    }

    /**
     * A router skewed towards expert 0 (its row aligned with the mean input) sends it most tokens;
     * balancing with γ = 0.01 per step (DeepSeek-V3 used 0.001 over far more steps) brings the
     * largest load below 1.2 times the mean in at most 60 steps of 1024 tokens, and keeps it there.
     */
    @Test
    void theBiasBalancesASkewedRouter() {
        Random rnd = new Random(5);
        MoeConfig cfg = new MoeConfig(8, 2, 2, 0, 1.0, 0);
        MixtureOfExperts moe = layer(rnd, cfg);
        float[] router = named(moe.parameters(), "gate.weight").value();
        for (int i = 0; i < WIDTH; i++) {
            router[i] = 3f;   // expert 0 scores high for inputs with a positive mean
        }
        int tokens = 1024;
        double firstRatio = 0;
        int balancedAt = -1;
        double after = 0;
        double worstAfter = 0;
        int steps = 100;
        for (int step = 0; step < steps; step++) {
            float[] x = new float[tokens * WIDTH];
            fill(rnd, x, 1);
            for (int i = 0; i < x.length; i++) {
                x[i] += 0.5f;
            }
            moe.resetLoads();
            forward(moe, x, tokens);
            float[] loads = moe.loads();
            double ratio = max(loads) / (sum(loads) / loads.length);
            if (step == 0) {
                firstRatio = ratio;
            }
            if (balancedAt < 0 && ratio < 1.2) {
                balancedAt = step;
            }
            if (step >= steps - 30) {
                after += ratio / 30;
                worstAfter = Math.max(worstAfter, ratio);
            }
            moe.balance(0.01, loads);
        }
        System.out.printf("skewed router: max/mean load %.2f at step 0, below 1.2 from step %d; over the last 30 steps mean %.3f, "
                + "worst %.3f%n", firstRatio, balancedAt, after, worstAfter);
        assertTrue(firstRatio > 2, "the router is skewed: max/mean " + firstRatio);
        assertTrue(balancedAt >= 0 && balancedAt <= 60, "max/mean load below 1.2 at step " + balancedAt);
        // It stays balanced: 256 routed rows per expert on average fluctuate by about ±14, so the largest
        // of 8 experts in one step sits near 1.1; the mean over 30 steps must be below 1.2.
        assertTrue(after < 1.2, "mean max/mean load over the last 30 steps " + after);
        assertTrue(worstAfter < 1.5, "worst max/mean load over the last 30 steps " + worstAfter);
    }

    static float max(float[] a) {
        float m = Float.NEGATIVE_INFINITY;
        for (float v : a) {
            m = Math.max(m, v);
        }
        return m;
    }

    @Test
    void badSettingsAreNamed() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new MoeConfig(4, 5, 3, 0, 1, 0)).getMessage()
                .contains("active experts must be in 1..4, got 5"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new MoeConfig(4, 2, 3, 0, Double.NaN, 0)).getMessage()
                .contains("routed scale must be finite and > 0, got NaN"));
        MixtureOfExperts moe = layer(new Random(1), new MoeConfig(4, 2, 3, 0, 1, 0));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> moe.balance(-1, new float[4])).getMessage()
                .contains("got -1.0"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> moe.balance(0.1, new float[3])).getMessage()
                .contains("3 loads for 4 experts"));
        LlamaConfig trunk = new LlamaConfig(16, 8, 2, 2, 2, 12, 4, false, 10000, 1e-5, 0.02);
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new DeepSeekConfig(trunk, new MoeConfig(4, 2, 3, 0, 1, 3)))
                .getMessage().contains("3 first dense layers of only 2 layers"));
    }

    @Test
    void aDeepSeekModelKeepsHuggingFaceNamesAndItsFirstLayerDense() {
        LlamaConfig trunk = new LlamaConfig(16, 8, 3, 2, 2, 12, 4, false, 10000, 1e-5, 0.02);
        DecoderModel model = new DeepSeekConfig(trunk, new MoeConfig(4, 2, 3, 1, 2.446, 1)).create();
        List<String> names = model.parameters().stream().map(Parameter::name).toList();
        assertTrue(names.contains("model.layers.0.mlp.gate_proj.weight"), "layer 0 dense");
        assertTrue(!names.contains("model.layers.0.mlp.gate.weight"));
        for (int layer = 1; layer < 3; layer++) {
            String p = "model.layers." + layer + ".mlp.";
            for (String n : List.of("gate.weight", "experts.gate_proj.weight", "experts.up_proj.weight", "experts.down_proj.weight",
                    "shared_experts.gate_proj.weight", "shared_experts.up_proj.weight", "shared_experts.down_proj.weight")) {
                assertTrue(names.contains(p + n), p + n + " in " + names);
            }
        }
        assertEquals(List.of("model.layers.1.mlp.gate.e_score_correction_bias", "model.layers.2.mlp.gate.e_score_correction_bias"),
                model.buffers().stream().map(Parameter::name).toList());
        Parameter experts = model.parameters().stream().filter(p -> p.name().equals("model.layers.1.mlp.experts.down_proj.weight"))
                .findFirst().orElseThrow();
        assertArrayEquals(new int[] {4, 8, 3}, experts.shape());
        assertEquals(4, experts.layout().count(), "each expert its own matrix for Muon");
        model.initialize(1);
        int[] tokens = {1, 2, 3, 4, 5, 6, 7, 8};
        try (Graph g = new Graph(backend)) {
            Tensor loss = model.loss(g, tokens, tokens, 2, 4);
            assertTrue(Float.isFinite(loss.item()));
            g.backward(loss);
        }
        float[] loads = model.expertLoads();
        assertEquals(8, loads.length, "two MoE layers of 4 experts");
        assertEquals(2 * 8 * 2, sum(loads), "8 tokens, 2 experts each, in 2 layers");
        model.balanceExperts(0.5, loads);
        model.resetExpertLoads();
        assertEquals(0, sum(model.expertLoads()));
        assertThrows(IllegalArgumentException.class, () -> model.balanceExperts(0.5, new float[3]));
    }

    /**
     * The size arithmetic of a DeepSeek config against real models: the parameter counts exactly,
     * and the floats of a training pass as an upper bound within twice the measured peak.
     */
    @Test
    void deepSeekSizesAreTheModelsParameterCountsAndBoundItsTrainingPass() {
        LlamaConfig trunk = new LlamaConfig(24, 16, 3, 4, 2, 20, 6, false, 10000, 1e-5, 0.02);
        DeepSeekConfig[] configs = {
                new DeepSeekConfig(trunk, new MoeConfig(6, 2, 8, 1, 2.446, 1)),
                new DeepSeekConfig(trunk, new MoeConfig(5, 3, 4, 0, 1.0, 0), new MlaConfig(0, 8, 4, 2, 6)),
                new DeepSeekConfig(trunk, new MoeConfig(4, 1, 6, 2, 1.5, 2), new MlaConfig(6, 8, 4, 4, 4))};
        for (DeepSeekConfig config : configs) {
            DecoderModel model = config.create();
            long all = model.parameters().stream().mapToLong(Parameter::size).sum();
            long hidden = model.parameters().stream().filter(p -> p.role() == dev.muon4j.optim.ParamRole.HIDDEN_MATRIX)
                    .mapToLong(Parameter::size).sum();
            long largest = model.parameters().stream().filter(p -> p.layout() != null).mapToLong(Parameter::size).max().orElseThrow();
            assertEquals(all, config.parameterCount(), config + ": parameters");
            assertEquals(hidden, config.hiddenMatrixParameterCount(), config + ": hidden matrices");
            assertEquals(largest, config.largestHiddenMatrix(), config + ": largest matrix parameter");
            model.initialize(2);
            for (int batch : new int[] {1, 3}) {
                Random r = new Random(batch);
                int[] inputs = new int[batch * trunk.contextLength()];
                int[] targets = new int[inputs.length];
                for (int i = 0; i < inputs.length; i++) {
                    inputs[i] = r.nextInt(trunk.vocabSize());
                    targets[i] = r.nextInt(trunk.vocabSize());
                }
                try (Graph g = new Graph(backend)) {
                    g.backward(model.loss(g, inputs, targets, batch, trunk.contextLength()));
                    long bound = config.trainingStepFloats(batch);
                    assertTrue(bound >= g.peakFloats() && bound <= 2 * g.peakFloats(),
                            config + ", batch " + batch + ": bound " + bound + ", measured " + g.peakFloats());
                }
            }
        }
    }

    /** The sequence-wise balance loss against DeepSeek-V3's eq. 17–20 in float64, per sequence, averaged. */
    @Test
    void theSequenceWiseBalanceLossIsDeepSeekV3s() {
        Random r = new Random(17);
        MoeConfig cfg = new MoeConfig(5, 2, 3, 0, 2.446, 0, 0.01);
        MixtureOfExperts moe = layer(r, cfg);
        int batch = 3;
        int time = 4;
        float[] x = new float[batch * time * WIDTH];
        fill(r, x, 1);
        float[] router = named(moe.parameters(), "gate.weight").value();
        try (Graph g = new Graph(backend)) {
            g.setRecording(false);
            moe.forward(g, g.constant(x, batch * time, WIDTH), batch, time);
            double want = 0;
            for (int b = 0; b < batch; b++) {
                double[] f = new double[5];
                double[] p = new double[5];
                for (int t = 0; t < time; t++) {
                    double[] s = new double[5];
                    double sum = 0;
                    for (int e = 0; e < 5; e++) {
                        double u = 0;
                        for (int i = 0; i < WIDTH; i++) {
                            u += router[e * WIDTH + i] * x[(b * time + t) * WIDTH + i];
                        }
                        s[e] = sigmoid(u);
                        sum += s[e];
                    }
                    Integer[] order = {0, 1, 2, 3, 4};
                    Arrays.sort(order, (a, c) -> s[c] != s[a] ? Double.compare(s[c], s[a]) : Integer.compare(a, c));
                    for (int j = 0; j < 2; j++) {
                        f[order[j]] += 5.0 / (2.0 * time);
                    }
                    for (int e = 0; e < 5; e++) {
                        p[e] += s[e] / sum / time;
                    }
                }
                for (int e = 0; e < 5; e++) {
                    want += 0.01 * f[e] * p[e] / batch;
                }
            }
            assertEquals(want, moe.auxiliaryLoss().item(), 1e-6 * want);
            // Perfect balance gives α: f_i = 1 on average and Σ P_i = 1; skew gives more.
            assertTrue(want > 0.005 && want < 0.05, "loss " + want);
        }
        MixtureOfExperts without = layer(new Random(1), new MoeConfig(5, 2, 3, 0, 2.446, 0));
        try (Graph g = new Graph(backend)) {
            without.forward(g, g.constant(x, batch * time, WIDTH), batch, time);
            assertEquals(null, without.auxiliaryLoss(), "no α, no loss");
        }
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new MoeConfig(5, 2, 3, 0, 2.446, 0, -1)).getMessage()
                .contains("balance loss alpha must be finite and >= 0, got -1.0"));
    }
}
