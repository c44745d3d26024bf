package dev.muon4j.cli;

import dev.muon4j.nn.LlamaConfig;
import picocli.CommandLine.Option;

/**
 * Flags that override a preset's model shape, shared by {@code train}, {@code compare} and
 * {@code bench distributed} (each command has its own {@code --preset}, with its own default).
 */
public final class ModelShapeOptions {
    @Option(names = "--layers", description = "Decoder blocks (default: the preset's).")
    Integer layers;

    @Option(names = "--width", description = "Residual width C (default: the preset's).")
    Integer width;

    @Option(names = "--heads", description = "Query heads H; must divide the width (default: the preset's).")
    Integer heads;

    @Option(names = "--kv-heads", description = "Key/value heads; must divide --heads (default: the preset's).")
    Integer kvHeads;

    @Option(names = "--mlp-width", description = "SwiGLU hidden width (default: the preset's).")
    Integer mlpWidth;

    @Option(names = "--context", description = "Context length T (default: the preset's).")
    Integer context;

    @Option(names = "--init-std", description = "Standard deviation of the initial weights (default: the preset's).")
    Double initStd;

    @Option(names = "--tied", description = "Tie the output head to the embedding table.")
    boolean tied;

    /** {@code preset} with any flags applied and the vocabulary set from the tokenizer. */
    LlamaConfig apply(ModelPreset preset, int vocabSize) {
        LlamaConfig p = preset.config();
        return new LlamaConfig(vocabSize, or(width, p.width()), or(layers, p.layers()), or(heads, p.heads()),
                or(kvHeads, kvHeads == null && heads != null ? heads : p.kvHeads()), or(mlpWidth, p.mlpWidth()),
                or(context, p.contextLength()), tied || p.tiedHead(), p.ropeTheta(), p.normEps(), initStd != null ? initStd : p.initStd());
    }

    private static int or(Integer v, int fallback) {
        return v != null ? v : fallback;
    }
}
