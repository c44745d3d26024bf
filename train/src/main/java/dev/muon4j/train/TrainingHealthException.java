package dev.muon4j.train;

/**
 * A run stopped by a failed health check: a NaN or infinite gradient, parameter, optimizer state
 * or loss, or a collapse ({@link HealthCheck}). The message names the step, what failed (the
 * parameter, where there is one) and the last checkpoint, which the failed step never touched.
 */
public final class TrainingHealthException extends IllegalStateException {
    public TrainingHealthException(String message) {
        super(message);
    }

    public TrainingHealthException(String message, Throwable cause) {
        super(message, cause);
    }
}
