package dev.muon4j.optim;

import java.util.Map;

/**
 * A stage of the user's own for tests of custom rules, in one process and sharded: stateful,
 * elementwise and sensitive to the element index its state is read at.
 * <pre>
 * u ← u + t;   t ← ½·t + u   (the new u)
 * </pre>
 */
public record TraceStage() implements UpdateTransform {
    @Override
    public String name() {
        return "trace";
    }

    @Override
    public Scope scope() {
        return Scope.ELEMENTWISE;
    }

    @Override
    public Map<String, Integer> state(Parameter parameter) {
        return Map.of("trace", parameter.size());
    }

    @Override
    public void apply(StepContext step, ParamState slot, int from, float[] u, int uOff, int len) {
        float[] t = slot.buffer("trace");
        for (int i = 0; i < len; i++) {
            int k = from - slot.base() + i;
            u[uOff + i] += t[k];
            t[k] = 0.5f * t[k] + u[uOff + i];
        }
    }
}
