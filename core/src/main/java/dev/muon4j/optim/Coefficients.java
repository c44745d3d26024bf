package dev.muon4j.optim;

/**
 * One step's coefficients of the quintic Newton–Schulz iteration
 * {@code X ← a·X + (b·A + c·A²)·X} with {@code A = X·Xᵀ}.
 */
public record Coefficients(double a, double b, double c) {
    public Coefficients {
        if (!Double.isFinite(a) || !Double.isFinite(b) || !Double.isFinite(c)) {
            throw new IllegalArgumentException("Newton–Schulz coefficients must be finite, got (" + a + ", " + b + ", " + c + ")");
        }
    }
}
