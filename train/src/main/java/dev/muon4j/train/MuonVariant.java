package dev.muon4j.train;

import dev.muon4j.optim.MuonConfig;
import dev.muon4j.optim.NewtonSchulzConfig;
import dev.muon4j.optim.Preset;
import dev.muon4j.optim.Transforms;
import dev.muon4j.optim.UpdateRule;
import dev.muon4j.tensor.DType;

/**
 * Which Muon the trainer's hidden matrices get: a named {@link Preset} of the optimizer core, with
 * the learning rate, momentum value and weight decay of the training flags. See README's "What Muon
 * does" and docs/VARIANTS.md.
 */
public enum MuonVariant {
    /** {@link Preset#MOONLIGHT}: classic momentum with Nesterov, update scale 0.2·√max(out, in) (matches AdamW's update RMS). */
    MOONLIGHT(Preset.MOONLIGHT),
    /** {@link Preset#KELLER_JORDAN}: EMA momentum with Nesterov, scale √max(1, out/in). */
    KELLER(Preset.KELLER_JORDAN),
    /**
     * {@link Preset#TORCH_MATCH_RMS_ADAMW}: torch.optim.Muon with {@code adjust_lr_fn="match_rms_adamw"}, EMA
     * momentum with Nesterov, scale 0.2·√max(out, in), and Newton–Schulz in torch's bfloat16 arithmetic.
     * ({@code "original"} is {@link #KELLER}'s scale.)
     */
    TORCH(Preset.TORCH_MATCH_RMS_ADAMW),
    /** {@link Preset#NORMUON}: Moonlight's momentum and scale with the per-row normalisation after Newton–Schulz (β2 0.95). */
    NORMUON(Preset.NORMUON);

    private final Preset preset;

    MuonVariant(Preset preset) {
        this.preset = preset;
    }

    /** The optimizer core's preset this variant is. */
    public Preset preset() {
        return preset;
    }

    /** The precision of this variant's Newton–Schulz unless a run asks for another: BF16 for {@link #TORCH}, F32 otherwise. */
    public DType defaultPrecision() {
        return preset.muonSettings().build().newtonSchulz().precision();
    }

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
        return config(learningRate, momentum, weightDecay, nsMethod, defaultPrecision());
    }

    /**
     * As {@link #config(double, double, double, NewtonSchulzConfig.Method)} with Newton–Schulz in {@code precision}
     * ({@link #TORCH} keeps its bfloat16 normalisation in BF16).
     */
    public MuonConfig config(double learningRate, double momentum, double weightDecay, NewtonSchulzConfig.Method nsMethod,
                             DType precision) {
        MuonConfig base = preset.muonSettings().learningRate(learningRate).momentum(momentum).weightDecay(weightDecay).build();
        return base.toBuilder().newtonSchulz(base.newtonSchulz().withPrecision(precision).withMethod(nsMethod)).build();
    }

    /** The update rule of the hidden matrices, with cautious weight decay if asked. */
    public UpdateRule rule(MuonConfig config, boolean cautiousWeightDecay) {
        UpdateRule rule = preset.rule(config);
        return cautiousWeightDecay ? rule.withWeightDecay(Transforms.WeightDecayMode.CAUTIOUS) : rule;
    }
}
