package dev.muon4j.optim;

import dev.muon4j.backend.Kernels;
import java.util.List;

/** Global-norm gradient clipping (as {@code torch.nn.utils.clip_grad_norm_}). */
public final class GradientClipping {
    private GradientClipping() {
    }

    /** √(Σ g²) over every gradient element of every parameter (float partial sums per 1024 elements, added in double). */
    public static double globalNorm(List<Parameter> parameters) {
        double sum = 0;
        for (Parameter p : parameters) {
            sum += Kernels.sumOfSquares(p.gradient(), 0, p.size());
        }
        return Math.sqrt(sum);
    }

    /**
     * The factor clipping scales gradients by: {@code maxNorm / (norm + 1e-6)} when clipping is on
     * ({@code maxNorm > 0}) and {@code norm > maxNorm}, else exactly 1. The 1e-6 is
     * {@code torch.nn.utils.clip_grad_norm_}'s.
     */
    public static float factor(double norm, double maxNorm) {
        return maxNorm > 0 && norm > maxNorm ? (float) (maxNorm / (norm + 1e-6)) : 1f;
    }

    /**
     * If {@code norm > maxNorm}, scales every gradient in place by {@code maxNorm / (norm + 1e-6)}
     * and returns true; otherwise leaves them and returns false.
     */
    public static boolean clip(List<Parameter> parameters, double norm, double maxNorm) {
        if (!(maxNorm > 0)) {
            throw new IllegalArgumentException("clipping norm must be > 0, got " + maxNorm);
        }
        float factor = factor(norm, maxNorm);
        if (factor == 1f) {
            return false;
        }
        for (Parameter p : parameters) {
            Kernels.scale(p.gradient(), 0, p.size(), factor);
        }
        return true;
    }
}
