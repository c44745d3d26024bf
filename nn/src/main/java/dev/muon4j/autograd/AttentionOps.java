package dev.muon4j.autograd;

import dev.muon4j.backend.Backend;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Causal multi-head self-attention with grouped key/value heads. Shapes: B batch, T time,
 * H query heads, K key/value heads (H a multiple of K), D query/key head dimension, Dv value head
 * dimension (Dv = D for Llama; Multi-head Latent Attention has Dv ≠ D). q (B·T, H·D),
 * k (B·T, K·D), v (B·T, K·Dv), output (B·T, H·Dv). Query head h reads key/value head h / (H/K).
 *
 * <p>Per (b, h): {@code S = Q·Kᵀ/√D} (T×T, GEMM on strided views, no copies), masked above the
 * diagonal, {@code P = softmax(S)} row-wise (kept for backward), {@code O = P·V} (GEMM). Backward:
 * {@code dP = dO·Vᵀ}, {@code dS = P ⊙ (dP − rowsum(dP ⊙ P))/√D}, {@code dQ = dS·K},
 * {@code dK += dSᵀ·Q}, {@code dV += Pᵀ·dO}. The GEMMs run one after another on the backend's
 * threads; the row-wise softmax work runs split over rows between them.
 *
 * <p>Given an array for them, the forward also records each query head's largest pre-softmax logit
 * (an entry of S over the batch, the positions and the causally visible keys, signed and with the
 * 1/√D scale): the softmax finds each row's maximum anyway, so this costs one float per row.
 */
final class AttentionOps {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();

    private AttentionOps() {
    }

    static Tensor causal(Graph g, Tensor q, Tensor k, Tensor v, int batch, int time, int heads, int kvHeads) {
        return causal(g, q, k, v, batch, time, heads, kvHeads, null, 0);
    }

    /**
     * As {@link #causal(Graph, Tensor, Tensor, Tensor, int, int, int, int)}; when {@code maxLogits}
     * is not null, also raises {@code maxLogits[offset + h]} to head h's largest logit of this call
     * (a NaN logit makes it NaN). Values have the query/key head dimension D = q width / H.
     */
    static Tensor causal(Graph g, Tensor q, Tensor k, Tensor v, int batch, int time, int heads, int kvHeads,
                         float[] maxLogits, int offset) {
        checkHeads(q, heads, kvHeads);
        return causal(g, q, k, v, batch, time, heads, kvHeads, q.cols() / heads, maxLogits, offset);
    }

    /**
     * As {@link #causal(Graph, Tensor, Tensor, Tensor, int, int, int, int, float[], int)} with value
     * heads of their own dimension Dv: v (B·T, K·Dv) → output (B·T, H·Dv); the scale stays 1/√D of
     * the query/key heads. With Dv = D the arithmetic is the same, operation for operation.
     */
    static Tensor causal(Graph g, Tensor q, Tensor k, Tensor v, int batch, int time, int heads, int kvHeads,
                         int valueHeadDim, float[] maxLogits, int offset) {
        checkHeads(q, heads, kvHeads);
        int rows = batch * time;
        if (q.rows() != rows || k.rows() != rows || v.rows() != rows) {
            throw new IllegalArgumentException("attention: q, k, v must have B·T = " + rows + " rows, got "
                    + q.rows() + ", " + k.rows() + ", " + v.rows());
        }
        int d = q.cols() / heads;
        int dv = valueHeadDim;
        if (dv < 1) {
            throw new IllegalArgumentException("attention: value head dimension must be >= 1, got " + dv);
        }
        if (k.cols() != kvHeads * d || v.cols() != kvHeads * dv) {
            throw new IllegalArgumentException("attention: k must be (B·T, " + kvHeads * d + ") and v (B·T, " + kvHeads * dv
                    + "), got widths " + k.cols() + " and " + v.cols());
        }
        int qw = heads * d;
        int kw = kvHeads * d;
        int ow = heads * dv;
        int vw = kvHeads * dv;
        int group = heads / kvHeads;
        float scale = (float) (1.0 / Math.sqrt(d));
        int tt = time * time;
        Backend be = g.backend();
        if (maxLogits != null && (offset < 0 || offset > maxLogits.length - heads)) {
            throw new IllegalArgumentException("attention: max logits of " + heads + " heads at " + offset
                    + " do not fit an array of " + maxLogits.length);
        }
        Tensor out = g.output(g.needsGrad(q, k, v), rows, ow);
        float[] probs = g.scratch(batch * heads * tt);
        // S = scale · Q·Kᵀ for every (b, h)
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                int kh = h / group;
                be.gemm(false, true, time, time, d, scale, q.data, b * time * qw + h * d, qw,
                        k.data, b * time * kw + kh * d, kw, 0f, probs, (b * heads + h) * tt, time);
            }
        }
        // causal softmax, row by row; row r = (b·H + h)·T + t keeps its largest logit when asked
        float[] rowMax = maxLogits == null ? null : g.scratch(batch * heads * time);
        g.parallel().forRows(batch * heads * time, 256, (from, to) -> {
            for (int r = from; r < to; r++) {
                float max = softmaxCausalRow(probs, r * time, r % time + 1, time);
                if (rowMax != null) {
                    rowMax[r] = max;
                }
            }
        });
        if (maxLogits != null) {
            for (int r = 0; r < batch * heads * time; r++) {
                int h = offset + (r / time) % heads;
                maxLogits[h] = Math.max(maxLogits[h], rowMax[r]);
            }
        }
        // O = P·V
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                int kh = h / group;
                be.gemm(false, false, time, dv, time, 1f, probs, (b * heads + h) * tt, time,
                        v.data, b * time * vw + kh * dv, vw, 0f, out.data, b * time * ow + h * dv, ow);
            }
        }
        if (out.requiresGrad()) {
            g.record(out, () -> backward(g, q, k, v, out, probs, batch, time, heads, group, d, dv, scale));
        }
        return out;
    }

    private static void checkHeads(Tensor q, int heads, int kvHeads) {
        if (heads < 1 || kvHeads < 1 || heads % kvHeads != 0) {
            throw new IllegalArgumentException("attention: query heads " + heads + " must be a positive multiple of key/value heads " + kvHeads);
        }
        if (q.cols() % heads != 0) {
            throw new IllegalArgumentException("attention: q width " + q.cols() + " is not a multiple of " + heads + " heads");
        }
    }

    private static void backward(Graph g, Tensor q, Tensor k, Tensor v, Tensor out, float[] probs,
                                 int batch, int time, int heads, int group, int d, int dv, float scale) {
        Backend be = g.backend();
        float[] dOut = g.grad(out);
        int kvHeads = heads / group;
        int qw = heads * d;
        int kw = kvHeads * d;
        int ow = heads * dv;
        int vw = kvHeads * dv;
        int tt = time * time;
        float[] dP = g.scratch(batch * heads * tt);
        // dP = dO·Vᵀ and dV += Pᵀ·dO
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                int kh = h / group;
                int pOff = (b * heads + h) * tt;
                int oOff = b * time * ow + h * dv;
                int vOff = b * time * vw + kh * dv;
                be.gemm(false, true, time, time, dv, 1f, dOut, oOff, ow, v.data, vOff, vw, 0f, dP, pOff, time);
                if (v.requiresGrad) {
                    be.gemm(true, false, time, dv, time, 1f, probs, pOff, time, dOut, oOff, ow, 1f, g.grad(v), vOff, vw);
                }
            }
        }
        // dS = P ⊙ (dP − rowsum(dP ⊙ P)) · scale, in place in dP; zero above the diagonal
        g.parallel().forRows(batch * heads * time, 256, (from, to) -> {
            for (int r = from; r < to; r++) {
                int off = r * time;
                int valid = r % time + 1;
                float dot = 0;
                for (int j = 0; j < valid; j++) {
                    dot += dP[off + j] * probs[off + j];
                }
                for (int j = 0; j < valid; j++) {
                    dP[off + j] = probs[off + j] * (dP[off + j] - dot) * scale;
                }
                java.util.Arrays.fill(dP, off + valid, off + time, 0f);
            }
        });
        // dQ += dS·K and dK += dSᵀ·Q
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                int kh = h / group;
                int pOff = (b * heads + h) * tt;
                int qOff = b * time * qw + h * d;
                int kvOff = b * time * kw + kh * d;
                if (q.requiresGrad) {
                    be.gemm(false, false, time, d, time, 1f, dP, pOff, time, k.data, kvOff, kw, 1f, g.grad(q), qOff, qw);
                }
                if (k.requiresGrad) {
                    be.gemm(true, false, time, d, time, 1f, dP, pOff, time, q.data, qOff, qw, 1f, g.grad(k), kvOff, kw);
                }
            }
        }
        // dP is as large as the probabilities: back to the pool for the next layer's backward rather than one per layer.
        g.release(dP);
    }

    /**
     * Softmax of x[off .. off+valid) in place; x[off+valid .. off+len) set to 0 (masked). Returns the
     * largest of x[off .. off+valid) before the softmax.
     */
    static float softmaxCausalRow(float[] x, int off, int valid, int len) {
        float max = Float.NEGATIVE_INFINITY;
        for (int j = 0; j < valid; j++) {
            max = Math.max(max, x[off + j]);
        }
        float sum = (float) ExactBits.expShiftInPlace(x, off, valid, max);
        float inv = 1f / sum;
        int j = 0;
        for (int bound = S.loopBound(valid); j < bound; j += L) {
            FloatVector.fromArray(S, x, off + j).mul(inv).intoArray(x, off + j);
        }
        for (; j < valid; j++) {
            x[off + j] *= inv;
        }
        java.util.Arrays.fill(x, off + valid, off + len, 0f);
        return max;
    }
}
