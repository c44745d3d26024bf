package dev.muon4j.optim;

/**
 * What a parameter is in its model; the {@link HybridOptimizer} routes by it. Only hidden
 * matrices go to Muon by default: the input embedding, the output head, norms, biases and scalars
 * go to AdamW (Muon's authors and Moonlight both do so).
 */
public enum ParamRole {
    /** A weight matrix inside the network (attention and MLP projections, conv kernels, stacked expert weights). */
    HIDDEN_MATRIX,
    /** Token or position embedding table. */
    EMBEDDING,
    /** The output projection (language-model head, classifier). */
    HEAD,
    /** Gain (and shift) of a normalisation layer. */
    NORM,
    /** A bias vector. */
    BIAS,
    /** Any other scalar or small vector (temperatures, gates). */
    SCALAR;

    /** The optimizer a parameter of this role goes to unless overridden. */
    public Route defaultRoute() {
        return this == HIDDEN_MATRIX ? Route.MUON : Route.ADAMW;
    }
}
