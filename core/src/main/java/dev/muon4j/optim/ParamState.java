package dev.muon4j.optim;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One parameter as an update rule sees it: the parameter, its resolved hyperparameters, and the
 * state buffers of the rule's transforms for the elements this optimizer updates. Parameter-sized
 * buffers may cover only a slice of the parameter (one rank's share): element {@code e} of the
 * parameter is then at index {@code e − base()} of each such buffer.
 */
public final class ParamState {
    private final Parameter parameter;
    private final Route route;
    private final UpdateRule rule;
    private final double learningRate;
    private final double weightDecay;
    private final double scale;
    private final int base;
    private final Map<String, float[]> buffers;

    /**
     * @param assignment the parameter and its route, base learning rate, weight decay, Muon scale and rule
     * @param base       the first parameter element the parameter-sized buffers hold
     * @param length     how many elements they hold (the parameter's size in one process)
     */
    public ParamState(HybridOptimizer.Assignment assignment, int base, int length) {
        this.parameter = assignment.parameter();
        this.route = assignment.route();
        this.rule = assignment.rule();
        this.learningRate = assignment.learningRate();
        this.weightDecay = assignment.weightDecay();
        this.scale = assignment.scale();
        if (base < 0 || length < 0 || (long) base + length > parameter.size()) {
            throw new IllegalArgumentException("slice [" + base + ", " + ((long) base + length) + ") of " + parameter.name()
                    + " (" + parameter.size() + " elements)");
        }
        this.base = base;
        Map<String, float[]> b = new LinkedHashMap<>();
        for (UpdateTransform t : rule.transforms()) {
            t.state(parameter).forEach((name, size) -> b.put(name,
                    new float[t.scope() == UpdateTransform.Scope.ELEMENTWISE && size == parameter.size() ? length : size]));
        }
        this.buffers = Collections.unmodifiableMap(b);
    }

    public Parameter parameter() {
        return parameter;
    }

    /** The route the parameter was assigned (saved with its state). */
    public Route route() {
        return route;
    }

    public UpdateRule rule() {
        return rule;
    }

    /** Base learning rate (before the schedule's factor). */
    public double learningRate() {
        return learningRate;
    }

    public double weightDecay() {
        return weightDecay;
    }

    /** Muon's update scale for this matrix shape (1 for AdamW). */
    public double scale() {
        return scale;
    }

    /** The first parameter element the parameter-sized buffers hold. */
    public int base() {
        return base;
    }

    /** A state buffer by name (the live array). */
    public float[] buffer(String name) {
        float[] b = buffers.get(name);
        if (b == null) {
            throw new IllegalArgumentException("rule " + rule.name() + " keeps no buffer '" + name + "' for " + parameter.name());
        }
        return b;
    }

    /** Every state buffer, name → live array, in the rule's order. */
    public Map<String, float[]> buffers() {
        return buffers;
    }
}
