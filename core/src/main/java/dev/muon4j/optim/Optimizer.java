package dev.muon4j.optim;

import java.util.List;

/**
 * An optimizer over a fixed list of named {@link Parameter}s. Each {@link #step()} reads the
 * parameters' gradients and updates their values in place.
 */
public interface Optimizer {

    /** Applies one update from the current gradients. */
    StepResult step();

    /** Number of applied steps so far (skipped steps not counted); drives bias correction and the schedule. */
    long stepCount();

    /** Number of steps skipped for non-finite gradients. */
    long skippedSteps();

    /** The parameters, in the order given. */
    List<Parameter> parameters();

    /** A deep copy of the optimizer's state, keyed by parameter name. */
    OptimizerState saveState();

    /**
     * Replaces the optimizer's state with {@code state}, after checking that it has exactly this
     * optimizer's parameter names, routes and buffer sizes; on any mismatch nothing is changed and
     * the error names the parameter.
     */
    void loadState(OptimizerState state);

    /**
     * The first NaN or infinite value in the optimizer's own state (for a sharded optimizer, the
     * part this rank holds), described with the parameter, the buffer, the element and the value,
     * e.g. {@code "momentum of layers.0.q element 17 is NaN"}; empty when every value is finite.
     * Training checks this after each step, so that a corrupted state stops the run before it is
     * saved.
     */
    java.util.Optional<String> findNonFiniteState();
}
