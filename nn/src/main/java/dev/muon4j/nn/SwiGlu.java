package dev.muon4j.nn;

import dev.muon4j.autograd.Graph;
import dev.muon4j.autograd.Ops;
import dev.muon4j.autograd.Tensor;
import dev.muon4j.optim.Parameter;
import java.util.List;

/**
 * Llama's SwiGLU feed-forward layer: down(silu(gate·x) ⊙ up·x), names as Hugging Face's
 * ({@code <prefix>gate_proj.weight}, {@code up_proj}, {@code down_proj}).
 */
public final class SwiGlu implements FeedForward {
    private final Parameter gate;   // (F, C)
    private final Parameter up;     // (F, C)
    private final Parameter down;   // (C, F)

    /** A zero layer of width {@code width} (C) and hidden width {@code hidden} (F); names start with {@code prefix}. */
    public SwiGlu(String prefix, int width, int hidden) {
        gate = Parameter.matrix(prefix + "gate_proj.weight", hidden, width);
        up = Parameter.matrix(prefix + "up_proj.weight", hidden, width);
        down = Parameter.matrix(prefix + "down_proj.weight", width, hidden);
    }

    @Override
    public List<Parameter> parameters() {
        return List.of(gate, up, down);
    }

    @Override
    public Tensor forward(Graph g, Tensor x) {
        Tensor a = Ops.linear(g, x, g.parameter(gate));                      // (N, F)
        Tensor b = Ops.linear(g, x, g.parameter(up));                        // (N, F)
        return Ops.linear(g, Ops.swiglu(g, a, b), g.parameter(down));        // (N, C)
    }
}
