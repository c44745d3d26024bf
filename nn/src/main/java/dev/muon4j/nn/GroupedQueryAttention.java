package dev.muon4j.nn;

import dev.muon4j.autograd.Graph;
import dev.muon4j.autograd.Ops;
import dev.muon4j.autograd.Rope;
import dev.muon4j.autograd.Tensor;
import dev.muon4j.optim.Parameter;
import dev.muon4j.optim.QkClip;
import java.util.List;

/**
 * Llama's causal self-attention with rotary positions and grouped key/value heads (K = H is plain
 * multi-head attention). Names as Hugging Face's ({@code <prefix>q_proj.weight}, {@code k_proj},
 * {@code v_proj}, {@code o_proj}). Shape letters: N = B·T rows, C width, H heads, K kv-heads, D head dim.
 */
public final class GroupedQueryAttention implements Attention {
    private final Parameter wq;     // (H·D, C)
    private final Parameter wk;     // (K·D, C)
    private final Parameter wv;     // (K·D, C)
    private final Parameter wo;     // (C, H·D)
    private final int heads;
    private final int kvHeads;
    private final int headDim;
    private final Rope rope;
    private final HeadMaxima maxima; // (H) largest attention logit since the last reset

    /** A zero attention of width {@code width}; names start with {@code prefix}; {@code rope} of head dimension D. */
    public GroupedQueryAttention(String prefix, int width, int heads, int kvHeads, int headDim, Rope rope) {
        this.heads = heads;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        this.rope = rope;
        wq = Parameter.matrix(prefix + "q_proj.weight", heads * headDim, width);
        wk = Parameter.matrix(prefix + "k_proj.weight", kvHeads * headDim, width);
        wv = Parameter.matrix(prefix + "v_proj.weight", kvHeads * headDim, width);
        wo = Parameter.matrix(prefix + "o_proj.weight", width, heads * headDim);
        maxima = new HeadMaxima(heads);
    }

    @Override
    public List<Parameter> parameters() {
        return List.of(wq, wk, wv, wo);
    }

    @Override
    public Tensor forward(Graph g, Tensor x, int batch, int time) {
        Tensor q = Ops.rope(g, rope, Ops.linear(g, x, g.parameter(wq)), time);   // (N, H·D)
        Tensor k = Ops.rope(g, rope, Ops.linear(g, x, g.parameter(wk)), time);   // (N, K·D)
        Tensor v = Ops.linear(g, x, g.parameter(wv));                            // (N, K·D)
        Tensor att = Ops.causalAttention(g, q, k, v, batch, time, heads, kvHeads, maxima.raised(), 0); // (N, H·D)
        return Ops.linear(g, att, g.parameter(wo));                              // (N, C)
    }

    @Override
    public int heads() {
        return heads;
    }

    @Override
    public float[] maxLogits() {
        return maxima.copy();
    }

    @Override
    public void resetMaxLogits() {
        maxima.reset();
    }

    @Override
    public int qkClip(double tau, double[] maxLogits, int offset) {
        double[] s = maxima.of(maxLogits, offset);
        return QkClip.clip(wq.value(), wk.value(), heads, kvHeads, headDim, s, tau);
    }

    @Override
    public List<HeadRows> headRows() {
        return List.of(new HeadRows(wq, headDim), new HeadRows(wk, headDim));
    }
}
