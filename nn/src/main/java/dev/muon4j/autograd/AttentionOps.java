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
 * <p>Per (b, h): {@code S = Q·Kᵀ/√D} (T×T), masked above the diagonal, {@code P = softmax(S)}
 * row-wise (kept for backward), {@code O = P·V}. Backward: {@code dP = dO·Vᵀ},
 * {@code dS = P ⊙ (dP − rowsum(dP ⊙ P))/√D}, {@code dQ = dS·K}, {@code dK += dSᵀ·Q},
 * {@code dV += Pᵀ·dO}. All products are GEMMs on strided views (no copies); they run one after
 * another on the backend's threads, the row-wise softmax work runs split over rows between them.
 *
 * <p><b>Only the blocks the mask leaves.</b> Half of S is masked, so the products skip it: the T
 * positions are cut into blocks of {@link #BLOCK_ROWS} (the last one shorter). Query block
 * [r0, r1) sees key columns [0, r1) only, so S, P·V, dO·Vᵀ and dS·K run over those columns; key
 * block [c0, c1) is seen by query rows [c0, T) only, so {@code dV[c0:c1] += P[c0:T, c0:c1]ᵀ·dO[c0:T]}
 * and {@code dK[c0:c1] += dS[c0:T, c0:c1]ᵀ·Q[c0:T]}, one accumulation per block with the long
 * dimension inside the GEMM. Inside the diagonal blocks the masked upper triangles are still
 * computed and set to zero; the rest of the masked part is neither computed nor read (the T×T
 * scratch keeps its layout; entries right of a row's block are left unwritten). The work of S, say,
 * falls from T²·D to about (T² + T·{@code BLOCK_ROWS})·D/2 multiply-adds per head. Every entry the
 * products skip is a masked zero, so the result is the full product's, up to the order of float32
 * additions.
 *
 * <p>Given an array for them, the forward also records each query head's largest pre-softmax logit
 * (an entry of S over the batch, the positions and the causally visible keys, signed and with the
 * 1/√D scale): the softmax finds each row's maximum anyway, so this costs one float per row.
 */
final class AttentionOps {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    /**
     * Rows of a query block (and columns of a key block). Chosen from 32, 64, 128 and 256 by timing on
     * 2 Zen 5 cores with OpenBLAS at T = 256…2048, D = 64 (docs/BENCHMARKS.md, "Causal attention"):
     * smaller blocks skip more of the masked triangle but give more, smaller GEMMs, whose calls and
     * thread hand-offs then cost more than the skipped work saves.
     */
    static final int BLOCK_ROWS = 128;

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
        return causal(g, q, k, v, batch, time, heads, kvHeads, valueHeadDim, maxLogits, offset, BLOCK_ROWS);
    }

    /**
     * As {@link #causal(Graph, Tensor, Tensor, Tensor, int, int, int, int, int, float[], int)} with
     * blocks of {@code blockRows} positions; {@code blockRows ≥ T} computes the whole T×T matrices
     * (the computation before blocks), which tests and benchmarks compare against.
     */
    static Tensor causal(Graph g, Tensor q, Tensor k, Tensor v, int batch, int time, int heads, int kvHeads,
                         int valueHeadDim, float[] maxLogits, int offset, int blockRows) {
        checkHeads(q, heads, kvHeads);
        if (blockRows < 1) {
            throw new IllegalArgumentException("attention: block rows must be >= 1, got " + blockRows);
        }
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
        int tb = Math.min(blockRows, Math.max(1, time));
        // S[r0:r1, 0:r1] = scale · Q[r0:r1]·K[0:r1]ᵀ for every (b, h) and query block [r0, r1)
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                int kh = h / group;
                int pOff = (b * heads + h) * tt;
                int qOff = b * time * qw + h * d;
                int kOff = b * time * kw + kh * d;
                for (int r0 = 0; r0 < time; r0 += tb) {
                    int r1 = Math.min(time, r0 + tb);
                    be.gemm(false, true, r1 - r0, r1, d, scale, q.data, qOff + r0 * qw, qw,
                            k.data, kOff, kw, 0f, probs, pOff + r0 * time, time);
                }
            }
        }
        // causal softmax, row by row over its block's columns; row r = (b·H + h)·T + t keeps its
        // largest logit when asked
        float[] rowMax = maxLogits == null ? null : g.scratch(batch * heads * time);
        g.parallel().forRows(batch * heads * time, 256, (from, to) -> {
            for (int r = from; r < to; r++) {
                int t = r % time;
                float max = softmaxCausalRow(probs, r * time, t + 1, blockEnd(t, tb, time));
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
        // O[r0:r1] = P[r0:r1, 0:r1]·V[0:r1]
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                int kh = h / group;
                int pOff = (b * heads + h) * tt;
                int vOff = b * time * vw + kh * dv;
                int oOff = b * time * ow + h * dv;
                for (int r0 = 0; r0 < time; r0 += tb) {
                    int r1 = Math.min(time, r0 + tb);
                    be.gemm(false, false, r1 - r0, dv, r1, 1f, probs, pOff + r0 * time, time,
                            v.data, vOff, vw, 0f, out.data, oOff + r0 * ow, ow);
                }
            }
        }
        if (out.requiresGrad()) {
            g.record(out, () -> backward(g, q, k, v, out, probs, batch, time, heads, group, d, dv, scale, tb));
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

    /** One past the last column of position t's query block: the columns its row of S holds. */
    private static int blockEnd(int t, int blockRows, int time) {
        return Math.min(time, (t / blockRows + 1) * blockRows);
    }

    private static void backward(Graph g, Tensor q, Tensor k, Tensor v, Tensor out, float[] probs,
                                 int batch, int time, int heads, int group, int d, int dv, float scale, int tb) {
        Backend be = g.backend();
        float[] dOut = g.grad(out);
        int kvHeads = heads / group;
        int qw = heads * d;
        int kw = kvHeads * d;
        int ow = heads * dv;
        int vw = kvHeads * dv;
        int tt = time * time;
        float[] dP = g.scratch(batch * heads * tt);
        // dP[r0:r1, 0:r1] = dO[r0:r1]·V[0:r1]ᵀ per query block; dV[c0:c1] += P[c0:T, c0:c1]ᵀ·dO[c0:T]
        // per key block (rows above c0 see none of its columns)
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                int kh = h / group;
                int pOff = (b * heads + h) * tt;
                int oOff = b * time * ow + h * dv;
                int vOff = b * time * vw + kh * dv;
                for (int r0 = 0; r0 < time; r0 += tb) {
                    int r1 = Math.min(time, r0 + tb);
                    be.gemm(false, true, r1 - r0, r1, dv, 1f, dOut, oOff + r0 * ow, ow,
                            v.data, vOff, vw, 0f, dP, pOff + r0 * time, time);
                }
                if (v.requiresGrad) {
                    float[] dV = g.grad(v);
                    for (int c0 = 0; c0 < time; c0 += tb) {
                        int c1 = Math.min(time, c0 + tb);
                        be.gemm(true, false, c1 - c0, dv, time - c0, 1f, probs, pOff + c0 * time + c0, time,
                                dOut, oOff + c0 * ow, ow, 1f, dV, vOff + c0 * vw, vw);
                    }
                }
            }
        }
        // dS = P ⊙ (dP − rowsum(dP ⊙ P)) · scale, in place in dP; zero above the diagonal up to the
        // end of the row's block (what the products below read)
        g.parallel().forRows(batch * heads * time, 256, (from, to) -> {
            for (int r = from; r < to; r++) {
                int off = r * time;
                int t = r % time;
                int valid = t + 1;
                float dot = 0;
                for (int j = 0; j < valid; j++) {
                    dot += dP[off + j] * probs[off + j];
                }
                for (int j = 0; j < valid; j++) {
                    dP[off + j] = probs[off + j] * (dP[off + j] - dot) * scale;
                }
                java.util.Arrays.fill(dP, off + valid, off + blockEnd(t, tb, time), 0f);
            }
        });
        // dQ[r0:r1] += dS[r0:r1, 0:r1]·K[0:r1] per query block; dK[c0:c1] += dS[c0:T, c0:c1]ᵀ·Q[c0:T]
        // per key block
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                int kh = h / group;
                int pOff = (b * heads + h) * tt;
                int qOff = b * time * qw + h * d;
                int kvOff = b * time * kw + kh * d;
                if (q.requiresGrad) {
                    float[] dQ = g.grad(q);
                    for (int r0 = 0; r0 < time; r0 += tb) {
                        int r1 = Math.min(time, r0 + tb);
                        be.gemm(false, false, r1 - r0, d, r1, 1f, dP, pOff + r0 * time, time,
                                k.data, kvOff, kw, 1f, dQ, qOff + r0 * qw, qw);
                    }
                }
                if (k.requiresGrad) {
                    float[] dK = g.grad(k);
                    for (int c0 = 0; c0 < time; c0 += tb) {
                        int c1 = Math.min(time, c0 + tb);
                        be.gemm(true, false, c1 - c0, d, time - c0, 1f, dP, pOff + c0 * time + c0, time,
                                q.data, qOff + c0 * qw, qw, 1f, dK, kvOff + c0 * kw, kw);
                    }
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
