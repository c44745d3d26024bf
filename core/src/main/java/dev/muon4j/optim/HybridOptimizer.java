package dev.muon4j.optim;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.Kernels;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;

/**
 * Muon for hidden matrices, AdamW for everything else: the optimizer the Moonlight work trains with.
 *
 * <p>Each step, in order:
 * <ol>
 *   <li>every gradient is checked for NaN/±Inf ({@link NonFinitePolicy}); on a skip nothing changes;</li>
 *   <li>the global L2 norm of all gradients is taken; if clipping is on and it exceeds the
 *       threshold, all gradients are scaled (in place) by {@code threshold / norm};</li>
 *   <li>the schedule's factor f for the current step scales every base learning rate;</li>
 *   <li>Muon parameters (per matrix W of fan-out×fan-in, gradient G, momentum M, β):
 *       <pre>
 *       EMA:      M ← β·M + (1−β)·G;   U = nesterov ? (1−β)·G + β·M : M
 *       classic:  M ← β·M + G;         U = nesterov ? G + β·M : M
 *       O = NewtonSchulz(U)
 *       W ← W·(1 − lr·wd) − lr·s·O        lr = f·lr_muon, s from the scale mode
 *       </pre></li>
 *   <li>AdamW parameters: bias-corrected Adam moments, decoupled decay
 *       {@code W ← W·(1 − lr·wd) − lr·m̂/(√v̂ + eps)} with lr = f·lr_adamw.</li>
 * </ol>
 * A parameter goes to Muon when its role's default route is Muon ({@link ParamRole#HIDDEN_MATRIX})
 * unless an override says otherwise; an override may also set its own lr and weight decay.
 *
 * <p>Not thread-safe: call {@link #step()} from one thread.
 */
public final class HybridOptimizer implements Optimizer {
    /** State buffer names, as PyTorch names them. */
    public static final String MOMENTUM = "momentum";
    public static final String EXP_AVG = "exp_avg";
    public static final String EXP_AVG_SQ = "exp_avg_sq";

    private final Backend backend;
    private final MuonConfig muon;
    private final AdamWConfig adamw;
    private final LearningRateSchedule schedule;
    private final double maxGradientNorm;
    private final NonFinitePolicy nonFinitePolicy;
    private final List<Parameter> parameters;
    private final List<Slot> slots;
    private final NewtonSchulz.Workspace workspace = new NewtonSchulz.Workspace();
    private final float[] scratch;
    private long step;
    private long skipped;
    private long newtonSchulzNanos;

    /** One parameter with its route, effective hyperparameters and state buffers. */
    private static final class Slot {
        final Parameter parameter;
        final Route route;
        final double learningRate;
        final double weightDecay;
        final double scale;
        final float[] first;
        final float[] second;

        Slot(Parameter parameter, Route route, double learningRate, double weightDecay, double scale) {
            this.parameter = parameter;
            this.route = route;
            this.learningRate = learningRate;
            this.weightDecay = weightDecay;
            this.scale = scale;
            this.first = new float[parameter.size()];
            this.second = route == Route.ADAMW ? new float[parameter.size()] : null;
        }
    }

    private HybridOptimizer(Builder b, List<Parameter> params) {
        this.backend = b.backend;
        this.muon = b.muon;
        this.adamw = b.adamw;
        this.schedule = b.schedule;
        this.maxGradientNorm = b.maxGradientNorm;
        this.nonFinitePolicy = b.nonFinitePolicy;
        this.parameters = List.copyOf(params);
        List<Slot> built = new ArrayList<>();
        int largestMatrix = 0;
        for (Assignment a : b.assign(params)) {
            if (a.route() == Route.MUON) {
                largestMatrix = Math.max(largestMatrix, a.parameter().layout().matrixSize());
            }
            built.add(new Slot(a.parameter(), a.route(), a.learningRate(), a.weightDecay(), a.scale()));
        }
        this.slots = List.copyOf(built);
        this.scratch = new float[largestMatrix];
    }

    /**
     * Where one parameter goes and with which hyperparameters, after roles, {@code routeAll} and
     * overrides are applied.
     *
     * @param parameter    the parameter
     * @param route        Muon or AdamW
     * @param learningRate base learning rate (before the schedule's factor)
     * @param weightDecay  decoupled weight decay
     * @param scale        Muon's update scale for this matrix shape (1 for AdamW)
     */
    public record Assignment(Parameter parameter, Route route, double learningRate, double weightDecay, double scale) {
    }

    /** A builder over the given backend (used for Newton–Schulz's matrix products). */
    public static Builder builder(Backend backend) {
        return new Builder(backend);
    }

    @Override
    public StepResult step() {
        for (Slot s : slots) {
            float[] g = s.parameter.gradient();
            int bad = Kernels.firstNonFinite(g, 0, g.length);
            if (bad >= 0) {
                if (nonFinitePolicy == NonFinitePolicy.FAIL) {
                    throw new NonFiniteGradientException(s.parameter.name(), bad, g[bad], step + skipped + 1);
                }
                skipped++;
                return new StepResult(step, true, Double.NaN, false, schedule.factor(step));
            }
        }
        double norm = GradientClipping.globalNorm(parameters);
        boolean clipped = maxGradientNorm > 0 && GradientClipping.clip(parameters, norm, maxGradientNorm);
        double factor = schedule.factor(step);
        newtonSchulzNanos = 0;
        long t = step + 1;
        float bc1 = (float) (1 - Math.pow(adamw.beta1(), t));
        float bc2 = (float) (1 - Math.pow(adamw.beta2(), t));
        for (Slot s : slots) {
            double lr = factor * s.learningRate;
            if (s.route == Route.ADAMW) {
                Parameter p = s.parameter;
                Kernels.adamw(p.value(), 0, p.gradient(), 0, s.first, 0, s.second, 0, p.size(),
                        (float) adamw.beta1(), (float) adamw.beta2(),
                        (float) (1 - adamw.beta1()), (float) (1 - adamw.beta2()), (float) lr, (float) s.weightDecay,
                        (float) adamw.eps(), bc1, bc2);
            } else {
                muonUpdate(s, lr);
            }
        }
        step = t;
        return new StepResult(step, false, norm, clipped, factor);
    }

    private void muonUpdate(Slot s, double lr) {
        Parameter p = s.parameter;
        MatrixLayout layout = p.layout();
        int size = layout.matrixSize();
        boolean ema = muon.momentumForm() == MomentumForm.EMA;
        float decay = (float) (1 - lr * s.weightDecay);
        float stepSize = (float) (lr * s.scale);
        for (int i = 0; i < layout.count(); i++) {
            int off = i * size;
            Kernels.muonMomentum(ema, muon.nesterov(), muon.momentum(),
                    p.gradient(), off, s.first, off, scratch, 0, size);
            long t0 = System.nanoTime();
            NewtonSchulz.orthogonalize(backend, muon.newtonSchulz(), scratch, 0, layout.fanOut(), layout.fanIn(),
                    scratch, 0, workspace);
            newtonSchulzNanos += System.nanoTime() - t0;
            Kernels.decayAndSubtract(p.value(), off, decay, stepSize, scratch, 0, size);
        }
    }

    @Override
    public java.util.Optional<String> findNonFiniteState() {
        for (Slot s : slots) {
            String name = s.parameter.name();
            int bad = Kernels.firstNonFinite(s.first, 0, s.first.length);
            if (bad >= 0) {
                return java.util.Optional.of(describeNonFinite(s.route == Route.MUON ? MOMENTUM : EXP_AVG, name, bad, s.first[bad]));
            }
            if (s.second != null && (bad = Kernels.firstNonFinite(s.second, 0, s.second.length)) >= 0) {
                return java.util.Optional.of(describeNonFinite(EXP_AVG_SQ, name, bad, s.second[bad]));
            }
        }
        return java.util.Optional.empty();
    }

    /** "buffer of parameter element i is v", the form of {@link Optimizer#findNonFiniteState()}. */
    public static String describeNonFinite(String buffer, String parameter, long element, float value) {
        return buffer + " of " + parameter + " element " + element + " is " + value;
    }

    /** Wall time the last {@link #step()} spent in Newton–Schulz, in nanoseconds. */
    public long lastNewtonSchulzNanos() {
        return newtonSchulzNanos;
    }

    @Override
    public long stepCount() {
        return step;
    }

    @Override
    public long skippedSteps() {
        return skipped;
    }

    @Override
    public List<Parameter> parameters() {
        return parameters;
    }

    /** The route each parameter takes, by name, in parameter order. */
    public Map<String, Route> routes() {
        Map<String, Route> routes = new LinkedHashMap<>();
        for (Slot s : slots) {
            routes.put(s.parameter.name(), s.route);
        }
        return routes;
    }

    public MuonConfig muonConfig() {
        return muon;
    }

    public AdamWConfig adamwConfig() {
        return adamw;
    }

    @Override
    public OptimizerState saveState() {
        Map<String, OptimizerState.Entry> entries = new LinkedHashMap<>();
        for (Slot s : slots) {
            Map<String, float[]> buffers = new LinkedHashMap<>();
            if (s.route == Route.MUON) {
                buffers.put(MOMENTUM, s.first);
            } else {
                buffers.put(EXP_AVG, s.first);
                buffers.put(EXP_AVG_SQ, s.second);
            }
            entries.put(s.parameter.name(), new OptimizerState.Entry(s.route, s.parameter.shape(), buffers));
        }
        return new OptimizerState(step, skipped, entries);
    }

    @Override
    public void loadState(OptimizerState state) {
        Objects.requireNonNull(state, "state");
        Map<String, OptimizerState.Entry> entries = state.entries();
        Set<String> missing = new TreeSet<>();
        for (Slot s : slots) {
            if (!entries.containsKey(s.parameter.name())) {
                missing.add(s.parameter.name());
            }
        }
        Set<String> unknown = new TreeSet<>(entries.keySet());
        for (Slot s : slots) {
            unknown.remove(s.parameter.name());
        }
        if (!missing.isEmpty() || !unknown.isEmpty()) {
            throw new IllegalArgumentException("optimizer state does not match the parameters: missing " + missing
                    + ", unknown " + unknown);
        }
        for (Slot s : slots) {
            OptimizerState.Entry e = entries.get(s.parameter.name());
            String name = s.parameter.name();
            if (e.route() != s.route) {
                throw new IllegalArgumentException("optimizer state of " + name + " is for " + e.route()
                        + " but the parameter is routed to " + s.route);
            }
            if (!Arrays.equals(e.shape(), s.parameter.shape())) {
                throw new IllegalArgumentException("optimizer state of " + name + " has shape " + Arrays.toString(e.shape())
                        + " but the parameter has shape " + Arrays.toString(s.parameter.shape()));
            }
            List<String> expected = s.route == Route.MUON ? List.of(MOMENTUM) : List.of(EXP_AVG, EXP_AVG_SQ);
            if (!new TreeSet<>(e.buffers().keySet()).equals(new TreeSet<>(expected))) {
                throw new IllegalArgumentException("optimizer state of " + name + " has buffers " + e.buffers().keySet()
                        + ", expected " + expected);
            }
            for (String buffer : expected) {
                int length = e.buffers().get(buffer).length;
                if (length != s.parameter.size()) {
                    throw new IllegalArgumentException("optimizer state " + name + "/" + buffer + " has " + length
                            + " elements, the parameter has " + s.parameter.size());
                }
            }
        }
        for (Slot s : slots) {
            OptimizerState.Entry e = entries.get(s.parameter.name());
            if (s.route == Route.MUON) {
                System.arraycopy(e.buffers().get(MOMENTUM), 0, s.first, 0, s.first.length);
            } else {
                System.arraycopy(e.buffers().get(EXP_AVG), 0, s.first, 0, s.first.length);
                System.arraycopy(e.buffers().get(EXP_AVG_SQ), 0, s.second, 0, s.second.length);
            }
        }
        step = state.step();
        skipped = state.skippedSteps();
    }

    /** Builds a {@link HybridOptimizer}; every setting has a default. */
    public static final class Builder {
        private final Backend backend;
        private MuonConfig muon = MuonConfig.builder().build();
        private AdamWConfig adamw = AdamWConfig.builder().build();
        private LearningRateSchedule schedule = LearningRateSchedule.constant();
        private double maxGradientNorm = 0;
        private NonFinitePolicy nonFinitePolicy = NonFinitePolicy.FAIL;
        private final Map<String, ParamOverride> overrides = new LinkedHashMap<>();
        private Route routeAll;

        private Builder(Backend backend) {
            this.backend = Objects.requireNonNull(backend, "backend");
        }

        public Builder muon(MuonConfig config) {
            this.muon = Objects.requireNonNull(config, "muon config");
            return this;
        }

        public Builder adamw(AdamWConfig config) {
            this.adamw = Objects.requireNonNull(config, "adamw config");
            return this;
        }

        public Builder schedule(LearningRateSchedule s) {
            this.schedule = Objects.requireNonNull(s, "schedule");
            return this;
        }

        /** Clip the global gradient norm to {@code maxNorm}; 0 turns clipping off (the default). */
        public Builder clipGradientNorm(double maxNorm) {
            this.maxGradientNorm = Checks.nonNegative("gradient clipping norm", maxNorm);
            return this;
        }

        public Builder nonFinite(NonFinitePolicy policy) {
            this.nonFinitePolicy = Objects.requireNonNull(policy, "non-finite policy");
            return this;
        }

        /** Settings for one parameter by name (checked against the parameters at {@link #build}). */
        public Builder override(String parameterName, ParamOverride override) {
            overrides.put(Objects.requireNonNull(parameterName, "parameter name"), Objects.requireNonNull(override, "override"));
            return this;
        }

        /** Route every parameter without an override to {@code route} (pure Muon or pure AdamW). */
        public Builder routeAll(Route route) {
            this.routeAll = Objects.requireNonNull(route, "route");
            return this;
        }

        /**
         * Resolves every parameter's route and hyperparameters as {@link #build} would, checking
         * names (unique, overrides known), shared arrays and matrix layouts. Other optimizers that
         * take the same settings (the sharded one of the distributed module) start from this.
         */
        public List<Assignment> assign(List<Parameter> parameters) {
            if (parameters.isEmpty()) {
                throw new IllegalArgumentException("an optimizer needs at least one parameter");
            }
            Set<String> names = new java.util.HashSet<>();
            Map<float[], String> arrays = new IdentityHashMap<>();
            for (Parameter p : parameters) {
                if (!names.add(p.name())) {
                    throw new IllegalArgumentException("parameter name " + p.name() + " appears twice");
                }
                for (float[] array : new float[][] {p.value(), p.gradient()}) {
                    String other = arrays.put(array, p.name());
                    if (other != null) {
                        throw new IllegalArgumentException("parameters " + other + " and " + p.name()
                                + " share an array; a tied weight must be one parameter");
                    }
                }
            }
            Set<String> unknown = new TreeSet<>(overrides.keySet());
            unknown.removeAll(names);
            if (!unknown.isEmpty()) {
                throw new IllegalArgumentException("overrides name unknown parameters " + unknown);
            }
            List<Assignment> out = new ArrayList<>();
            for (Parameter p : parameters) {
                ParamOverride o = overrides.getOrDefault(p.name(), ParamOverride.none());
                Route route = o.route().orElse(routeAll != null ? routeAll : p.role().defaultRoute());
                if (route == Route.MUON) {
                    MatrixLayout layout = p.layout();
                    if (layout == null) {
                        throw new IllegalArgumentException("parameter " + p.name() + " (role " + p.role() + ", shape "
                                + Arrays.toString(p.shape()) + ") cannot go to Muon: it has no matrix layout");
                    }
                    out.add(new Assignment(p, route, o.learningRate().orElse(muon.learningRate()),
                            o.weightDecay().orElse(muon.weightDecay()), muon.scale(layout.fanOut(), layout.fanIn())));
                } else {
                    out.add(new Assignment(p, route, o.learningRate().orElse(adamw.learningRate()),
                            o.weightDecay().orElse(adamw.weightDecay()), 1.0));
                }
            }
            return out;
        }

        public Backend backend() {
            return backend;
        }

        public MuonConfig muonConfig() {
            return muon;
        }

        public AdamWConfig adamwConfig() {
            return adamw;
        }

        public LearningRateSchedule schedule() {
            return schedule;
        }

        public double maxGradientNorm() {
            return maxGradientNorm;
        }

        public NonFinitePolicy nonFinitePolicy() {
            return nonFinitePolicy;
        }

        public HybridOptimizer build(List<Parameter> parameters) {
            return new HybridOptimizer(this, parameters);
        }
    }
}
