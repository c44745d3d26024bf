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

    /**
     * {@code preset} with any flags applied and the vocabulary set from the tokenizer.
     *
     * @throws IllegalArgumentException naming the flag and its value when a size is below 1, the heads do not
     *     divide the width or the key/value heads the heads, or a head's width is odd
     */
    LlamaConfig apply(ModelPreset preset, int vocabSize) {
        atLeastOne("--layers", layers);
        atLeastOne("--width", width);
        atLeastOne("--heads", heads);
        atLeastOne("--kv-heads", kvHeads);
        atLeastOne("--mlp-width", mlpWidth);
        atLeastOne("--context", context);
        if (initStd != null && !(initStd > 0 && Double.isFinite(initStd))) {
            throw new IllegalArgumentException("--init-std must be finite and > 0, got " + initStd);
        }
        LlamaConfig p = preset.config();
        int w = or(width, p.width());
        int h = or(heads, p.heads());
        int k = or(kvHeads, kvHeads == null && heads != null ? heads : p.kvHeads());
        if (w % h != 0) {
            throw new IllegalArgumentException("--heads " + h + " does not divide --width " + w + ": each head takes width / heads channels");
        }
        if (h % k != 0) {
            throw new IllegalArgumentException("--kv-heads " + k + " does not divide --heads " + h
                    + ": the query heads share the key/value heads in equal groups");
        }
        if ((w / h) % 2 != 0) {
            throw new IllegalArgumentException("--width " + w + " / --heads " + h + " = " + w / h
                    + " channels per head, but rotary position embeddings need an even number");
        }
        return new LlamaConfig(vocabSize, w, or(layers, p.layers()), h, k, or(mlpWidth, p.mlpWidth()),
                or(context, p.contextLength()), tied || p.tiedHead(), p.ropeTheta(), p.normEps(), initStd != null ? initStd : p.initStd());
    }

    private static void atLeastOne(String flag, Integer value) {
        if (value != null && value < 1) {
            throw new IllegalArgumentException(flag + " must be at least 1, got " + value);
        }
    }

    private static int or(Integer v, int fallback) {
        return v != null ? v : fallback;
    }
}
