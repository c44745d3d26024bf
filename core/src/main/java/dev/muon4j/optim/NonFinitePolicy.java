package dev.muon4j.optim;

/** What an optimizer step does when a gradient holds NaN or ±Infinity. */
public enum NonFinitePolicy {
    /** Throw {@link NonFiniteGradientException} naming the parameter, index and value; nothing is changed. */
    FAIL,
    /** Leave every parameter and all state unchanged, count the skipped step, and go on. */
    SKIP_STEP
}
