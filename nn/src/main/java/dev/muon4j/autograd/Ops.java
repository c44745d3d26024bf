package dev.muon4j.autograd;

/**
 * The operations a Llama-style decoder needs, each with its backward next to its forward (in the
 * classes this delegates to). Shape letters: N rows (B·T), B batch, T time, C channels, V vocabulary.
 */
public final class Ops {
    private Ops() {
    }

    /** y (N, out) = x (N, in) · Wᵀ with W (out, in), as {@code torch.nn.functional.linear}. */
    public static Tensor linear(Graph g, Tensor x, Tensor w) {
        return LinearOps.linear(g, x, w);
    }

    /** y (…, M, N) = a (…, M, K) · b (…, K, N); b may be 2-D and shared across a's batch. */
    public static Tensor matmul(Graph g, Tensor a, Tensor b) {
        return LinearOps.matmul(g, a, b);
    }

    /** The same values under another shape of equal size: a zero-copy view whose gradient flows back into x. */
    public static Tensor reshape(Graph g, Tensor x, int... shape) {
        return ShapeOps.reshape(g, x, shape);
    }

    /** a + b, same shapes. */
    public static Tensor add(Graph g, Tensor a, Tensor b) {
        return ElementwiseOps.add(g, a, b);
    }

    /** a ⊙ b, same shapes. */
    public static Tensor mul(Graph g, Tensor a, Tensor b) {
        return ElementwiseOps.mul(g, a, b);
    }

    /** x·σ(x). */
    public static Tensor silu(Graph g, Tensor x) {
        return ElementwiseOps.silu(g, x);
    }

    /** silu(gate) ⊙ up. */
    public static Tensor swiglu(Graph g, Tensor gate, Tensor up) {
        return ElementwiseOps.swiglu(g, gate, up);
    }

    /** Rows of table (V, C) selected by token ids: (N, C). */
    public static Tensor embedding(Graph g, Tensor table, int[] tokens) {
        return NormOps.embedding(g, table, tokens);
    }

    /** x / √(mean(x²) + eps) ⊙ gain over the last dimension. */
    public static Tensor rmsNorm(Graph g, Tensor x, Tensor gain, float eps) {
        return NormOps.rmsNorm(g, x, gain, eps);
    }

    /** Rotary position embedding of x (B·T, heads·D), sequences of {@code time} positions. */
    public static Tensor rope(Graph g, Rope rope, Tensor x, int time) {
        return rope.apply(g, x, time);
    }

    /** Causal self-attention with grouped key/value heads: q (B·T, H·D), k and v (B·T, K·D) → (B·T, H·D). */
    public static Tensor causalAttention(Graph g, Tensor q, Tensor k, Tensor v, int batch, int time, int heads, int kvHeads) {
        return AttentionOps.causal(g, q, k, v, batch, time, heads, kvHeads);
    }

    /**
     * Causal self-attention as {@link #causalAttention(Graph, Tensor, Tensor, Tensor, int, int, int, int)},
     * which also raises {@code maxLogits[offset + h]} (for h &lt; heads) to query head h's largest
     * pre-softmax logit q·k/√D over the batch, the positions and the keys each position sees; the
     * array is modified, nothing else of it is read or written.
     */
    public static Tensor causalAttention(Graph g, Tensor q, Tensor k, Tensor v, int batch, int time, int heads, int kvHeads,
                                         float[] maxLogits, int offset) {
        return AttentionOps.causal(g, q, k, v, batch, time, heads, kvHeads, java.util.Objects.requireNonNull(maxLogits, "maxLogits"),
                offset);
    }

    /**
     * Causal self-attention whose value heads have their own dimension Dv (Multi-head Latent
     * Attention): q (B·T, H·D), k (B·T, K·D), v (B·T, K·Dv) → (B·T, H·Dv), logits q·k/√D; raises
     * {@code maxLogits[offset + h]} as {@link #causalAttention(Graph, Tensor, Tensor, Tensor, int, int, int, int, float[], int)}.
     * With Dv = D it computes exactly what that method does.
     */
    public static Tensor causalAttention(Graph g, Tensor q, Tensor k, Tensor v, int batch, int time, int heads, int kvHeads,
                                         int valueHeadDim, float[] maxLogits, int offset) {
        return AttentionOps.causal(g, q, k, v, batch, time, heads, kvHeads, valueHeadDim,
                java.util.Objects.requireNonNull(maxLogits, "maxLogits"), offset);
    }

    /**
     * Columns [from, from + width) of each of the H equal column blocks of x (N, H·W): (N, H·width).
     * With H = 1, a column slice.
     */
    public static Tensor sliceHeads(Graph g, Tensor x, int heads, int from, int width) {
        return HeadOps.sliceHeads(g, x, heads, from, width);
    }

    /** a (N, H·Wa) and b (N, H·Wb) → (N, H·(Wa + Wb)) whose head h is a's head h followed by b's. */
    public static Tensor concatHeads(Graph g, Tensor a, Tensor b, int heads) {
        return HeadOps.concatHeads(g, a, b, heads);
    }

    /** x (N, W) repeated for each of H heads: (N, H·W); one key part shared by every head. */
    public static Tensor repeatHeads(Graph g, Tensor x, int heads) {
        return HeadOps.repeatHeads(g, x, heads);
    }

    /** σ(x) = 1 / (1 + e^(−x)), elementwise. */
    public static Tensor sigmoid(Graph g, Tensor x) {
        return ExpertOps.sigmoid(g, x);
    }

    /**
     * Gates of the chosen experts (N, K): {@code scale · s[n, e] / (Σ of the token's chosen s + 1e-20)}
     * for scores s (N, E) and the N·K chosen expert ids, token by token.
     */
    public static Tensor topKGates(Graph g, Tensor scores, int[] chosen, int k, double scale) {
        return ExpertOps.topKGates(g, scores, chosen, k, scale);
    }

    /** Rows {@code rows[m]} of x (N, C): (M, C). */
    public static Tensor gatherRows(Graph g, Tensor x, int[] rows) {
        return ExpertOps.gatherRows(g, x, rows);
    }

    /** Rows [offsets[e], offsets[e+1]) of x (M, in) times expert e's W[e]ᵀ, W (E, out, in): (M, out). */
    public static Tensor groupedLinear(Graph g, Tensor x, Tensor w, int[] offsets) {
        return ExpertOps.groupedLinear(g, x, w, offsets);
    }

    /** out (N, C) with out[slot[m] / K] += gates[slot[m]] · y[m]: the weighted scatter-add of experts' rows y (M, C). */
    public static Tensor combine(Graph g, Tensor y, Tensor gates, int[] slot) {
        return ExpertOps.combine(g, y, gates, slot);
    }

    /**
     * DeepSeek-V3's sequence-wise balance loss α·Σ_i f_i·P_i of router affinities (B·T, E) given the
     * chosen experts, averaged over the B sequences: a one-element tensor.
     */
    public static Tensor balanceLoss(Graph g, Tensor scores, int[] chosen, int batch, int time, int k, double alpha) {
        return ExpertOps.balanceLoss(g, scores, chosen, batch, time, k, alpha);
    }

    /** Mean softmax cross-entropy of logits (N, V) against N target ids: a one-element tensor. */
    public static Tensor crossEntropy(Graph g, Tensor logits, int[] targets) {
        return LossOps.crossEntropy(g, logits, targets);
    }
}
