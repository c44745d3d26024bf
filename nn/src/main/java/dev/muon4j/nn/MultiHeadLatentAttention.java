package dev.muon4j.nn;

import dev.muon4j.autograd.Graph;
import dev.muon4j.autograd.Ops;
import dev.muon4j.autograd.Rope;
import dev.muon4j.autograd.Tensor;
import dev.muon4j.optim.ParamRole;
import dev.muon4j.optim.Parameter;
import dev.muon4j.optim.QkClip;
import java.util.ArrayList;
import java.util.List;

/**
 * Multi-head Latent Attention (DeepSeek-V2, arXiv 2405.04434, §2.1; DeepSeek-V3, arXiv 2412.19437,
 * §2.1.1), computed as Hugging Face's {@code DeepseekV3Attention} does (modeling_deepseek_v3.py), with
 * its parameter names under {@code prefix}. Keys and values come from one low-rank latent per token,
 * RMS-normalised; each head's query and key have Dn content columns and Dr rotary columns, and the
 * rotary key is one for all heads. Shape letters: N = B·T rows, C width, H heads, R_q query rank,
 * R_kv key-value rank, Dn content, Dr rotary, Dv value head dimension ({@link MlaConfig}).
 * <pre>
 * q      = q_proj(x)                                    (N, H·(Dn+Dr))   without a query rank
 *        = q_b_proj(RMSNorm_q(q_a_proj(x)))             q_a: (N, R_q)    with one
 * [c, kR] = kv_a_proj_with_mqa(x)                       (N, R_kv + Dr)
 * kv     = kv_b_proj(RMSNorm_kv(c))                     (N, H·(Dn+Dv))   head h = [k^C_h, v_h]
 * q_h    = [q^C_h, RoPE(q^R_h)],  k_h = [k^C_h, RoPE(kR)]                every head the same rotary key
 * o_h    = softmax_causal(q_h·k_hᵀ / √(Dn+Dr)) · v_h   (N, Dv)
 * y      = o_proj([o_1 … o_H])                          (N, C)
 * </pre>
 *
 * <p>Choices, with their sources:
 * <ul>
 * <li>The latent norms' ε is 1e-6: Hugging Face builds {@code q_a_layernorm} and {@code kv_a_layernorm}
 *     as {@code DeepseekV3RMSNorm(rank)} without the config's {@code rms_norm_eps}, so they take that
 *     class's default ε = 1e-6.</li>
 * <li>RoPE is muon4j's {@link Rope}, the "rotate half" form (channel i with i + Dr/2) over Dr columns
 *     with θ^(−2i/Dr), as Hugging Face's rotary table for DeepseekV3 ({@code head_dim = qk_rope_head_dim}).
 *     Hugging Face's {@code rope_interleave} (default true in {@code DeepseekV3Config}) first reorders each
 *     rotary part's channels (2i, 2i+1) to (i, i + Dr/2) and then rotates halves, i.e. it rotates adjacent
 *     pairs. Query and key are reordered alike, so the logits are the same as here once the rotary rows of
 *     each query head (in {@code q_proj}/{@code q_b_proj}) and the last Dr rows of
 *     {@code kv_a_proj_with_mqa} are permuted: row i here = row 2i there, row Dr/2 + i here = row 2i + 1
 *     there. Training from scratch, the two are the same model; loading a Hugging Face checkpoint needs that
 *     row permutation, which muon4j does not do.</li>
 * <li>The softmax scale is 1/√(Dn + Dr) ({@code qk_head_dim ** -0.5}). Hugging Face multiplies it by
 *     YaRN's mscale² only when {@code rope_scaling} is configured; Moonlight configures none, and muon4j
 *     has no YaRN, so there is no mscale here.</li>
 * <li>Max logits, one per head, are recorded as {@link GroupedQueryAttention} does; {@link #qkClip} is
 *     Kimi K2's MuonClip for MLA ({@link QkClip#clipLatent}).</li>
 * </ul>
 */
public final class MultiHeadLatentAttention implements Attention {
    /** ε of {@code q_a_layernorm} and {@code kv_a_layernorm}: Hugging Face {@code DeepseekV3RMSNorm}'s default. */
    public static final float LATENT_NORM_EPS = 1e-6f;

    private final MlaConfig config;
    private final int heads;
    private final Rope rope;
    private final Parameter wq;       // (H·(Dn+Dr), C)   q_proj; null with a query rank
    private final Parameter wqA;      // (R_q, C)         q_a_proj; null without
    private final Parameter qNorm;    // (R_q)            q_a_layernorm; null without
    private final Parameter wqB;      // (H·(Dn+Dr), R_q) q_b_proj; null without
    private final Parameter wkvA;     // (R_kv + Dr, C)   kv_a_proj_with_mqa
    private final Parameter kvNorm;   // (R_kv)           kv_a_layernorm
    private final Parameter wkvB;     // (H·(Dn+Dv), R_kv) kv_b_proj
    private final Parameter wo;       // (C, H·Dv)        o_proj
    private final List<Parameter> parameters;
    private final HeadMaxima maxima; // (H) largest attention logit since the last reset

    /**
     * A zero attention of width {@code width} (C) with {@code heads} heads; names start with
     * {@code prefix}; {@code rope} must have head dimension Dr.
     */
    public MultiHeadLatentAttention(String prefix, int width, int heads, MlaConfig config, Rope rope) {
        if (width < 1 || heads < 1) {
            throw new IllegalArgumentException("MLA: width and heads must be >= 1, got " + width + " and " + heads);
        }
        if (rope.headDim() != config.ropeHeadDim()) {
            throw new IllegalArgumentException("MLA: the rotary table has head dimension " + rope.headDim()
                    + ", the rotary parts have " + config.ropeHeadDim());
        }
        this.config = config;
        this.heads = heads;
        this.rope = rope;
        int qRows = heads * config.queryHeadDim();
        List<Parameter> all = new ArrayList<>();
        if (config.hasQueryRank()) {
            wq = null;
            wqA = add(all, Parameter.matrix(prefix + "q_a_proj.weight", config.queryRank(), width));
            qNorm = add(all, Parameter.zeros(prefix + "q_a_layernorm.weight", ParamRole.NORM, config.queryRank()));
            wqB = add(all, Parameter.matrix(prefix + "q_b_proj.weight", qRows, config.queryRank()));
        } else {
            wq = add(all, Parameter.matrix(prefix + "q_proj.weight", qRows, width));
            wqA = null;
            qNorm = null;
            wqB = null;
        }
        wkvA = add(all, Parameter.matrix(prefix + "kv_a_proj_with_mqa.weight", config.kvRank() + config.ropeHeadDim(), width));
        kvNorm = add(all, Parameter.zeros(prefix + "kv_a_layernorm.weight", ParamRole.NORM, config.kvRank()));
        wkvB = add(all, Parameter.matrix(prefix + "kv_b_proj.weight", heads * (config.nopeHeadDim() + config.valueHeadDim()),
                config.kvRank()));
        wo = add(all, Parameter.matrix(prefix + "o_proj.weight", width, heads * config.valueHeadDim()));
        parameters = List.copyOf(all);
        maxima = new HeadMaxima(heads);
    }

    private static Parameter add(List<Parameter> all, Parameter p) {
        all.add(p);
        return p;
    }

    public MlaConfig config() {
        return config;
    }

    /** In Hugging Face's module order: q_proj (or q_a_proj, q_a_layernorm, q_b_proj), kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj, o_proj. */
    @Override
    public List<Parameter> parameters() {
        return parameters;
    }

    @Override
    public Tensor forward(Graph g, Tensor x, int batch, int time) {
        int h = heads;
        int dn = config.nopeHeadDim();
        int dr = config.ropeHeadDim();
        int dv = config.valueHeadDim();
        int rkv = config.kvRank();
        Tensor q = config.hasQueryRank()
                ? Ops.linear(g, Ops.rmsNorm(g, Ops.linear(g, x, g.parameter(wqA)), g.parameter(qNorm), LATENT_NORM_EPS),
                        g.parameter(wqB))                                                  // (N, H·(Dn+Dr)) via (N, R_q)
                : Ops.linear(g, x, g.parameter(wq));                                       // (N, H·(Dn+Dr))
        Tensor qRot = Ops.rope(g, rope, Ops.sliceHeads(g, q, h, dn, dr), time);            // (N, H·Dr)
        Tensor query = Ops.concatHeads(g, Ops.sliceHeads(g, q, h, 0, dn), qRot, h);        // (N, H·(Dn+Dr))
        Tensor kvA = Ops.linear(g, x, g.parameter(wkvA));                                  // (N, R_kv + Dr)
        Tensor latent = Ops.rmsNorm(g, Ops.sliceHeads(g, kvA, 1, 0, rkv), g.parameter(kvNorm), LATENT_NORM_EPS); // (N, R_kv)
        Tensor kRot = Ops.rope(g, rope, Ops.sliceHeads(g, kvA, 1, rkv, dr), time);         // (N, Dr)
        Tensor kv = Ops.linear(g, latent, g.parameter(wkvB));                              // (N, H·(Dn+Dv))
        Tensor key = Ops.concatHeads(g, Ops.sliceHeads(g, kv, h, 0, dn), Ops.repeatHeads(g, kRot, h), h); // (N, H·(Dn+Dr))
        Tensor value = Ops.sliceHeads(g, kv, h, dn, dv);                                   // (N, H·Dv)
        Tensor att = Ops.causalAttention(g, query, key, value, batch, time, h, h, dv, maxima.raised(), 0); // (N, H·Dv)
        return Ops.linear(g, att, g.parameter(wo));                                        // (N, C)
    }

    @Override
    public int heads() {
        return heads;
    }

    @Override
    public float[] maxLogits() {
        return maxima.copy();
    }

    @Override
    public void resetMaxLogits() {
        maxima.reset();
    }

    /**
     * Kimi K2's QK-clip for MLA (arXiv 2507.20534, the MuonClip section; {@link QkClip#clipLatent}): for
     * each head whose largest logit S_h exceeds τ, its content query and content key rows (in
     * {@code q_proj}/{@code q_b_proj} and {@code kv_b_proj}) × √(τ/S_h), its rotary query rows × τ/S_h;
     * the shared rotary key ({@code kv_a_proj_with_mqa}), the value rows and the latents' projections are
     * not touched.
     */
    @Override
    public int qkClip(double tau, double[] maxLogits, int offset) {
        double[] s = maxima.of(maxLogits, offset);
        return QkClip.clipLatent(queryProjection().value(), wkvB.value(), heads, config.nopeHeadDim(), config.ropeHeadDim(),
                config.valueHeadDim(), s, tau);
    }

    /** q_proj's (or q_b_proj's) rows are H blocks of Dn + Dr; kv_b_proj's are H blocks of Dn + Dv. */
    @Override
    public List<HeadRows> headRows() {
        return List.of(new HeadRows(queryProjection(), config.queryHeadDim()),
                new HeadRows(wkvB, config.nopeHeadDim() + config.valueHeadDim()));
    }

    /** The projection whose rows are the heads' queries: q_proj, or q_b_proj with a query rank. */
    private Parameter queryProjection() {
        return wq != null ? wq : wqB;
    }
}
