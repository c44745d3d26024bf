package dev.muon4j.experiments;

import java.util.Arrays;

/**
 * A compute frontier L(C) = a·C^(−b) + L∞ fitted to points (C, L) by least squares on L, the form
 * Moonlight fits to its scaling runs (arXiv 2502.16982, §3.2, Figure 3) and Chinchilla's loss law
 * takes in one variable.
 *
 * <p>The fit is global, not a local search from a starting guess: for a fixed exponent b the curve
 * is linear in (a, L∞), so the best a ≥ 0 and 0 ≤ L∞ ≤ min L follow in closed form (the
 * unconstrained least-squares line, or the best point on the boundary of that region where the line
 * leaves it), and b is searched over a log-spaced grid of [{@value #B_MIN}, {@value #B_MAX}] and then
 * refined by golden sections around the best grid point. C is divided by its geometric mean while
 * fitting, so the sums stay well conditioned whatever the scale of C.
 *
 * @param a      the coefficient (L − L∞ at C = 1)
 * @param b      the exponent, &gt; 0
 * @param lInf   the loss the curve approaches as C grows
 * @param rmse   root-mean-square residual of the fitted points
 * @param points how many points were fitted
 */
public record FrontierFit(double a, double b, double lInf, double rmse, int points) {
    /** The smallest and the largest exponent searched. */
    static final double B_MIN = 1e-3;
    static final double B_MAX = 3;
    private static final int GRID = 600;

    /** The fitted loss at compute {@code c}. */
    public double loss(double c) {
        return a * Math.pow(c, -b) + lInf;
    }

    /** The compute at which the curve reaches {@code loss}; NaN when it never does (loss ≤ L∞, or a flat curve). */
    public double computeFor(double loss) {
        if (!(loss > lInf) || !(a > 0)) {
            return Double.NaN;
        }
        return Math.pow(a / (loss - lInf), 1 / b);
    }

    /**
     * Fits the curve to {@code compute[i]}, {@code loss[i]}.
     *
     * @throws IllegalArgumentException with fewer than 3 points (three parameters), arrays of different
     *                                  lengths, or a compute that is not finite and positive or a loss that is not finite
     */
    public static FrontierFit fit(double[] compute, double[] loss) {
        if (compute.length != loss.length) {
            throw new IllegalArgumentException("frontier fit: " + compute.length + " compute values but " + loss.length + " losses");
        }
        int n = compute.length;
        if (n < 3) {
            throw new IllegalArgumentException("frontier fit: a·C^(-b) + L∞ has three parameters and needs at least 3 points, got " + n);
        }
        double logMean = 0;
        for (int i = 0; i < n; i++) {
            if (!(compute[i] > 0) || !Double.isFinite(compute[i])) {
                throw new IllegalArgumentException("frontier fit: compute " + i + " is " + compute[i] + ", not finite and > 0");
            }
            if (!Double.isFinite(loss[i])) {
                throw new IllegalArgumentException("frontier fit: loss " + i + " is " + loss[i]);
            }
            logMean += Math.log(compute[i]) / n;
        }
        double reference = Math.exp(logMean);
        double[] scaled = new double[n];
        for (int i = 0; i < n; i++) {
            scaled[i] = compute[i] / reference;
        }
        double ceiling = Arrays.stream(loss).min().orElseThrow();
        // A log-spaced grid over b, then golden sections between the best grid point's neighbours.
        double bestB = B_MIN;
        double bestError = Double.POSITIVE_INFINITY;
        double ratio = Math.pow(B_MAX / B_MIN, 1.0 / (GRID - 1));
        for (int k = 0; k < GRID; k++) {
            double b = B_MIN * Math.pow(ratio, k);
            double e = linear(scaled, loss, b, ceiling)[2];
            if (e < bestError) {
                bestError = e;
                bestB = b;
            }
        }
        double lo = Math.max(B_MIN, bestB / ratio);
        double hi = Math.min(B_MAX, bestB * ratio);
        double golden = (Math.sqrt(5) - 1) / 2;
        double x1 = hi - golden * (hi - lo);
        double x2 = lo + golden * (hi - lo);
        double f1 = linear(scaled, loss, x1, ceiling)[2];
        double f2 = linear(scaled, loss, x2, ceiling)[2];
        for (int it = 0; it < 100 && hi - lo > 1e-12 * hi; it++) {
            if (f1 <= f2) {
                hi = x2;
                x2 = x1;
                f2 = f1;
                x1 = hi - golden * (hi - lo);
                f1 = linear(scaled, loss, x1, ceiling)[2];
            } else {
                lo = x1;
                x1 = x2;
                f1 = f2;
                x2 = lo + golden * (hi - lo);
                f2 = linear(scaled, loss, x2, ceiling)[2];
            }
        }
        double refined = f1 <= f2 ? x1 : x2;
        if (Math.min(f1, f2) < bestError) {
            bestB = refined;
        }
        double[] solution = linear(scaled, loss, bestB, ceiling);
        double a = solution[0] * Math.pow(reference, bestB);
        return new FrontierFit(a, bestB, solution[1], Math.sqrt(solution[2] / n), n);
    }

    /**
     * The indices, by increasing compute, of the points on the lower envelope: those whose loss is lower
     * than that of every point with less or equal compute (the compute-optimal points of a grid).
     * Points with a loss that is not finite (a run that diverged) are never on it.
     */
    public static int[] lowerEnvelope(double[] compute, double[] loss) {
        Integer[] order = new Integer[compute.length];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (i, j) -> compute[i] != compute[j] ? Double.compare(compute[i], compute[j]) : Double.compare(loss[i], loss[j]));
        java.util.List<Integer> kept = new java.util.ArrayList<>();
        double lowest = Double.POSITIVE_INFINITY;
        for (int i : order) {
            if (Double.isFinite(loss[i]) && loss[i] < lowest) {
                kept.add(i);
                lowest = loss[i];
            }
        }
        return kept.stream().mapToInt(Integer::intValue).toArray();
    }

    /**
     * For a fixed b: the (A, L∞) minimising Σ (A·x_i + L∞ − y_i)² with x_i = c_i^(−b), A ≥ 0 and
     * 0 ≤ L∞ ≤ ceiling, and that sum: {A, L∞, sum}. The problem is a convex quadratic over a strip, so
     * its minimum is the unconstrained one when that is feasible, else the best of the edges' minima.
     */
    static double[] linear(double[] c, double[] y, double b, double ceiling) {
        int n = c.length;
        double[] x = new double[n];
        double sx = 0, sy = 0, sxx = 0, sxy = 0;
        for (int i = 0; i < n; i++) {
            x[i] = Math.pow(c[i], -b);
            sx += x[i];
            sy += y[i];
            sxx += x[i] * x[i];
            sxy += x[i] * y[i];
        }
        double mx = sx / n;
        double my = sy / n;
        double varX = sxx / n - mx * mx;
        double[] best = null;
        if (varX > 1e-300) {
            double aFree = (sxy / n - mx * my) / varX;
            double lFree = my - aFree * mx;
            if (aFree >= 0 && lFree >= 0 && lFree <= ceiling) {
                return new double[] {aFree, lFree, sse(x, y, aFree, lFree)};
            }
        }
        // The edges L∞ = 0 and L∞ = ceiling (A from the one-variable fit, at least 0), and A = 0 (L∞ the clamped mean).
        for (double l : new double[] {0, ceiling}) {
            double s = 0;
            for (int i = 0; i < n; i++) {
                s += x[i] * (y[i] - l);
            }
            double a = Math.max(0, s / sxx);
            best = better(best, a, l, x, y);
        }
        best = better(best, 0, Math.max(0, Math.min(ceiling, my)), x, y);
        return best;
    }

    private static double[] better(double[] best, double a, double l, double[] x, double[] y) {
        double e = sse(x, y, a, l);
        return best == null || e < best[2] ? new double[] {a, l, e} : best;
    }

    private static double sse(double[] x, double[] y, double a, double l) {
        double s = 0;
        for (int i = 0; i < x.length; i++) {
            double r = a * x[i] + l - y[i];
            s += r * r;
        }
        return s;
    }
}
