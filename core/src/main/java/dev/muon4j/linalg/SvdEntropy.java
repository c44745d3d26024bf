package dev.muon4j.linalg;

/**
 * The SVD entropy of a matrix, as Moonlight (arXiv 2502.16982, §3.4) uses it to compare how evenly Muon's
 * and AdamW's weight matrices spread their energy over their singular directions:
 *
 * <pre>
 *     pᵢ = σᵢ² / Σⱼ σⱼ²                    (i = 1 … n, n = min(rows, cols))
 *     H  = −(1 / log n) · Σᵢ pᵢ · log pᵢ   (0 · log 0 taken as 0, its limit)
 * </pre>
 *
 * H is 1 when every singular value is the same (an orthogonal matrix, the identity), 0 when one carries
 * everything (a rank-one matrix), and lies between them otherwise; it does not change when the matrix is
 * scaled. It is undefined for a zero matrix (no distribution pᵢ) and for n = 1 (the normalisation log 1 = 0):
 * {@link #of} refuses both, and {@link #defined} says beforehand whether it would.
 */
public final class SvdEntropy {
    private SvdEntropy() {
    }

    /**
     * Whether {@link #of} is defined for these singular values: at least two of them, all finite and ≥ 0, and one
     * above 0.
     */
    public static boolean defined(float[] singularValues) {
        if (singularValues.length < 2) {
            return false;
        }
        boolean positive = false;
        for (float s : singularValues) {
            if (!(s >= 0) || !Float.isFinite(s)) {
                return false;
            }
            positive |= s > 0;
        }
        return positive;
    }

    /**
     * The normalised SVD entropy H of a matrix with these singular values (any order), in double.
     *
     * @throws IllegalArgumentException for fewer than two values, a negative or non-finite value (naming it and its
     *                                  index), or all values 0 (a zero matrix)
     */
    public static double of(float[] singularValues) {
        int n = singularValues.length;
        if (n < 2) {
            throw new IllegalArgumentException("SVD entropy of " + n + " singular value" + (n == 1 ? "" : "s")
                    + ": it is normalised by log n, so it needs at least two (a matrix of at least 2 rows and 2 columns)");
        }
        double largest = 0;
        for (int i = 0; i < n; i++) {
            float s = singularValues[i];
            if (!(s >= 0) || !Float.isFinite(s)) {
                throw new IllegalArgumentException("singular value " + i + " is " + s + ": singular values are finite and ≥ 0");
            }
            largest = Math.max(largest, s);
        }
        if (largest == 0) {
            throw new IllegalArgumentException("SVD entropy of a zero matrix (all " + n + " singular values 0) is undefined: "
                    + "σᵢ²/Σσⱼ² is no distribution");
        }
        // Scaled by the largest first, so that no square overflows or underflows; H does not depend on the scale.
        double total = 0;
        for (float s : singularValues) {
            double r = s / largest;
            total += r * r;
        }
        double sum = 0;
        for (float s : singularValues) {
            double r = s / largest;
            double p = r * r / total;
            if (p > 0) {
                sum += p * Math.log(p);
            }
        }
        return Math.max(0, -sum / Math.log(n));
    }
}
