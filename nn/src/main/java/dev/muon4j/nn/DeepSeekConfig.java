package dev.muon4j.nn;

import dev.muon4j.autograd.Rope;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A DeepSeek-V3-style model, the architecture of Moonlight: the {@link LlamaConfig} trunk (its
 * {@code mlpWidth} is the dense layers' width [{@code intermediate_size}]) with the feed-forward
 * layers from {@code moe.firstDenseLayers()} on replaced by {@link MixtureOfExperts} layers, and in
 * every layer either the trunk's grouped-query attention or, given {@code mla},
 * {@link MultiHeadLatentAttention} with the trunk's heads (the trunk's key/value heads and head
 * dimension then do not apply; RoPE runs over the rotary head dimension with the trunk's θ and context).
 *
 * @param trunk the shared shape and the dense layers
 * @param moe   the expert layers
 * @param mla   the latent attention of every layer; null for grouped-query attention
 */
public record DeepSeekConfig(LlamaConfig trunk, MoeConfig moe, MlaConfig mla) implements ModelConfig {
    public DeepSeekConfig {
        java.util.Objects.requireNonNull(trunk, "trunk");
        java.util.Objects.requireNonNull(moe, "moe");
        if (moe.firstDenseLayers() > trunk.layers()) {
            throw new IllegalArgumentException("model config: " + moe.firstDenseLayers() + " first dense layers of only "
                    + trunk.layers() + " layers");
        }
    }

    /** With grouped-query attention. */
    public DeepSeekConfig(LlamaConfig trunk, MoeConfig moe) {
        this(trunk, moe, null);
    }

    @Override
    public Rope rope() {
        return mla == null ? ModelConfig.super.rope() : new Rope(mla.ropeHeadDim(), trunk.contextLength(), trunk.ropeTheta());
    }

    @Override
    public Attention attention(int layer, String prefix, Rope rope) {
        if (mla == null) {
            return ModelConfig.super.attention(layer, prefix, rope);
        }
        return new MultiHeadLatentAttention(prefix, trunk.width(), trunk.heads(), mla, rope);
    }

    @Override
    public int vocabSize() {
        return trunk.vocabSize();
    }

    @Override
    public int contextLength() {
        return trunk.contextLength();
    }

    /** The Mixture-of-Experts layers: every layer from the first dense ones on. */
    public int expertLayers() {
        return trunk.layers() - moe.firstDenseLayers();
    }

    /** All parameters but the routed experts a token does not go to: (E − K)·3·F·C per MoE layer fewer. */
    @Override
    public long activeParameterCount() {
        long idle = LlamaConfig.product(3L * (moe.experts() - moe.activeExperts()), moe.expertWidth(), trunk.width());
        return parameterCount() - LlamaConfig.product(expertLayers(), idle);
    }

    @Override
    public String describe() {
        String attention = mla == null ? String.format(java.util.Locale.ROOT, "%d heads (%d key/value)", trunk.heads(), trunk.kvHeads())
                : String.format(java.util.Locale.ROOT, "%d heads of latent attention (R_kv %d%s, Dn %d, Dr %d, Dv %d)", trunk.heads(),
                mla.kvRank(), mla.hasQueryRank() ? ", R_q " + mla.queryRank() : "", mla.nopeHeadDim(), mla.ropeHeadDim(), mla.valueHeadDim());
        return String.format(java.util.Locale.ROOT, "%,d parameters (%,d active): %d layers (%d dense, SwiGLU %d), width %d, %s, "
                        + "%d experts (%d active + %d shared) of width %d, routed scale %s, context %d, vocabulary %d%s",
                parameterCount(), activeParameterCount(), trunk.layers(), moe.firstDenseLayers(), trunk.mlpWidth(), trunk.width(),
                attention, moe.experts(), moe.activeExperts(), moe.sharedExperts(), moe.expertWidth(), moe.routedScale(),
                trunk.contextLength(), trunk.vocabSize(), trunk.tiedHead() ? ", tied head" : "");
    }

    @Override
    public java.util.List<java.util.Map.Entry<String, String>> summary() {
        java.util.Locale r = java.util.Locale.ROOT;
        String attention = mla == null ? String.format(r, "%d heads of %d (%d key/value)", trunk.heads(), trunk.headDim(), trunk.kvHeads())
                : String.format(r, "latent, %d heads (R_kv %d%s, Dn %d, Dr %d, Dv %d)", trunk.heads(), mla.kvRank(),
                mla.hasQueryRank() ? ", R_q " + mla.queryRank() : "", mla.nopeHeadDim(), mla.ropeHeadDim(), mla.valueHeadDim());
        return java.util.List.of(
                java.util.Map.entry("kind", "Mixture of Experts (DeepSeek-V3 style)"),
                java.util.Map.entry("parameters", String.format(r, "%,d, %,d active per token", parameterCount(), activeParameterCount())),
                java.util.Map.entry("layers", String.format(r, "%d, width %d", trunk.layers(), trunk.width())),
                java.util.Map.entry("attention", attention),
                java.util.Map.entry("feed-forward", String.format(r, "first %d SwiGLU %d; then %d experts of %d", moe.firstDenseLayers(),
                        trunk.mlpWidth(), moe.experts(), moe.expertWidth())),
                java.util.Map.entry("routing", String.format(r, "%d of %d + %d shared, routed scale %s", moe.activeExperts(), moe.experts(),
                        moe.sharedExperts(), moe.routedScale())),
                java.util.Map.entry("context", String.format(r, "%d tokens, vocabulary %d%s", trunk.contextLength(), trunk.vocabSize(),
                        trunk.tiedHead() ? ", tied head" : "")));
    }

    @Override
    public long parameterCount() {
        long c = trunk.width();
        long embeddings = LlamaConfig.product(trunk.tiedHead() ? 1 : 2, trunk.vocabSize(), c);
        long norms = LlamaConfig.product(2L * trunk.layers() + 1, c);
        long latentNorms = mla == null ? 0 : LlamaConfig.product(trunk.layers(), mla.kvRank() + (long) mla.queryRank());
        return LlamaConfig.sum(embeddings, norms, latentNorms, hiddenMatrixParameterCount());
    }

    @Override
    public long hiddenMatrixParameterCount() {
        long c = trunk.width();
        long heads = trunk.heads();
        long attention;
        if (mla == null) {
            attention = LlamaConfig.product(2L * heads + 2L * trunk.kvHeads(), trunk.headDim(), c);
        } else {
            long q = mla.hasQueryRank()
                    ? LlamaConfig.sum(LlamaConfig.product(mla.queryRank(), c), LlamaConfig.product(heads, mla.queryHeadDim(), mla.queryRank()))
                    : LlamaConfig.product(heads, mla.queryHeadDim(), c);
            attention = LlamaConfig.sum(q, LlamaConfig.product(mla.kvRank() + (long) mla.ropeHeadDim(), c),
                    LlamaConfig.product(heads, (long) mla.nopeHeadDim() + mla.valueHeadDim(), mla.kvRank()),
                    LlamaConfig.product(c, heads, mla.valueHeadDim()));
        }
        long dense = LlamaConfig.product(3, trunk.mlpWidth(), c);
        long experts = LlamaConfig.sum(LlamaConfig.product(moe.experts(), c),
                LlamaConfig.product(3, moe.experts(), moe.expertWidth(), c),
                LlamaConfig.product(3, moe.sharedExperts(), moe.expertWidth(), c));
        return LlamaConfig.sum(LlamaConfig.product(trunk.layers(), attention), LlamaConfig.product(moe.firstDenseLayers(), dense),
                LlamaConfig.product(expertLayers(), experts));
    }

    @Override
    public long largestHiddenMatrix() {
        long c = trunk.width();
        long h = trunk.heads();
        long attention;
        if (mla == null) {
            attention = Math.max(LlamaConfig.product(h, trunk.headDim(), c), LlamaConfig.product(trunk.kvHeads(), trunk.headDim(), c));
        } else {
            long q = mla.hasQueryRank() ? Math.max(LlamaConfig.product(mla.queryRank(), c), LlamaConfig.product(h, mla.queryHeadDim(),
                    mla.queryRank())) : LlamaConfig.product(h, mla.queryHeadDim(), c);
            attention = java.util.stream.LongStream.of(q, LlamaConfig.product(mla.kvRank() + (long) mla.ropeHeadDim(), c),
                    LlamaConfig.product(h, (long) mla.nopeHeadDim() + mla.valueHeadDim(), mla.kvRank()),
                    LlamaConfig.product(c, h, mla.valueHeadDim())).max().orElseThrow();
        }
        long dense = moe.firstDenseLayers() > 0 ? LlamaConfig.product(trunk.mlpWidth(), c) : 0;
        long experts = expertLayers() == 0 ? 0 : java.util.stream.LongStream.of(LlamaConfig.product(moe.experts(), moe.expertWidth(), c),
                LlamaConfig.product(moe.sharedExperts(), moe.expertWidth(), c), LlamaConfig.product(moe.experts(), c)).max().orElseThrow();
        return Math.max(Math.max(attention, dense), experts);
    }

    /**
     * An upper bound of the floats one training forward and backward pass holds: the trunk's exact
     * count ({@link LlamaConfig#trainingStepFloats}, with grouped-query attention and a dense SwiGLU in
     * every layer) plus, without subtracting what they replace, each MoE layer's tensors and, with
     * latent attention, each layer's latent tensors, and the gradients of all of one MoE layer's and
     * one latent attention's tensors at once (a gradient goes back to the pool once the step of the
     * operation that made it has run, so backward holds at most one layer's). With N = B·T, M = N·K
     * routed rows:
     * <pre>
     * MoE tensors = 2·N·E + N·K + 2·M·C + 3·M·F + 3·N·C + 3·N·S·F   (router logits and scores, gates, gathered rows and
     *                                                              expert outputs, gate/up/SwiGLU, combine, shared experts)
     * MoE scratch = M·F + N·S·F                                    (σ scratch)
     * MLA tensors = N·(3·H·(Dn + Dr) + 2·(R_kv + Dr) + R_kv + 2·H·(Dn + Dv) + 2·H·Dv + 2·R_q)  (queries, latents and
     *                                                              their norms, the rotary key and its copies, keys, values, output)
     * MLA scratch = N·3                                            (norm scratch)
     * total       = trunk + E_layers·(MoE tensors + MoE scratch) + L·(MLA tensors + MLA scratch) + MoE tensors + MLA tensors
     * </pre>
     */
    @Override
    public long trainingStepFloats(int batch) {
        long n = LlamaConfig.product(batch, trunk.contextLength());
        long m = LlamaConfig.product(n, moe.activeExperts());
        long c = trunk.width();
        long f = moe.expertWidth();
        long moeTensors = 0;
        long moeScratch = 0;
        if (expertLayers() > 0) {
            moeTensors = LlamaConfig.sum(LlamaConfig.product(2, n, moe.experts()), LlamaConfig.product(n, moe.activeExperts()),
                    LlamaConfig.product(2, m, c), LlamaConfig.product(3, m, f), LlamaConfig.product(3, n, c),
                    LlamaConfig.product(3, n, moe.sharedExperts(), f));
            moeScratch = LlamaConfig.sum(LlamaConfig.product(m, f), LlamaConfig.product(n, moe.sharedExperts(), f));
        }
        long mlaTensors = 0;
        long mlaScratch = 0;
        if (mla != null) {
            long h = trunk.heads();
            mlaTensors = LlamaConfig.product(n, LlamaConfig.sum(LlamaConfig.product(3, h, mla.queryHeadDim()),
                    LlamaConfig.product(2, mla.kvRank() + (long) mla.ropeHeadDim()), mla.kvRank(),
                    LlamaConfig.product(2, h, (long) mla.nopeHeadDim() + mla.valueHeadDim()),
                    LlamaConfig.product(2, h, mla.valueHeadDim()), LlamaConfig.product(2, mla.queryRank())));
            mlaScratch = LlamaConfig.product(3, n);
        }
        return LlamaConfig.sum(trunk.trainingStepFloats(batch), LlamaConfig.product(expertLayers(), LlamaConfig.sum(moeTensors, moeScratch)),
                LlamaConfig.product(trunk.layers(), LlamaConfig.sum(mlaTensors, mlaScratch)), moeTensors, mlaTensors);
    }

    @Override
    public FeedForward feedForward(int layer, String prefix) {
        if (layer < moe.firstDenseLayers()) {
            return new SwiGlu(prefix, trunk.width(), trunk.mlpWidth());
        }
        return new MixtureOfExperts(prefix, trunk.width(), moe);
    }

    /**
     * Field name → value, for JSON: {@code "model": "deepseek"}, the trunk's fields, {@code "moe"} and,
     * with latent attention, {@code "mla"}.
     */
    @Override
    public Map<String, Object> toMap() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put(ModelConfig.FAMILY_KEY, Family.DEEPSEEK.key());
        m.putAll(trunk.toMap());
        m.put("moe", moe.toMap());
        if (mla != null) {
            m.put("mla", mla.toMap());
        }
        return m;
    }

    /** Inverse of {@link #toMap()}. */
    @SuppressWarnings("unchecked")
    static DeepSeekConfig fromMap(Map<String, ?> m) {
        if (!(m.get("moe") instanceof Map<?, ?> moe)) {
            throw new IllegalArgumentException("model config of a deepseek model lacks its \"moe\" object, got " + m.get("moe"));
        }
        Object mla = m.get("mla");
        if (mla != null && !(mla instanceof Map<?, ?>)) {
            throw new IllegalArgumentException("model config: \"mla\" must be an object, got " + mla);
        }
        return new DeepSeekConfig(LlamaConfig.fromMap(m), MoeConfig.fromMap((Map<String, ?>) moe),
                mla == null ? null : MlaConfig.fromMap((Map<String, ?>) mla));
    }
}
