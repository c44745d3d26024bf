package dev.muon4j.train;

/**
 * What the trainer watches after every step, besides non-finite parameters and optimizer state
 * (always checked): collapse, where the model has stopped learning for good. A step is a collapse
 * step when its gradient norm is exactly zero, or when its loss equals the loss of the uniform
 * distribution over the vocabulary, ln V, to within {@code uniformTolerance} (the model predicts
 * nothing). After {@code collapseSteps} such steps in a row the run stops with an error.
 *
 * <p>Checkpoints due during a collapse step, or during a step whose loss is above
 * {@value #DIVERGED_LOSS_FACTOR}·ln V (far worse than predicting the uniform distribution, which
 * any model can do; a diverging run passes through such losses on its way to collapse or NaN), are
 * put off until a step is healthy again, so that no checkpoint of a broken model is ever written
 * over a healthy one and pushes it out of the kept set.
 *
 * @param collapseSteps    collapse steps in a row that stop the run; 0 turns collapse detection off
 * @param uniformTolerance how close to ln V (in nats) a loss counts as uniform
 */
public record HealthCheck(int collapseSteps, double uniformTolerance) {
    /**
     * Default streak. A healthy run never has a gradient norm of exactly 0, nor a loss of exactly
     * ln V; the runs seen collapsing (learning rate 30, no clipping, on 1.9M- and 0.03M-parameter
     * models) sat there for 9 to 30 steps before a NaN ended them, or forever.
     */
    public static final int DEFAULT_COLLAPSE_STEPS = 5;
    /**
     * Default tolerance. A collapsed model's loss is ln V to float rounding (1.5e-8 off for V = 256);
     * initial weights of std 0.001 on width 32 already sit 1.6e-5 above it, and std 0.02 0.006 above.
     */
    public static final double DEFAULT_UNIFORM_TOLERANCE = 1e-6;

    /**
     * A loss above this many times ln V makes a step unfit for a checkpoint: initial weights of std
     * 0.02–0.1 start within 0.05–2 nats of ln V, while the diverging runs seen went through losses of
     * 30–3,000·ln V.
     */
    public static final double DIVERGED_LOSS_FACTOR = 2;

    public HealthCheck {
        if (collapseSteps < 0) {
            throw new IllegalArgumentException("collapse steps must be >= 0 (0 turns the check off), got " + collapseSteps);
        }
        if (!(uniformTolerance >= 0) || !Double.isFinite(uniformTolerance)) {
            throw new IllegalArgumentException("uniform-loss tolerance must be finite and >= 0, got " + uniformTolerance);
        }
    }

    /** The defaults: {@value #DEFAULT_COLLAPSE_STEPS} steps, tolerance {@value #DEFAULT_UNIFORM_TOLERANCE}. */
    public static HealthCheck defaults() {
        return new HealthCheck(DEFAULT_COLLAPSE_STEPS, DEFAULT_UNIFORM_TOLERANCE);
    }

    /** Collapse detection off (non-finite values are still checked). */
    public static HealthCheck collapseOff() {
        return new HealthCheck(0, DEFAULT_UNIFORM_TOLERANCE);
    }

    /** Whether collapse is watched. */
    public boolean watchesCollapse() {
        return collapseSteps > 0;
    }

    /**
     * Whether a checkpoint may be written after a step with this loss and gradient norm: not during a
     * collapse step, nor when the loss is above {@value #DIVERGED_LOSS_FACTOR}·ln V. Always true with
     * collapse detection off.
     */
    public boolean fitForCheckpoint(double loss, double gradientNorm, int vocabSize) {
        return !watchesCollapse()
                || !(isCollapseStep(loss, gradientNorm, vocabSize) || loss > DIVERGED_LOSS_FACTOR * Math.log(vocabSize));
    }

    /** Whether a step with this loss and gradient norm counts toward a collapse, for a vocabulary of {@code vocabSize}. */
    public boolean isCollapseStep(double loss, double gradientNorm, int vocabSize) {
        return gradientNorm == 0 || Math.abs(loss - Math.log(vocabSize)) <= uniformTolerance;
    }
}
