package dev.muon4j.nn;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A DeepSeek-V3-style model, the architecture of Moonlight: the {@link LlamaConfig} trunk (its
 * {@code mlpWidth} is the dense layers' width [{@code intermediate_size}]) with the feed-forward
 * layers from {@code moe.firstDenseLayers()} on replaced by {@link MixtureOfExperts} layers.
 *
 * @param trunk the shared shape and the dense layers
 * @param moe   the expert layers
 */
public record DeepSeekConfig(LlamaConfig trunk, MoeConfig moe) implements ModelConfig {
    public DeepSeekConfig {
        java.util.Objects.requireNonNull(trunk, "trunk");
        java.util.Objects.requireNonNull(moe, "moe");
        if (moe.firstDenseLayers() > trunk.layers()) {
            throw new IllegalArgumentException("model config: " + moe.firstDenseLayers() + " first dense layers of only "
                    + trunk.layers() + " layers");
        }
    }

    @Override
    public FeedForward feedForward(int layer, String prefix) {
        if (layer < moe.firstDenseLayers()) {
            return new SwiGlu(prefix, trunk.width(), trunk.mlpWidth());
        }
        return new MixtureOfExperts(prefix, trunk.width(), moe);
    }

    /** Field name → value, for JSON: {@code "model": "deepseek"}, the trunk's fields and {@code "moe"}. */
    @Override
    public Map<String, Object> toMap() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put(ModelConfig.FAMILY_KEY, Family.DEEPSEEK.key());
        m.putAll(trunk.toMap());
        m.put("moe", moe.toMap());
        return m;
    }

    /** Inverse of {@link #toMap()}. */
    @SuppressWarnings("unchecked")
    static DeepSeekConfig fromMap(Map<String, ?> m) {
        if (!(m.get("moe") instanceof Map<?, ?> moe)) {
            throw new IllegalArgumentException("model config of a deepseek model lacks its \"moe\" object, got " + m.get("moe"));
        }
        return new DeepSeekConfig(LlamaConfig.fromMap(m), MoeConfig.fromMap((Map<String, ?>) moe));
    }
}
