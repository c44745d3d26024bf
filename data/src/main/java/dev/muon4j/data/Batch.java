package dev.muon4j.data;

/**
 * A batch for next-token prediction: {@code batch} rows of {@code time} tokens each, stored row
 * after row. {@code targets[r*time + t]} is the token that follows {@code inputs[r*time + t]} in
 * the text.
 *
 * <p>The arrays are handed over, not copied; treat them as read-only.
 *
 * @param inputs the input ids, length {@code batch * time}, row-major
 * @param targets the ids to predict, the inputs shifted left by one, same layout
 * @param batch the number of rows; 0 only for a data-parallel rank's empty share
 * @param time the number of positions per row (the context length)
 */
public record Batch(int[] inputs, int[] targets, int batch, int time) {

    /** Checks that both arrays hold exactly {@code batch * time} ids. */
    public Batch {
        if (batch < 0 || time < 1) {
            throw new IllegalArgumentException("batch " + batch + " x time " + time + " is not a valid shape");
        }
        long n = (long) batch * time;
        if (inputs.length != n || targets.length != n) {
            throw new IllegalArgumentException("batch " + batch + " x time " + time + " needs " + n
                    + " ids but inputs has " + inputs.length + " and targets " + targets.length);
        }
    }

    /** The number of tokens predicted by this batch, {@code batch * time}. */
    public int tokens() {
        return batch * time;
    }
}
