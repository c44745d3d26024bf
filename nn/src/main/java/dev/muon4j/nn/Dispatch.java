package dev.muon4j.nn;

/**
 * Where a Mixture-of-Experts layer sends its tokens: each token's chosen experts, and the routed
 * rows grouped by expert, so that each expert multiplies one contiguous block of rows.
 *
 * <p>The choice is DeepSeek-V3's (arXiv 2412.19437, eq. 16; Hugging Face
 * {@code DeepseekV3TopkRouter.get_topk_indices}): token t goes to the K experts of largest
 * {@code s[t, e] + b[e]}, the bias b serving only the choice. Ties go to the lower expert id
 * (torch.topk leaves ties unspecified). Moonlight routes without expert groups
 * ({@code n_group = topk_group = 1}), so groups are not modelled.
 *
 * @param chosen    N·K expert ids, token by token, each token's choices in decreasing order of s + b
 * @param offsets   E + 1 row offsets: expert e's rows are {@code [offsets[e], offsets[e+1])}
 * @param slotOfRow M = N·K entries: routed row m is choice {@code slotOfRow[m]} (= token·K + k)
 * @param tokenOfRow M entries: the token routed row m carries, {@code slotOfRow[m] / K}
 */
public record Dispatch(int[] chosen, int[] offsets, int[] slotOfRow, int[] tokenOfRow) {

    /**
     * The dispatch of {@code tokens} tokens by their scores.
     *
     * @param scores (tokens, experts) router affinities, row-major
     * @param bias   experts values added to the scores for the choice only
     * @param k      experts per token, in 1..experts
     */
    public static Dispatch choose(float[] scores, float[] bias, int tokens, int k) {
        int experts = bias.length;
        if (k < 1 || k > experts) {
            throw new IllegalArgumentException("dispatch: " + k + " experts per token of " + experts);
        }
        if (scores.length < (long) tokens * experts) {
            throw new IllegalArgumentException("dispatch: " + scores.length + " scores for " + tokens + " tokens of " + experts + " experts");
        }
        int[] chosen = new int[tokens * k];
        int[] counts = new int[experts];
        boolean[] taken = new boolean[experts];
        for (int t = 0; t < tokens; t++) {
            java.util.Arrays.fill(taken, false);
            int row = t * experts;
            for (int j = 0; j < k; j++) {
                int best = -1;
                float bestValue = 0;
                for (int e = 0; e < experts; e++) {
                    float v = scores[row + e] + bias[e];
                    if (!taken[e] && (best < 0 || v > bestValue)) {
                        best = e;
                        bestValue = v;
                    }
                }
                taken[best] = true;
                chosen[t * k + j] = best;
                counts[best]++;
            }
        }
        // Counting sort of the N·K choices by expert; within an expert, rows keep token order.
        int[] offsets = new int[experts + 1];
        for (int e = 0; e < experts; e++) {
            offsets[e + 1] = offsets[e] + counts[e];
        }
        int[] next = java.util.Arrays.copyOf(offsets, experts);
        int[] slotOfRow = new int[tokens * k];
        int[] tokenOfRow = new int[tokens * k];
        for (int slot = 0; slot < chosen.length; slot++) {
            int row = next[chosen[slot]]++;
            slotOfRow[row] = slot;
            tokenOfRow[row] = slot / k;
        }
        return new Dispatch(chosen, offsets, slotOfRow, tokenOfRow);
    }

    /** Rows routed to expert {@code e}. */
    public int load(int e) {
        return offsets[e + 1] - offsets[e];
    }
}
