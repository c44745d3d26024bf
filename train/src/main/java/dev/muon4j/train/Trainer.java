package dev.muon4j.train;

import dev.muon4j.autograd.Graph;
import dev.muon4j.autograd.Ops;
import dev.muon4j.autograd.Tensor;
import dev.muon4j.backend.Backend;
import dev.muon4j.backend.Kernels;
import dev.muon4j.data.Batch;
import dev.muon4j.data.BatchSampler;
import dev.muon4j.data.ShippedCorpus;
import dev.muon4j.data.TokenDataset;
import dev.muon4j.data.HuggingFaceTokenizer;
import dev.muon4j.data.TokenizerKind;
import dev.muon4j.distributed.Collectives;
import dev.muon4j.distributed.ShardedOptimizer;
import dev.muon4j.nn.Attention;
import dev.muon4j.nn.HuggingFaceConfig;
import dev.muon4j.nn.ModelConfig;
import dev.muon4j.nn.LanguageModel;
import dev.muon4j.nn.DecoderModel;
import dev.muon4j.optim.AdamWConfig;
import dev.muon4j.optim.HybridOptimizer;
import dev.muon4j.optim.LearningRateSchedule;
import dev.muon4j.optim.MuonConfig;
import dev.muon4j.optim.Optimizer;
import dev.muon4j.optim.OptimizerState;
import dev.muon4j.optim.Parameter;
import dev.muon4j.optim.Route;
import dev.muon4j.optim.StepResult;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.function.Consumer;

/**
 * Trains a {@link DecoderModel} on a {@link TokenDataset}: each optimizer step accumulates the
 * gradients of {@code accumulation} micro-batches (averaged), clips, and steps the optimizer;
 * validation runs every {@code evalEvery} steps; checkpoints hold the weights, the optimizer
 * state, the configs and the step, so that {@link #run(boolean) run(true)} continues exactly:
 * the data of step s is a function of (seed, s) alone, and all arithmetic is deterministic for a
 * given thread count.
 *
 * <p>Data parallel: given {@link DataParallel} collectives of N ranks, every rank runs this
 * trainer; rank r trains on its contiguous share of each global batch
 * ({@link BatchSampler#batch(long, int, int)}), its gradient is weighted by its share, and a
 * {@link ShardedOptimizer} (ZeRO-1 + Distributed Muon) averages the gradients and keeps the
 * parameters identical on every rank. The global batch, and so the model, is the same whatever
 * N. Validation batches are split over the ranks. Rank 0 alone reads and writes the run
 * directory (checkpoints, metrics), logs and shows progress; on resume it sends the weights and
 * every rank's part of the optimizer state to the others, so a checkpoint written by any rank
 * count resumes on any other. A failure on rank 0 (no such checkpoint, a full disk) is agreed,
 * so every rank stops with an error rather than waiting.
 *
 * <p>QK-clip ({@link TrainConfig#qkClipThreshold()} &gt; 0): the model records every attention
 * head's largest pre-softmax logit over the step's micro-batches; after the optimizer step the
 * ranks take the maximum of their values (so every rank clips with the same S and the parameters
 * stay identical) and {@link LanguageModel#qkClip} scales the query and key rows of the heads over τ.
 */
public final class Trainer {
    /**
     * One optimizer step's numbers.
     *
     * @param qkClip what QK-clip saw and did in this step; null when it is off
     */
    public record StepPoint(long step, long tokens, double loss, double lr, double gradNorm, double seconds, QkClipPoint qkClip,
                            ExpertLoadPoint experts) {
        /** A step without QK-clip. */
        public StepPoint(long step, long tokens, double loss, double lr, double gradNorm, double seconds) {
            this(step, tokens, loss, lr, gradNorm, seconds, null, null);
        }

        /** A step of a dense model. */
        public StepPoint(long step, long tokens, double loss, double lr, double gradNorm, double seconds, QkClipPoint qkClip) {
            this(step, tokens, loss, lr, gradNorm, seconds, qkClip, null);
        }
    }

    /**
     * One step's routing in a Mixture-of-Experts model, over every rank: per MoE layer, each expert's
     * share of the routed tokens (loads[layer][e] / Σ loads[layer]) and its choice bias after the
     * step's balancing.
     *
     * @param shares each MoE layer's experts' shares of its routed tokens (summing to 1)
     * @param biases each MoE layer's experts' choice biases after the step
     */
    public record ExpertLoadPoint(double[][] shares, double[][] biases) {
        /** Per layer, the largest expert's load over the mean load: 1 is perfect balance, E all on one expert. */
        public double[] maxOverMean() {
            double[] r = new double[shares.length];
            for (int l = 0; l < shares.length; l++) {
                double max = 0;
                for (double v : shares[l]) {
                    max = Math.max(max, v);
                }
                r[l] = max * shares[l].length;
            }
            return r;
        }

        /** The worst layer's {@link #maxOverMean()}. */
        public double worstMaxOverMean() {
            return java.util.Arrays.stream(maxOverMean()).max().orElse(Double.NaN);
        }
    }

    /**
     * One step's QK-clip.
     *
     * @param maxLogit     the largest pre-softmax attention logit of the step, over every layer, head and rank
     * @param clippedHeads query heads (over all layers) whose rows were scaled; with grouped-query attention a
     *                     whole key group is scaled when one of its heads is over τ
     */
    public record QkClipPoint(double maxLogit, int clippedHeads) {
    }

    /**
     * Where one step's time went on this rank, and what it sent.
     *
     * @param computeSeconds       forward and backward passes
     * @param communicationSeconds collectives (gradient reduce-scatter, Muon's gathers, parameter all-gather, agreements)
     * @param newtonSchulzSeconds  Newton–Schulz
     * @param optimizerSeconds     the rest of the optimizer step (moments, updates, copies)
     * @param bytesSent            bytes this rank sent ({@link dev.muon4j.distributed.MeteredCollectives}' volumes)
     * @param bytesReceived        bytes this rank received
     */
    public record StepTiming(double computeSeconds, double communicationSeconds, double newtonSchulzSeconds,
                             double optimizerSeconds, long bytesSent, long bytesReceived) {
        /** The whole step: compute, communication, Newton–Schulz and the rest of the optimizer. */
        public double totalSeconds() {
            return computeSeconds + communicationSeconds + newtonSchulzSeconds + optimizerSeconds;
        }

        /** The mean of some steps (bytes rounded to whole bytes). */
        public static StepTiming mean(java.util.Collection<StepTiming> steps) {
            if (steps.isEmpty()) {
                throw new IllegalArgumentException("the mean of no steps");
            }
            double compute = 0, comm = 0, ns = 0, other = 0, sent = 0, received = 0;
            for (StepTiming s : steps) {
                compute += s.computeSeconds;
                comm += s.communicationSeconds;
                ns += s.newtonSchulzSeconds;
                other += s.optimizerSeconds;
                sent += s.bytesSent;
                received += s.bytesReceived;
            }
            int k = steps.size();
            return new StepTiming(compute / k, comm / k, ns / k, other / k, Math.round(sent / k), Math.round(received / k));
        }
    }

    /**
     * Collectives of the data-parallel group this trainer is one rank of, and how Muon's matrices
     * are split over the ranks.
     */
    public record DataParallel(Collectives collectives, ShardedOptimizer.Mode mode) {
        public DataParallel {
            Objects.requireNonNull(collectives, "collectives");
            Objects.requireNonNull(mode, "mode");
        }
    }

    /** One validation's numbers. */
    public record EvalPoint(long step, long tokens, double loss) {
    }

    /** What a run produced; {@code stoppedOnRequest}: it ended early because {@link RunOptions#stopRequested()} said so. */
    public record Result(Path runDir, List<StepPoint> steps, List<EvalPoint> evals, double tokensPerSecond,
                         long startStep, double trainSeconds, List<StepTiming> timings, boolean stoppedOnRequest) {
        /** The last validation loss. */
        public double finalValidationLoss() {
            return evals.isEmpty() ? Double.NaN : evals.getLast().loss();
        }
    }

    private final Backend backend;
    private final ModelConfig modelConfig;
    private final TrainConfig config;
    private final TokenDataset data;
    private final Path runDir;
    private final String tokenizerName;
    private final Consumer<String> log;
    private final Progress progress;
    private final DataParallel parallel;
    private Consumer<List<Parameter>> finalParameters;  // sees the model's parameters at the end of a run (tests)
    private InitialWeights initialWeights;              // a new run's weights, instead of drawing them from the seed

    public Trainer(Backend backend, ModelConfig modelConfig, TrainConfig config, TokenDataset data, Path runDir,
                   Consumer<String> log, Progress progress) {
        this(backend, modelConfig, config, data, runDir, log, progress, null);
    }

    /**
     * A trainer that is one rank of a data-parallel group ({@code parallel} null: a single process).
     * Every rank passes the same configs and data; {@code log} and {@code progress} are used on rank 0 only.
     */
    public Trainer(Backend backend, ModelConfig modelConfig, TrainConfig config, TokenDataset data, Path runDir,
                   Consumer<String> log, Progress progress, DataParallel parallel) {
        this.backend = Objects.requireNonNull(backend, "backend");
        this.modelConfig = Objects.requireNonNull(modelConfig, "model config");
        this.config = Objects.requireNonNull(config, "train config");
        this.data = Objects.requireNonNull(data, "data");
        this.runDir = Objects.requireNonNull(runDir, "run directory");
        this.tokenizerName = data.tokenizerName();
        this.parallel = parallel;
        boolean root = parallel == null || parallel.collectives().rank() == 0;
        this.progress = root ? progress : null;
        if (!root) {
            log = msg -> { };
        }
        this.log = log;
        if (data.vocabSize() > modelConfig.vocabSize()) {
            throw new IllegalArgumentException("the tokenizer's vocabulary (" + data.vocabSize() + ") is larger than the model's ("
                    + modelConfig.vocabSize() + ")");
        }
    }

    /**
     * Starts a new run from {@code weights} instead of weights drawn from the seed: the parameters and the
     * model's buffers (the routers' choice biases) are copied from them, the optimizer starts fresh, and the
     * checkpoints record where they came from ({@code init_from} in muon4j.json). A resumed run continues its
     * checkpoint and does not use them. Every rank of a data-parallel run is given the same weights; rank 0's
     * are sent to the others.
     *
     * @throws IllegalArgumentException when the weights' model is not this trainer's, or the tokenizer they were
     *                                  trained with (when recorded) is not this run's
     */
    public Trainer initializeFrom(InitialWeights weights) {
        Objects.requireNonNull(weights, "weights");
        if (!weights.model().equals(modelConfig)) {
            throw new IllegalArgumentException(weights.describe() + " holds another model: " + weights.model().describe()
                    + "; this run asks for " + modelConfig.describe());
        }
        if (weights.tokenizer().isPresent() && !weights.tokenizer().get().encodingName().equals(tokenizerName)) {
            throw new IllegalArgumentException(weights.describe() + " was trained with tokenizer "
                    + weights.tokenizer().get().encodingName() + ", this run uses " + tokenizerName);
        }
        this.initialWeights = weights;
        return this;
    }

    /** Hands the model's parameters, as they are when a run ends normally, to {@code observer} (for tests). */
    Trainer observeFinalParameters(Consumer<List<Parameter>> observer) {
        this.finalParameters = observer;
        return this;
    }

    /** The optimizer this config asks for, over the model's parameters. */
    public static HybridOptimizer optimizer(Backend backend, TrainConfig config, List<Parameter> params) {
        return settings(backend, config).build(params);
    }

    /**
     * The optimizer settings this config asks for (for one process, or for every rank of a sharded one).
     *
     * @throws IllegalArgumentException when the config asks for per-head orthogonalization, which needs
     *                                  the model's per-head projections: use {@link #settings(Backend, TrainConfig, List)}
     */
    public static HybridOptimizer.Builder settings(Backend backend, TrainConfig config) {
        if (config.perHeadQk()) {
            throw new IllegalArgumentException("per-head query/key orthogonalization needs the model's per-head projections");
        }
        return settings(backend, config, List.of());
    }

    /**
     * The optimizer settings this config asks for, for a model whose per-head projections are
     * {@code headRows} ({@link dev.muon4j.nn.LanguageModel#headRows()}): with per-head orthogonalization
     * each is split into its heads' row blocks (W_q (H·D × C) and W_k (K·D × C) into D-row blocks; with
     * latent attention the query and key-value up-projections into their heads' blocks).
     */
    public static HybridOptimizer.Builder settings(Backend backend, TrainConfig config, List<Attention.HeadRows> headRows) {
        AdamWConfig adamw = AdamWConfig.builder().learningRate(config.learningRate()).weightDecay(config.weightDecay())
                .beta1(config.beta1()).beta2(config.beta2()).build();
        MuonConfig muon = config.muonVariant().config(config.muonLearningRate(), config.muonMomentum(), config.weightDecay(),
                config.nsMethod(), config.nsPrecision());
        dev.muon4j.optim.UpdateRule muonRule = config.muonVariant().rule(muon, config.cautiousWeightDecay());
        HybridOptimizer.Builder b = HybridOptimizer.builder(backend).adamw(adamw).muon(muon)
                .schedule(schedule(config)).clipGradientNorm(config.clipNorm())
                .muonRule(muonRule);
        if (config.perHeadQk() && config.optimizer() == OptimizerChoice.MUON) {
            for (Attention.HeadRows h : headRows) {
                b.rule(h.parameter().name(), muonRule.withRowBlocks(h.rowsPerHead()));
            }
        }
        if (config.optimizer() == OptimizerChoice.ADAMW) {
            b.routeAll(Route.ADAMW);
        }
        return b;
    }

    static LearningRateSchedule schedule(TrainConfig c) {
        return switch (c.schedule()) {
            case CONSTANT -> LearningRateSchedule.constant();
            case COSINE -> LearningRateSchedule.warmupCosine(c.warmupSteps(), c.steps(), c.minLrFactor());
            case WSD -> LearningRateSchedule.warmupStableDecay(c.warmupSteps(), c.steps(),
                    Math.max(0, Math.min(c.steps() - c.warmupSteps(), c.steps() / 5)), c.minLrFactor());
        };
    }

    /**
     * The settings a resumed run must share with the checkpoint it continues, unless
     * {@link RunOptions#allowedChanges()} names them: every field of {@link TrainConfig#toMap()} that
     * changes the arithmetic of the continuation, {@code "corpus"} (which shipped corpus, where both read one) and
     * {@code "data"} (the token streams' fingerprint).
     * The model shape and the tokenizer can never change.
     */
    public static final java.util.Set<String> RESUME_SETTINGS = java.util.Set.of("optimizer", "learning_rate",
            "muon_learning_rate", "weight_decay", "beta1", "beta2", "muon_momentum", "schedule", "warmup_steps", "steps",
            "min_lr_factor", "batch_size", "accumulation", "clip_norm", "seed", "muon_variant", "cautious_weight_decay", "per_head_qk",
            "qk_clip_threshold", "ns_method", "router_bias_rate", "ns_precision", "corpus", "data");

    /** Trains; with {@code resume}, continues from the run directory's latest checkpoint, which must exist. */
    public Result run(boolean resume) throws IOException {
        return run(resume ? RunOptions.resume() : RunOptions.fresh());
    }

    /**
     * Trains like {@link #run(boolean)} but pauses once {@code stopAfter} steps are done (counted
     * from step 0, not from where a resumed run starts), if that comes before
     * {@link TrainConfig#steps()}. The run is still the run of {@code config.steps()} steps: the
     * learning-rate schedule spans all of them. At the pause a checkpoint is saved (unless the
     * checkpoint interval just saved one), so {@code run(true)} on the same run directory later
     * finishes the run exactly as if it had never paused.
     *
     * @param stopAfter the step count to pause at, at least 1; {@code Long.MAX_VALUE} runs to the end
     */
    public Result run(boolean resume, long stopAfter) throws IOException {
        return run((resume ? RunOptions.resume() : RunOptions.fresh()).withStopAfter(stopAfter));
    }

    /**
     * Trains as {@code options} say. Rank 0 holds the run directory's {@link RunLock} for the whole
     * run, so a second process on the same directory is refused. After every step the parameters
     * and the optimizer state are checked for NaN and infinity, and the loss and gradient norm for
     * collapse ({@link HealthCheck}); a failed check stops the run with an error naming the step and
     * the parameter before anything of that step is saved. A resumed run must have the
     * checkpoint's model, tokenizer and {@link #RESUME_SETTINGS} unless the options allow a
     * change, which is then logged and written to metrics.jsonl as a {@code "resume"} event.
     */
    public Result run(RunOptions options) throws IOException {
        Objects.requireNonNull(options, "options");
        try (Arena arena = Arena.ofShared()) {
            Group group = new Group(parallel == null ? null : parallel.collectives(), arena);
            return run(options, group);
        }
    }

    private Result run(RunOptions options, Group group) throws IOException {
        long end = Math.min(options.stopAfter(), config.steps());
        int rank = group.rank();
        int ranks = group.size();
        boolean root = rank == 0;
        LanguageModel model = modelConfig.create();
        model.initialize(config.seed());
        HybridOptimizer.Builder settings = settings(backend, config, model.headRows());
        ShardedOptimizer sharded = ranks > 1 ? new ShardedOptimizer(group.comm, settings, model.parameters(), parallel.mode()) : null;
        HybridOptimizer single = ranks > 1 ? null : settings.build(model.parameters());
        Optimizer optimizer = ranks > 1 ? sharded : single;
        RunLock[] lock = new RunLock[1];
        try {
            CheckpointStore store = root ? new CheckpointStore(runDir, config.keepCheckpoints(), log) : null;
            MetricsLog metrics = root ? new MetricsLog(runDir.resolve("metrics.jsonl")) : null;
            List<EvalPoint> evals = new ArrayList<>();

            // Rank 0 locks the run directory and decides where the run starts; the others follow, or stop with it.
            OptimizerState[] state = new OptimizerState[1];
            long start = group.onRoot(() -> {
                if (options.start() == RunOptions.Start.RESUME && !java.nio.file.Files.exists(runDir)) {
                    throw new IllegalArgumentException("nothing to resume: run directory " + runDir + " does not exist");
                }
                lock[0] = RunLock.acquire(runDir, log);
                return begin(options, store, metrics, model, state, evals, ranks);
            }, "rank 0 could not start the run in " + runDir + " (its error says why)");
            if (start > 0) {
                if (ranks > 1) {
                    sharded.broadcastParameters(0);
                    for (Parameter b : model.buffers()) {
                        group.broadcast(b.value(), 0);
                    }
                    sharded.loadStateFrom(0, state[0]);
                } else {
                    single.loadState(state[0]);
                }
            } else if (initialWeights != null && ranks > 1) {
                sharded.broadcastParameters(0);
                for (Parameter b : model.buffers()) {
                    group.broadcast(b.value(), 0);
                }
            }
            if (start >= end) {
                log.accept("nothing to do: the checkpoint is at step " + start + " of " + config.steps()
                        + (end < config.steps() ? " (asked to stop after " + end + ")" : ""));
                return new Result(runDir, List.of(), evals, Double.NaN, start, 0, List.of(), false);
            }
            if (options.observer() != null && root) {
                options.observer().start(model, settings.assign(model.parameters()));
            }
            Result result = train(model, optimizer, sharded, single, store, metrics, evals, start, end, group, options);
            if (finalParameters != null) {
                finalParameters.accept(model.parameters());
            }
            return result;
        } finally {
            if (sharded != null) {
                sharded.close();
            }
            if (lock[0] != null) {
                lock[0].close();
            }
        }
    }

    /** Rank 0: where the run starts (0, or the step of the checkpoint it continues, whose weights it restores). */
    private long begin(RunOptions options, CheckpointStore store, MetricsLog metrics, LanguageModel model, OptimizerState[] state,
                       List<EvalPoint> evals, int ranks) throws IOException {
        if (options.start() == RunOptions.Start.FRESH) {
            List<Path> existing = store.checkpoints();
            if (!existing.isEmpty()) {
                throw new IllegalArgumentException("run directory " + runDir + " already holds checkpoint "
                        + existing.getLast().getFileName() + "; resume it, or train into another run directory");
            }
            metrics.truncateAfter(0);
            return startFresh(model);
        }
        Optional<CheckpointStore.Checkpoint> latest = store.latest();
        if (latest.isEmpty()) {
            if (options.start() == RunOptions.Start.RESUME) {
                throw new IllegalArgumentException("nothing to resume: run directory " + runDir
                        + " holds no checkpoint; start a new run there without resuming");
            }
            log.accept("no checkpoint in " + runDir + ": starting a new run");
            metrics.truncateAfter(0);
            return startFresh(model);
        }
        CheckpointStore.Checkpoint cp = latest.get();
        checkSameModel(cp);
        Map<String, Object> changes = checkSettings(cp, options);
        CheckpointStore.restoreWeights(cp, savedTensors(model));
        state[0] = cp.optimizer();
        long at = cp.step();
        evals.addAll(metrics.truncateAfter(at));
        if (!changes.isEmpty()) {
            metrics.event(at, "resume", Map.of("changed", changes));
            log.accept("resuming with changed settings (allowed): " + describeChanges(changes));
        }
        log.accept("resumed from " + cp.dir() + " at step " + at + (ranks > 1 ? " on " + ranks + " ranks" : ""));
        return at;
    }

    /** Rank 0, a new run: the initial weights when given (the seed's otherwise stay); step 0. */
    private long startFresh(LanguageModel model) {
        if (initialWeights != null) {
            CheckpointStore.restoreWeights(initialWeights.describe(), initialWeights.weights(), savedTensors(model));
            log.accept("initial weights from " + initialWeights.describe()
                    + (initialWeights.step() != null ? " (step " + initialWeights.step() + ")" : "") + "; the optimizer starts fresh");
        }
        return 0;
    }

    /**
     * The settings that differ from the checkpoint's, each {@code name → {"from": saved, "to": now}};
     * throws a {@link ChangedSettingsException} listing every difference the options do not allow.
     */
    @SuppressWarnings("unchecked")
    private Map<String, Object> checkSettings(CheckpointStore.Checkpoint cp, RunOptions options) {
        Map<String, Object> saved = new LinkedHashMap<>();
        if (cp.config().get("train") instanceof Map<?, ?> m) {
            saved.putAll((Map<String, Object>) m);
        }
        if (cp.config().get("data") instanceof Map<?, ?> d && d.get("fingerprint") != null) {
            saved.put("data", d.get("fingerprint"));
        }
        Map<String, Object> now = config.toMap();
        // Which shipped corpus, by name, where both runs read one: a clearer refusal than the fingerprint's alone.
        Optional<ShippedCorpus> savedCorpus = TrainedModel.shippedCorpus(cp.config());
        if (savedCorpus.isPresent() && data.origin().shipped()) {
            saved.put("corpus", savedCorpus.get().id());
            now.put("corpus", data.origin().shippedCorpus().id());
        }
        now.put("data", data.fingerprint());
        Map<String, Object> allowed = new LinkedHashMap<>();
        List<ChangedSettingsException.Change> refused = new ArrayList<>();
        for (String name : now.keySet()) {
            if (!RESUME_SETTINGS.contains(name) || !saved.containsKey(name) || sameValue(saved.get(name), now.get(name))) {
                continue;
            }
            Map<String, Object> change = new LinkedHashMap<>();
            change.put("from", saved.get(name));
            change.put("to", now.get(name));
            if (options.allowsChange(name)) {
                allowed.put(name, change);
            } else {
                refused.add(new ChangedSettingsException.Change(name, saved.get(name), now.get(name)));
            }
        }
        if (!refused.isEmpty()) {
            throw new ChangedSettingsException("resuming " + cp.dir() + " with other settings would not continue the same run: "
                    + refused.stream().map(Object::toString).collect(java.util.stream.Collectors.joining(", "))
                    + "; give the checkpoint's settings, or allow the change explicitly", refused);
        }
        return allowed;
    }

    private static boolean sameValue(Object a, Object b) {
        if (a instanceof Number x && b instanceof Number y) {
            return x.doubleValue() == y.doubleValue();
        }
        return Objects.equals(a, b);
    }

    @SuppressWarnings("unchecked")
    private static String describeChanges(Map<String, Object> changes) {
        List<String> parts = new ArrayList<>();
        changes.forEach((name, c) -> {
            Map<String, Object> m = (Map<String, Object>) c;
            parts.add(name + " " + m.get("from") + " -> " + m.get("to"));
        });
        return String.join(", ", parts);
    }

    private Result train(LanguageModel model, Optimizer optimizer, ShardedOptimizer sharded, HybridOptimizer single,
                         CheckpointStore store, MetricsLog metrics, List<EvalPoint> evals, long start, long end, Group group,
                         RunOptions options) throws IOException {
        int time = modelConfig.contextLength();
        int rank = group.rank();
        int ranks = group.size();
        boolean root = rank == 0;
        HealthCheck health = options.health();
        BatchSampler sampler = data.trainSampler(time, config.batchSize(), config.seed());
        List<Batch> validation = data.validationBatches(config.evalBatches(), config.batchSize(), time);
        long tokensPerStep = (long) config.sequencesPerStep() * time;
        int rows = sampler.shareStart(rank + 1, ranks) - sampler.shareStart(rank, ranks);
        // This rank's gradient, times this factor, summed over ranks and divided by N is the global mean.
        float gradientWeight = ranks == 1 ? 1f / config.accumulation()
                : (float) ((double) ranks * rows / ((double) config.batchSize() * config.accumulation()));
        List<StepPoint> points = new ArrayList<>();
        List<StepTiming> timings = new ArrayList<>();
        double trainSeconds = 0;
        long trainedTokens = 0;
        Double lastVal = evals.isEmpty() ? null : evals.getLast().loss();
        long lastSaved = start > 0 ? start : -1;  // every rank knows it: saves are agreed
        int streak = 0;                           // collapse steps in a row
        long streakStart = -1;
        boolean checkpointOwed = false;
        StepObserver observer = root ? options.observer() : null;
        try (Graph g = new Graph(backend)) {
            for (long step = start; step < end; step++) {
                long t0 = System.nanoTime();
                boolean observed = observer != null && observer.observes(step + 1);
                long observerNanos = 0;
                if (observed) {
                    observer.beforeForward(step + 1, model);
                    observerNanos += System.nanoTime() - t0;
                }
                model.zeroGradients();
                model.resetMaxLogits();
                model.resetExpertLoads();
                double lossSum = 0;
                for (int micro = 0; micro < config.accumulation(); micro++) {
                    Batch batch = sampler.batch(step * config.accumulation() + micro, rank, ranks);
                    if (batch.batch() == 0) {
                        continue; // an empty share: this rank passes zero gradients
                    }
                    Tensor loss = model.loss(g, batch.inputs(), batch.targets(), batch.batch(), batch.time());
                    lossSum += ranks == 1 ? loss.item() : (double) loss.item() * batch.batch();
                    Tensor auxiliary = model.auxiliaryLoss(g);
                    g.backward(auxiliary == null ? loss : Ops.add(g, loss, auxiliary));
                    g.reset();
                }
                if (gradientWeight != 1f) {
                    for (Parameter p : model.parameters()) {
                        Kernels.scale(p.gradient(), 0, p.size(), gradientWeight);
                    }
                }
                long done = step + 1;
                if (observed) {
                    long o = System.nanoTime();
                    observer.beforeUpdate(done, model);
                    observerNanos += System.nanoTime() - o;
                }
                long computeNanos = System.nanoTime() - t0 - observerNanos;
                long t1 = System.nanoTime();
                StepResult r;
                try {
                    r = optimizer.step();
                } catch (dev.muon4j.optim.NonFiniteGradientException e) {
                    throw new TrainingHealthException(e.getMessage() + "; nothing of step " + done + " was applied or saved; "
                            + lastGood(lastSaved), e);
                }
                Map<String, Object> observations = Map.of();
                long afterNanos = 0;
                if (observed) {
                    long o = System.nanoTime();
                    observations = observer.afterUpdate(done, r.lrFactor(), model);
                    afterNanos = System.nanoTime() - o;
                    observerNanos += afterNanos;
                }
                long commBefore = group.nanos;
                QkClipPoint qkClip = config.qkClip() ? qkClip(model, group) : null;
                ExpertLoadPoint experts = balanceExperts(model, group);
                long optimizerNanos = System.nanoTime() - t1 - (group.nanos - commBefore) - afterNanos;
                // Every rank checks what it holds; the ranks agree on the loss, on any failed check and on a stop request.
                String problem = firstNonFinite(savedTensors(model)).orElseGet(
                        () -> optimizer.findNonFiniteState().map(s -> "optimizer state: " + s).orElse(null));
                Group.Agreement agreed = group.agree(lossSum, problem != null, options.stopRequested().getAsBoolean());
                long agreeNanos = group.nanos - commBefore;
                double loss = ranks == 1 ? lossSum / config.accumulation()
                        : agreed.sum() / ((double) config.batchSize() * config.accumulation());
                double seconds = (System.nanoTime() - t0 - observerNanos) / 1e9;
                trainSeconds += seconds;
                trainedTokens += tokensPerStep;
                if (sharded != null) {
                    ShardedOptimizer.StepStats st = sharded.lastStep();
                    timings.add(new StepTiming(computeNanos / 1e9, (st.communicationNanos() + agreeNanos) / 1e9,
                            st.newtonSchulzNanos() / 1e9, (optimizerNanos - st.communicationNanos() - st.newtonSchulzNanos()) / 1e9,
                            st.bytesSent() + group.lossBytes + group.logitBytes, st.bytesReceived() + group.lossBytes + group.logitBytes));
                } else {
                    timings.add(new StepTiming(computeNanos / 1e9, 0, single.lastNewtonSchulzNanos() / 1e9,
                            (optimizerNanos - single.lastNewtonSchulzNanos()) / 1e9, 0, 0));
                }
                if (agreed.failedRank() >= 0) {
                    String what = problem != null ? problem + " after the optimizer step"
                            : "rank " + agreed.failedRank() + " found a NaN or infinite value after the optimizer step (its error names it)";
                    throw new TrainingHealthException("step " + done + ": " + what + "; the run stopped before saving anything of this step; "
                            + lastGood(lastSaved));
                }
                if (!Double.isFinite(loss)) {
                    throw new TrainingHealthException("training loss became " + loss + " at step " + done
                            + "; lower the learning rate (" + config.learningRate() + "); " + lastGood(lastSaved));
                }
                double lr = config.learningRate() * r.lrFactor();
                StepPoint point = new StepPoint(done, done * tokensPerStep, loss, lr, r.gradientNorm(), seconds, qkClip, experts);
                points.add(point);
                if (root) {
                    metrics.step(point, config.optimizer() == OptimizerChoice.MUON ? config.muonLearningRate() * r.lrFactor() : null,
                            observations);
                }
                if (health.watchesCollapse() && health.isCollapseStep(loss, r.gradientNorm(), modelConfig.vocabSize())) {
                    if (streak++ == 0) {
                        streakStart = done;
                    }
                    if (streak >= health.collapseSteps()) {
                        throw new TrainingHealthException(String.format(Locale.ROOT,
                                "training collapsed: for %d steps in a row (steps %d to %d) the %s; %s; %s; "
                                        + "lower the learning rate (%s) or clip gradients",
                                streak, streakStart, done, r.gradientNorm() == 0 ? "gradient norm was exactly 0"
                                        : String.format(Locale.ROOT, "loss sat at %.4f, the uniform distribution's ln %d", loss,
                                        modelConfig.vocabSize()),
                                largestWeight(model.parameters()), lastGood(lastSaved), config.learningRate()));
                    }
                } else {
                    streak = 0;
                }
                if (done % config.evalEvery() == 0 || done == config.steps()) {
                    double val = evaluate(g, model, validation, group);
                    EvalPoint e = new EvalPoint(done, done * tokensPerStep, val);
                    evals.add(e);
                    if (root) {
                        metrics.eval(e);
                    }
                    lastVal = val;
                }
                boolean due = (config.checkpointEvery() > 0 && done % config.checkpointEvery() == 0) || done == end
                        || agreed.stop();
                if (due || checkpointOwed) {
                    if (!health.fitForCheckpoint(loss, r.gradientNorm(), modelConfig.vocabSize())) {
                        // Never write a checkpoint of a run that looks broken: it would push a healthy one out.
                        if (!checkpointOwed) {
                            log.accept(String.format(Locale.ROOT, "checkpoint of step %d put off: %s", done, streak > 0
                                    ? "the run has looked collapsed since step " + streakStart
                                    : String.format(Locale.ROOT, "the loss %.4g is above %.0f x ln %d", loss,
                                    HealthCheck.DIVERGED_LOSS_FACTOR, modelConfig.vocabSize())));
                        }
                        checkpointOwed = true;
                    } else {
                        // The whole state, on rank 0 only: the other ranks never hold more than their part.
                        OptimizerState state = sharded != null ? sharded.saveStateOn(0) : single.saveState();
                        long saved = done;
                        group.onRoot(() -> {
                            store.save(saved, savedTensors(model), state, huggingFaceConfig(), checkpointConfig(),
                                    trainerState(saved, saved * tokensPerStep));
                            return 0;
                        }, "rank 0 failed to write the checkpoint of step " + done + " (its error says why)");
                        lastSaved = done;
                        checkpointOwed = false;
                    }
                }
                double rate = trainedTokens / trainSeconds;
                if (progress != null) {
                    progress.update(done, loss, rate, (config.steps() - done) * tokensPerStep / rate, lastVal,
                            experts == null ? null : experts.worstMaxOverMean());
                }
                if (agreed.stop() && done < end) {
                    log.accept("stopped on request after step " + done + "; " + (lastSaved == done
                            ? "checkpoint " + CheckpointStore.dirName(done) + " saved; resume to continue"
                            : "nothing saved at this step (" + lastGood(lastSaved) + ")"));
                    return new Result(runDir, points, evals, trainedTokens / trainSeconds, start, trainSeconds, timings, true);
                }
            }
            if (checkpointOwed) {
                log.accept("the last steps were not saved because the run looked broken; " + lastGood(lastSaved));
            }
        }
        return new Result(runDir, points, evals, trainedTokens / trainSeconds, start, trainSeconds, timings, false);
    }

    /**
     * QK-clip after the optimizer step: the step's largest logit per layer and head, the maximum over
     * the ranks (every rank gets the same values, so every rank scales the same rows by the same
     * factors), applied to the model's query and key projections.
     */
    private QkClipPoint qkClip(LanguageModel model, Group group) {
        double[] maxLogits = group.max(model.maxLogits());
        double largest = Double.NEGATIVE_INFINITY;
        for (double s : maxLogits) {
            largest = Math.max(largest, s);
        }
        int clipped = model.qkClip(config.qkClipThreshold(), maxLogits);
        return new QkClipPoint(largest, clipped);
    }

    /**
     * Auxiliary-loss-free load balancing after the optimizer step: the step's tokens per expert, summed
     * over the ranks (every rank gets the same counts, so every rank moves the same biases by the same
     * amounts), move each Mixture-of-Experts router's choice biases by γ. Null for a dense model.
     */
    private ExpertLoadPoint balanceExperts(LanguageModel model, Group group) {
        float[] local = model.expertLoads();
        if (local.length == 0) {
            return null;
        }
        float[] loads = group.sum(local);
        if (config.routerBiasRate() > 0) {
            model.balanceExperts(config.routerBiasRate(), loads);
        }
        List<Parameter> biases = model.buffers();
        double[][] shares = new double[biases.size()][];
        double[][] bias = new double[biases.size()][];
        int at = 0;
        for (int layer = 0; layer < biases.size(); layer++) {
            float[] b = biases.get(layer).value();
            double total = 0;
            for (int e = 0; e < b.length; e++) {
                total += loads[at + e];
            }
            shares[layer] = new double[b.length];
            bias[layer] = new double[b.length];
            for (int e = 0; e < b.length; e++) {
                shares[layer][e] = total > 0 ? loads[at + e] / total : 0;
                bias[layer][e] = b[e];
            }
            at += b.length;
        }
        return new ExpertLoadPoint(shares, bias);
    }

    /** Where the last checkpoint stands, for error messages. */
    private String lastGood(long lastSaved) {
        return lastSaved < 0 ? "no checkpoint of this run was written"
                : "the last checkpoint, " + runDir.resolve(CheckpointStore.dirName(lastSaved)) + ", is intact";
    }

    /** What a checkpoint's weights file holds: the parameters, then the buffers (the routers' choice biases). */
    static List<Parameter> savedTensors(LanguageModel model) {
        if (model.buffers().isEmpty()) {
            return model.parameters();
        }
        List<Parameter> all = new ArrayList<>(model.parameters());
        all.addAll(model.buffers());
        return all;
    }

    /** "parameter P element i is v" for the first NaN or infinite value among the parameters' values. */
    static Optional<String> firstNonFinite(List<Parameter> params) {
        for (Parameter p : params) {
            int bad = Kernels.firstNonFinite(p.value(), 0, p.size());
            if (bad >= 0) {
                return Optional.of("parameter " + p.name() + " element " + bad + " is " + p.value()[bad]);
            }
        }
        return Optional.empty();
    }

    /** "the largest weight is |v| in P", naming where the weights grew most. */
    private static String largestWeight(List<Parameter> params) {
        float largest = 0;
        String where = "";
        for (Parameter p : params) {
            float[] v = p.value();
            for (int i = 0; i < p.size(); i++) {
                float a = Math.abs(v[i]);
                if (a > largest) {
                    largest = a;
                    where = p.name();
                }
            }
        }
        return String.format(Locale.ROOT, "the largest weight is %.3g, in %s", largest, where);
    }

    /** Mean cross-entropy over the validation batches, without recording a tape. */
    public static double evaluate(Graph g, LanguageModel model, List<Batch> batches) {
        boolean was = g.isRecording();
        g.setRecording(false);
        try {
            double weighted = 0;
            long count = 0;
            for (Batch b : batches) {
                Tensor loss = model.loss(g, b.inputs(), b.targets(), b.batch(), b.time());
                weighted += (double) loss.item() * b.batch();
                count += b.batch();
                g.reset();
            }
            return weighted / count;
        } finally {
            g.setRecording(was);
        }
    }

    /** Validation split over the ranks: rank r takes batches r, r+N, r+2N, ...; the weighted sums are added. */
    private static double evaluate(Graph g, LanguageModel model, List<Batch> batches, Group group) {
        if (group.size() == 1) {
            return evaluate(g, model, batches);
        }
        List<Batch> mine = new ArrayList<>();
        long count = 0;
        for (int i = 0; i < batches.size(); i++) {
            count += batches.get(i).batch();
            if (i % group.size() == group.rank()) {
                mine.add(batches.get(i));
            }
        }
        double weighted = 0;
        if (!mine.isEmpty()) {
            long n = 0;
            for (Batch b : mine) {
                n += b.batch();
            }
            weighted = evaluate(g, model, mine) * n;
        }
        return group.sum(weighted) / count;
    }

    /** Work that rank 0 alone does (file reads and writes) while the other ranks wait. */
    @FunctionalInterface
    interface RootWork {
        long run() throws IOException;
    }

    /** The trainer's own agreements between ranks: exact sums, and rank 0's file work with heartbeats (package-private for tests). */
    static final class Group {
        /** While rank 0 works alone, it tells the others this often that it is still alive. */
        static final long HEARTBEAT_MILLIS = 1000;
        private static final long WORKING = 2;
        private static final long DONE = 1;
        private static final long FAILED = 0;
        private static final int MAX_VALUES = 4;

        final Collectives comm;
        final MemorySegment buffer;
        final dev.muon4j.distributed.RankOrderedSum sums;
        private final Arena arena;
        private dev.muon4j.distributed.RankOrderedSum maxima;  // for max(), sized on first use
        private dev.muon4j.distributed.RankOrderedSum totals;  // for sum(float[]), sized on first use
        private int totalsLength;
        long nanos;
        long lossBytes;
        long logitBytes;

        Group(Collectives comm, Arena arena) {
            this.comm = comm;
            this.arena = arena;
            this.buffer = arena.allocate(ValueLayout.JAVA_LONG, 2);
            this.sums = comm == null ? null : new dev.muon4j.distributed.RankOrderedSum(comm, arena, MAX_VALUES);
        }

        int rank() {
            return comm == null ? 0 : comm.rank();
        }

        int size() {
            return comm == null ? 1 : comm.size();
        }

        /** The sum over ranks of v, added in rank order in double (same bits everywhere). */
        double sum(double v) {
            if (size() == 1) {
                return v;
            }
            long t = System.nanoTime();
            double s = sums.sum(v);
            nanos += System.nanoTime() - t;
            lossBytes = sums.bytesPerGather(1);
            return s;
        }

        /**
         * The elementwise sum over ranks of {@code values} (every rank passes the same length), added in
         * rank order in double and rounded to float: the same bits on every rank.
         */
        float[] sum(float[] values) {
            if (size() == 1) {
                return values.clone();
            }
            if (totals == null || totalsLength != values.length) {
                totals = new dev.muon4j.distributed.RankOrderedSum(comm, arena, values.length);
                totalsLength = values.length;
            }
            double[] mine = new double[values.length];
            for (int i = 0; i < values.length; i++) {
                mine[i] = values[i];
            }
            long t = System.nanoTime();
            double[] all = totals.gather(mine);
            nanos += System.nanoTime() - t;
            float[] sum = new float[values.length];
            for (int i = 0; i < values.length; i++) {
                double s = 0;
                for (int r = 0; r < size(); r++) {
                    s += all[r * values.length + i];
                }
                sum[i] = (float) s;
            }
            return sum;
        }

        /**
         * Rank {@code root}'s {@code values} on every rank, in place.
         */
        void broadcast(float[] values, int root) {
            if (size() == 1 || values.length == 0) {
                return;
            }
            MemorySegment seg = arena.allocate(ValueLayout.JAVA_FLOAT, values.length);
            MemorySegment.copy(values, 0, seg, ValueLayout.JAVA_FLOAT, 0, values.length);
            long t = System.nanoTime();
            comm.broadcast(seg, values.length, root);
            nanos += System.nanoTime() - t;
            MemorySegment.copy(seg, ValueLayout.JAVA_FLOAT, 0, values, 0, values.length);
        }

        /**
         * The elementwise maximum over ranks of {@code values} (every rank passes the same length), widened
         * to double: the same bits on every rank. A NaN on any rank gives NaN.
         */
        double[] max(float[] values) {
            double[] max = new double[values.length];
            for (int i = 0; i < values.length; i++) {
                max[i] = values[i];
            }
            if (size() == 1) {
                return max;
            }
            if (maxima == null) {
                maxima = new dev.muon4j.distributed.RankOrderedSum(comm, arena, values.length);
            }
            long t = System.nanoTime();
            double[] all = maxima.gather(max);
            nanos += System.nanoTime() - t;
            logitBytes = maxima.bytesPerGather(values.length);
            for (int i = 0; i < values.length; i++) {
                double m = all[i];
                for (int r = 1; r < size(); r++) {
                    m = Math.max(m, all[r * values.length + i]);
                }
                max[i] = m;
            }
            return max;
        }

        /** What the ranks agreed after a step: the loss sum, the first rank whose check failed (-1: none), any stop request. */
        record Agreement(double sum, int failedRank, boolean stop) {
        }

        /** One collective after each step: the sum of {@code v}, which ranks found a problem, whether any asks to stop. */
        Agreement agree(double v, boolean problem, boolean stop) {
            if (size() == 1) {
                return new Agreement(v, problem ? 0 : -1, stop);
            }
            double[] all = gather(v, problem ? 1 : 0, stop ? 1 : 0);
            double s = 0;
            int failed = -1;
            boolean anyStop = false;
            for (int r = 0; r < size(); r++) {
                s += all[3 * r];
                if (all[3 * r + 1] != 0 && failed < 0) {
                    failed = r;
                }
                anyStop |= all[3 * r + 2] != 0;
            }
            return new Agreement(s, failed, anyStop);
        }

        /** Every rank's values (at most {@value #MAX_VALUES}), rank after rank, on every rank. */
        private double[] gather(double... values) {
            long t = System.nanoTime();
            double[] all = sums.gather(values);
            nanos += System.nanoTime() - t;
            lossBytes = sums.bytesPerGather(values.length);
            return all;
        }

        /**
         * Runs {@code work} on rank 0 and returns its result on every rank. Rank 0 broadcasts a
         * heartbeat every second while it works, so no rank's collective timeout fires during long
         * file work; if the work fails, rank 0 throws its error and the others a
         * {@link dev.muon4j.distributed.PeerFailureException} with {@code otherwise}.
         */
        long onRoot(RootWork work, String otherwise) throws IOException {
            if (size() == 1) {
                return work.run();
            }
            if (rank() != 0) {
                while (true) {
                    long[] v = broadcastFromRoot(0, 0);
                    if (v[0] == DONE) {
                        return v[1];
                    }
                    if (v[0] != WORKING) {
                        throw new dev.muon4j.distributed.PeerFailureException(otherwise);
                    }
                }
            }
            java.util.concurrent.FutureTask<Long> task = new java.util.concurrent.FutureTask<>(work::run);
            Thread worker = new Thread(task, "rank-0-file-work");
            worker.setDaemon(true);
            worker.start();
            while (true) {
                try {
                    long result = task.get(HEARTBEAT_MILLIS, java.util.concurrent.TimeUnit.MILLISECONDS);
                    broadcastFromRoot(DONE, result);
                    return result;
                } catch (java.util.concurrent.TimeoutException e) {
                    broadcastFromRoot(WORKING, 0);
                } catch (java.util.concurrent.ExecutionException e) {
                    broadcastFromRoot(FAILED, 0);
                    Throwable cause = e.getCause();
                    if (cause instanceof IOException io) {
                        throw io;
                    }
                    if (cause instanceof RuntimeException re) {
                        throw re;
                    }
                    if (cause instanceof Error err) {
                        throw err;
                    }
                    throw new IllegalStateException(cause);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    broadcastFromRoot(FAILED, 0);
                    throw new IllegalStateException("interrupted while rank 0 worked on the run directory", e);
                }
            }
        }

        /** Rank 0's two values, on every rank. */
        long[] broadcastFromRoot(long a, long b) {
            buffer.setAtIndex(ValueLayout.JAVA_LONG, 0, a);
            buffer.setAtIndex(ValueLayout.JAVA_LONG, 1, b);
            comm.broadcast(buffer, 4, 0);
            return new long[] {buffer.getAtIndex(ValueLayout.JAVA_LONG, 0), buffer.getAtIndex(ValueLayout.JAVA_LONG, 1)};
        }
    }

    private CheckpointConfig checkpointConfig() {
        // where the text was read, so that eval can read it again
        List<String> paths = data.origin().paths().isEmpty() ? null : data.origin().paths().stream().map(Path::toString).toList();
        ShippedCorpus shipped = data.origin().shippedCorpus();
        return new CheckpointConfig(modelConfig.toMap(), config, tokenizerName,
                new CheckpointConfig.Data(data.fingerprint(), data.describe(), data.validationFraction(), shipped != null, paths,
                        shipped == null || shipped == ShippedCorpus.GUTENBERG ? null : shipped.id()),
                new CheckpointConfig.HuggingFace(HuggingFaceConfig.architecture(modelConfig).orElse(null),
                        HuggingFaceConfig.notes(modelConfig)),
                initialWeights == null ? null : initialWeights.record());
    }

    /** config.json: the model in Hugging Face's schema, float32 weights, the tokenizer's special tokens. */
    private Object huggingFaceConfig() {
        return HuggingFaceConfig.of(modelConfig, specialTokens(tokenizerName), "float32");
    }

    /** The special tokens of the tokenizer named {@code name} ({@link dev.muon4j.data.Tokenizer#name()}); none when it is not one muon4j names. */
    static HuggingFaceConfig.SpecialTokens specialTokens(String name) {
        TokenizerKind kind;
        try {
            kind = TokenizerKind.parse(name);
        } catch (IllegalArgumentException e) {
            return HuggingFaceConfig.SpecialTokens.none();
        }
        java.util.OptionalInt end = HuggingFaceTokenizer.endOfText(kind);
        return end.isPresent() ? new HuggingFaceConfig.SpecialTokens(end.getAsInt(), end.getAsInt()) : HuggingFaceConfig.SpecialTokens.none();
    }

    private TrainerState trainerState(long step, long tokens) {
        return new TrainerState(step, tokens, step * config.accumulation(), config.seed());
    }

    @SuppressWarnings("unchecked")
    private void checkSameModel(CheckpointStore.Checkpoint cp) {
        Object model = cp.config().get("model");
        if (!(model instanceof Map<?, ?> m)) {
            throw new IllegalArgumentException("checkpoint " + cp.dir() + " has no model config");
        }
        ModelConfig saved = ModelConfig.fromMap((Map<String, ?>) m);
        if (!saved.equals(modelConfig)) {
            throw new IllegalArgumentException("checkpoint " + cp.dir() + " is from another model: saved " + saved
                    + ", asked for " + modelConfig);
        }
        Object tok = cp.config().get("tokenizer");
        if (tok != null && !tok.equals(tokenizerName)) {
            throw new IllegalArgumentException("checkpoint " + cp.dir() + " was trained with tokenizer " + tok
                    + ", this run uses " + tokenizerName);
        }
    }
}
