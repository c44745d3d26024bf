package dev.muon4j.optim;

import dev.muon4j.backend.Backend;

/**
 * The named optimizers muon4j reproduces, each a chain of {@link UpdateTransform}s over settings
 * taken from its source (docs/VARIANTS.md gives the arithmetic and the commits read). Every preset
 * but {@link #ADAMW} sends hidden matrices through its Muon chain and everything else through
 * AdamW with PyTorch's {@code torch.optim.AdamW} defaults ({@link AdamWConfig}).
 *
 * <pre>
 * preset                 momentum            Newton–Schulz          scale s              lr     wd    chain
 * ADAMW                  –                   –                      1                    1e-3   0.01  adam → update
 * MOONLIGHT              classic 0.95, Nest. float32, Keller Jordan 0.2·√max(out, in)    1e-3   0.1   momentum → NS → update
 * KELLER_JORDAN          EMA 0.95, Nesterov  float32, Keller Jordan √max(1, out/in)      0.02   0     momentum → NS → update
 * TORCH_ORIGINAL         EMA 0.95, Nesterov  torch's bfloat16       √max(1, out/in)      1e-3   0.1   momentum → NS → update
 * TORCH_MATCH_RMS_ADAMW  EMA 0.95, Nesterov  torch's bfloat16       0.2·√max(out, in)    1e-3   0.1   momentum → NS → update
 * NORMUON                as MOONLIGHT        float32, Keller Jordan 0.2·√max(out, in)    1e-3   0.1   momentum → NS → NorMuon → update
 * </pre>
 * Every decay is decoupled and uses the unscaled lr: {@code W ← W·(1 − lr·wd) − lr·s·U}. Cautious
 * weight decay ({@link UpdateRule#withWeightDecay}) and per-head orthogonalization
 * ({@link UpdateRule#withRowBlocks}) combine with any Muon preset.
 */
public enum Preset {
    /** AdamW on every parameter: {@code torch.optim.AdamW}'s defaults (lr 1e-3, betas (0.9, 0.999), eps 1e-8, wd 0.01). */
    ADAMW,
    /**
     * Moonlight (Liu et al., "Muon is Scalable for LLM Training", arXiv 2502.16982, and its reference
     * code): classic momentum μ = 0.95 with Nesterov, weight decay 0.1, update scale 0.2·√max(out, in)
     * so that AdamW's learning rate and weight decay carry over; {@link MuonConfig#moonlight()}.
     */
    MOONLIGHT,
    /**
     * Keller Jordan's Muon (KellerJordan/Muon {@code muon.py}, modded-nanogpt): lr 0.02, EMA momentum
     * 0.95 with Nesterov, no weight decay, scale √max(1, out/in); {@link MuonConfig#kellerJordan()}.
     */
    KELLER_JORDAN,
    /**
     * {@code torch.optim.Muon} (PyTorch ≥ 2.9, {@code torch/optim/_muon.py}) with its default
     * {@code adjust_lr_fn="original"}: lr 1e-3, weight decay 0.1, EMA momentum 0.95
     * ({@code buf.lerp_(grad, 1 − momentum)}) with Nesterov, scale √max(1, out/in), Newton–Schulz in
     * torch's bfloat16 arithmetic ({@link NewtonSchulzConfig#torchBf16()}).
     */
    TORCH_ORIGINAL,
    /** {@link #TORCH_ORIGINAL} with {@code adjust_lr_fn="match_rms_adamw"}: scale 0.2·√max(out, in). */
    TORCH_MATCH_RMS_ADAMW,
    /**
     * NorMuon (Li et al., arXiv 2510.05491; microsoft/dion {@code dion/normuon.py}): {@link #MOONLIGHT}'s
     * settings with {@link Transforms.NorMuon}'s per-row normalisation after Newton–Schulz, dion's
     * β2 = 0.95. (dion's own defaults differ: classic momentum without Nesterov, scale √(out/in),
     * lr 0.01, wd 0.01; muon4j keeps Moonlight's so that only the normalisation changes.)
     */
    NORMUON;

    /** Whether this preset sends hidden matrices to Muon (every preset but {@link #ADAMW}). */
    public boolean usesMuon() {
        return this != ADAMW;
    }

    /** This preset's Muon settings, as a builder to change the learning rate, momentum or weight decay. */
    public MuonConfig.Builder muonSettings() {
        return switch (this) {
            case ADAMW -> throw new IllegalStateException("preset ADAMW has no Muon settings");
            case MOONLIGHT, NORMUON -> MuonConfig.moonlight();
            case KELLER_JORDAN -> MuonConfig.kellerJordan();
            case TORCH_ORIGINAL, TORCH_MATCH_RMS_ADAMW -> MuonConfig.builder().learningRate(1e-3).weightDecay(0.1).momentum(0.95)
                    .momentumForm(MomentumForm.EMA).nesterov(true)
                    .scaleMode(this == TORCH_ORIGINAL ? ScaleMode.ORIGINAL : ScaleMode.MATCH_RMS_ADAMW)
                    .newtonSchulz(NewtonSchulzConfig.torchBf16());
        };
    }

    /** The AdamW settings of this preset (of every parameter Muon does not take): {@code torch.optim.AdamW}'s defaults. */
    public AdamWConfig.Builder adamwSettings() {
        return AdamWConfig.builder();
    }

    /** This preset's chain over its own settings: the Muon chain, or for {@link #ADAMW} the AdamW chain. */
    public UpdateRule rule() {
        return usesMuon() ? rule(muonSettings().build()) : UpdateRule.adamw(adamwSettings().build());
    }

    /** This preset's Muon chain over {@code muon} (e.g. {@link #muonSettings()} with another learning rate). */
    public UpdateRule rule(MuonConfig muon) {
        return switch (this) {
            case ADAMW -> throw new IllegalStateException("preset ADAMW has no Muon chain");
            case NORMUON -> UpdateRule.norMuon(muon, Transforms.NorMuon.DEFAULT_BETA2);
            default -> UpdateRule.muon(muon);
        };
    }

    /**
     * A {@link HybridOptimizer} builder with this preset's settings: its Muon settings and chain for the
     * hidden matrices and AdamW for the rest, or AdamW for every parameter ({@link #ADAMW}).
     */
    public HybridOptimizer.Builder builder(Backend backend) {
        HybridOptimizer.Builder b = HybridOptimizer.builder(backend).adamw(adamwSettings().build());
        if (!usesMuon()) {
            return b.routeAll(Route.ADAMW);
        }
        MuonConfig muon = muonSettings().build();
        return b.muon(muon).muonRule(rule(muon));
    }
}
