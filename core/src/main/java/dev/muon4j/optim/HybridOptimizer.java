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
import java.util.Optional;
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
    public static final String MOMENTUM = Transforms.MOMENTUM;
    public static final String EXP_AVG = Transforms.EXP_AVG;
    public static final String EXP_AVG_SQ = Transforms.EXP_AVG_SQ;

    private final MuonConfig muon;
    private final AdamWConfig adamw;
    private final LearningRateSchedule schedule;
    private final double maxGradientNorm;
    private final NonFinitePolicy nonFinitePolicy;
    private final List<Parameter> parameters;
    private final List<Assignment> assignments;
    private final List<ParamState> slots;
    private final StepContext context;
    private final float[] scratch;
    /** Slots stepped one after another on the calling thread with {@link #context}. */
    private final List<ParamState> inTurn;
    /** Single matrices stepped side by side on the backend's concurrent workers, largest first; empty without workers. */
    private final List<ParamState> sideBySide;
    private final StepContext[] workerContexts;
    private final float[][] workerScratch;
    private long step;
    private long skipped;
    private long newtonSchulzNanos;
    private long newtonSchulzMatrices;

    private HybridOptimizer(Builder b, List<Parameter> params) {
        this.muon = b.muon;
        this.adamw = b.adamw;
        this.schedule = b.schedule;
        this.maxGradientNorm = b.maxGradientNorm;
        this.nonFinitePolicy = b.nonFinitePolicy;
        this.parameters = List.copyOf(params);
        this.context = new StepContext(b.backend);
        List<ParamState> built = new ArrayList<>();
        int scratchSize = 0;
        this.assignments = List.copyOf(b.assign(params));
        for (Assignment a : assignments) {
            UpdateRule rule = a.rule();
            scratchSize = Math.max(scratchSize, rule.scratchSize(a.parameter()));
            built.add(new ParamState(a, 0, a.parameter().size()));
        }
        this.slots = List.copyOf(built);
        this.scratch = new float[scratchSize];
        List<Backend> workers = b.backend.concurrentWorkers();
        List<ParamState> alone = new ArrayList<>();
        List<ParamState> rest = new ArrayList<>();
        for (ParamState s : slots) {
            (workers.size() >= 2 && stepsAloneOnAWorker(s) ? alone : rest).add(s);
        }
        if (alone.size() < 2) {
            rest = slots;
            alone = List.of();
        } else {
            alone.sort(java.util.Comparator.comparingInt((ParamState s) -> s.parameter().size()).reversed());
        }
        this.inTurn = List.copyOf(rest);
        this.sideBySide = List.copyOf(alone);
        int workerCount = alone.isEmpty() ? 0 : workers.size();
        this.workerContexts = new StepContext[workerCount];
        this.workerScratch = new float[workerCount][];
        for (int w = 0; w < workerCount; w++) {
            workerContexts[w] = new StepContext(workers.get(w));
            workerScratch[w] = new float[alone.getFirst().parameter().size()];
        }
    }

    /**
     * Whether a slot is stepped on one of the backend's concurrent workers: one whole matrix (not a
     * stack, whose Newton–Schulz splits over the workers itself) under a rule with matrix stages, no
     * larger than {@link NewtonSchulz#CONCURRENT_MAX_FLOATS}. A model's hidden matrices are many and
     * small for a multi-threaded product: on 2 Zen 5 cores one bfloat16 Newton–Schulz per core did
     * 760 GFLOP/s at 384×1024 against 430 for one at a time on both (docs/BENCHMARKS.md).
     */
    private static boolean stepsAloneOnAWorker(ParamState s) {
        Parameter p = s.parameter();
        return s.rule().needsMatrices() && p.layout() != null && p.layout().matrixSize() == p.size()
                && p.size() <= NewtonSchulz.CONCURRENT_MAX_FLOATS;
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
     * @param rule         the update rule (of the route's family), checked against the parameter
     */
    public record Assignment(Parameter parameter, Route route, double learningRate, double weightDecay, double scale,
                             UpdateRule rule) {
        public Assignment {
            Objects.requireNonNull(parameter, "parameter");
            Objects.requireNonNull(route, "route");
            if (rule.family() != route) {
                throw new IllegalArgumentException("parameter " + parameter.name() + " is routed to " + route
                        + " but its update rule " + rule.name() + " is a " + rule.family() + " rule");
            }
            rule.check(parameter);
        }
    }

    /** A builder over the given backend (used for Newton–Schulz's matrix products). */
    public static Builder builder(Backend backend) {
        return new Builder(backend);
    }

    /**
     * Steps {@link #sideBySide}'s slots on the workers, each taking the next slot when it is done with
     * one (largest first). Every worker computes alike, so which one steps a slot does not change its
     * result. Newton–Schulz time is counted as the longest of the workers' totals.
     */
    private void stepSideBySide(long t, double factor) {
        java.util.concurrent.atomic.AtomicInteger next = new java.util.concurrent.atomic.AtomicInteger();
        SideBySide.run(workerContexts.length, w -> {
            StepContext c = workerContexts[w];
            c.begin(t, factor);
            for (int i = next.getAndIncrement(); i < sideBySide.size(); i = next.getAndIncrement()) {
                ParamState s = sideBySide.get(i);
                s.rule().apply(c, s, workerScratch[w]);
            }
        });
        long longest = 0;
        for (StepContext c : workerContexts) {
            longest = Math.max(longest, c.newtonSchulzNanos());
            context.addNewtonSchulzMatrices(c.newtonSchulzMatrices());
        }
        context.addNewtonSchulzNanos(longest);
    }

    @Override
    public StepResult step() {
        for (ParamState s : slots) {
            float[] g = s.parameter().gradient();
            int bad = Kernels.firstNonFinite(g, 0, g.length);
            if (bad >= 0) {
                if (nonFinitePolicy == NonFinitePolicy.FAIL) {
                    throw new NonFiniteGradientException(s.parameter().name(), bad, g[bad], step + skipped + 1);
                }
                skipped++;
                return new StepResult(step, true, Double.NaN, false, schedule.factor(step));
            }
        }
        double norm = GradientClipping.globalNorm(parameters);
        boolean clipped = maxGradientNorm > 0 && GradientClipping.clip(parameters, norm, maxGradientNorm);
        double factor = schedule.factor(step);
        long t = step + 1;
        context.begin(t, factor);
        for (ParamState s : inTurn) {
            s.rule().apply(context, s, scratch);
        }
        if (!sideBySide.isEmpty()) {
            stepSideBySide(t, factor);
        }
        newtonSchulzNanos = context.newtonSchulzNanos();
        newtonSchulzMatrices = context.newtonSchulzMatrices();
        step = t;
        return new StepResult(step, false, norm, clipped, factor);
    }

    @Override
    public java.util.Optional<String> findNonFiniteState() {
        for (ParamState s : slots) {
            for (Map.Entry<String, float[]> b : s.buffers().entrySet()) {
                float[] v = b.getValue();
                int bad = Kernels.firstNonFinite(v, 0, v.length);
                if (bad >= 0) {
                    return java.util.Optional.of(describeNonFinite(b.getKey(), s.parameter().name(), bad, v[bad]));
                }
            }
        }
        return java.util.Optional.empty();
    }

    /** "buffer of parameter element i is v", the form of {@link Optimizer#findNonFiniteState()}. */
    public static String describeNonFinite(String buffer, String parameter, long element, float value) {
        return buffer + " of " + parameter + " element " + element + " is " + value;
    }

    /**
     * Wall time the last {@link #step()} spent in Newton–Schulz, in nanoseconds (where matrices are
     * stepped side by side, the longest of the workers' times).
     */
    public long lastNewtonSchulzNanos() {
        return newtonSchulzNanos;
    }

    /** Matrices (or row blocks) Newton–Schulz orthogonalized in the last {@link #step()}. */
    public long lastNewtonSchulzMatrices() {
        return newtonSchulzMatrices;
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
        for (ParamState s : slots) {
            routes.put(s.parameter().name(), s.route());
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
        List<Map<String, float[]>> buffers = new ArrayList<>();
        for (ParamState s : slots) {
            buffers.add(s.buffers());
        }
        return OptimizerState.of(step, skipped, assignments, buffers);
    }

    @Override
    public void loadState(OptimizerState state) {
        Objects.requireNonNull(state, "state");
        checkState(assignments, state);
        Map<String, OptimizerState.Entry> entries = state.entries();
        for (ParamState s : slots) {
            Map<String, float[]> saved = entries.get(s.parameter().name()).buffers();
            s.buffers().forEach((name, buffer) -> System.arraycopy(saved.get(name), 0, buffer, 0, buffer.length));
        }
        step = state.step();
        skipped = state.skippedSteps();
    }

    /**
     * Checks that {@code state} fits these parameters: the same names, and for each its route, its
     * shape, and the buffer names and lengths its update rule keeps. One process and every rank of a
     * sharded optimizer check a state with this before they take any of it.
     *
     * @throws IllegalArgumentException naming the missing and unknown parameters, or the parameter
     *                                  (and buffer) that does not fit
     */
    public static void checkState(List<Assignment> assignments, OptimizerState state) {
        Map<String, OptimizerState.Entry> entries = state.entries();
        Set<String> missing = new TreeSet<>();
        Set<String> unknown = new TreeSet<>(entries.keySet());
        for (Assignment a : assignments) {
            if (!entries.containsKey(a.parameter().name())) {
                missing.add(a.parameter().name());
            }
            unknown.remove(a.parameter().name());
        }
        if (!missing.isEmpty() || !unknown.isEmpty()) {
            throw new IllegalArgumentException("optimizer state does not match the parameters: missing " + missing
                    + ", unknown " + unknown);
        }
        for (Assignment a : assignments) {
            Parameter p = a.parameter();
            String name = p.name();
            OptimizerState.Entry e = entries.get(name);
            if (e.route() != a.route()) {
                throw new IllegalArgumentException("optimizer state of " + name + " is for " + e.route()
                        + " but the parameter is routed to " + a.route());
            }
            if (!Arrays.equals(e.shape(), p.shape())) {
                throw new IllegalArgumentException("optimizer state of " + name + " has shape " + Arrays.toString(e.shape())
                        + " but the parameter has shape " + Arrays.toString(p.shape()));
            }
            Map<String, Integer> expected = new LinkedHashMap<>();
            for (UpdateTransform t : a.rule().transforms()) {
                expected.putAll(t.state(p));
            }
            if (!e.buffers().keySet().equals(expected.keySet())) {
                throw new IllegalArgumentException("optimizer state of " + name + " has buffers " + e.buffers().keySet()
                        + (e.rule() != null ? " (kept by rule " + e.rule() + ")" : "") + ", expected " + expected.keySet()
                        + " (kept by rule " + a.rule().name() + ")");
            }
            for (Map.Entry<String, Integer> b : expected.entrySet()) {
                int length = e.buffers().get(b.getKey()).length;
                if (length != b.getValue()) {
                    throw new IllegalArgumentException("optimizer state " + name + "/" + b.getKey() + " has " + length
                            + " elements, " + a.rule().name() + " keeps " + b.getValue()
                            + (b.getValue() == p.size() ? " (one per element of the parameter)" : ""));
                }
            }
        }
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
        private final Map<java.util.regex.Pattern, UpdateRule> rules = new LinkedHashMap<>();
        private final Map<ParamRole, UpdateRule> roleRules = new java.util.EnumMap<>(ParamRole.class);
        private UpdateRule muonRule;

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
                Optional<UpdateRule> named = ruleByName(p.name()).or(() -> Optional.ofNullable(roleRules.get(p.role())));
                Route route = o.route().orElse(named.map(UpdateRule::family)
                        .orElse(routeAll != null ? routeAll : p.role().defaultRoute()));
                UpdateRule rule = named.filter(r -> r.family() == route).orElseGet(() -> defaultRule(route));
                if (named.isPresent() && named.get().family() != route) {
                    throw new IllegalArgumentException("parameter " + p.name() + " matches rule " + named.get().name() + " ("
                            + named.get().family() + ") but its override routes it to " + route);
                }
                if (route == Route.MUON) {
                    MatrixLayout layout = p.layout();
                    if (layout == null) {
                        throw new IllegalArgumentException("parameter " + p.name() + " (role " + p.role() + ", shape "
                                + Arrays.toString(p.shape()) + ") cannot go to Muon: it has no matrix layout");
                    }
                    rule.check(p);
                    int[] scaleShape = rule.scaleShape(p);
                    out.add(new Assignment(p, route, o.learningRate().orElse(muon.learningRate()),
                            o.weightDecay().orElse(muon.weightDecay()), muon.scale(scaleShape[0], scaleShape[1]), rule));
                } else {
                    out.add(new Assignment(p, route, o.learningRate().orElse(adamw.learningRate()),
                            o.weightDecay().orElse(adamw.weightDecay()), 1.0, rule));
                }
            }
            return out;
        }

        /**
         * Parameters whose names match {@code pattern} are updated by {@code rule} (and routed to its
         * family unless an override says otherwise). The pattern is a glob over the whole name:
         * {@code *} matches any characters (dots included), {@code ?} one; e.g.
         * {@code "model.layers.*.self_attn.q_proj.weight"}. The first rule added whose pattern matches wins.
         */
        public Builder rule(String pattern, UpdateRule rule) {
            Objects.requireNonNull(rule, "rule");
            rules.put(globToRegex(Objects.requireNonNull(pattern, "pattern")), rule);
            return this;
        }

        /**
         * Parameters of {@code role} that no pattern of {@link #rule(String, UpdateRule)} names are
         * updated by {@code rule} (and routed to its family unless an override says otherwise); e.g.
         * the embeddings and head by an AdamW chain of their own.
         */
        public Builder rule(ParamRole role, UpdateRule rule) {
            roleRules.put(Objects.requireNonNull(role, "role"), Objects.requireNonNull(rule, "rule"));
            return this;
        }

        private Optional<UpdateRule> ruleByName(String name) {
            for (Map.Entry<java.util.regex.Pattern, UpdateRule> e : rules.entrySet()) {
                if (e.getKey().matcher(name).matches()) {
                    return Optional.of(e.getValue());
                }
            }
            return Optional.empty();
        }

        private static java.util.regex.Pattern globToRegex(String glob) {
            StringBuilder re = new StringBuilder();
            for (char c : glob.toCharArray()) {
                switch (c) {
                    case '*' -> re.append(".*");
                    case '?' -> re.append('.');
                    default -> re.append(java.util.regex.Pattern.quote(String.valueOf(c)));
                }
            }
            return java.util.regex.Pattern.compile(re.toString());
        }

        /**
         * The rule of every Muon-routed parameter that no pattern names (default:
         * {@link UpdateRule#muon} of the Muon config), e.g. {@link UpdateRule#norMuon} or a rule with
         * cautious weight decay. Its learning rate, weight decay and scale still come from the Muon
         * config and overrides.
         */
        public Builder muonRule(UpdateRule rule) {
            if (rule.family() != Route.MUON) {
                throw new IllegalArgumentException("the Muon rule must be of the MUON family, " + rule.name() + " is " + rule.family());
            }
            this.muonRule = rule;
            return this;
        }

        /** The rule of a route when no pattern names one: Muon or AdamW as configured. */
        public UpdateRule defaultRule(Route route) {
            return route == Route.MUON ? (muonRule != null ? muonRule : UpdateRule.muon(muon)) : UpdateRule.adamw(adamw);
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
