package dev.muon4j.optim;

import java.util.Map;

/**
 * One stage of an update rule ({@link UpdateRule}): it reads and rewrites the update {@code u} of
 * a parameter, keeping named state of its own. A rule is a chain of such stages, in the manner of
 * optax's {@code chain} of gradient transformations: Muon is momentum → orthogonalize → decoupled
 * update, AdamW is Adam's moments → decoupled update. A new variant is one new transform.
 *
 * <p>{@link Scope#ELEMENTWISE} stages treat every element on its own, so they run on any contiguous
 * slice of a parameter (one rank's share, in ZeRO-1), with their state sliced alike;
 * {@link Scope#MATRIX} stages need whole matrices (Newton–Schulz) and run where a whole matrix is.
 *
 * <p>Implementations are stateless apart from their configuration: all per-parameter state lives in
 * the {@link ParamState} they are given, under the names {@link #state} declares.
 */
public interface UpdateTransform {
    /** Where a transform can run. */
    enum Scope {
        /** On any contiguous slice of a parameter's elements; parameter-sized state is sliced with it. */
        ELEMENTWISE,
        /** On whole matrices only: the parameter's every matrix ({@link MatrixLayout#count()} of them). */
        MATRIX
    }

    /** A short name for messages and saved configurations, e.g. {@code "momentum"}. */
    String name();

    /** Where this transform can run. */
    Scope scope();

    /**
     * This stage's configuration, recorded in saved state ({@link OptimizerState.Stage}) so that a
     * reader of the file sees how the state was made: setting name → a string, a boolean, a number,
     * or a list or map of those. The built-in stages record all their settings; the default records
     * none.
     */
    default Map<String, Object> settings() {
        return Map.of();
    }

    /**
     * The state buffers this transform keeps for {@code parameter}: name → length. Elementwise
     * transforms keep parameter-sized buffers (sliced with the parameter); matrix transforms may keep
     * buffers of any length, indexed across the whole parameter. A matrix transform's buffer whose
     * length is a multiple of the parameter's matrix count is read as one equal part per matrix (part
     * e belongs to matrix e, as NorMuon's rows of expert e), so a sharded optimizer may run each matrix
     * of a stack on a different rank; a buffer of another length ties the stack's matrices together.
     * Names are unique within a rule and are the names in saved state. None by default: a stateless stage.
     */
    default Map<String, Integer> state(Parameter parameter) {
        return Map.of();
    }

    /**
     * Transforms the update in place. {@code u[uOff + i]} is the update of the parameter's element
     * {@code from + i}, for {@code i < len}; for {@link Scope#MATRIX} transforms {@code from} and
     * {@code len} are multiples of the matrix size (whole consecutive matrices; one at a time as
     * {@link UpdateRule#apply} and the sharded optimizer run them).
     *
     * @param step  the step being taken
     * @param slot  the parameter, its hyperparameters and its state
     */
    void apply(StepContext step, ParamState slot, int from, float[] u, int uOff, int len);
}
