package dev.muon4j.nn;

import java.util.Arrays;
import java.util.Objects;
import java.util.SplittableRandom;

/**
 * Draws the next token from a row of logits, as nanoGPT's {@code sample.py} and Hugging Face's
 * samplers do, from a seeded generator: the same seed and logits give the same tokens on every machine.
 *
 * <p>With temperature T &gt; 0, top-k k and top-p p ({@link SamplingConfig}), over logits z of V tokens:
 * <pre>
 *   order     the tokens by z, largest first (equal logits: smaller id first)
 *   top-k     keep the first k of them (k = 0: all)
 *   softmax   q_i = exp((z_i − z_max)/T) / Σ_kept exp((z_j − z_max)/T)    over the kept tokens
 *   top-p     keep the shortest prefix of the order whose q adds up to at least p (p = 1: all)
 *   draw      token i with probability q_i / Σ_kept q_j
 * </pre>
 * Top-k keeps exactly k tokens, also when the k-th logit is tied with the next (nanoGPT keeps the
 * ties). The top-p sum is compared with p less 1e-12 of it, so that a set whose mass is p up to rounding
 * counts as reaching it. T = 0, or k = 1, is greedy decoding: the token of the largest logit, no draw.
 * Not thread-safe.
 */
public final class Sampler {
    /** A top-p prefix whose summed probability is within this fraction of p counts as reaching p. */
    static final double TOP_P_TOLERANCE = 1e-12;

    private final SamplingConfig config;
    private final SplittableRandom random;

    /** A sampler drawing with {@code config} from a generator seeded with {@code seed}. */
    public Sampler(SamplingConfig config, long seed) {
        this.config = Objects.requireNonNull(config, "sampling config");
        this.random = new SplittableRandom(seed);
    }

    public SamplingConfig config() {
        return config;
    }

    /**
     * Draws a token.
     *
     * @param logits the row of logits, {@code logits[offset .. offset + vocab)}; not modified
     * @return the token id, in {@code [0, vocab)}
     * @throws IllegalArgumentException if a logit is NaN or +∞, or all are −∞
     */
    public int next(float[] logits, int offset, int vocab) {
        if (config.isGreedy()) {
            return argmax(logits, offset, vocab);
        }
        double[] q = probabilities(config, logits, offset, vocab);
        double u = random.nextDouble();
        double cumulative = 0;
        int last = -1;
        for (int i = 0; i < vocab; i++) {
            if (q[i] > 0) {
                cumulative += q[i];
                last = i;
                if (u < cumulative) {
                    return i;
                }
            }
        }
        return last;   // u fell in the rounding gap below 1
    }

    /**
     * The index of the largest logit (the smallest index among equal ones).
     *
     * @throws IllegalArgumentException if a logit is NaN or +∞, or all are −∞
     */
    public static int argmax(float[] logits, int offset, int vocab) {
        checkLogits(logits, offset, vocab);
        int best = 0;
        for (int i = 1; i < vocab; i++) {
            if (logits[offset + i] > logits[offset + best]) {
                best = i;
            }
        }
        return best;
    }

    /**
     * The probabilities a draw is made from (see the class description): zero outside the kept
     * tokens, adding up to 1; for a greedy config, 1 at the {@link #argmax} and 0 elsewhere.
     *
     * @param logits the row of logits, {@code logits[offset .. offset + vocab)}; not modified
     * @return V probabilities, indexed by token id
     * @throws IllegalArgumentException if a logit is NaN or +∞, or all are −∞
     */
    public static double[] probabilities(SamplingConfig config, float[] logits, int offset, int vocab) {
        double[] q = new double[vocab];
        if (config.isGreedy()) {
            q[argmax(logits, offset, vocab)] = 1;
            return q;
        }
        checkLogits(logits, offset, vocab);
        int kept = config.topK() == 0 ? vocab : Math.min(config.topK(), vocab);
        boolean ordered = kept < vocab || config.topP() < 1;
        int[] order = ordered ? order(logits, offset, vocab) : null;
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < vocab; i++) {
            max = Math.max(max, logits[offset + i]);
        }
        double sum = 0;
        for (int r = 0; r < kept; r++) {
            int i = ordered ? order[r] : r;
            q[i] = Math.exp((logits[offset + i] - max) / config.temperature());
            sum += q[i];
        }
        for (int r = 0; r < kept; r++) {
            q[ordered ? order[r] : r] /= sum;
        }
        if (config.topP() < 1) {
            double mass = 0;
            int r = 0;
            while (r < kept && mass < config.topP() * (1 - TOP_P_TOLERANCE)) {
                mass += q[order[r++]];
            }
            for (int cut = r; cut < kept; cut++) {
                q[order[cut]] = 0;
            }
            for (int s = 0; s < r; s++) {
                q[order[s]] /= mass;
            }
        }
        return q;
    }

    /** Token ids by logit, largest first, equal logits by id: one sort of (logit, id) packed into longs. */
    private static int[] order(float[] logits, int offset, int vocab) {
        long[] keys = new long[vocab];
        for (int i = 0; i < vocab; i++) {
            int bits = Float.floatToIntBits(logits[offset + i] + 0f);   // + 0f: −0 sorts as 0
            int ascending = bits ^ ((bits >> 31) & 0x7FFFFFFF);           // signed order of the ints = order of the floats
            keys[i] = ((long) ~ascending << 32) | i;                      // ~: largest logit first; then smaller id first
        }
        Arrays.sort(keys);
        int[] order = new int[vocab];
        for (int r = 0; r < vocab; r++) {
            order[r] = (int) keys[r];
        }
        return order;
    }

    private static void checkLogits(float[] logits, int offset, int vocab) {
        if (vocab < 1 || offset < 0 || offset + vocab > logits.length) {
            throw new IllegalArgumentException("logits [" + offset + ", " + offset + " + " + vocab + ") outside an array of "
                    + logits.length);
        }
        boolean anyFinite = false;
        for (int i = 0; i < vocab; i++) {
            float z = logits[offset + i];
            if (Float.isNaN(z) || z == Float.POSITIVE_INFINITY) {
                throw new IllegalArgumentException("the logit of token " + i + " is " + z + ": the model's output is broken");
            }
            anyFinite |= z != Float.NEGATIVE_INFINITY;
        }
        if (!anyFinite) {
            throw new IllegalArgumentException("every logit is -Infinity: no token can be drawn");
        }
    }
}
