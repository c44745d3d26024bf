package dev.muon4j.nn;

import dev.muon4j.autograd.Rope;

/**
 * The shape of a {@link DecoderModel}: its trunk (vocabulary, width, layers, attention heads,
 * context, norms, initialisation) and, layer by layer, the two halves of each block.
 * {@link LlamaConfig}: grouped-query attention and a dense SwiGLU in every layer;
 * {@link DeepSeekConfig}: the same trunk with Mixture-of-Experts feed-forward layers and grouped-query
 * or Multi-head Latent Attention.
 */
public sealed interface ModelConfig permits LlamaConfig, DeepSeekConfig {
    /** The shared shape: for a dense Llama, the config itself. */
    LlamaConfig trunk();

    /** V, the vocabulary size. */
    int vocabSize();

    /** T, the longest sequence. */
    int contextLength();

    /** Number of parameters of a model with this config (saturating at {@link Long#MAX_VALUE}). */
    long parameterCount();

    /** Number of parameters in the matrices Muon updates: every projection, the experts and the routers (saturating). */
    long hiddenMatrixParameterCount();

    /** Elements of the largest matrix parameter (a stack of experts counts whole: the sharded optimizer's scratch holds it). */
    long largestHiddenMatrix();

    /**
     * The floats a graph's pool holds after one training forward and backward pass over {@code batch}
     * sequences of the full context: exact for {@link LlamaConfig}, an upper bound for {@link DeepSeekConfig}.
     */
    long trainingStepFloats(int batch);

    /** The rotary table every layer's attention shares: over the trunk's head dimension, its context and θ. */
    default Rope rope() {
        LlamaConfig t = trunk();
        return new Rope(t.headDim(), t.contextLength(), t.ropeTheta());
    }

    /** The attention of layer {@code layer}, its parameter names starting with {@code prefix}; {@code rope} from {@link #rope()}. */
    default Attention attention(int layer, String prefix, Rope rope) {
        LlamaConfig t = trunk();
        return new GroupedQueryAttention(prefix, t.width(), t.heads(), t.kvHeads(), t.headDim(), rope);
    }

    /** The feed-forward layer of layer {@code layer}, its parameter names starting with {@code prefix}. */
    FeedForward feedForward(int layer, String prefix);

    /** Key of the model family in {@link #toMap()}; absent means {@link Family#LLAMA} (configs written before there were two). */
    String FAMILY_KEY = "model";

    /** The model families, as {@code --model} names them. */
    enum Family {
        /** Dense Llama: {@link LlamaConfig}. */
        LLAMA,
        /** DeepSeek-V3 style Mixture-of-Experts: {@link DeepSeekConfig}. */
        DEEPSEEK;

        /** The name in configs and on the command line. */
        public String key() {
            return name().toLowerCase(java.util.Locale.ROOT);
        }
    }

    /** This config's family. */
    default Family family() {
        return this instanceof DeepSeekConfig ? Family.DEEPSEEK : Family.LLAMA;
    }

    /** Field name → value, for JSON; {@link #fromMap} reads it back. */
    java.util.Map<String, Object> toMap();

    /** Inverse of {@link #toMap()}: the family from {@link #FAMILY_KEY} (Llama when absent). */
    static ModelConfig fromMap(java.util.Map<String, ?> m) {
        Object family = m.get(FAMILY_KEY);
        if (family == null || Family.LLAMA.key().equals(family)) {
            return LlamaConfig.fromMap(m);
        }
        if (Family.DEEPSEEK.key().equals(family)) {
            return DeepSeekConfig.fromMap(m);
        }
        throw new IllegalArgumentException("model config: unknown model family " + family + " (known: llama, deepseek)");
    }

    /** Parameters one token passes through: all of them for a dense model; a Mixture-of-Experts model counts only its active experts. */
    default long activeParameterCount() {
        return parameterCount();
    }

    /** The shape in words, for reports: parameter count, layers, width, attention, feed-forward, context, vocabulary. */
    String describe();

    /**
     * The shape as a short table for people: rows of (what, value), each value a few words (the
     * command line prints them under a {@code model:} heading, every line within 80 columns).
     */
    java.util.List<java.util.Map.Entry<String, String>> summary();

    /** {@link #summary()} laid out: a heading line, then one indented, aligned line per row. */
    default String table() {
        java.util.List<java.util.Map.Entry<String, String>> rows = summary();
        int key = rows.stream().mapToInt(e -> e.getKey().length()).max().orElse(0);
        StringBuilder s = new StringBuilder("model:");
        for (java.util.Map.Entry<String, String> row : rows) {
            s.append(System.lineSeparator()).append("  ").append(row.getKey()).append(" ".repeat(key - row.getKey().length() + 2))
                    .append(row.getValue());
        }
        return s.toString();
    }

    /** A model of this shape with all weights zero. */
    default DecoderModel create() {
        return new DecoderModel(this);
    }
}
