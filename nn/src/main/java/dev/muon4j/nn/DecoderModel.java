package dev.muon4j.nn;

import dev.muon4j.autograd.Graph;
import dev.muon4j.autograd.Ops;
import dev.muon4j.autograd.Rope;
import dev.muon4j.autograd.Tensor;
import dev.muon4j.nn.Attention.HeadRows;
import dev.muon4j.optim.ParamRole;
import dev.muon4j.optim.Parameter;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.SplittableRandom;

/**
 * A Llama-style decoder (see {@link LlamaConfig}) with named parameters. Names follow Hugging
 * Face's Llama ({@code model.layers.0.self_attn.q_proj.weight}, …), so a checkpoint's tensors map
 * one to one onto that implementation's. Shape letters: B batch, T time, C width, H heads,
 * K kv-heads, D head dim, F MLP width, V vocabulary, N = B·T rows.
 *
 * <p>Each block is RMSNorm → attention ({@link GroupedQueryAttention}, or {@link MultiHeadLatentAttention}
 * in a {@link DeepSeekConfig} that asks for it) → residual, RMSNorm → feed-forward ({@link SwiGlu} or
 * {@link MixtureOfExperts}) → residual. Every forward pass records, for each layer and query head, the largest pre-softmax
 * attention logit q·k/√D it saw ({@link #maxLogits()}), a running maximum until
 * {@link #resetMaxLogits()}: what QK-clip ({@link #qkClip(double, double[])}) needs after an optimizer step.
 * Asked to ({@link #recordLayerOutputs(boolean)}), a forward pass also sums the squares of each block's output
 * for {@link #layerOutputRms()}; otherwise it does nothing of the kind.
 */
public final class DecoderModel implements LanguageModel {
    private final ModelConfig config;
    private final LlamaConfig shape;            // the trunk: widths, heads, layers
    private final Parameter embed;              // (V, C)            EMBEDDING
    private final List<Block> blocks;
    private final Parameter finalNorm;          // (C)               NORM
    private final Parameter head;               // (V, C)            HEAD; null when tied
    private final List<Parameter> parameters;
    private double[] outputSquares;             // per block: Σ x² of its outputs while recording; null when not
    private long[] outputCounts;                // per block: the elements summed

    /** One decoder block: pre-norm attention and pre-norm feed-forward, each added to the residual stream. */
    private record Block(Parameter attnNorm,    // (C)
                         Attention attention,
                         Parameter mlpNorm,     // (C)
                         FeedForward feedForward) {
    }

    /** A model with all weights zero; call {@link #initialize(long)} or load a checkpoint. */
    public DecoderModel(ModelConfig config) {
        this.config = config;
        LlamaConfig shape = config.trunk();
        this.shape = shape;
        int c = shape.width();
        List<Parameter> all = new ArrayList<>();
        embed = add(all, Parameter.zeros("model.embed_tokens.weight", ParamRole.EMBEDDING, shape.vocabSize(), c));
        Rope rope = config.rope();
        List<Block> bs = new ArrayList<>();
        for (int i = 0; i < shape.layers(); i++) {
            String p = "model.layers." + i + ".";
            Parameter attnNorm = add(all, Parameter.zeros(p + "input_layernorm.weight", ParamRole.NORM, c));
            Attention attention = config.attention(i, p + "self_attn.", rope);
            all.addAll(attention.parameters());
            Parameter mlpNorm = add(all, Parameter.zeros(p + "post_attention_layernorm.weight", ParamRole.NORM, c));
            FeedForward feedForward = config.feedForward(i, p + "mlp.");
            all.addAll(feedForward.parameters());
            bs.add(new Block(attnNorm, attention, mlpNorm, feedForward));
        }
        blocks = List.copyOf(bs);
        finalNorm = add(all, Parameter.zeros("model.norm.weight", ParamRole.NORM, c));
        head = shape.tiedHead() ? null : add(all, Parameter.zeros("lm_head.weight", ParamRole.HEAD, shape.vocabSize(), c));
        parameters = Collections.unmodifiableList(all);
    }

    private static Parameter add(List<Parameter> all, Parameter p) {
        all.add(p);
        return p;
    }

    public ModelConfig config() {
        return config;
    }

    /** Every parameter, embedding first, in a fixed order. */
    @Override
    public List<Parameter> parameters() {
        return parameters;
    }

    @Override
    public int contextLength() {
        return shape.contextLength();
    }

    /**
     * Initialises as GPT-2 and Llama do: every matrix and the embedding from N(0, initStd²), the
     * two projections that write into the residual stream (o_proj, down_proj) from
     * N(0, initStd²/(2·layers)) (experts' down_proj too), norm gains 1, buffers (routers' biases) 0.
     */
    @Override
    public void initialize(long seed) {
        for (Parameter b : buffers()) {
            java.util.Arrays.fill(b.value(), 0f);
        }
        SplittableRandom random = new SplittableRandom(seed);
        double std = shape.initStd();
        double residualStd = std / Math.sqrt(2.0 * shape.layers());
        for (Parameter p : parameters) {
            float[] v = p.value();
            if (p.role() == ParamRole.NORM) {
                java.util.Arrays.fill(v, 1f);
                continue;
            }
            double s = p.name().endsWith("o_proj.weight") || p.name().endsWith("down_proj.weight") ? residualStd : std;
            for (int i = 0; i < v.length; i++) {
                v[i] = (float) (random.nextGaussian() * s);
            }
        }
    }

    @Override
    public Tensor forward(Graph g, int[] tokens, int batch, int time) {
        if (time < 1 || time > shape.contextLength()) {
            throw new IllegalArgumentException("sequence length " + time + " outside 1.." + shape.contextLength() + " (the context length)");
        }
        if (batch < 1 || tokens.length != batch * time) {
            throw new IllegalArgumentException(tokens.length + " tokens are not " + batch + " sequences of " + time);
        }
        float eps = (float) shape.normEps();
        Tensor x = Ops.embedding(g, g.parameter(embed), tokens);                         // (N, C)
        for (int i = 0; i < blocks.size(); i++) {
            Block b = blocks.get(i);
            Tensor a = Ops.rmsNorm(g, x, g.parameter(b.attnNorm()), eps);                   // (N, C)
            x = Ops.add(g, x, b.attention().forward(g, a, batch, time));                    // (N, C)
            Tensor m = Ops.rmsNorm(g, x, g.parameter(b.mlpNorm()), eps);                    // (N, C)
            x = Ops.add(g, x, b.feedForward().forward(g, m, batch, time));                  // (N, C)
            if (outputSquares != null) {
                outputSquares[i] += sumOfSquares(x.data(), x.size());
                outputCounts[i] += x.size();
            }
        }
        Tensor h = Ops.rmsNorm(g, x, g.parameter(finalNorm), eps);                          // (N, C)
        return Ops.linear(g, h, g.parameter(head != null ? head : embed));                  // (N, V)
    }

    private static double sumOfSquares(float[] v, int n) {
        double sum = 0;
        for (int i = 0; i < n; i++) {
            sum += (double) v[i] * v[i];
        }
        return sum;
    }

    @Override
    public void recordLayerOutputs(boolean on) {
        outputSquares = on ? new double[blocks.size()] : null;
        outputCounts = on ? new long[blocks.size()] : null;
    }

    @Override
    public double[] layerOutputRms() {
        if (outputSquares == null) {
            return new double[0];
        }
        double[] rms = new double[blocks.size()];
        for (int i = 0; i < rms.length; i++) {
            rms[i] = outputCounts[i] == 0 ? Double.NaN : Math.sqrt(outputSquares[i] / outputCounts[i]);
        }
        return rms;
    }

    /**
     * The largest pre-softmax attention logit S = q·k/√D (signed, with the softmax scale) of every
     * layer and query head over all forward passes since the last {@link #resetMaxLogits()}: over their
     * batches, positions and the keys each position sees (its own and earlier ones). Index
     * {@code layer·H + h}; −∞ for a head no forward has run through since the reset. A copy.
     */
    @Override
    public float[] maxLogits() {
        float[] all = new float[blocks.size() * shape.heads()];
        for (int layer = 0; layer < blocks.size(); layer++) {
            System.arraycopy(blocks.get(layer).attention().maxLogits(), 0, all, layer * shape.heads(), shape.heads());
        }
        return all;
    }

    @Override
    public void resetMaxLogits() {
        for (Block b : blocks) {
            b.attention().resetMaxLogits();
        }
    }

    /**
     * QK-clip of every layer ({@link Attention#qkClip}): in each layer of grouped-query attention, the query
     * and key rows of every key group whose largest logit exceeds {@code tau} are scaled by √(τ/S) in place
     * ({@link dev.muon4j.optim.QkClip#clip}); in Multi-head Latent Attention each such head's content rows
     * by √(τ/S) and its rotary query rows by τ/S ({@link dev.muon4j.optim.QkClip#clipLatent}); the rest is
     * not touched.
     *
     * @param tau       the threshold τ, finite and &gt; 0
     * @param maxLogits S per layer and query head, index {@code layer·H + h} (as {@link #maxLogits()}, or
     *                  the maximum of several ranks' values); not modified
     * @return the number of query heads, over all layers, whose rows were scaled
     */
    @Override
    public int qkClip(double tau, double[] maxLogits) {
        int heads = shape.heads();
        if (maxLogits.length != blocks.size() * heads) {
            throw new IllegalArgumentException("QK-clip: " + maxLogits.length + " max logits for " + blocks.size() + " layers of "
                    + heads + " heads");
        }
        int scaled = 0;
        for (int layer = 0; layer < blocks.size(); layer++) {
            scaled += blocks.get(layer).attention().qkClip(tau, maxLogits, layer * heads);
        }
        return scaled;
    }

    @Override
    public Tensor auxiliaryLoss(Graph g) {
        Tensor sum = null;
        for (Block b : blocks) {
            Tensor aux = b.feedForward().auxiliaryLoss();
            if (aux != null) {
                sum = sum == null ? aux : Ops.add(g, sum, aux);
            }
        }
        return sum;
    }

    @Override
    public List<Parameter> buffers() {
        List<Parameter> all = new ArrayList<>();
        for (Block b : blocks) {
            all.addAll(b.feedForward().buffers());
        }
        return all;
    }

    /** The Mixture-of-Experts layers, in layer order. */
    public List<MixtureOfExperts> expertLayers() {
        List<MixtureOfExperts> all = new ArrayList<>();
        for (Block b : blocks) {
            if (b.feedForward() instanceof MixtureOfExperts moe) {
                all.add(moe);
            }
        }
        return all;
    }

    /** Routed experts over all Mixture-of-Experts layers. */
    private static int expertCount(List<MixtureOfExperts> layers) {
        return layers.stream().mapToInt(moe -> moe.config().experts()).sum();
    }

    @Override
    public float[] expertLoads() {
        List<MixtureOfExperts> layers = expertLayers();
        float[] all = new float[expertCount(layers)];
        int at = 0;
        for (MixtureOfExperts moe : layers) {
            float[] l = moe.loads();
            System.arraycopy(l, 0, all, at, l.length);
            at += l.length;
        }
        return all;
    }

    @Override
    public void resetExpertLoads() {
        for (MixtureOfExperts moe : expertLayers()) {
            moe.resetLoads();
        }
    }

    @Override
    public void balanceExperts(double gamma, float[] loads) {
        List<MixtureOfExperts> layers = expertLayers();
        if (loads.length != expertCount(layers)) {
            throw new IllegalArgumentException(loads.length + " expert loads for " + layers.size() + " MoE layers of "
                    + (layers.isEmpty() ? 0 : layers.getFirst().config().experts()) + " experts");
        }
        int at = 0;
        for (MixtureOfExperts moe : layers) {
            int e = moe.config().experts();
            moe.balance(gamma, java.util.Arrays.copyOfRange(loads, at, at + e));
            at += e;
        }
    }

    @Override
    public List<HeadRows> headRows() {
        List<HeadRows> all = new ArrayList<>();
        for (Block b : blocks) {
            all.addAll(b.attention().headRows());
        }
        return all;
    }
}
