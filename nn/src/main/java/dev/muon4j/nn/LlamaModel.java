package dev.muon4j.nn;

import dev.muon4j.autograd.Graph;
import dev.muon4j.autograd.Ops;
import dev.muon4j.autograd.Rope;
import dev.muon4j.autograd.Tensor;
import dev.muon4j.optim.ParamRole;
import dev.muon4j.optim.Parameter;
import dev.muon4j.optim.QkClip;
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
 * <p>Every forward pass records, for each layer and query head, the largest pre-softmax attention
 * logit q·k/√D it saw ({@link #maxLogits()}), a running maximum until {@link #resetMaxLogits()}:
 * what QK-clip ({@link #qkClip(double, double[])}) needs after an optimizer step.
 */
public final class LlamaModel {
    private final LlamaConfig config;
    private final Parameter embed;              // (V, C)            EMBEDDING
    private final List<Block> blocks;
    private final Parameter finalNorm;          // (C)               NORM
    private final Parameter head;               // (V, C)            HEAD; null when tied
    private final List<Parameter> parameters;
    private final Rope rope;
    private final float[] maxLogits;            // (layers, H)      largest attention logit since the last reset

    /** One decoder block's parameters. */
    private record Block(Parameter attnNorm,   // (C)
                         Parameter wq,         // (H·D, C)
                         Parameter wk,         // (K·D, C)
                         Parameter wv,         // (K·D, C)
                         Parameter wo,         // (C, H·D)
                         Parameter mlpNorm,    // (C)
                         Parameter wGate,      // (F, C)
                         Parameter wUp,        // (F, C)
                         Parameter wDown) {    // (C, F)
    }

    /** A model with all weights zero; call {@link #initialize(long)} or load a checkpoint. */
    public LlamaModel(LlamaConfig config) {
        this.config = config;
        int c = config.width();
        int qDim = config.heads() * config.headDim();
        int kvDim = config.kvHeads() * config.headDim();
        int f = config.mlpWidth();
        List<Parameter> all = new ArrayList<>();
        embed = add(all, Parameter.zeros("model.embed_tokens.weight", ParamRole.EMBEDDING, config.vocabSize(), c));
        List<Block> bs = new ArrayList<>();
        for (int i = 0; i < config.layers(); i++) {
            String p = "model.layers." + i + ".";
            bs.add(new Block(
                    add(all, Parameter.zeros(p + "input_layernorm.weight", ParamRole.NORM, c)),
                    add(all, Parameter.matrix(p + "self_attn.q_proj.weight", qDim, c)),
                    add(all, Parameter.matrix(p + "self_attn.k_proj.weight", kvDim, c)),
                    add(all, Parameter.matrix(p + "self_attn.v_proj.weight", kvDim, c)),
                    add(all, Parameter.matrix(p + "self_attn.o_proj.weight", c, qDim)),
                    add(all, Parameter.zeros(p + "post_attention_layernorm.weight", ParamRole.NORM, c)),
                    add(all, Parameter.matrix(p + "mlp.gate_proj.weight", f, c)),
                    add(all, Parameter.matrix(p + "mlp.up_proj.weight", f, c)),
                    add(all, Parameter.matrix(p + "mlp.down_proj.weight", c, f))));
        }
        blocks = List.copyOf(bs);
        finalNorm = add(all, Parameter.zeros("model.norm.weight", ParamRole.NORM, c));
        head = config.tiedHead() ? null : add(all, Parameter.zeros("lm_head.weight", ParamRole.HEAD, config.vocabSize(), c));
        parameters = Collections.unmodifiableList(all);
        rope = new Rope(config.headDim(), config.contextLength(), config.ropeTheta());
        maxLogits = new float[config.layers() * config.heads()];
        resetMaxLogits();
    }

    private static Parameter add(List<Parameter> all, Parameter p) {
        all.add(p);
        return p;
    }

    public LlamaConfig config() {
        return config;
    }

    /** Every parameter, embedding first, in a fixed order. */
    public List<Parameter> parameters() {
        return parameters;
    }

    /**
     * Initialises as GPT-2 and Llama do: every matrix and the embedding from N(0, initStd²), the
     * two projections that write into the residual stream (o_proj, down_proj) from
     * N(0, initStd²/(2·layers)), norm gains 1.
     */
    public void initialize(long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        double std = config.initStd();
        double residualStd = std / Math.sqrt(2.0 * config.layers());
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

    /** Sets every parameter's gradient to zero. */
    public void zeroGradients() {
        for (Parameter p : parameters) {
            java.util.Arrays.fill(p.gradient(), 0f);
        }
    }

    /** Logits (B·T, V) for tokens (B·T ids, row-major by sequence). */
    public Tensor forward(Graph g, int[] tokens, int batch, int time) {
        if (time < 1 || time > config.contextLength()) {
            throw new IllegalArgumentException("sequence length " + time + " outside 1.." + config.contextLength() + " (the context length)");
        }
        if (batch < 1 || tokens.length != batch * time) {
            throw new IllegalArgumentException(tokens.length + " tokens are not " + batch + " sequences of " + time);
        }
        float eps = (float) config.normEps();
        Tensor x = Ops.embedding(g, g.parameter(embed), tokens);                     // (N, C)
        for (int layer = 0; layer < blocks.size(); layer++) {
            Block b = blocks.get(layer);
            Tensor a = Ops.rmsNorm(g, x, g.parameter(b.attnNorm()), eps);               // (N, C)
            Tensor q = Ops.rope(g, rope, Ops.linear(g, a, g.parameter(b.wq())), time);  // (N, H·D)
            Tensor k = Ops.rope(g, rope, Ops.linear(g, a, g.parameter(b.wk())), time);  // (N, K·D)
            Tensor v = Ops.linear(g, a, g.parameter(b.wv()));                           // (N, K·D)
            Tensor att = Ops.causalAttention(g, q, k, v, batch, time, config.heads(), config.kvHeads(),
                    maxLogits, layer * config.heads());                                 // (N, H·D)
            x = Ops.add(g, x, Ops.linear(g, att, g.parameter(b.wo())));                 // (N, C)
            Tensor m = Ops.rmsNorm(g, x, g.parameter(b.mlpNorm()), eps);                // (N, C)
            Tensor gate = Ops.linear(g, m, g.parameter(b.wGate()));                     // (N, F)
            Tensor up = Ops.linear(g, m, g.parameter(b.wUp()));                         // (N, F)
            x = Ops.add(g, x, Ops.linear(g, Ops.swiglu(g, gate, up), g.parameter(b.wDown()))); // (N, C)
        }
        Tensor h = Ops.rmsNorm(g, x, g.parameter(finalNorm), eps);                      // (N, C)
        return Ops.linear(g, h, g.parameter(head != null ? head : embed));              // (N, V)
    }

    /**
     * The largest pre-softmax attention logit S = q·k/√D (signed, with the softmax scale) of every
     * layer and query head over all forward passes since the last {@link #resetMaxLogits()}: over their
     * batches, positions and the keys each position sees (its own and earlier ones). Index
     * {@code layer·H + h}; −∞ for a head no forward has run through since the reset. A copy.
     */
    public float[] maxLogits() {
        return maxLogits.clone();
    }

    /** Forgets the recorded maximum logits (all −∞): a training step calls it before its first forward pass. */
    public void resetMaxLogits() {
        java.util.Arrays.fill(maxLogits, Float.NEGATIVE_INFINITY);
    }

    /**
     * QK-clip of every layer ({@link QkClip#clip}): in each layer, the query and key rows of every key
     * group whose largest logit exceeds {@code tau} are scaled by √(τ/S) in place; the rest is not touched.
     *
     * @param tau       the threshold τ, finite and &gt; 0
     * @param maxLogits S per layer and query head, index {@code layer·H + h} (as {@link #maxLogits()}, or
     *                  the maximum of several ranks' values); not modified
     * @return the number of query heads, over all layers, whose rows were scaled
     */
    public int qkClip(double tau, double[] maxLogits) {
        int heads = config.heads();
        if (maxLogits.length != blocks.size() * heads) {
            throw new IllegalArgumentException("QK-clip: " + maxLogits.length + " max logits for " + blocks.size() + " layers of "
                    + heads + " heads");
        }
        int scaled = 0;
        for (int layer = 0; layer < blocks.size(); layer++) {
            Block b = blocks.get(layer);
            double[] s = java.util.Arrays.copyOfRange(maxLogits, layer * heads, (layer + 1) * heads);
            scaled += QkClip.clip(b.wq().value(), b.wk().value(), heads, config.kvHeads(), config.headDim(), s, tau);
        }
        return scaled;
    }

    /** Mean next-token cross-entropy of {@code targets} given {@code inputs}: a one-element tensor. */
    public Tensor loss(Graph g, int[] inputs, int[] targets, int batch, int time) {
        return Ops.crossEntropy(g, forward(g, inputs, batch, time), targets);
    }
}
