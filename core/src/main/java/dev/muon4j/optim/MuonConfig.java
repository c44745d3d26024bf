package dev.muon4j.optim;

import java.util.Objects;

/**
 * Muon's hyperparameters. Build with {@link #builder()}; the defaults are PyTorch's
 * {@code torch.optim.Muon}: lr 1e-3, weight decay 0.1, momentum 0.95 (EMA form), Nesterov,
 * scale {@link ScaleMode#ORIGINAL}, Keller Jordan's Newton–Schulz with 5 steps and eps 1e-7.
 *
 * @param learningRate   base learning rate (before the schedule's factor)
 * @param momentum       β (EMA) or μ (classic), in [0, 1)
 * @param momentumForm   EMA or classic accumulation
 * @param nesterov       use the Nesterov look-ahead
 * @param weightDecay    decoupled weight decay: {@code W ← W·(1 − lr·wd)}, with the unscaled lr
 * @param scaleMode      the update scale rule
 * @param rmsFactor      k in {@link ScaleMode#MATCH_RMS_ADAMW}'s {@code k·√max(out, in)} (0.2)
 * @param newtonSchulz   orthogonalisation settings
 */
public record MuonConfig(double learningRate, double momentum, MomentumForm momentumForm, boolean nesterov,
                         double weightDecay, ScaleMode scaleMode, double rmsFactor, NewtonSchulzConfig newtonSchulz) {

    public MuonConfig {
        Checks.nonNegative("Muon learning rate", learningRate);
        Checks.unitInterval("Muon momentum", momentum);
        Objects.requireNonNull(momentumForm, "Muon momentum form");
        Checks.nonNegative("Muon weight decay", weightDecay);
        Objects.requireNonNull(scaleMode, "Muon scale mode");
        Checks.positive("Muon RMS factor", rmsFactor);
        Objects.requireNonNull(newtonSchulz, "Newton–Schulz config");
    }

    public static Builder builder() {
        return new Builder();
    }

    /**
     * Moonlight's variant: classic momentum 0.95 with Nesterov, weight decay 0.1, scale
     * 0.2·√max(out, in), so that AdamW's learning rate applies unchanged.
     */
    public static Builder moonlight() {
        return builder().momentumForm(MomentumForm.CLASSIC).scaleMode(ScaleMode.MATCH_RMS_ADAMW).weightDecay(0.1);
    }

    /** Keller Jordan's Muon: lr 0.02, EMA momentum 0.95, Nesterov, no weight decay, scale √max(1, out/in). */
    public static Builder kellerJordan() {
        return builder().learningRate(0.02).weightDecay(0).scaleMode(ScaleMode.ORIGINAL);
    }

    public Builder toBuilder() {
        return new Builder().learningRate(learningRate).momentum(momentum).momentumForm(momentumForm)
                .nesterov(nesterov).weightDecay(weightDecay).scaleMode(scaleMode).rmsFactor(rmsFactor)
                .newtonSchulz(newtonSchulz);
    }

    /** The update scale s of a fanOut × fanIn matrix. */
    public double scale(int fanOut, int fanIn) {
        return scaleMode.scale(fanOut, fanIn, rmsFactor);
    }

    /** Mutable builder; {@link #build()} validates. */
    public static final class Builder {
        private double learningRate = 1e-3;
        private double momentum = 0.95;
        private MomentumForm momentumForm = MomentumForm.EMA;
        private boolean nesterov = true;
        private double weightDecay = 0.1;
        private ScaleMode scaleMode = ScaleMode.ORIGINAL;
        private double rmsFactor = 0.2;
        private NewtonSchulzConfig newtonSchulz = NewtonSchulzConfig.defaults();

        private Builder() {
        }

        public Builder learningRate(double v) {
            this.learningRate = v;
            return this;
        }

        public Builder momentum(double v) {
            this.momentum = v;
            return this;
        }

        public Builder momentumForm(MomentumForm v) {
            this.momentumForm = v;
            return this;
        }

        public Builder nesterov(boolean v) {
            this.nesterov = v;
            return this;
        }

        public Builder weightDecay(double v) {
            this.weightDecay = v;
            return this;
        }

        public Builder scaleMode(ScaleMode v) {
            this.scaleMode = v;
            return this;
        }

        public Builder rmsFactor(double v) {
            this.rmsFactor = v;
            return this;
        }

        public Builder newtonSchulz(NewtonSchulzConfig v) {
            this.newtonSchulz = v;
            return this;
        }

        public MuonConfig build() {
            return new MuonConfig(learningRate, momentum, momentumForm, nesterov, weightDecay, scaleMode, rmsFactor, newtonSchulz);
        }
    }
}
