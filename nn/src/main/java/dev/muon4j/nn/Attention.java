package dev.muon4j.nn;

import dev.muon4j.autograd.Graph;
import dev.muon4j.autograd.Tensor;
import dev.muon4j.optim.Parameter;
import java.util.List;

/**
 * The attention half of a decoder block: reads the normalised residual stream and returns what the
 * block adds to it. One seam beside {@link FeedForward}, so that a model is its blocks' choice of
 * the two ({@link GroupedQueryAttention}, {@link MultiHeadLatentAttention}).
 *
 * <p>Every forward pass records each query head's largest pre-softmax logit, a running maximum until
 * {@link #resetMaxLogits()}, for QK-clip.
 */
public interface Attention {
    /** This attention's parameters, in a fixed order. */
    List<Parameter> parameters();

    /** x (B·T, C), the normalised residual stream of {@code batch} sequences of {@code time} → (B·T, C). */
    Tensor forward(Graph g, Tensor x, int batch, int time);

    /** Query heads, the length of {@link #maxLogits()}. */
    int heads();

    /** The largest pre-softmax logit of each query head since the last reset (−∞ for none): a copy. */
    float[] maxLogits();

    /** Forgets the recorded maximum logits. */
    void resetMaxLogits();

    /**
     * QK-clip: scales in place the query and key weights of every head whose largest logit in
     * {@code maxLogits} (one per query head, from {@code offset}) exceeds {@code tau}, so that its logits
     * fall back to τ; other heads are not touched.
     *
     * @return the number of query heads whose weights were scaled
     */
    int qkClip(double tau, double[] maxLogits, int offset);

    /**
     * The projections whose rows are per-head blocks, with the rows of one block: what per-head
     * orthogonalization splits them into.
     */
    List<HeadRows> headRows();

    /** A parameter whose rows are {@code rowsPerHead}-row blocks, one per head. */
    record HeadRows(Parameter parameter, int rowsPerHead) {
        public HeadRows {
            if (rowsPerHead < 1 || parameter.shape()[0] % rowsPerHead != 0) {
                throw new IllegalArgumentException(parameter.name() + " has " + parameter.shape()[0] + " rows, not blocks of "
                        + rowsPerHead);
            }
        }
    }
}
