package dev.muon4j.optim;

/** Which update rule the {@link HybridOptimizer} applies to a parameter. */
public enum Route {
    MUON,
    ADAMW
}
