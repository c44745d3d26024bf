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
 * @param method    how the iteration is carried out: {@link Method#STANDARD} (default) or {@link Method#GRAM}
 */
public record NewtonSchulzConfig(CoefficientSchedule schedule, int steps, double eps, DType precision,
                                 Normalization normalization, Method method) {
    public static final int DEFAULT_STEPS = 5;
    public static final double DEFAULT_EPS = 1e-7;

    /**
     * The step indices (0-based) before which {@link Method#GRAM} restarts: X ← Q·X, R ← X·Xᵀ, Q ← I.
     * Dao-AILab/gram-newton-schulz {@code GramNewtonSchulz(gram_newton_schulz_reset_iterations=[2])} (its
     * default) and DeepSpeed's {@code zeropower_via_gram_newtonschulz} ({@code restart_at = 2}) both restart
     * once, before the third step. A restart listed at or past the last step does nothing.
     */
    public static final java.util.List<Integer> GRAM_RESTARTS = java.util.List.of(2);

    /** How the iteration is computed; both give the same result in exact arithmetic. */
    public enum Method {
        /** X ← a·X + (b·A + c·A²)·X with A = X·Xᵀ at every step: {@code steps·(3m²n + m³)} flops with SYRK. */
        STANDARD,
        /**
         * Gram Newton–Schulz (Dao-AILab/gram-newton-schulz; DeepSpeed's default {@code ns_method="gram"}): every
         * iterate is X_t = Q_t·X_0 with Q_t a polynomial in R = X_0·X_0ᵀ, so the steps run on m×m matrices only
         * and X is touched at the start, at each restart ({@link #GRAM_RESTARTS}) and at the end. Five steps
         * cost 6m²n + 23m³ flops here against 15m²n + 5m³: fewer when n &gt; 2m. A square matrix runs the
         * standard iteration, as in both sources. Float32 only (see docs/VARIANTS.md).
         */
        GRAM
    }

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

    /** A config with {@link Normalization#FROBENIUS_PLUS_EPS} and the {@link Method#STANDARD} iteration. */
    public NewtonSchulzConfig(CoefficientSchedule schedule, int steps, double eps, DType precision) {
        this(schedule, steps, eps, precision, Normalization.FROBENIUS_PLUS_EPS, Method.STANDARD);
    }

    /** A config with the {@link Method#STANDARD} iteration. */
    public NewtonSchulzConfig(CoefficientSchedule schedule, int steps, double eps, DType precision, Normalization normalization) {
        this(schedule, steps, eps, precision, normalization, Method.STANDARD);
    }

    public NewtonSchulzConfig {
        Objects.requireNonNull(schedule, "schedule");
        Objects.requireNonNull(precision, "precision");
        Objects.requireNonNull(normalization, "normalization");
        Objects.requireNonNull(method, "method");
        if (normalization == Normalization.TORCH_BF16 && precision != DType.BF16) {
            throw new IllegalArgumentException("torch's bfloat16 normalization needs BF16 precision, got " + precision);
        }
        if (method == Method.GRAM && precision != DType.F32) {
            throw new IllegalArgumentException("Gram Newton–Schulz runs in float32 only, got precision " + precision
                    + (normalization == Normalization.TORCH_BF16 ? " with torch's bfloat16 normalization (torch.optim.Muon has no Gram iteration)" : "")
                    + "; its sources run it in float16, which has 3 more mantissa bits than bfloat16");
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
        return new NewtonSchulzConfig(newSchedule, steps, eps, precision, normalization, method);
    }

    public NewtonSchulzConfig withSteps(int newSteps) {
        return new NewtonSchulzConfig(schedule, newSteps, eps, precision, normalization, method);
    }

    public NewtonSchulzConfig withEps(double newEps) {
        return new NewtonSchulzConfig(schedule, steps, newEps, precision, normalization, method);
    }

    public NewtonSchulzConfig withPrecision(DType newPrecision) {
        return new NewtonSchulzConfig(schedule, steps, eps, newPrecision,
                newPrecision == DType.BF16 ? normalization : Normalization.FROBENIUS_PLUS_EPS, method);
    }

    /** This config with another iteration method ({@link Method#GRAM} needs F32 precision). */
    public NewtonSchulzConfig withMethod(Method newMethod) {
        return new NewtonSchulzConfig(schedule, steps, eps, precision, normalization, newMethod);
    }
}
