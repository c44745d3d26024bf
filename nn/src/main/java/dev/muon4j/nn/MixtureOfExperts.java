package dev.muon4j.nn;

import dev.muon4j.autograd.Graph;
import dev.muon4j.autograd.Ops;
import dev.muon4j.autograd.Tensor;
import dev.muon4j.optim.ParamRole;
import dev.muon4j.optim.Parameter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A DeepSeek-V3 Mixture-of-Experts feed-forward layer (arXiv 2412.19437, §2.1.2; Hugging Face
 * {@code DeepseekV3MoE}). For token x (a row of the normalised residual stream):
 * <pre>
 * s = σ(W_r · x)                                   (E) router affinities, sigmoid (eq. 15)
 * chosen = the K experts of largest s + b          b only steers the choice ({@link Dispatch}, eq. 16)
 * g_e = c · s_e / (Σ_chosen s + 1e-20)             the gates, normalised, times the routed scale c (eq. 13)
 * y = Σ_chosen g_e · SwiGLU_e(x) + SwiGLU_shared(x)
 * </pre>
 * Tokens are grouped by expert, each expert runs one GEMM per projection over its rows
 * ({@link Ops#groupedLinear}), and the combine is one weighted scatter-add ({@link Ops#combine}).
 *
 * <p>Parameters, with Hugging Face's names under {@code prefix} (e.g. {@code model.layers.1.mlp.}):
 * the router {@code gate.weight} (E, C); the experts' stacked projections {@code experts.gate_proj.weight}
 * and {@code experts.up_proj.weight} (E, F, C) and {@code experts.down_proj.weight} (E, C, F), each
 * expert a matrix of its own for Muon; the shared experts {@code shared_experts.*} as one SwiGLU of
 * width S·F. The bias b is {@code gate.e_score_correction_bias} (E), a buffer: not trained by the
 * optimizer, moved by {@link #balance} (auxiliary-loss-free load balancing) and saved with the weights.
 * With {@link MoeConfig#balanceLossAlpha()} &gt; 0 each forward pass also computes DeepSeek-V3's
 * sequence-wise balance loss ({@link #auxiliaryLoss()}).
 *
 * <p>Every forward pass adds each expert's routed tokens to {@link #loads()} until {@link #resetLoads()}.
 *
 * <p>The router is a hidden matrix, so a Muon run updates it with Muon. That is Moonlight's choice as
 * its published example code makes it (MoonshotAI/Moonlight {@code examples/toy_train.py}: every
 * parameter of two or more dimensions but the embedding and the head goes to Muon, which takes in a
 * DeepseekV3 router's {@code mlp.gate.weight}); muon4j follows it so that a Muon run is Moonlight's. A
 * router on AdamW is one rule away: {@code HybridOptimizer.Builder.rule("*.mlp.gate.weight",
 * UpdateRule.adamw(config))}.
 */
public final class MixtureOfExperts implements FeedForward {
    private final MoeConfig config;
    private final Parameter router;      // (E, C)
    private final Parameter gate;        // (E, F, C)
    private final Parameter up;          // (E, F, C)
    private final Parameter down;        // (E, C, F)
    private final SwiGlu shared;         // width S·F; null without shared experts
    private final Parameter bias;        // (E) buffer
    private final float[] loads;         // (E) tokens routed since the last reset
    private Tensor balanceLoss;          // (1) the last forward's sequence-wise balance loss; null without one

    /** A zero layer of width {@code width} (C); names start with {@code prefix}. */
    public MixtureOfExperts(String prefix, int width, MoeConfig config) {
        this.config = config;
        int e = config.experts();
        int f = config.expertWidth();
        router = Parameter.matrix(prefix + "gate.weight", e, width);
        int stack = Math.multiplyExact(Math.multiplyExact(e, f), width);
        gate = Parameter.stackedMatrices(prefix + "experts.gate_proj.weight", e, f, width, new float[stack], new float[stack]);
        up = Parameter.stackedMatrices(prefix + "experts.up_proj.weight", e, f, width, new float[stack], new float[stack]);
        down = Parameter.stackedMatrices(prefix + "experts.down_proj.weight", e, width, f, new float[stack], new float[stack]);
        shared = config.sharedExperts() > 0 ? new SwiGlu(prefix + "shared_experts.", width, config.sharedExperts() * f) : null;
        bias = Parameter.zeros(prefix + "gate.e_score_correction_bias", ParamRole.BIAS, e);
        loads = new float[e];
    }

    public MoeConfig config() {
        return config;
    }

    @Override
    public List<Parameter> parameters() {
        List<Parameter> all = new ArrayList<>(List.of(router, gate, up, down));
        if (shared != null) {
            all.addAll(shared.parameters());
        }
        return all;
    }

    @Override
    public List<Parameter> buffers() {
        return List.of(bias);
    }

    /** All rows as one sequence (the balance loss, if any, counts them together). */
    @Override
    public Tensor forward(Graph g, Tensor x) {
        return forward(g, x, 1, x.rows());
    }

    @Override
    public Tensor auxiliaryLoss() {
        return balanceLoss;
    }

    @Override
    public Tensor forward(Graph g, Tensor x, int batch, int time) {
        int tokens = x.rows();
        int k = config.activeExperts();
        Tensor scores = Ops.sigmoid(g, Ops.linear(g, x, g.parameter(router)));         // (N, E)
        Dispatch d = Dispatch.choose(scores.data(), bias.value(), tokens, k);
        for (int e = 0; e < loads.length; e++) {
            loads[e] += d.load(e);
        }
        balanceLoss = config.balanceLossAlpha() > 0
                ? Ops.balanceLoss(g, scores, d.chosen(), batch, time, k, config.balanceLossAlpha()) : null; // (1)
        Tensor gates = Ops.topKGates(g, scores, d.chosen(), k, config.routedScale());  // (N, K)
        Tensor routed = Ops.gatherRows(g, x, d.tokenOfRow());                           // (M, C), grouped by expert
        Tensor a = Ops.groupedLinear(g, routed, g.parameter(gate), d.offsets());        // (M, F)
        Tensor b = Ops.groupedLinear(g, routed, g.parameter(up), d.offsets());          // (M, F)
        Tensor y = Ops.groupedLinear(g, Ops.swiglu(g, a, b), g.parameter(down), d.offsets()); // (M, C)
        Tensor out = Ops.combine(g, y, gates, d.slotOfRow());                           // (N, C)
        return shared == null ? out : Ops.add(g, out, shared.forward(g, x));            // (N, C)
    }

    /** Tokens routed to each expert by the forward passes since the last {@link #resetLoads()}: a copy. */
    public float[] loads() {
        return loads.clone();
    }

    /** Forgets the counted loads. */
    public void resetLoads() {
        Arrays.fill(loads, 0f);
    }

    /**
     * Auxiliary-loss-free load balancing (arXiv 2412.19437, §2.1.2): after a step, each expert's
     * bias moves by γ towards balance, {@code b_e ← b_e + γ·sign(mean load − load_e)}: down for an
     * overloaded expert, up for an underloaded one, unchanged at the mean.
     *
     * @param gamma the bias update speed γ (DeepSeek-V3: 0.001 for most of its training), &gt;= 0
     * @param loads tokens per expert over the step (summed over ranks in data-parallel training)
     */
    public void balance(double gamma, float[] loads) {
        if (!(gamma >= 0) || !Double.isFinite(gamma)) {
            throw new IllegalArgumentException("bias update speed must be finite and >= 0, got " + gamma);
        }
        if (loads.length != config.experts()) {
            throw new IllegalArgumentException(loads.length + " loads for " + config.experts() + " experts");
        }
        double mean = 0;
        for (float l : loads) {
            mean += l;
        }
        mean /= loads.length;
        float[] b = bias.value();
        for (int e = 0; e < b.length; e++) {
            b[e] = (float) (b[e] + gamma * Math.signum(mean - loads[e]));
        }
    }
}
