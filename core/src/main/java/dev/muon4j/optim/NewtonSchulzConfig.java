package dev.muon4j.optim;

import dev.muon4j.tensor.DType;
import java.util.Objects;

/**
 * Settings of the Newton–Schulz orthogonalisation.
 *
 * @param schedule  the per-step coefficients
 * @param steps     number of iterations, at least 1 (default 5)
 * @param eps       added to the scaled Frobenius norm before dividing (default 1e-7)
 * @param precision {@link DType#F32}, or {@link DType#BF16} to round X, A and B to bfloat16 after
 *                  every product (accumulation stays float32), as the reference GPU implementations run
 */
public record NewtonSchulzConfig(CoefficientSchedule schedule, int steps, double eps, DType precision) {
    public static final int DEFAULT_STEPS = 5;
    public static final double DEFAULT_EPS = 1e-7;

    public NewtonSchulzConfig {
        Objects.requireNonNull(schedule, "schedule");
        Objects.requireNonNull(precision, "precision");
        if (steps < 1) {
            throw new IllegalArgumentException("Newton–Schulz steps must be at least 1, got " + steps);
        }
        if (!(eps >= 0) || !Double.isFinite(eps)) {
            throw new IllegalArgumentException("Newton–Schulz eps must be finite and >= 0, got " + eps);
        }
    }

    /** Keller Jordan's coefficients, 5 steps, eps 1e-7, float32. */
    public static NewtonSchulzConfig defaults() {
        return new NewtonSchulzConfig(CoefficientSchedule.kellerJordan(), DEFAULT_STEPS, DEFAULT_EPS, DType.F32);
    }

    public NewtonSchulzConfig withSchedule(CoefficientSchedule newSchedule) {
        return new NewtonSchulzConfig(newSchedule, steps, eps, precision);
    }

    public NewtonSchulzConfig withSteps(int newSteps) {
        return new NewtonSchulzConfig(schedule, newSteps, eps, precision);
    }

    public NewtonSchulzConfig withEps(double newEps) {
        return new NewtonSchulzConfig(schedule, steps, newEps, precision);
    }

    public NewtonSchulzConfig withPrecision(DType newPrecision) {
        return new NewtonSchulzConfig(schedule, steps, eps, newPrecision);
    }
}
