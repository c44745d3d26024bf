package dev.muon4j.train;

import dev.muon4j.optim.MomentumForm;
import dev.muon4j.optim.MuonConfig;
import dev.muon4j.optim.NewtonSchulzConfig;
import dev.muon4j.optim.ScaleMode;
import dev.muon4j.optim.Transforms;
import dev.muon4j.optim.UpdateRule;

/**
 * Which Muon the trainer's hidden matrices get; the learning rate, momentum value and weight decay
 * come from the training flags. See README's "What Muon does" and docs/VARIANTS.md.
 */
public enum MuonVariant {
    /** Moonlight: classic momentum with Nesterov, update scale 0.2·√max(out, in) (matches AdamW's update RMS). */
    MOONLIGHT,
    /** Keller Jordan's Muon: EMA momentum with Nesterov, scale √max(1, out/in). */
    KELLER,
    /**
     * torch.optim.Muon with {@code adjust_lr_fn="match_rms_adamw"}: EMA momentum with Nesterov, scale
     * 0.2·√max(out, in), and Newton–Schulz in torch's bfloat16 arithmetic
     * ({@link dev.muon4j.optim.NewtonSchulzConfig#torchBf16()}). ({@code "original"} is {@link #KELLER}'s
     * scale.)
     */
    TORCH,
    /** NorMuon: Moonlight's momentum and scale with the per-row normalisation after Newton–Schulz (β2 0.95). */
    NORMUON;

    /** The Muon settings of this variant with the run's learning rate, momentum and weight decay. */
    public MuonConfig config(double learningRate, double momentum, double weightDecay) {
        return config(learningRate, momentum, weightDecay, NewtonSchulzConfig.Method.STANDARD);
    }

    /**
     * The Muon settings of this variant with the run's learning rate, momentum, weight decay and Newton–Schulz
     * method ({@link NewtonSchulzConfig.Method#GRAM} is refused for {@link #TORCH}, whose bfloat16 arithmetic
     * has no Gram form).
     */
    public MuonConfig config(double learningRate, double momentum, double weightDecay, NewtonSchulzConfig.Method nsMethod) {
        boolean classic = this == MOONLIGHT || this == NORMUON;
        NewtonSchulzConfig newtonSchulz = this == TORCH ? NewtonSchulzConfig.torchBf16() : NewtonSchulzConfig.defaults();
        return MuonConfig.builder().learningRate(learningRate).weightDecay(weightDecay).momentum(momentum)
                .momentumForm(classic ? MomentumForm.CLASSIC : MomentumForm.EMA).nesterov(true)
                .scaleMode(this == KELLER ? ScaleMode.ORIGINAL : ScaleMode.MATCH_RMS_ADAMW)
                .newtonSchulz(newtonSchulz.withMethod(nsMethod)).build();
    }

    /** The update rule of the hidden matrices, with cautious weight decay if asked. */
    public UpdateRule rule(MuonConfig config, boolean cautiousWeightDecay) {
        UpdateRule rule = this == NORMUON ? UpdateRule.norMuon(config, Transforms.NorMuon.DEFAULT_BETA2) : UpdateRule.muon(config);
        return cautiousWeightDecay ? rule.withWeightDecay(Transforms.WeightDecayMode.CAUTIOUS) : rule;
    }
}
