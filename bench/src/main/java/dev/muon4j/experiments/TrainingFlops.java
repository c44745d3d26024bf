package dev.muon4j.experiments;

import dev.muon4j.nn.DeepSeekConfig;
import dev.muon4j.nn.LlamaConfig;
import dev.muon4j.nn.MlaConfig;
import dev.muon4j.nn.ModelConfig;
import dev.muon4j.nn.MoeConfig;

/**
 * Training FLOPs of a model, counted as 6·N·D plus attention (the accounting of Kaplan et al.,
 * arXiv 2001.08361, §2.1, and of Chinchilla, arXiv 2203.15556, Appendix F):
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
 *
 * <p>A Mixture-of-Experts model ({@link DeepSeekConfig}) counts its active parameters, the matrices a token is
 * actually multiplied by, as Moonlight's and DeepSeek-V3's compute budgets do (arXiv 2412.19437, Table 1: "activated
 * parameters"): every layer's attention projections, the dense SwiGLU of the first dense layers, and in each MoE layer
 * the router (C·E, every token scores every expert) and the SwiGLUs of the K routed experts the token goes to and of the
 * S shared ones, 3·C·W each (W an expert's width); the E − K routed experts it does not go to are left out. With
 * Multi-head Latent Attention the projections are the latent ones (their parameters as the config counts them) and a
 * head scores with Dn + Dr columns and sums Dv, so the attention term is 3·L·H·(Dn + Dr + Dv)·(T+1), which is the
 * formula above when both are D.
 */
public final class TrainingFlops {
    private TrainingFlops() {
    }

    /**
     * N: the parameters of the matrices every token is multiplied by: every layer's projections and the output head; for
     * a Mixture-of-Experts model, in its MoE layers the router and the active routed and shared experts only.
     */
    public static long matmulParameters(ModelConfig c) {
        return switch (c) {
            case LlamaConfig l -> l.hiddenMatrixParameterCount() + (long) l.vocabSize() * l.width();
            case DeepSeekConfig d -> d.hiddenMatrixParameterCount() - idleExpertParameters(d) + (long) d.vocabSize() * d.trunk().width();
        };
    }

    /** The routed experts' parameters a token does not go to: (E − K)·3·W·C in each MoE layer. */
    private static long idleExpertParameters(DeepSeekConfig d) {
        MoeConfig m = d.moe();
        return (long) d.expertLayers() * (m.experts() - m.activeExperts()) * 3L * m.expertWidth() * d.trunk().width();
    }

    /**
     * The causal attention's scores and value sums of one training token, forward and backward: 6·L·H·D·(T+1), or with
     * latent attention 3·L·H·(Dn + Dr + Dv)·(T+1).
     */
    public static double attentionPerToken(ModelConfig c) {
        LlamaConfig t = c.trunk();
        if (c instanceof DeepSeekConfig d && d.mla() != null) {
            MlaConfig mla = d.mla();
            return 3.0 * t.layers() * t.heads() * (mla.queryHeadDim() + mla.valueHeadDim()) * (t.contextLength() + 1.0);
        }
        return 6.0 * t.layers() * t.heads() * t.headDim() * (t.contextLength() + 1.0);
    }

    /** FLOPs of one training token: 6·N plus attention. */
    public static double perToken(ModelConfig c) {
        return 6.0 * matmulParameters(c) + attentionPerToken(c);
    }

    /** FLOPs of training on {@code tokens} tokens. */
    public static double training(ModelConfig c, long tokens) {
        if (tokens < 0) {
            throw new IllegalArgumentException("training tokens must be >= 0, got " + tokens);
        }
        return perToken(c) * tokens;
    }
}
