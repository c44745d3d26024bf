package dev.muon4j.nn;

/**
 * How the next token is drawn from a model's logits (see {@link Sampler#probabilities}).
 *
 * @param temperature T ≥ 0: the logits are divided by T before the softmax; 0 is greedy decoding
 *                    (always the token of the largest logit); 1 leaves the distribution as it is
 * @param topK        k ≥ 0: only the k tokens of largest logit can be drawn; 0 leaves all of them
 * @param topP        p in (0, 1]: nucleus sampling, only the smallest set of most likely tokens
 *                    whose probabilities add up to at least p can be drawn; 1 leaves all of them
 */
public record SamplingConfig(double temperature, int topK, double topP) {
    public SamplingConfig {
        if (!(temperature >= 0) || !Double.isFinite(temperature)) {
            throw new IllegalArgumentException("sampling: temperature must be finite and >= 0 (0: greedy), got " + temperature);
        }
        if (topK < 0) {
            throw new IllegalArgumentException("sampling: top-k must be >= 0 (0: off), got " + topK);
        }
        if (!(topP > 0 && topP <= 1)) {
            throw new IllegalArgumentException("sampling: top-p must lie in (0, 1] (1: off), got " + topP);
        }
    }

    /** Greedy decoding: always the most likely token. */
    public static SamplingConfig greedy() {
        return new SamplingConfig(0, 0, 1);
    }

    /** True when every draw is the token of the largest logit. */
    public boolean isGreedy() {
        return temperature == 0 || topK == 1;
    }
}
