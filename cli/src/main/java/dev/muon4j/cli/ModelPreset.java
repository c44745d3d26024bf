package dev.muon4j.cli;

import dev.muon4j.nn.DeepSeekConfig;
import dev.muon4j.nn.LlamaConfig;
import dev.muon4j.nn.MlaConfig;
import dev.muon4j.nn.MoeConfig;

/**
 * Named model sizes for {@code --preset}; every field can still be overridden by its own flag. Each
 * size is a dense Llama ({@code --model llama}) and, for {@link #TINY} and {@link #SMALL}, a
 * DeepSeek-V3-style Mixture-of-Experts model ({@code --model deepseek}) with Moonlight's proportions
 * (Moonlight-16B-A3B: the first layer dense, experts of width 0.6875·C (1408 of 2048), 2 shared
 * experts, routed scaling factor 2.446; latent attention without a query rank, R_kv = C/4, Dn = Dv =
 * the head dimension, Dr = half of it) and the dense model's active feed-forward width: 2 routed and
 * 2 shared experts of F/4 each make F.
 */
public enum ModelPreset {
    /**
     * 4 layers, width 192, 4 heads, SwiGLU 512, context 128: 1.9M parameters with bytes. The compare default.
     * MoE: 16 experts of width 128, 2 active, 2 shared; latent attention R_kv 48, Dn = Dv 48, Dr 24.
     */
    TINY(new LlamaConfig(256, 192, 4, 4, 4, 512, 128, false, 10000, 1e-5, 0.02),
            new MoeConfig(16, 2, 128, 2, 2.446, 1), new MlaConfig(0, 48, 48, 24, 48)),
    /**
     * The standard small config: 6 layers, width 384, 6 heads, SwiGLU 1024, context 256: 10.8M parameters with bytes.
     * MoE: 32 experts of width 256, 2 active, 2 shared; latent attention R_kv 96, Dn = Dv 64, Dr 32.
     */
    SMALL(LlamaConfig.standardSmall(), new MoeConfig(32, 2, 256, 2, 2.446, 1), new MlaConfig(0, 96, 64, 32, 64)),
    /** 8 layers, width 512, 8 heads (2 key/value heads), SwiGLU 1408, context 256: 22.8M parameters with bytes. */
    MEDIUM(new LlamaConfig(256, 512, 8, 8, 2, 1408, 256, false, 10000, 1e-5, 0.02), null, null),
    /** 12 layers, width 768, 12 heads (4 key/value heads), SwiGLU 2048, context 512: 75.9M parameters with bytes. */
    LARGE(new LlamaConfig(256, 768, 12, 12, 4, 2048, 512, false, 10000, 1e-5, 0.02), null, null);

    private final LlamaConfig config;
    private final MoeConfig moe;
    private final MlaConfig mla;

    ModelPreset(LlamaConfig config, MoeConfig moe, MlaConfig mla) {
        this.config = config;
        this.moe = moe;
        this.mla = mla;
    }

    /** The dense model, and the trunk of the MoE model. */
    public LlamaConfig config() {
        return config;
    }

    /** The Mixture-of-Experts model of this size. */
    public DeepSeekConfig deepSeek() {
        if (moe == null) {
            throw new IllegalArgumentException("--preset " + name().toLowerCase(java.util.Locale.ROOT)
                    + " has no Mixture-of-Experts model; with --model deepseek use --preset tiny or small");
        }
        return new DeepSeekConfig(config, moe, mla);
    }
}
