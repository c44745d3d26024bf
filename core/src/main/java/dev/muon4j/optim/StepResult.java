package dev.muon4j.optim;

/**
 * What one optimizer step did.
 *
 * @param step         number of applied (not skipped) steps after this one
 * @param skipped      true when a non-finite gradient made the step a no-op ({@link NonFinitePolicy#SKIP_STEP})
 * @param gradientNorm global L2 norm of all gradients before clipping (NaN when skipped)
 * @param clipped      true when the gradients were scaled down to the clipping threshold
 * @param lrFactor     the schedule's factor used for this step
 */
public record StepResult(long step, boolean skipped, double gradientNorm, boolean clipped, double lrFactor) {
}
