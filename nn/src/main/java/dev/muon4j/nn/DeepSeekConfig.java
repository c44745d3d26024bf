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
