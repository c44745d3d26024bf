package dev.muon4j.optim;

import dev.muon4j.backend.Backend;
import java.util.List;

/** Shortcuts for single-rule optimizers; each is a {@link HybridOptimizer} with every parameter on one route. */
public final class Optimizers {
    private Optimizers() {
    }

    /** Muon on every parameter; each must have a matrix layout. */
    public static HybridOptimizer muon(Backend backend, MuonConfig config, List<Parameter> parameters) {
        return HybridOptimizer.builder(backend).muon(config).routeAll(Route.MUON).build(parameters);
    }

    /** AdamW on every parameter. */
    public static HybridOptimizer adamw(Backend backend, AdamWConfig config, List<Parameter> parameters) {
        return HybridOptimizer.builder(backend).adamw(config).routeAll(Route.ADAMW).build(parameters);
    }
}
