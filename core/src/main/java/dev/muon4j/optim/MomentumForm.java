package dev.muon4j.optim;

/** How Muon accumulates momentum. Both give the same update direction for the same β. */
public enum MomentumForm {
    /**
     * Exponential moving average {@code M ← β·M + (1−β)·G}; Nesterov uses {@code (1−β)·G + β·M}.
     * Keller Jordan's Muon and PyTorch's {@code torch.optim.Muon}.
     */
    EMA,
    /** Classic heavy ball {@code M ← μ·M + G}; Nesterov uses {@code G + μ·M}. Moonlight. */
    CLASSIC
}
