package dev.muon4j.optim;

/** A gradient held NaN or ±Infinity; thrown before anything is modified. */
public final class NonFiniteGradientException extends IllegalStateException {
    private final String parameter;
    private final int index;
    private final float value;

    /**
     * @param step the step being taken, counted from 1 (every step called before it, applied or skipped, plus 1),
     *             as training metrics number steps
     */
    public NonFiniteGradientException(String parameter, int index, float value, long step) {
        super("non-finite gradient in step " + step + ": parameter " + parameter + " element " + index + " is " + value);
        this.parameter = parameter;
        this.index = index;
        this.value = value;
    }

    public String parameter() {
        return parameter;
    }

    public int index() {
        return index;
    }

    public float value() {
        return value;
    }
}
