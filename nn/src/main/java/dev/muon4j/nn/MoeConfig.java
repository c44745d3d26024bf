package dev.muon4j.nn;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The Mixture-of-Experts feed-forward layers of a DeepSeek-V3-style model (DeepSeek-V3 technical
 * report, arXiv 2412.19437, §2.1.2; Hugging Face {@code DeepseekV3Config}, whose field names are
 * given in brackets). Moonlight-16B-A3B's values ({@code moonshotai/Moonlight-16B-A3B} config.json):
 * 64 routed experts, 6 active, width 1408, 2 shared experts, routed scaling factor 2.446, the
 * first layer dense.
 *
 * @param experts          N_r, routed experts [{@code n_routed_experts}]
 * @param activeExperts    K_r, routed experts each token goes to [{@code num_experts_per_tok}]
 * @param expertWidth      the SwiGLU width of one expert [{@code moe_intermediate_size}]
 * @param sharedExperts    N_s, experts every token goes through, run as one SwiGLU of width
 *                         N_s·expertWidth as Hugging Face does [{@code n_shared_experts}]; 0 for none
 * @param routedScale      the factor on the normalised gates [{@code routed_scaling_factor}]
 * @param firstDenseLayers layers before the first MoE layer, which keep the dense SwiGLU
 *                         [{@code first_k_dense_replace}]
 * @param balanceLossAlpha α of the sequence-wise balance loss added to the training objective
 *                         ({@link dev.muon4j.autograd.Ops#balanceLoss}; DeepSeek-V3: 0.0001, "an extremely small
 *                         value", §4.2); 0 for none, the auxiliary-loss-free bias alone
 */
public record MoeConfig(int experts, int activeExperts, int expertWidth, int sharedExperts, double routedScale,
                        int firstDenseLayers, double balanceLossAlpha) {
    /** Without the sequence-wise balance loss. */
    public MoeConfig(int experts, int activeExperts, int expertWidth, int sharedExperts, double routedScale, int firstDenseLayers) {
        this(experts, activeExperts, expertWidth, sharedExperts, routedScale, firstDenseLayers, 0);
    }

    public MoeConfig {
        if (!(balanceLossAlpha >= 0) || !Double.isFinite(balanceLossAlpha)) {
            throw new IllegalArgumentException("MoE config: balance loss alpha must be finite and >= 0, got " + balanceLossAlpha);
        }
        if (experts < 1) {
            throw new IllegalArgumentException("MoE config: experts must be >= 1, got " + experts);
        }
        if (activeExperts < 1 || activeExperts > experts) {
            throw new IllegalArgumentException("MoE config: active experts must be in 1.." + experts + ", got " + activeExperts);
        }
        if (expertWidth < 1) {
            throw new IllegalArgumentException("MoE config: expert width must be >= 1, got " + expertWidth);
        }
        if (sharedExperts < 0) {
            throw new IllegalArgumentException("MoE config: shared experts must be >= 0, got " + sharedExperts);
        }
        if (!(routedScale > 0) || !Double.isFinite(routedScale)) {
            throw new IllegalArgumentException("MoE config: routed scale must be finite and > 0, got " + routedScale);
        }
        if (firstDenseLayers < 0) {
            throw new IllegalArgumentException("MoE config: first dense layers must be >= 0, got " + firstDenseLayers);
        }
    }

    /** Field name → value, for JSON. */
    public Map<String, Object> toMap() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("experts", experts);
        m.put("active_experts", activeExperts);
        m.put("expert_width", expertWidth);
        m.put("shared_experts", sharedExperts);
        m.put("routed_scale", routedScale);
        m.put("first_dense_layers", firstDenseLayers);
        if (balanceLossAlpha > 0) {
            m.put("balance_loss_alpha", balanceLossAlpha);
        }
        return m;
    }

    /** Inverse of {@link #toMap()}. */
    public static MoeConfig fromMap(Map<String, ?> m) {
        return new MoeConfig(LlamaConfig.intOf(m, "experts"), LlamaConfig.intOf(m, "active_experts"), LlamaConfig.intOf(m, "expert_width"),
                LlamaConfig.intOf(m, "shared_experts"), LlamaConfig.doubleOf(m, "routed_scale"), LlamaConfig.intOf(m, "first_dense_layers"),
                m.containsKey("balance_loss_alpha") ? LlamaConfig.doubleOf(m, "balance_loss_alpha") : 0);
    }
}
