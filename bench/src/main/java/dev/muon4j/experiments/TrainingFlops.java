package dev.muon4j.experiments;

import dev.muon4j.nn.LlamaConfig;

/**
 * Training FLOPs of a dense Llama model, counted as 6·N·D plus attention (the accounting of Kaplan
 * et al., arXiv 2001.08361, §2.1, and of Chinchilla, arXiv 2203.15556, Appendix F):
 *
 * <pre>
 * N        = the parameters of the matrices every token is multiplied by: the attention projections
 *            (q, k, v, o) and the SwiGLU projections (gate, up, down) of every layer, and the output head
 *            (V·C, also when tied to the embedding). The embedding lookup, the norms and the rotary
 *            rotation are left out: they multiply nothing, or O(C) per token.
 * 6·N      per token: 2·N for the forward pass, 4·N for the backward pass (gradients of inputs and of weights).
 * attention per token and layer, forward: the token at position t (of T) scores t + 1 keys with each
 *            of the H heads (2·D FLOPs each, D the head dimension) and sums as many values (2·D each);
 *            over t = 0 … T−1 that is on average 4·H·D·(T+1)/2 = 2·H·D·(T+1). Training: 3 × that,
 *            6·L·H·D·(T+1) per token over the L layers.
 * C = D·(6·N + 6·L·H·D·(T+1))   for D training tokens.
 * </pre>
 *
 * Kaplan's 2·n_layer·n_ctx·d_attn per token is the same forward count with T + 1 rounded to T.
 */
public final class TrainingFlops {
    private TrainingFlops() {
    }

    /** N: the parameters of every layer's projections and of the output head. */
    public static long matmulParameters(LlamaConfig c) {
        return c.hiddenMatrixParameterCount() + (long) c.vocabSize() * c.width();
    }

    /** The causal attention's scores and value sums of one training token, forward and backward: 6·L·H·D·(T+1). */
    public static double attentionPerToken(LlamaConfig c) {
        return 6.0 * c.layers() * c.heads() * c.headDim() * (c.contextLength() + 1.0);
    }

    /** FLOPs of one training token: 6·N plus attention. */
    public static double perToken(LlamaConfig c) {
        return 6.0 * matmulParameters(c) + attentionPerToken(c);
    }

    /** FLOPs of training on {@code tokens} tokens. */
    public static double training(LlamaConfig c, long tokens) {
        if (tokens < 0) {
            throw new IllegalArgumentException("training tokens must be >= 0, got " + tokens);
        }
        return perToken(c) * tokens;
    }
}
