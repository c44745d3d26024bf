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

    /** A model of this shape with all weights zero. */
    default DecoderModel create() {
        return new DecoderModel(this);
    }
}
