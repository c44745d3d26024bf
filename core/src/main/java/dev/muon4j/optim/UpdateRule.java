package dev.muon4j.optim;

import java.util.HashSet;
import java.util.List;
import java.util.Objects;
import java.util.Set;

/**
 * An update rule: a named chain of {@link UpdateTransform}s that turns a parameter's gradient into
 * its new value. The chain is elementwise stages, then at most one run of matrix stages, then
 * elementwise stages, ending with {@link Transforms.DecoupledUpdate}; so an optimizer that holds
 * only a slice of a parameter (one rank's share) runs the elementwise stages on its slice and the
 * matrix stages wherever the whole matrix is gathered, with the same code as one process.
 *
 * <pre>
 * Muon:  momentum → orthogonalize → decoupled update   ({@link #muon})
 * AdamW: Adam's moments → decoupled update             ({@link #adamw})
 * </pre>
 *
 * @param name       for messages, e.g. {@code "muon"}
 * @param family     the route the rule belongs to: which learning rate, weight decay and update scale
 *                   a parameter gets by default, and the route recorded with its saved state
 * @param transforms the chain, in order
 */
public record UpdateRule(String name, Route family, List<UpdateTransform> transforms) {
    /** Elementwise rules are run through a scratch buffer of this many floats at a time. */
    static final int CHUNK = 1 << 16;
    /** Floats of a stack of matrices that {@link #apply} hands to the matrix stages at once (16 MiB). */
    static final int STACK_CHUNK = 1 << 22;

    public UpdateRule {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(family, "family");
        transforms = List.copyOf(transforms);
        if (transforms.isEmpty() || !(transforms.getLast() instanceof Transforms.DecoupledUpdate)) {
            throw new IllegalArgumentException("update rule " + name + " must end with the decoupled update, got " + transforms);
        }
        int phase = 0; // 0: elementwise before, 1: matrix, 2: elementwise after
        for (UpdateTransform t : transforms) {
            boolean matrix = t.scope() == UpdateTransform.Scope.MATRIX;
            if (matrix && phase == 2) {
                throw new IllegalArgumentException("update rule " + name + " has two separate runs of matrix stages: " + transforms);
            }
            phase = matrix ? 1 : phase == 1 ? 2 : phase;
        }
    }

    /** Muon as {@code config} describes it: momentum → Newton–Schulz → decoupled update (scale from the assignment). */
    public static UpdateRule muon(MuonConfig config) {
        return new UpdateRule("muon", Route.MUON, List.of(new Transforms.Momentum(config.momentumForm(), config.nesterov(), config.momentum()),
                new Transforms.Orthogonalize(config.newtonSchulz()), new Transforms.DecoupledUpdate()));
    }

    /**
     * NorMuon: Muon as {@code config} describes it with {@link Transforms.NorMuon}'s row normalisation
     * between Newton–Schulz and the decoupled update.
     */
    public static UpdateRule norMuon(MuonConfig config, double beta2) {
        return new UpdateRule("normuon", Route.MUON, List.of(new Transforms.Momentum(config.momentumForm(), config.nesterov(),
                config.momentum()), new Transforms.Orthogonalize(config.newtonSchulz()), new Transforms.NorMuon(beta2),
                new Transforms.DecoupledUpdate()));
    }

    /** This rule with its final stage's weight decay {@code mode} (e.g. cautious), named accordingly. */
    public UpdateRule withWeightDecay(Transforms.WeightDecayMode mode) {
        List<UpdateTransform> t = new java.util.ArrayList<>(transforms);
        t.set(t.size() - 1, new Transforms.DecoupledUpdate(mode));
        String base = name.replace("+cautious_wd", "");
        return new UpdateRule(mode == Transforms.WeightDecayMode.CAUTIOUS ? base + "+cautious_wd" : base, family, t);
    }

    /** AdamW as {@code config} describes it: bias-corrected moments → decoupled update. */
    public static UpdateRule adamw(AdamWConfig config) {
        return new UpdateRule("adamw", Route.ADAMW, List.of(new Transforms.AdamMoments(config.beta1(), config.beta2(), config.eps()),
                new Transforms.DecoupledUpdate()));
    }

    /**
     * The (fan-out, fan-in) Muon's update scale is computed from: the matrix's, or the row block's when
     * the rule orthogonalizes row blocks ({@link Transforms.OrthogonalizeBlocks}), as dion and
     * DeepSpeed scale per-head updates.
     */
    public int[] scaleShape(Parameter parameter) {
        MatrixLayout m = parameter.layout();
        for (UpdateTransform t : transforms) {
            if (t instanceof Transforms.OrthogonalizeBlocks blocks) {
                return new int[] {blocks.blockRows(), m.fanIn()};
            }
        }
        return new int[] {m.fanOut(), m.fanIn()};
    }

    /**
     * This rule with its Newton–Schulz stage orthogonalizing row blocks of {@code blockRows} rows
     * (per-head orthogonalization of query and key projections: blockRows = head dimension), and a
     * NorMuon stage, if any, keeping each block's norm.
     */
    public UpdateRule withRowBlocks(int blockRows) {
        List<UpdateTransform> t = new java.util.ArrayList<>();
        boolean replaced = false;
        for (UpdateTransform stage : transforms) {
            if (stage instanceof Transforms.Orthogonalize o) {
                t.add(new Transforms.OrthogonalizeBlocks(o.config(), blockRows));
                replaced = true;
            } else if (stage instanceof Transforms.NorMuon n) {
                // NorMuon keeps each head's norm, as dion does with num_heads.
                t.add(new Transforms.NorMuon(n.beta2(), blockRows));
            } else {
                t.add(stage);
            }
        }
        if (!replaced) {
            throw new IllegalArgumentException("update rule " + name + " has no Newton–Schulz stage to split into row blocks");
        }
        return new UpdateRule(name + "+per_head", family, t);
    }

    /** Whether some stage needs whole matrices. */
    public boolean needsMatrices() {
        return transforms.stream().anyMatch(t -> t.scope() == UpdateTransform.Scope.MATRIX);
    }

    /** Checks that the state names of the stages are unique for {@code parameter}, and that a matrix rule has a matrix. */
    public void check(Parameter parameter) {
        if (needsMatrices() && parameter.layout() == null) {
            throw new IllegalArgumentException("parameter " + parameter.name() + " cannot be updated by " + name
                    + ": it has no matrix layout");
        }
        for (UpdateTransform t : transforms) {
            if (t instanceof Transforms.OrthogonalizeBlocks blocks) {
                blocks.check(parameter);
            } else if (t instanceof Transforms.NorMuon n) {
                n.check(parameter);
            }
        }
        Set<String> names = new HashSet<>();
        for (UpdateTransform t : transforms) {
            for (String buffer : t.state(parameter).keySet()) {
                if (!names.add(buffer)) {
                    throw new IllegalArgumentException("update rule " + name + ": two stages keep a buffer named " + buffer);
                }
            }
        }
    }

    /**
     * Runs the whole chain over the whole parameter of {@code slot}, which must hold state for all
     * of it: chunk by chunk through {@code scratch} when every stage is elementwise, matrix by
     * matrix otherwise. The gradient is read, not modified.
     *
     * @param scratch at least {@link #scratchSize} floats
     */
    public void apply(StepContext step, ParamState slot, float[] scratch) {
        Parameter p = slot.parameter();
        int chunk = scratchSize(p);
        for (int from = 0; from < p.size(); from += chunk) {
            int len = Math.min(chunk, p.size() - from);
            System.arraycopy(p.gradient(), from, scratch, 0, len);
            applyBefore(step, slot, from, scratch, 0, len);
            applyMatrix(step, slot, from, scratch, 0, len);
            applyAfter(step, slot, from, scratch, 0, len);
        }
    }

    /**
     * The elementwise stages before the matrix stages (every stage, for a rule without matrix
     * stages but the ones {@link #applyAfter} runs: none) on elements {@code [from, from + len)}.
     */
    public void applyBefore(StepContext step, ParamState slot, int from, float[] u, int uOff, int len) {
        run(0, firstMatrixStage(), step, slot, from, u, uOff, len);
    }

    /** The matrix stages, on whole matrices: {@code from} and {@code len} are multiples of the matrix size. */
    public void applyMatrix(StepContext step, ParamState slot, int from, float[] u, int uOff, int len) {
        run(firstMatrixStage(), afterMatrixStages(), step, slot, from, u, uOff, len);
    }

    /** The elementwise stages after the matrix stages, the decoupled update last, on elements {@code [from, from + len)}. */
    public void applyAfter(StepContext step, ParamState slot, int from, float[] u, int uOff, int len) {
        run(afterMatrixStages(), transforms.size(), step, slot, from, u, uOff, len);
    }

    private void run(int begin, int end, StepContext step, ParamState slot, int from, float[] u, int uOff, int len) {
        for (int i = begin; i < end; i++) {
            transforms.get(i).apply(step, slot, from, u, uOff, len);
        }
    }

    /** Index of the first matrix stage; for a rule without one, the index of the final stages' start (the end). */
    private int firstMatrixStage() {
        for (int i = 0; i < transforms.size(); i++) {
            if (transforms.get(i).scope() == UpdateTransform.Scope.MATRIX) {
                return i;
            }
        }
        return transforms.size();
    }

    /** Index of the first stage after the matrix stages (the end for a rule without one). */
    private int afterMatrixStages() {
        int last = -1;
        for (int i = 0; i < transforms.size(); i++) {
            if (transforms.get(i).scope() == UpdateTransform.Scope.MATRIX) {
                last = i;
            }
        }
        return last < 0 ? transforms.size() : last + 1;
    }

    /**
     * The scratch {@link #apply} needs for {@code parameter}: for a rule with matrix stages, as many
     * whole matrices of a stack (an MoE layer's experts) as fit in {@link #STACK_CHUNK} floats, at least
     * one, so that Newton–Schulz sees them together and can run them side by side
     * ({@link NewtonSchulz#orthogonalizeBatch}).
     */
    public int scratchSize(Parameter parameter) {
        if (!needsMatrices()) {
            return Math.min(CHUNK, parameter.size());
        }
        int matrix = parameter.layout().matrixSize();
        int together = Math.max(1, Math.min(parameter.size() / matrix, STACK_CHUNK / matrix));
        return matrix * together;
    }
}
