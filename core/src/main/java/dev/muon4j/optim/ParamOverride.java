package dev.muon4j.optim;

import java.util.Optional;
import java.util.OptionalDouble;

/**
 * Per-parameter settings that take precedence over the role's defaults in the {@link HybridOptimizer}.
 * Empty fields inherit.
 *
 * @param route        force Muon or AdamW
 * @param learningRate base learning rate for this parameter (the schedule still applies)
 * @param weightDecay  weight decay for this parameter
 */
public record ParamOverride(Optional<Route> route, OptionalDouble learningRate, OptionalDouble weightDecay) {
    public ParamOverride {
        learningRate.ifPresent(v -> Checks.nonNegative("override learning rate", v));
        weightDecay.ifPresent(v -> Checks.nonNegative("override weight decay", v));
    }

    public static ParamOverride none() {
        return new ParamOverride(Optional.empty(), OptionalDouble.empty(), OptionalDouble.empty());
    }

    public ParamOverride withRoute(Route r) {
        return new ParamOverride(Optional.of(r), learningRate, weightDecay);
    }

    public ParamOverride withLearningRate(double lr) {
        return new ParamOverride(route, OptionalDouble.of(lr), weightDecay);
    }

    public ParamOverride withWeightDecay(double wd) {
        return new ParamOverride(route, learningRate, OptionalDouble.of(wd));
    }
}
