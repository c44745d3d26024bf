package dev.muon4j.cli;

import dev.muon4j.nn.LlamaConfig;

/** Named model sizes for {@code --preset}; every field can still be overridden by its own flag. */
public enum ModelPreset {
    /** 4 layers, width 192, 4 heads, SwiGLU 512, context 128: 1.9M parameters with bytes. The compare default. */
    TINY(new LlamaConfig(256, 192, 4, 4, 4, 512, 128, false, 10000, 1e-5, 0.02)),
    /** The standard small config: 6 layers, width 384, 6 heads, SwiGLU 1024, context 256: 10.8M parameters with bytes. */
    SMALL(LlamaConfig.standardSmall()),
    /** 8 layers, width 512, 8 heads (2 key/value heads), SwiGLU 1408, context 256: 22.8M parameters with bytes. */
    MEDIUM(new LlamaConfig(256, 512, 8, 8, 2, 1408, 256, false, 10000, 1e-5, 0.02)),
    /** 12 layers, width 768, 12 heads (4 key/value heads), SwiGLU 2048, context 512: 75.9M parameters with bytes. */
    LARGE(new LlamaConfig(256, 768, 12, 12, 4, 2048, 512, false, 10000, 1e-5, 0.02));

    private final LlamaConfig config;

    ModelPreset(LlamaConfig config) {
        this.config = config;
    }

    public LlamaConfig config() {
        return config;
    }
}
