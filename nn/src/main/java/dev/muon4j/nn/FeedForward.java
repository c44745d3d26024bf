package dev.muon4j.nn;

import dev.muon4j.autograd.Graph;
import dev.muon4j.autograd.Tensor;
import dev.muon4j.optim.Parameter;
import java.util.List;

/**
 * The feed-forward half of a decoder block: reads the normalised residual stream and returns what
 * the block adds to it. One seam beside {@link Attention}: a dense {@link SwiGlu} today, a
 * Mixture-of-Experts layer beside it.
 */
public interface FeedForward {
    /** This layer's parameters, in a fixed order. */
    List<Parameter> parameters();

    /** Named arrays the layer keeps and checkpoints save but the optimizer does not train (none by default). */
    default List<Parameter> buffers() {
        return List.of();
    }

    /** x (N, C) → (N, C). */
    Tensor forward(Graph g, Tensor x);

    /** x (B·T, C), {@code batch} sequences of {@code time} tokens → (B·T, C); a layer that needs no sequences ignores them. */
    default Tensor forward(Graph g, Tensor x, int batch, int time) {
        return forward(g, x);
    }

    /** The auxiliary loss of the last forward pass, added to the training objective (none by default: null). */
    default Tensor auxiliaryLoss() {
        return null;
    }
}
