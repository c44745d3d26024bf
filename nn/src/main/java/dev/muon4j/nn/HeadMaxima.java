package dev.muon4j.nn;

import java.util.Arrays;

/**
 * Each query head's largest pre-softmax attention logit since the last reset: the running maxima
 * an {@link Attention}'s forward pass raises (through the attention op), and QK-clip reads.
 */
final class HeadMaxima {
    private final float[] values; // (H)

    HeadMaxima(int heads) {
        values = new float[heads];
        reset();
    }

    /** The array the attention op raises in place. */
    float[] raised() {
        return values;
    }

    /** A copy of the maxima (−∞ for a head no forward pass has run through since the reset). */
    float[] copy() {
        return values.clone();
    }

    void reset() {
        Arrays.fill(values, Float.NEGATIVE_INFINITY);
    }

    /** These heads' entries of maxima laid out head after head from {@code offset} (e.g. layer after layer). */
    double[] of(double[] all, int offset) {
        return Arrays.copyOfRange(all, offset, offset + values.length);
    }
}
