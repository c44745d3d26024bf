package dev.muon4j.djl;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.ParameterTracker;
import ai.djl.util.Pair;
import dev.muon4j.backend.Backend;
import dev.muon4j.backend.BackendConfig;
import dev.muon4j.backend.Backends;
import dev.muon4j.backend.Kernels;
import dev.muon4j.optim.AdamWConfig;
import dev.muon4j.optim.HybridOptimizer;
import dev.muon4j.optim.MuonConfig;
import dev.muon4j.optim.NonFiniteGradientException;
import dev.muon4j.optim.ParamRole;
import dev.muon4j.optim.ParamState;
import dev.muon4j.optim.Parameter;
import dev.muon4j.optim.Route;
import dev.muon4j.optim.StepContext;
import dev.muon4j.optim.UpdateRule;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.function.Predicate;

/**
 * Muon for a DJL model's weight matrices and AdamW for everything else, as a DJL
 * {@link Optimizer}: give it to {@code DefaultTrainingConfig.optOptimizer} like DJL's own Adam.
 * The arithmetic is muon4j-core's own ({@link UpdateRule#muon} and {@link UpdateRule#adamw}, the
 * rules {@link HybridOptimizer} runs); this class only moves each parameter between DJL's
 * {@link NDArray} and the core's {@code float[]} and keeps the state.
 *
 * <p><b>Update.</b> DJL calls {@link #update(String, NDArray, NDArray)} once per parameter and
 * step. With G the gradient (times DJL's {@code rescaleGrad}, then clipped to ±{@code clipGrad}
 * when that is set), t the parameter's own update count from 1 and lr the learning rate of its
 * route at DJL's update count:
 * <pre>
 * Muon (weight W of shape (out, in, k…), seen as the matrix out × (in·k…)):
 *     EMA form:      M ← β·M + (1−β)·G;   U = nesterov ? (1−β)·G + β·M : M
 *     classic form:  M ← β·M + G;         U = nesterov ? G + β·M : M
 *     O = NewtonSchulz(U)
 *     W ← W·(1 − lr·wd) − lr·s·O          s from the scale mode, e.g. √max(1, out/in) or 0.2·√max(out, in)
 * AdamW (every other parameter):
 *     m ← β1·m + (1−β1)·G;   v ← β2·v + (1−β2)·G²
 *     W ← W·(1 − lr·wd) − lr·(m/(1−β1ᵗ)) / (√(v/(1−β2ᵗ)) + eps)
 * </pre>
 * The settings are a {@link MuonConfig} and an {@link AdamWConfig} (momentum, weight decay, scale
 * mode, Newton–Schulz; the formulas' sources are in their Javadoc). Weight decay is theirs,
 * decoupled; DJL's {@code optWeightDecays} is refused.
 *
 * <p><b>Routing.</b> A parameter goes to Muon when its weight has two or more dimensions (a
 * {@code Linear} weight {@code (out, in)}, a convolution kernel {@code (out, in, kh, kw)}) and
 * {@link Builder#optAdamWFor} does not claim it; every other parameter goes to AdamW: biases, the
 * gamma and beta of a norm, scalars, and whatever the predicate names. Moonlight sends the
 * embedding and the output head to AdamW: DJL names a parameter by an id ({@code uid-…}), so find
 * theirs by path with {@link #parameterIds(Block, Predicate)}.
 *
 * <p><b>Learning rate.</b> Muon's and AdamW's come from their configs unless a DJL
 * {@link ParameterTracker} is given for either ({@link Builder#optLearningRateTracker},
 * {@link Builder#optAdamWLearningRateTracker}); a tracker is asked at DJL's update count, as DJL's
 * own optimizers ask theirs, and its value replaces the config's rate.
 *
 * <p><b>State</b> is kept per parameter id (and per device, where DJL trains one model on several):
 * Muon's momentum, AdamW's two moments, and the parameter's own update count for AdamW's bias
 * correction. Each update copies the weight and the gradient out of DJL ({@link NDArray#toFloatArray})
 * and the new weight back ({@link NDArray#set(float[])}), so it suits CPU training and models of a
 * size the JVM heap holds twice over. The weight's own gradient is then set to zero, as DJL's own
 * optimizers do on the PyTorch engine ({@code PtNDArrayEx.adamUpdate} ends with {@code zeroGrad} of
 * the weight): PyTorch adds each backward pass's gradients to the last ones, DJL's gradient
 * collector does not zero them, and the {@code grad} DJL hands the optimizer is a copy.
 *
 * <p>Errors name the parameter (its path when {@link Builder#optParameterNames} was given a block,
 * else DJL's id): a weight or gradient that is not float32, a gradient of another shape, a parameter whose shape
 * changed between updates, a NaN or infinite gradient ({@link NonFiniteGradientException}; nothing
 * is changed then).
 *
 * <p>Not for concurrent use: updates are serialised, since a muon4j {@link Backend} must not be
 * entered from two threads at once.
 */
public final class MuonDjlOptimizer extends Optimizer implements AutoCloseable {
    private final MuonConfig muon;
    private final AdamWConfig adamw;
    private final UpdateRule muonRule;
    private final ParameterTracker muonLearningRate;
    private final ParameterTracker adamwLearningRate;
    private final Predicate<String> adamwFor;
    private final Map<String, String> names;
    private final Backend backend;
    private final boolean ownsBackend;
    /** The core's optimizer settings with both base rates 1, so that a step's rate is the factor it is given. */
    private final HybridOptimizer.Builder unitRates;
    private final StepContext context;
    private final Map<String, Map<Device, Slot>> slots = new LinkedHashMap<>();
    private float[] scratch = new float[0];

    /** One parameter on one device: its core view (value and gradient arrays), its rule state and update count. */
    private record Slot(Parameter parameter, ParamState state, long[] updates) {
    }

    private MuonDjlOptimizer(Builder builder) {
        super(builder);
        if (getWeightDecay() != 0) {
            throw new IllegalArgumentException("optWeightDecays(" + getWeightDecay() + ") is DJL's weight decay; Muon and AdamW "
                    + "decay decoupled: set MuonConfig.weightDecay and AdamWConfig.weightDecay instead");
        }
        if (!(rescaleGrad > 0) || !Float.isFinite(rescaleGrad)) {
            throw new IllegalArgumentException("setRescaleGrad must be positive and finite, got " + rescaleGrad);
        }
        if (Float.isNaN(clipGrad)) {
            throw new IllegalArgumentException("optClipGrad must be a number (negative turns clipping off), got NaN");
        }
        this.muon = builder.muon;
        this.adamw = builder.adamw;
        this.muonLearningRate = builder.muonLearningRate;
        this.adamwLearningRate = builder.adamwLearningRate;
        this.adamwFor = builder.adamwFor;
        this.names = Map.copyOf(builder.names);
        this.ownsBackend = builder.backend == null;
        this.backend = ownsBackend ? Backends.open(BackendConfig.defaults()) : builder.backend;
        this.unitRates = HybridOptimizer.builder(backend)
                .muon(muon.toBuilder().learningRate(1).build())
                .adamw(adamw.toBuilder().learningRate(1).build());
        if (builder.muonRule != null) {
            unitRates.muonRule(builder.muonRule);
        }
        this.muonRule = unitRates.defaultRule(Route.MUON);
        this.context = new StepContext(backend);
    }

    /** A builder with torch.optim.Muon's defaults for Muon and AdamW's defaults (see {@link MuonConfig}, {@link AdamWConfig}). */
    public static Builder builder() {
        return new Builder();
    }

    /**
     * The ids of a block's parameters whose path matches, for {@link Builder#optAdamWFor}. A path is
     * the name {@link Block#getParameters()} gives: the child blocks' names and the parameter's,
     * joined by {@code _}, e.g. {@code 01Linear_weight} for the second block of a
     * {@code SequentialBlock}, {@code 01Linear_bias} for its bias.
     *
     * @param block a model's block (its parameters exist before it is initialised)
     * @param path  which paths to take
     * @return their ids, in the block's order
     */
    public static Set<String> parameterIds(Block block, Predicate<String> path) {
        Objects.requireNonNull(path, "path predicate");
        Set<String> ids = new LinkedHashSet<>();
        for (Pair<String, ai.djl.nn.Parameter> p : Objects.requireNonNull(block, "block").getParameters()) {
            if (path.test(p.getKey())) {
                ids.add(p.getValue().getId());
            }
        }
        return ids;
    }

    /**
     * The route a parameter of this shape takes: Muon for two or more dimensions unless the
     * {@link Builder#optAdamWFor} predicate claims its id, AdamW otherwise.
     *
     * @param parameterId the parameter's DJL id
     * @param shape       its weight's shape
     * @return its route
     */
    public Route route(String parameterId, Shape shape) {
        return shape.dimension() >= 2 && !adamwFor.test(parameterId) ? Route.MUON : Route.ADAMW;
    }

    /**
     * Applies one step of the parameter's rule to {@code weight}, in place. Called by DJL's trainer
     * for every parameter after each backward pass.
     *
     * @param parameterId the parameter's DJL id (its state is kept under it)
     * @param weight      the weight, float32; overwritten with the updated weight, and its own gradient
     *                    ({@link NDArray#getGradient()}) set to zero
     * @param grad        its gradient, float32 of the weight's shape; not modified
     * @throws IllegalArgumentException naming the parameter, when the weight or gradient is not float32, the
     *                                  gradient's shape differs, or the shape changed since the last update
     * @throws NonFiniteGradientException naming the parameter and the element, when the gradient has NaN or ±Inf
     */
    @Override
    public synchronized void update(String parameterId, NDArray weight, NDArray grad) {
        Objects.requireNonNull(parameterId, "parameter id");
        Objects.requireNonNull(weight, "weight of " + parameterId);
        Objects.requireNonNull(grad, "gradient of " + parameterId);
        String name = describe(parameterId);
        if (weight.getDataType() != DataType.FLOAT32 || grad.getDataType() != DataType.FLOAT32) {
            throw new IllegalArgumentException("parameter " + name + " has a " + weight.getDataType() + " weight and a "
                    + grad.getDataType() + " gradient; muon4j's Muon and AdamW update float32 only");
        }
        if (!weight.getShape().equals(grad.getShape())) {
            throw new IllegalArgumentException("parameter " + name + ": gradient shape " + grad.getShape()
                    + " differs from the weight's " + weight.getShape());
        }
        Slot slot = slot(parameterId, name, weight);
        Parameter p = slot.parameter();
        float[] g = grad.toFloatArray();
        int bad = Kernels.firstNonFinite(g, 0, g.length);
        if (bad >= 0) {
            throw new NonFiniteGradientException(name, bad, g[bad], slot.updates()[0] + 1);
        }
        for (int i = 0; i < g.length; i++) {
            float v = g[i] * rescaleGrad;
            g[i] = clipGrad >= 0 ? Math.max(-clipGrad, Math.min(clipGrad, v)) : v;
        }
        System.arraycopy(g, 0, p.gradient(), 0, g.length);
        System.arraycopy(weight.toFloatArray(), 0, p.value(), 0, p.size());
        ParameterTracker tracker = slot.state().route() == Route.MUON ? muonLearningRate : adamwLearningRate;
        double base = slot.state().route() == Route.MUON ? muon.learningRate() : adamw.learningRate();
        int count = updateCount(parameterId);
        double learningRate = tracker == null ? base : tracker.getNewValue(parameterId, count);
        if (!(learningRate >= 0) || Double.isInfinite(learningRate)) {
            throw new IllegalArgumentException("parameter " + name + ": the learning rate tracker gave " + learningRate
                    + " at update " + count + "; a learning rate must be finite and >= 0");
        }
        long t = ++slot.updates()[0];
        context.begin(t, learningRate);
        slot.state().rule().apply(context, slot.state(), scratch);
        weight.set(p.value());
        if (weight.hasGradient()) {
            try (NDArray accumulated = weight.getGradient()) {
                accumulated.subi(accumulated);
            }
        }
    }

    /** The parameter's slot for the weight's device, made on its first update; checks the shape against the last one. */
    private Slot slot(String parameterId, String name, NDArray weight) {
        Map<Device, Slot> byDevice = slots.computeIfAbsent(parameterId, k -> new HashMap<>());
        Slot slot = byDevice.get(weight.getDevice());
        int[] shape = Arrays.stream(weight.getShape().getShape()).mapToInt(d -> Math.toIntExact(d)).toArray();
        if (slot != null) {
            if (!Arrays.equals(slot.parameter().shape(), shape)) {
                throw new IllegalArgumentException("parameter " + name + " has shape " + weight.getShape()
                        + " but had " + Arrays.toString(slot.parameter().shape()) + " at its earlier updates");
            }
            return slot;
        }
        Route route = route(parameterId, weight.getShape());
        ParamRole role = shape.length >= 2 ? ParamRole.HIDDEN_MATRIX : shape.length == 1 ? ParamRole.BIAS : ParamRole.SCALAR;
        int size = Math.toIntExact(weight.size());
        Parameter p;
        try {
            p = Parameter.of(parameterId, role, shape, new float[size], new float[size]);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("parameter " + name + ": " + e.getMessage(), e);
        }
        HybridOptimizer.Assignment assignment = unitRates.routeAll(route).assign(List.of(p)).getFirst();
        slot = new Slot(p, new ParamState(assignment, 0, size), new long[1]);
        int need = assignment.rule().scratchSize(p);
        if (scratch.length < need) {
            scratch = new float[need];
        }
        byDevice.put(weight.getDevice(), slot);
        return slot;
    }

    private String describe(String parameterId) {
        String path = names.get(parameterId);
        return path == null ? parameterId : path + " (" + parameterId + ")";
    }

    /** Muon's settings; its learning rate is used where no tracker is given. */
    public MuonConfig muonConfig() {
        return muon;
    }

    /** AdamW's settings; its learning rate is used where no tracker is given. */
    public AdamWConfig adamwConfig() {
        return adamw;
    }

    /** The rule Muon-routed parameters are updated by. */
    public UpdateRule muonRule() {
        return muonRule;
    }

    /**
     * The routes the parameters updated so far took, by id (by path where names were given), in
     * the order of their first update.
     */
    public synchronized Map<String, Route> routes() {
        Map<String, Route> out = new LinkedHashMap<>();
        slots.forEach((id, byDevice) -> byDevice.values().forEach(s -> out.put(names.getOrDefault(id, id), s.state().route())));
        return out;
    }

    /**
     * A copy of a parameter's state buffer ({@code momentum} for Muon, {@code exp_avg} and
     * {@code exp_avg_sq} for AdamW) on one device, for inspection and tests.
     *
     * @throws IllegalArgumentException if the parameter has had no update on that device or keeps no such buffer
     */
    public synchronized float[] state(String parameterId, Device device, String buffer) {
        Map<Device, Slot> byDevice = slots.get(parameterId);
        Slot slot = byDevice == null ? null : byDevice.get(device);
        if (slot == null) {
            throw new IllegalArgumentException("parameter " + describe(parameterId) + " has had no update on " + device);
        }
        return slot.state().buffer(buffer).clone();
    }

    /** Closes the muon4j backend this optimizer opened; one given by {@link Builder#optBackend} stays open. */
    @Override
    public void close() {
        if (ownsBackend) {
            backend.close();
        }
    }

    /** Builds a {@link MuonDjlOptimizer}; every setting has a default. */
    public static final class Builder extends OptimizerBuilder<Builder> {
        private MuonConfig muon = MuonConfig.builder().build();
        private AdamWConfig adamw = AdamWConfig.builder().build();
        private UpdateRule muonRule;
        private ParameterTracker muonLearningRate;
        private ParameterTracker adamwLearningRate;
        private Predicate<String> adamwFor = id -> false;
        private final Map<String, String> names = new HashMap<>();
        private Backend backend;

        private Builder() {
        }

        @Override
        protected Builder self() {
            return this;
        }

        /** Muon's settings (default: {@code MuonConfig.builder().build()}, torch.optim.Muon's). */
        public Builder optMuon(MuonConfig config) {
            this.muon = Objects.requireNonNull(config, "Muon config");
            return self();
        }

        /** AdamW's settings for the parameters Muon does not take (default: {@code AdamWConfig.builder().build()}). */
        public Builder optAdamW(AdamWConfig config) {
            this.adamw = Objects.requireNonNull(config, "AdamW config");
            return self();
        }

        /**
         * The rule of the Muon-routed parameters instead of {@link UpdateRule#muon} of the Muon
         * config, e.g. {@link UpdateRule#norMuon}; its learning rate, weight decay and scale still
         * come from the Muon config.
         */
        public Builder optMuonRule(UpdateRule rule) {
            if (Objects.requireNonNull(rule, "Muon rule").family() != Route.MUON) {
                throw new IllegalArgumentException("the Muon rule must be of the MUON family, " + rule.name() + " is " + rule.family());
            }
            this.muonRule = rule;
            return self();
        }

        /** Muon's learning rate over DJL's update count, instead of the Muon config's fixed rate. */
        public Builder optLearningRateTracker(ParameterTracker tracker) {
            this.muonLearningRate = Objects.requireNonNull(tracker, "Muon learning rate tracker");
            return self();
        }

        /** AdamW's learning rate over DJL's update count, instead of the AdamW config's fixed rate. */
        public Builder optAdamWLearningRateTracker(ParameterTracker tracker) {
            this.adamwLearningRate = Objects.requireNonNull(tracker, "AdamW learning rate tracker");
            return self();
        }

        /**
         * Parameters whose DJL id matches go to AdamW whatever their shape: the embedding and the
         * output head, as Moonlight trains them. Ids by path: {@link #parameterIds(Block, Predicate)}.
         */
        public Builder optAdamWFor(Predicate<String> parameterId) {
            this.adamwFor = Objects.requireNonNull(parameterId, "AdamW predicate");
            return self();
        }

        /** Names each of the block's parameters by its path ({@code 01Linear_weight}) in errors and {@link #routes()}. */
        public Builder optParameterNames(Block block) {
            for (Pair<String, ai.djl.nn.Parameter> p : Objects.requireNonNull(block, "block").getParameters()) {
                names.put(p.getValue().getId(), p.getKey());
            }
            return self();
        }

        /**
         * The muon4j backend for Newton–Schulz's matrix products; it stays the caller's to close.
         * Without one, the optimizer opens {@code Backends.open(BackendConfig.defaults())} and
         * {@link MuonDjlOptimizer#close()} closes it.
         */
        public Builder optBackend(Backend backend) {
            this.backend = Objects.requireNonNull(backend, "backend");
            return self();
        }

        /** The optimizer; refuses DJL's weight decay, a non-positive {@code rescaleGrad} and a NaN {@code clipGrad}. */
        public MuonDjlOptimizer build() {
            return new MuonDjlOptimizer(this);
        }
    }
}
