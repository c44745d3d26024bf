package dev.muon4j.optim;

import dev.muon4j.backend.Backend;
import java.util.Objects;

/**
 * What every transform of one optimizer step shares: the backend for matrix products, the step
 * number (from 1) for bias corrections, the schedule's learning-rate factor, scratch space for
 * Newton–Schulz, and the time spent in Newton–Schulz and the matrices it orthogonalized.
 */
public final class StepContext {
    private final Backend backend;
    private final NewtonSchulz.Workspace workspace = new NewtonSchulz.Workspace();
    private long step;
    private double lrFactor;
    private long newtonSchulzNanos;
    private long newtonSchulzMatrices;

    public StepContext(Backend backend) {
        this.backend = Objects.requireNonNull(backend, "backend");
    }

    /** Starts step {@code step} (≥ 1) with learning-rate factor {@code lrFactor}. */
    public void begin(long step, double lrFactor) {
        if (step < 1) {
            throw new IllegalArgumentException("steps count from 1, got " + step);
        }
        this.step = step;
        this.lrFactor = lrFactor;
        this.newtonSchulzNanos = 0;
        this.newtonSchulzMatrices = 0;
    }

    public Backend backend() {
        return backend;
    }

    /** The Newton–Schulz scratch buffers, reused from step to step. */
    public NewtonSchulz.Workspace workspace() {
        return workspace;
    }

    /** The step being taken, counted from 1 (applied steps only: drives bias correction). */
    public long step() {
        return step;
    }

    /** The schedule's factor for this step; a parameter's learning rate is its base rate times this. */
    public double lrFactor() {
        return lrFactor;
    }

    /** Adds time spent in Newton–Schulz. */
    public void addNewtonSchulzNanos(long nanos) {
        newtonSchulzNanos += nanos;
    }

    /** Time spent in Newton–Schulz since {@link #begin}. */
    public long newtonSchulzNanos() {
        return newtonSchulzNanos;
    }

    /** Counts {@code matrices} more inputs of Newton–Schulz (matrices, or row blocks orthogonalized alone). */
    public void addNewtonSchulzMatrices(long matrices) {
        newtonSchulzMatrices += matrices;
    }

    /** Matrices (or row blocks) Newton–Schulz orthogonalized since {@link #begin}. */
    public long newtonSchulzMatrices() {
        return newtonSchulzMatrices;
    }
}
