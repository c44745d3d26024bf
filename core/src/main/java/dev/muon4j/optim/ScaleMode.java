package dev.muon4j.optim;

/**
 * The factor {@code s} Muon multiplies its orthogonalised update by, from the matrix's fan-out
 * (out) and fan-in (in).
 */
public enum ScaleMode {
    /** {@code √max(1, out/in)}: Keller Jordan's Muon. */
    ORIGINAL,
    /**
     * {@code k·√max(out, in)} with k = 0.2 by default: Moonlight ("Muon is Scalable for LLM
     * Training", Liu et al. 2025). Makes the update's RMS about k, like AdamW's, so AdamW's
     * learning rate and weight decay carry over. Also PyTorch's {@code adjust_lr_fn="match_rms_adamw"}.
     */
    MATCH_RMS_ADAMW,
    /** {@code √(out/in)}: the spectral-norm (μP-style) scaling. */
    SPECTRAL,
    /** {@code 1}. */
    NONE;

    /** The scale for a matrix of {@code out × in}; {@code rmsFactor} is used by {@link #MATCH_RMS_ADAMW} only. */
    public double scale(int out, int in, double rmsFactor) {
        if (out < 1 || in < 1) {
            throw new IllegalArgumentException("fan-out and fan-in must be positive, got " + out + "×" + in);
        }
        return switch (this) {
            case ORIGINAL -> Math.sqrt(Math.max(1.0, (double) out / in));
            case MATCH_RMS_ADAMW -> rmsFactor * Math.sqrt(Math.max(out, in));
            case SPECTRAL -> Math.sqrt((double) out / in);
            case NONE -> 1.0;
        };
    }
}
