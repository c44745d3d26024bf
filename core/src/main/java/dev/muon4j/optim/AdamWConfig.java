package dev.muon4j.optim;

/**
 * AdamW's hyperparameters (Loshchilov &amp; Hutter, decoupled weight decay; bias-corrected moments).
 * Defaults are PyTorch's {@code torch.optim.AdamW}: lr 1e-3, betas (0.9, 0.999), eps 1e-8,
 * weight decay 0.01.
 */
public record AdamWConfig(double learningRate, double beta1, double beta2, double eps, double weightDecay) {
    public AdamWConfig {
        Checks.nonNegative("AdamW learning rate", learningRate);
        Checks.unitInterval("AdamW beta1", beta1);
        Checks.unitInterval("AdamW beta2", beta2);
        Checks.positive("AdamW eps", eps);
        Checks.nonNegative("AdamW weight decay", weightDecay);
    }

    public static Builder builder() {
        return new Builder();
    }

    public Builder toBuilder() {
        return new Builder().learningRate(learningRate).beta1(beta1).beta2(beta2).eps(eps).weightDecay(weightDecay);
    }

    /** Mutable builder; {@link #build()} validates. */
    public static final class Builder {
        private double learningRate = 1e-3;
        private double beta1 = 0.9;
        private double beta2 = 0.999;
        private double eps = 1e-8;
        private double weightDecay = 0.01;

        private Builder() {
        }

        public Builder learningRate(double v) {
            this.learningRate = v;
            return this;
        }

        public Builder beta1(double v) {
            this.beta1 = v;
            return this;
        }

        public Builder beta2(double v) {
            this.beta2 = v;
            return this;
        }

        public Builder eps(double v) {
            this.eps = v;
            return this;
        }

        public Builder weightDecay(double v) {
            this.weightDecay = v;
            return this;
        }

        public AdamWConfig build() {
            return new AdamWConfig(learningRate, beta1, beta2, eps, weightDecay);
        }
    }
}
