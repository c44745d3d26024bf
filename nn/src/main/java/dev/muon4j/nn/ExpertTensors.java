package dev.muon4j.nn;

import dev.muon4j.optim.MatrixLayout;
import dev.muon4j.optim.Parameter;
import java.util.ArrayList;
import java.util.List;

/**
 * The tensors a parameter is saved as. The experts of a {@link MixtureOfExperts} layer live in one
 * stacked parameter per projection ({@code model.layers.1.mlp.experts.gate_proj.weight}, E × F × C),
 * but Hugging Face's DeepseekV3 checkpoints hold one tensor per expert
 * ({@code model.layers.1.mlp.experts.0.gate_proj.weight}, F × C); every other parameter is one
 * tensor of its own name and shape.
 */
public final class ExpertTensors {
    /** The part of a stacked experts parameter's name after which the expert's number goes. */
    static final String EXPERTS = ".experts.";

    private ExpertTensors() {
    }

    /** One saved tensor: its name, its shape, and where its values start in the parameter. */
    public record Piece(String name, int[] shape, int offset, int length) {
    }

    /** Whether {@code p} is a stack of experts saved one tensor per expert. */
    public static boolean isStacked(Parameter p) {
        MatrixLayout m = p.layout();
        return p.shape().length == 3 && m != null && m.count() == p.shape()[0] && p.name().contains(EXPERTS);
    }

    /** The tensors {@code p} is saved as, in order: one per expert for a stack of experts, else {@code p} itself. */
    public static List<Piece> pieces(Parameter p) {
        if (!isStacked(p)) {
            return List.of(new Piece(p.name(), p.shape(), 0, p.size()));
        }
        int[] shape = p.shape();
        int at = p.name().lastIndexOf(EXPERTS) + EXPERTS.length();
        String head = p.name().substring(0, at);
        String tail = p.name().substring(at);
        int size = shape[1] * shape[2];
        List<Piece> pieces = new ArrayList<>(shape[0]);
        for (int e = 0; e < shape[0]; e++) {
            pieces.add(new Piece(head + e + "." + tail, new int[] {shape[1], shape[2]}, e * size, size));
        }
        return pieces;
    }
}
