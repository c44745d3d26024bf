package dev.muon4j.nn;

import dev.muon4j.autograd.Graph;
import dev.muon4j.autograd.Ops;
import dev.muon4j.autograd.Tensor;
import dev.muon4j.optim.Parameter;
import java.util.Arrays;
import java.util.List;

/**
 * A causal language model as the trainer sees it: named parameters with roles, initialisation,
 * forward to logits, the loss, and the per-step attention statistics QK-clip needs. Dense Llama
 * ({@link DecoderModel}) is one; a model's blocks choose their {@link Attention} and {@link FeedForward}.
 */
public interface LanguageModel {
    /** Every parameter, in a fixed order (the order of checkpoints' manifests and of sharding). */
    List<Parameter> parameters();

    /** The longest sequence the model takes. */
    int contextLength();

    /** Sets every weight from {@code seed}, the same way on every machine. */
    void initialize(long seed);

    /** Logits (B·T, V) for tokens (B·T ids, row-major by sequence). */
    Tensor forward(Graph g, int[] tokens, int batch, int time);

    /** Mean next-token cross-entropy of {@code targets} given {@code inputs}: a one-element tensor. */
    default Tensor loss(Graph g, int[] inputs, int[] targets, int batch, int time) {
        return Ops.crossEntropy(g, forward(g, inputs, batch, time), targets);
    }

    /**
     * The auxiliary losses of the last forward pass (a Mixture-of-Experts model's sequence-wise balance
     * losses), summed: a one-element tensor to add to the loss for the backward pass, or null when the
     * model has none. Validation and the reported loss leave it out.
     */
    default Tensor auxiliaryLoss(Graph g) {
        return null;
    }

    /**
     * Starts ({@code true}) or stops recording, in every forward pass, the sum of squares of each block's
     * output (the residual stream after the block), for {@link #layerOutputRms()}; starting clears what
     * was recorded. Off until asked, so a forward pass that nobody measures computes nothing for it.
     *
     * @throws UnsupportedOperationException when this model cannot record them
     */
    default void recordLayerOutputs(boolean on) {
        if (on) {
            throw new UnsupportedOperationException(getClass().getSimpleName() + " does not record its layers' outputs");
        }
    }

    /**
     * Per block, in layer order, the RMS of its output over every element of the forward passes since
     * recording started: √(Σ x² / count). Empty when not recording; NaN for a block no pass has reached.
     */
    default double[] layerOutputRms() {
        return new double[0];
    }

    /** Sets every parameter's gradient to zero. */
    default void zeroGradients() {
        for (Parameter p : parameters()) {
            Arrays.fill(p.gradient(), 0f);
        }
    }

    /**
     * The largest pre-softmax attention logit of every layer and query head over all forward passes
     * since the last {@link #resetMaxLogits()}, layer by layer; −∞ for a head no forward has run
     * through since the reset. A copy.
     */
    float[] maxLogits();

    /** Forgets the recorded maximum logits: a training step calls it before its first forward pass. */
    void resetMaxLogits();

    /**
     * QK-clip of every layer: the query and key weights of every head whose largest logit exceeds
     * {@code tau} are scaled in place so that its logits fall back to τ; the rest is not touched.
     *
     * @param maxLogits per layer and query head, as {@link #maxLogits()} (or the maximum of several ranks'); not modified
     * @return the number of query heads, over all layers, whose weights were scaled
     */
    int qkClip(double tau, double[] maxLogits);

    /** The projections whose rows are per-head blocks (per-head orthogonalization splits them). */
    List<Attention.HeadRows> headRows();

    /**
     * Named arrays that checkpoints save with the weights but the optimizer does not train, such as
     * the expert-choice biases of Mixture-of-Experts routers; none by default.
     */
    default List<Parameter> buffers() {
        return List.of();
    }

    /**
     * Tokens each routed expert received since the last {@link #resetExpertLoads()}, Mixture-of-Experts
     * layer after layer (experts of the first MoE layer first); empty for a dense model. A copy.
     */
    default float[] expertLoads() {
        return new float[0];
    }

    /** Forgets the counted expert loads. */
    default void resetExpertLoads() {
    }

    /**
     * Auxiliary-loss-free load balancing of every Mixture-of-Experts layer after a step, from loads
     * laid out as {@link #expertLoads()} gives them (summed over ranks in data-parallel training).
     *
     * @param gamma the bias update speed γ
     */
    default void balanceExperts(double gamma, float[] loads) {
        if (loads.length != 0) {
            throw new IllegalArgumentException(loads.length + " expert loads for a model without experts");
        }
    }
}
