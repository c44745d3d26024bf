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
 * @param normalization how G is scaled before the first step
 */
public record NewtonSchulzConfig(CoefficientSchedule schedule, int steps, double eps, DType precision,
                                 Normalization normalization) {
    public static final int DEFAULT_STEPS = 5;
    public static final double DEFAULT_EPS = 1e-7;

    /** How the input is normalised before the iteration. */
    public enum Normalization {
        /**
         * X = G / (s·‖G‖_F + eps), the norm in double and X scaled in float32 (then rounded to
         * bfloat16 in BF16 precision): closer to float64 than torch's bfloat16 arithmetic.
         */
        FROBENIUS_PLUS_EPS,
        /**
         * torch.optim.Muon's bfloat16 arithmetic (PyTorch ≥ 2.9, {@code _zeropower_via_newtonschulz}; see
         * docs/VARIANTS.md): G rounded to bfloat16 first, its norm rounded to bfloat16 and clamped from
         * below at eps ({@code clamp(min=eps)}, not {@code + eps}), each element divided by it and
         * rounded to bfloat16; every product then rounded once to bfloat16. Needs BF16 precision.
         * Reproduces PyTorch's CPU bits where its products accumulate in float32 (oneDNN).
         */
        TORCH_BF16
    }

    /** A config with {@link Normalization#FROBENIUS_PLUS_EPS}. */
    public NewtonSchulzConfig(CoefficientSchedule schedule, int steps, double eps, DType precision) {
        this(schedule, steps, eps, precision, Normalization.FROBENIUS_PLUS_EPS);
    }

    public NewtonSchulzConfig {
        Objects.requireNonNull(schedule, "schedule");
        Objects.requireNonNull(precision, "precision");
        Objects.requireNonNull(normalization, "normalization");
        if (normalization == Normalization.TORCH_BF16 && precision != DType.BF16) {
            throw new IllegalArgumentException("torch's bfloat16 normalization needs BF16 precision, got " + precision);
        }
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

    /** torch.optim.Muon's Newton–Schulz: Keller Jordan's coefficients, 5 steps, eps 1e-7, its bfloat16 arithmetic. */
    public static NewtonSchulzConfig torchBf16() {
        return new NewtonSchulzConfig(CoefficientSchedule.kellerJordan(), DEFAULT_STEPS, DEFAULT_EPS, DType.BF16, Normalization.TORCH_BF16);
    }

    public NewtonSchulzConfig withSchedule(CoefficientSchedule newSchedule) {
        return new NewtonSchulzConfig(newSchedule, steps, eps, precision, normalization);
    }

    public NewtonSchulzConfig withSteps(int newSteps) {
        return new NewtonSchulzConfig(schedule, newSteps, eps, precision, normalization);
    }

    public NewtonSchulzConfig withEps(double newEps) {
        return new NewtonSchulzConfig(schedule, steps, newEps, precision, normalization);
    }

    public NewtonSchulzConfig withPrecision(DType newPrecision) {
        return new NewtonSchulzConfig(schedule, steps, eps, newPrecision,
                newPrecision == DType.BF16 ? normalization : Normalization.FROBENIUS_PLUS_EPS);
    }
}
