package dev.muon4j.optim;

import java.util.Arrays;

/**
 * QK-clip (MuonClip): after the optimizer step, shrink the query and key projections of every
 * attention head whose largest pre-softmax logit during that step exceeded a threshold τ, so that
 * its logits, with the weights that produced them, would have been scaled by γ = τ/S. Kimi Team,
 * "Kimi K2: Open Agentic Intelligence" (arXiv 2507.20534), the MuonClip section and Algorithm 1;
 * the grouped-query rule is NVIDIA Megatron-LM's {@code SelfAttention.clip_qk} with
 * {@code qk_clip_alpha} = ½. docs/VARIANTS.md ("MuonClip / QK-clip") compares the sources.
 *
 * <p>Shapes: H query heads, K key heads (H a multiple of K), D head dimension, C input width.
 * W_q is (H·D × C), head h in rows h·D … h·D + D − 1; W_k is (K·D × C); query heads
 * g·(H/K) … (g+1)·(H/K) − 1 read key head g. S_h is the largest logit q·k/√D of query head h over
 * the step's batch (signed, with the softmax scale, as the report writes it). Per key group g:
 * <pre>
 *   S_g = max over the group's query heads of S_h
 *   if S_g &gt; τ:   γ_g = τ / S_g
 *                 rows of W_q of every query head in g × √γ_g,   rows of W_k of key head g × √γ_g
 * </pre>
 * With K = H each group is one head and this is the report's per-head rule. Every logit of a
 * clipped group is multiplied by γ_g, so the group's largest lands on τ; groups with S_g ≤ τ
 * (a NaN or negative S included) are not touched, bit for bit. The factor √γ is computed in double
 * and each float weight becomes the float nearest to {@code w·√γ}.
 */
public final class QkClip {
    /** τ of the K2 report and Megatron-LM's {@code qk_clip_threshold} default. */
    public static final double DEFAULT_THRESHOLD = 100;

    private QkClip() {
    }

    /**
     * γ per query head: τ/S_g for the heads of a group whose largest logit S_g exceeds τ, exactly 1
     * for every other head.
     *
     * @param maxLogits S_h per query head (length H); not modified
     * @param kvHeads   K, the key heads
     * @param tau       τ, finite and &gt; 0
     */
    public static double[] factors(double[] maxLogits, int kvHeads, double tau) {
        checkThreshold(tau);
        int heads = maxLogits.length;
        checkHeads(heads, kvHeads);
        int group = heads / kvHeads;
        double[] gamma = new double[heads];
        Arrays.fill(gamma, 1.0);
        for (int g = 0; g < kvHeads; g++) {
            double s = groupMax(maxLogits, g, group);
            if (s > tau) {
                Arrays.fill(gamma, g * group, (g + 1) * group, tau / s);
            }
        }
        return gamma;
    }

    /**
     * Clips one attention layer in place: the rows of every key group whose largest logit exceeds τ
     * are multiplied by √(τ/S_g), in W_q for each of the group's query heads and in W_k for its key
     * head; all other rows are left as they are.
     *
     * @param wq        W_q (H·D × C), row-major; modified
     * @param wk        W_k (K·D × C), row-major; modified
     * @param heads     H, the query heads
     * @param kvHeads   K, the key heads; H must be a multiple of K
     * @param headDim   D, rows per head
     * @param maxLogits S_h per query head (length H), the largest pre-softmax logit q·k/√D of the step; not modified
     * @param tau       τ, finite and &gt; 0
     * @return the number of query heads whose rows were scaled (whole groups: with K &lt; H a head under τ
     *         is scaled with its group)
     * @throws IllegalArgumentException for τ ≤ 0 or not finite, a head count that does not divide, or
     *                                  arrays whose lengths do not match the shapes
     */
    public static int clip(float[] wq, float[] wk, int heads, int kvHeads, int headDim, double[] maxLogits, double tau) {
        checkThreshold(tau);
        checkHeads(heads, kvHeads);
        if (headDim < 1) {
            throw new IllegalArgumentException("QK-clip: head dimension must be >= 1, got " + headDim);
        }
        if (maxLogits.length != heads) {
            throw new IllegalArgumentException("QK-clip: " + maxLogits.length + " max logits for " + heads + " query heads");
        }
        long qRows = (long) heads * headDim;
        if (wq.length == 0 || wq.length % qRows != 0) {
            throw new IllegalArgumentException("QK-clip: W_q has " + wq.length + " values, not H·D = " + qRows + " rows of equal width");
        }
        int cols = (int) (wq.length / qRows);
        if (wk.length != (long) kvHeads * headDim * cols) {
            throw new IllegalArgumentException("QK-clip: W_k has " + wk.length + " values, not K·D·C = " + kvHeads + "·" + headDim
                    + "·" + cols);
        }
        int group = heads / kvHeads;
        int block = headDim * cols;
        int scaled = 0;
        for (int g = 0; g < kvHeads; g++) {
            double s = groupMax(maxLogits, g, group);
            if (!(s > tau)) {
                continue;
            }
            double factor = Math.sqrt(tau / s);
            scale(wq, g * group * block, (g + 1) * group * block, factor);
            scale(wk, g * block, (g + 1) * block, factor);
            scaled += group;
        }
        return scaled;
    }

    /**
     * Clips one Multi-head Latent Attention layer in place, per head (K2 report, the MuonClip section:
     * "for MLA"; docs/VARIANTS.md). Head h's logit is q^C·k^C + q^R·k^R over √(Dn + Dr): its content
     * query q^C and content key k^C are its own rows, its rotary query q^R too, but the rotary key k^R
     * is one for all heads. So for every head with S_h &gt; τ, γ_h = τ/S_h and
     * <pre>
     *   q^C rows × √γ_h,   k^C rows × √γ_h,   q^R rows × γ_h,   k^R and the value rows untouched
     * </pre>
     * which multiplies every logit of head h by γ_h and no other head's logit at all. Megatron-LM's
     * {@code MLASelfAttention} clip (q nope × η^α, q pe × η, k nope × η^(1−α)) is this with α = ½.
     * Heads with S_h ≤ τ (a NaN or negative S included) are not touched, bit for bit; each float becomes
     * the float nearest to {@code w·factor}, the factor computed in double.
     *
     * @param wq        the query projection ({@code q_proj}, or {@code q_b_proj} with a query rank):
     *                  H blocks of Dn + Dr rows, head h's content rows first, then its rotary rows; modified
     * @param wkvB      the key-value up-projection {@code kv_b_proj}: H blocks of Dn + Dv rows, head h's
     *                  content-key rows first, then its value rows; modified (the content-key rows only)
     * @param heads     H
     * @param nopeDim   Dn, content (no-position) rows of a query or key head
     * @param ropeDim   Dr, rotary rows of a query head
     * @param valueDim  Dv, value rows of a head
     * @param maxLogits S_h per head (length H), the largest pre-softmax logit of the step; not modified
     * @param tau       τ, finite and &gt; 0
     * @return the number of heads whose rows were scaled
     * @throws IllegalArgumentException for τ ≤ 0 or not finite, dimensions below 1, or arrays whose
     *                                  lengths do not match the shapes
     */
    public static int clipLatent(float[] wq, float[] wkvB, int heads, int nopeDim, int ropeDim, int valueDim, double[] maxLogits,
                                 double tau) {
        checkThreshold(tau);
        if (heads < 1 || nopeDim < 1 || ropeDim < 1 || valueDim < 1) {
            throw new IllegalArgumentException("QK-clip (MLA): heads " + heads + " and head dimensions " + nopeDim + ", " + ropeDim
                    + ", " + valueDim + " must all be >= 1");
        }
        if (maxLogits.length != heads) {
            throw new IllegalArgumentException("QK-clip (MLA): " + maxLogits.length + " max logits for " + heads + " heads");
        }
        long qRows = (long) heads * (nopeDim + ropeDim);
        if (wq.length == 0 || wq.length % qRows != 0) {
            throw new IllegalArgumentException("QK-clip (MLA): W_q has " + wq.length + " values, not H·(Dn + Dr) = " + qRows
                    + " rows of equal width");
        }
        long kvRows = (long) heads * (nopeDim + valueDim);
        if (wkvB.length == 0 || wkvB.length % kvRows != 0) {
            throw new IllegalArgumentException("QK-clip (MLA): kv_b_proj has " + wkvB.length + " values, not H·(Dn + Dv) = " + kvRows
                    + " rows of equal width");
        }
        int qCols = (int) (wq.length / qRows);
        int kvCols = (int) (wkvB.length / kvRows);
        int scaled = 0;
        for (int h = 0; h < heads; h++) {
            double s = maxLogits[h];
            if (!(s > tau)) {
                continue;
            }
            double gamma = tau / s;
            double root = Math.sqrt(gamma);
            int q0 = h * (nopeDim + ropeDim) * qCols;
            scale(wq, q0, q0 + nopeDim * qCols, root);
            scale(wq, q0 + nopeDim * qCols, q0 + (nopeDim + ropeDim) * qCols, gamma);
            int k0 = h * (nopeDim + valueDim) * kvCols;
            scale(wkvB, k0, k0 + nopeDim * kvCols, root);
            scaled++;
        }
        return scaled;
    }

    /** The largest S_h of key group g (NaN when any of them is NaN). */
    private static double groupMax(double[] maxLogits, int g, int group) {
        double s = Double.NEGATIVE_INFINITY;
        for (int h = g * group; h < (g + 1) * group; h++) {
            s = Math.max(s, maxLogits[h]);
        }
        return s;
    }

    private static void scale(float[] w, int from, int to, double factor) {
        for (int i = from; i < to; i++) {
            w[i] = (float) (w[i] * factor);
        }
    }

    private static void checkThreshold(double tau) {
        if (!(tau > 0) || !Double.isFinite(tau)) {
            throw new IllegalArgumentException("QK-clip threshold τ must be finite and > 0, got " + tau);
        }
    }

    private static void checkHeads(int heads, int kvHeads) {
        if (heads < 1 || kvHeads < 1 || heads % kvHeads != 0) {
            throw new IllegalArgumentException("QK-clip: query heads " + heads + " must be a positive multiple of key heads " + kvHeads);
        }
    }
}
