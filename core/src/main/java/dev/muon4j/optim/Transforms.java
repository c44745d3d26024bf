package dev.muon4j.optim;

import dev.muon4j.backend.Kernels;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;

/**
 * The transforms today's update rules are made of. Each is a record of its configuration; its
 * per-parameter state lives in the {@link ParamState} it is given.
 */
public final class Transforms {
    private Transforms() {
    }

    /** Newton–Schulz in place on {@code batch} consecutive rows × cols matrices of u, timed into the step. */
    private static void newtonSchulz(StepContext step, NewtonSchulzConfig config, float[] u, int uOff, int batch, int rows, int cols) {
        long t0 = System.nanoTime();
        NewtonSchulz.orthogonalizeBatch(step.backend(), config, u, uOff, batch, rows, cols, u, uOff, step.workspace());
        step.addNewtonSchulzNanos(System.nanoTime() - t0);
        step.addNewtonSchulzMatrices(batch);
    }

    /** Settings as {@link UpdateTransform#settings} records them: alternating names and values, in order. */
    private static Map<String, Object> settingsOf(Object... namesAndValues) {
        Map<String, Object> out = new LinkedHashMap<>();
        for (int i = 0; i < namesAndValues.length; i += 2) {
            out.put((String) namesAndValues[i], namesAndValues[i + 1]);
        }
        return out;
    }

    private static String lower(Enum<?> value) {
        return value.name().toLowerCase(Locale.ROOT);
    }

    /** A Newton–Schulz configuration as saved settings: the coefficients of every step, steps, eps, precision, normalization. */
    static Map<String, Object> newtonSchulzSettings(NewtonSchulzConfig config) {
        CoefficientSchedule schedule = config.schedule();
        List<Object> perStep = new ArrayList<>();
        for (Coefficients c : schedule.perStep()) {
            perStep.add(List.of(c.a(), c.b(), c.c()));
        }
        Coefficients tail = schedule.tail();
        return settingsOf("coefficients", schedule.name(), "per_step", perStep, "tail", List.of(tail.a(), tail.b(), tail.c()),
                "norm_scale", schedule.normScale(), "steps", config.steps(), "eps", config.eps(), "precision", lower(config.precision()),
                "normalization", lower(config.normalization()));
    }

    /** Buffer name of Muon's momentum (as PyTorch names it). */
    public static final String MOMENTUM = "momentum";
    /** Buffer names of Adam's first and second moments (as PyTorch names them). */
    public static final String EXP_AVG = "exp_avg";
    public static final String EXP_AVG_SQ = "exp_avg_sq";

    /**
     * Muon's momentum: the gradient in, the momentum-smoothed update out.
     * <pre>
     * EMA (Keller Jordan, PyTorch):  M ← β·M + (1−β)·G;  U = nesterov ? (1−β)·G + β·M : M
     * classic (Moonlight):           M ← β·M + G;        U = nesterov ? G + β·M : M
     * </pre>
     */
    public record Momentum(MomentumForm form, boolean nesterov, double beta) implements UpdateTransform {
        public Momentum {
            Objects.requireNonNull(form, "momentum form");
            Checks.unitInterval("momentum", beta);
        }

        @Override
        public String name() {
            return "momentum";
        }

        @Override
        public Map<String, Object> settings() {
            return settingsOf("form", lower(form), "nesterov", nesterov, "beta", beta);
        }

        @Override
        public Scope scope() {
            return Scope.ELEMENTWISE;
        }

        @Override
        public Map<String, Integer> state(Parameter parameter) {
            return Map.of(MOMENTUM, parameter.size());
        }

        @Override
        public void apply(StepContext step, ParamState slot, int from, float[] u, int uOff, int len) {
            Kernels.muonMomentum(form == MomentumForm.EMA, nesterov, beta, u, uOff, slot.buffer(MOMENTUM), from - slot.base(),
                    u, uOff, len);
        }
    }

    /** Newton–Schulz on each whole matrix of the range it is given ({@link MatrixLayout}): U ← NS(U). */
    public record Orthogonalize(NewtonSchulzConfig config) implements UpdateTransform {
        public Orthogonalize {
            Objects.requireNonNull(config, "Newton–Schulz config");
        }

        @Override
        public String name() {
            return "orthogonalize";
        }

        @Override
        public Map<String, Object> settings() {
            return settingsOf("newton_schulz", newtonSchulzSettings(config));
        }

        @Override
        public Scope scope() {
            return Scope.MATRIX;
        }

        @Override
        public void apply(StepContext step, ParamState slot, int from, float[] u, int uOff, int len) {
            MatrixLayout m = slot.parameter().layout();
            newtonSchulz(step, config, u, uOff, len / m.matrixSize(), m.fanOut(), m.fanIn());
        }
    }

    /**
     * Newton–Schulz on row blocks: each matrix (fan-out × fan-in) seen as fan-out / blockRows blocks of
     * blockRows × fan-in, each orthogonalized alone; for a query or key projection (H·D × C) with
     * blockRows = D, every head on its own. Per-head orthogonalization: microsoft/dion
     * {@code num_heads}, DeepSpeed {@code _per_head_orthogonalize}, modded-nanogpt PR #253 (pairs of
     * heads); see docs/VARIANTS.md. The update scale is then the block's ({@link UpdateRule#scaleShape}).
     */
    public record OrthogonalizeBlocks(NewtonSchulzConfig config, int blockRows) implements UpdateTransform {
        public OrthogonalizeBlocks {
            Objects.requireNonNull(config, "Newton–Schulz config");
            if (blockRows < 1) {
                throw new IllegalArgumentException("block rows must be >= 1, got " + blockRows);
            }
        }

        @Override
        public String name() {
            return "orthogonalize_blocks";
        }

        @Override
        public Map<String, Object> settings() {
            return settingsOf("newton_schulz", newtonSchulzSettings(config), "block_rows", blockRows);
        }

        @Override
        public Scope scope() {
            return Scope.MATRIX;
        }

        /** Checks that {@code blockRows} divides the parameter's fan-out. */
        void check(Parameter parameter) {
            if (parameter.layout().fanOut() % blockRows != 0) {
                throw new IllegalArgumentException("parameter " + parameter.name() + " has fan-out " + parameter.layout().fanOut()
                        + ", not a multiple of the " + blockRows + "-row blocks it is to be orthogonalized in");
            }
        }

        @Override
        public void apply(StepContext step, ParamState slot, int from, float[] u, int uOff, int len) {
            MatrixLayout m = slot.parameter().layout();
            // Row blocks of a row-major matrix are contiguous: the matrices of the range are a batch of blocks.
            newtonSchulz(step, config, u, uOff, len / m.matrixSize() * (m.fanOut() / blockRows), blockRows, m.fanIn());
        }
    }

    /**
     * Adam's bias-corrected moments: the gradient in, {@code m̂ / (√v̂ + eps)} out.
     * <pre>
     * m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;  u = (m / bc1) / (√(v / bc2) + eps),  bc_i = 1 − β_i^t
     * </pre>
     */
    public record AdamMoments(double beta1, double beta2, double eps) implements UpdateTransform {
        public AdamMoments {
            Checks.unitInterval("beta1", beta1);
            Checks.unitInterval("beta2", beta2);
            Checks.positive("eps", eps);
        }

        @Override
        public String name() {
            return "adam";
        }

        @Override
        public Map<String, Object> settings() {
            return settingsOf("beta1", beta1, "beta2", beta2, "eps", eps);
        }

        @Override
        public Scope scope() {
            return Scope.ELEMENTWISE;
        }

        @Override
        public Map<String, Integer> state(Parameter parameter) {
            Map<String, Integer> m = new java.util.LinkedHashMap<>();
            m.put(EXP_AVG, parameter.size());
            m.put(EXP_AVG_SQ, parameter.size());
            return m;
        }

        @Override
        public void apply(StepContext step, ParamState slot, int from, float[] u, int uOff, int len) {
            long t = step.step();
            int at = from - slot.base();
            Kernels.adamMoments(u, uOff, slot.buffer(EXP_AVG), at, slot.buffer(EXP_AVG_SQ), at, len, (float) beta1, (float) beta2,
                    (float) (1 - beta1), (float) (1 - beta2), (float) eps, (float) (1 - Math.pow(beta1, t)),
                    (float) (1 - Math.pow(beta2, t)));
        }
    }

    /** How the decoupled update decays the weights. */
    public enum WeightDecayMode {
        /** Every weight: {@code W ← W·(1 − lr·wd) − lr·s·U}. */
        PLAIN,
        /**
         * Only where the update and the weight agree in sign ({@code U·W ≥ 0}, a zero counts as
         * agreement): {@code W ← W − lr·wd·[U⊙W ≥ 0]⊙W − lr·s·U}. Cautious weight decay: Chen et al.,
         * arXiv 2510.12402, Algorithm 1; microsoft/dion {@code cautious_wd}. See docs/VARIANTS.md.
         */
        CAUTIOUS
    }

    /**
     * The last stage of every rule: decoupled weight decay and the step,
     * {@code W ← W·(1 − lr·wd) − lr·s·U} with lr = the schedule's factor × the parameter's base rate,
     * wd its weight decay and s its scale (Muon's shape scale, 1 for AdamW). The decay uses the
     * unscaled lr, as Moonlight and PyTorch do; {@link WeightDecayMode#CAUTIOUS} decays only the
     * weights the update already pushes towards zero.
     */
    public record DecoupledUpdate(WeightDecayMode weightDecay) implements UpdateTransform {
        public DecoupledUpdate {
            Objects.requireNonNull(weightDecay, "weight decay mode");
        }

        /** Plain decoupled weight decay. */
        public DecoupledUpdate() {
            this(WeightDecayMode.PLAIN);
        }

        @Override
        public String name() {
            return weightDecay == WeightDecayMode.PLAIN ? "decoupled_update" : "cautious_decoupled_update";
        }

        @Override
        public Map<String, Object> settings() {
            return settingsOf("weight_decay", lower(weightDecay));
        }

        @Override
        public Scope scope() {
            return Scope.ELEMENTWISE;
        }

        @Override
        public void apply(StepContext step, ParamState slot, int from, float[] u, int uOff, int len) {
            double lr = step.lrFactor() * slot.learningRate();
            float decay = (float) (1 - lr * slot.weightDecay());
            float stepSize = (float) (lr * slot.scale());
            if (weightDecay == WeightDecayMode.PLAIN) {
                Kernels.decayAndSubtract(slot.parameter().value(), from, decay, stepSize, u, uOff, len);
            } else {
                Kernels.cautiousDecayAndSubtract(slot.parameter().value(), from, decay, stepSize, u, uOff, len);
            }
        }
    }

    /**
     * NorMuon's row normalisation of the orthogonalized update (Li et al., arXiv 2510.05491,
     * Algorithm 1; as microsoft/dion's {@code _normuon_normalization_core} computes it, see
     * docs/VARIANTS.md). Per matrix, for each row i (output neuron) of O:
     * <pre>
     * m_i = mean_j O_ij²;   v_i ← β2·v_i + (1 − β2)·m_i          (no bias correction)
     * Ô_ij = O_ij / (√v_i + 1e-8);   U = Ô · ‖O‖_F / max(‖Ô‖_F, 1e-8)     (the Frobenius norm is kept)
     * </pre>
     * State: {@code row_second_moment}, one float per row of every matrix of the parameter.
     * Sums are taken in double.
     *
     * <p>With {@code blockRows} &gt; 0 (a rule that orthogonalizes row blocks, such as the heads of a
     * query projection: {@link UpdateRule#withRowBlocks}) the Frobenius norm is kept per block of
     * {@code blockRows} rows, as dion rescales per head when given {@code num_heads}; 0 keeps it per matrix.
     *
     * @param beta2     EMA factor of the per-row second moment
     * @param blockRows rows of one block whose norm the rescale keeps, or 0 for the whole matrix
     */
    public record NorMuon(double beta2, int blockRows) implements UpdateTransform {
        /** Buffer name of the per-row second moment. */
        public static final String ROW_SECOND_MOMENT = "row_second_moment";
        /** dion's default β2 ({@code muon_beta2}). */
        public static final double DEFAULT_BETA2 = 0.95;
        /** The literal ε of dion's normalisation and of its rescale's floor. */
        public static final double EPS = 1e-8;

        public NorMuon {
            Checks.unitInterval("NorMuon beta2", beta2);
            if (blockRows < 0) {
                throw new IllegalArgumentException("NorMuon block rows must be >= 0 (0: the whole matrix), got " + blockRows);
            }
        }

        /** NorMuon that keeps each matrix's Frobenius norm. */
        public NorMuon(double beta2) {
            this(beta2, 0);
        }

        /** Checks that {@code blockRows} divides the parameter's fan-out. */
        void check(Parameter parameter) {
            if (blockRows > 0 && parameter.layout().fanOut() % blockRows != 0) {
                throw new IllegalArgumentException("parameter " + parameter.name() + " has fan-out " + parameter.layout().fanOut()
                        + ", not a multiple of the " + blockRows + "-row blocks NorMuon rescales");
            }
        }

        @Override
        public String name() {
            return "normuon";
        }

        @Override
        public Map<String, Object> settings() {
            return settingsOf("beta2", beta2, "eps", EPS);
        }

        @Override
        public Scope scope() {
            return Scope.MATRIX;
        }

        @Override
        public Map<String, Integer> state(Parameter parameter) {
            MatrixLayout m = parameter.layout();
            return Map.of(ROW_SECOND_MOMENT, Math.multiplyExact(m.count(), m.fanOut()));
        }

        @Override
        public void apply(StepContext step, ParamState slot, int from, float[] u, int uOff, int len) {
            MatrixLayout m = slot.parameter().layout();
            int cols = m.fanIn();
            // A block is the unit whose Frobenius norm is kept: the matrix, or a head of it.
            int rows = blockRows > 0 ? blockRows : m.fanOut();
            int size = rows * cols;
            float[] v = slot.buffer(ROW_SECOND_MOMENT);
            // Row r of the range's blocks is row r of the range's matrices: rows are numbered across the parameter.
            int firstRow = from / cols;
            for (int k = 0; k < len / size; k++) {
                int at = uOff + k * size;
                double before = 0;
                double after = 0;
                for (int i = 0; i < rows; i++) {
                    int row = at + i * cols;
                    double sq = 0;
                    for (int j = 0; j < cols; j++) {
                        sq += (double) u[row + j] * u[row + j];
                    }
                    before += sq;
                    int r = firstRow + k * rows + i;
                    v[r] = (float) (beta2 * v[r] + (1 - beta2) * (sq / cols));
                    float inv = (float) (1 / (Math.sqrt(v[r]) + EPS));
                    Kernels.scale(u, row, cols, inv);
                    after += sq * (double) inv * inv;
                }
                Kernels.scale(u, at, size, (float) (Math.sqrt(before) / Math.max(Math.sqrt(after), EPS)));
            }
        }
    }
}
