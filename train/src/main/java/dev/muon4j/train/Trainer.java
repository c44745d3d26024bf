package dev.muon4j.train;

import dev.muon4j.autograd.Graph;
import dev.muon4j.autograd.Tensor;
import dev.muon4j.backend.Backend;
import dev.muon4j.backend.Kernels;
import dev.muon4j.data.Batch;
import dev.muon4j.data.BatchSampler;
import dev.muon4j.data.TokenDataset;
import dev.muon4j.distributed.Collectives;
import dev.muon4j.distributed.ShardedOptimizer;
import dev.muon4j.nn.LlamaConfig;
import dev.muon4j.nn.LlamaModel;
import dev.muon4j.optim.AdamWConfig;
import dev.muon4j.optim.HybridOptimizer;
import dev.muon4j.optim.LearningRateSchedule;
import dev.muon4j.optim.MomentumForm;
import dev.muon4j.optim.MuonConfig;
import dev.muon4j.optim.Optimizer;
import dev.muon4j.optim.OptimizerState;
import dev.muon4j.optim.Parameter;
import dev.muon4j.optim.Route;
import dev.muon4j.optim.ScaleMode;
import dev.muon4j.optim.StepResult;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.function.Consumer;

/**
 * Trains a {@link LlamaModel} on a {@link TokenDataset}: each optimizer step accumulates the
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
 */
public final class Trainer {
    /** One optimizer step's numbers. */
    public record StepPoint(long step, long tokens, double loss, double lr, double gradNorm, double seconds) {
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

    /** What a run produced. */
    public record Result(Path runDir, List<StepPoint> steps, List<EvalPoint> evals, double tokensPerSecond,
                         long startStep, double trainSeconds, List<StepTiming> timings) {
        /** The last validation loss. */
        public double finalValidationLoss() {
            return evals.isEmpty() ? Double.NaN : evals.getLast().loss();
        }
    }

    private final Backend backend;
    private final LlamaConfig modelConfig;
    private final TrainConfig config;
    private final TokenDataset data;
    private final Path runDir;
    private final String tokenizerName;
    private final Consumer<String> log;
    private final Progress progress;
    private final DataParallel parallel;

    public Trainer(Backend backend, LlamaConfig modelConfig, TrainConfig config, TokenDataset data, Path runDir,
                   Consumer<String> log, Progress progress) {
        this(backend, modelConfig, config, data, runDir, log, progress, null);
    }

    /**
     * A trainer that is one rank of a data-parallel group ({@code parallel} null: a single process).
     * Every rank passes the same configs and data; {@code log} and {@code progress} are used on rank 0 only.
     */
    public Trainer(Backend backend, LlamaConfig modelConfig, TrainConfig config, TokenDataset data, Path runDir,
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

    /** The optimizer this config asks for, over the model's parameters. */
    public static HybridOptimizer optimizer(Backend backend, TrainConfig config, List<Parameter> params) {
        return settings(backend, config).build(params);
    }

    /** The optimizer settings this config asks for (for one process, or for every rank of a sharded one). */
    public static HybridOptimizer.Builder settings(Backend backend, TrainConfig config) {
        AdamWConfig adamw = AdamWConfig.builder().learningRate(config.learningRate()).weightDecay(config.weightDecay())
                .beta1(config.beta1()).beta2(config.beta2()).build();
        MuonConfig muon = MuonConfig.builder().learningRate(config.muonLearningRate()).weightDecay(config.weightDecay())
                .momentum(config.muonMomentum()).momentumForm(MomentumForm.CLASSIC).nesterov(true)
                .scaleMode(ScaleMode.MATCH_RMS_ADAMW).build();
        HybridOptimizer.Builder b = HybridOptimizer.builder(backend).adamw(adamw).muon(muon)
                .schedule(schedule(config)).clipGradientNorm(config.clipNorm());
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

    /** Trains; with {@code resume}, continues from the run directory's latest checkpoint if there is one. */
    public Result run(boolean resume) throws IOException {
        return run(resume, Long.MAX_VALUE);
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
        if (stopAfter < 1) {
            throw new IllegalArgumentException("stopAfter must be >= 1, got " + stopAfter);
        }
        try (Arena arena = Arena.ofShared()) {
            Group group = new Group(parallel == null ? null : parallel.collectives(), arena);
            return run(resume, stopAfter, group);
        }
    }

    private Result run(boolean resume, long stopAfter, Group group) throws IOException {
        long end = Math.min(stopAfter, config.steps());
        int time = modelConfig.contextLength();
        int rank = group.rank();
        int ranks = group.size();
        boolean root = rank == 0;
        LlamaModel model = new LlamaModel(modelConfig);
        model.initialize(config.seed());
        HybridOptimizer.Builder settings = settings(backend, config);
        ShardedOptimizer sharded = ranks > 1 ? new ShardedOptimizer(group.comm, settings, model.parameters(), parallel.mode()) : null;
        HybridOptimizer single = ranks > 1 ? null : settings.build(model.parameters());
        Optimizer optimizer = ranks > 1 ? sharded : single;
        try {
            CheckpointStore store = root ? new CheckpointStore(runDir, config.keepCheckpoints(), log) : null;
            MetricsLog metrics = root ? new MetricsLog(runDir.resolve("metrics.jsonl")) : null;
            List<EvalPoint> evals = new ArrayList<>();

            // Rank 0 decides where the run starts (reading the checkpoint); the others follow, or stop with it.
            OptimizerState[] state = new OptimizerState[1];
            long start = group.onRoot(() -> {
                long at = 0;
                if (resume) {
                    Optional<CheckpointStore.Checkpoint> latest = store.latest();
                    if (latest.isPresent()) {
                        CheckpointStore.Checkpoint cp = latest.get();
                        checkSameModel(cp);
                        CheckpointStore.restoreWeights(cp, model.parameters());
                        state[0] = cp.optimizer();
                        at = cp.step();
                        evals.addAll(metrics.truncateAfter(at));
                        log.accept("resumed from " + cp.dir() + " at step " + at
                                + (ranks > 1 ? " on " + ranks + " ranks" : ""));
                    } else {
                        metrics.truncateAfter(0);
                    }
                } else {
                    List<Path> existing = store.checkpoints();
                    if (!existing.isEmpty()) {
                        throw new IllegalArgumentException("run directory " + runDir + " already holds checkpoint "
                                + existing.getLast().getFileName() + "; resume it, or train into another run directory");
                    }
                    metrics.truncateAfter(0);
                }
                return at;
            }, "rank 0 could not start the run in " + runDir + " (its error says why)");
            if (start > 0) {
                if (ranks > 1) {
                    sharded.broadcastParameters(0);
                    sharded.loadStateFrom(0, state[0]);
                } else {
                    single.loadState(state[0]);
                }
            }
            if (start >= end) {
                log.accept("nothing to do: the checkpoint is at step " + start + " of " + config.steps()
                        + (end < config.steps() ? " (asked to stop after " + end + ")" : ""));
                return new Result(runDir, List.of(), evals, Double.NaN, start, 0, List.of());
            }
            return train(model, optimizer, sharded, single, store, metrics, evals, start, end, group);
        } finally {
            if (sharded != null) {
                sharded.close();
            }
        }
    }

    private Result train(LlamaModel model, Optimizer optimizer, ShardedOptimizer sharded, HybridOptimizer single,
                         CheckpointStore store, MetricsLog metrics, List<EvalPoint> evals, long start, long end, Group group)
            throws IOException {
        int time = modelConfig.contextLength();
        int rank = group.rank();
        int ranks = group.size();
        boolean root = rank == 0;
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
        try (Graph g = new Graph(backend)) {
            for (long step = start; step < end; step++) {
                long t0 = System.nanoTime();
                model.zeroGradients();
                double lossSum = 0;
                for (int micro = 0; micro < config.accumulation(); micro++) {
                    Batch batch = sampler.batch(step * config.accumulation() + micro, rank, ranks);
                    if (batch.batch() == 0) {
                        continue; // an empty share: this rank passes zero gradients
                    }
                    Tensor loss = model.loss(g, batch.inputs(), batch.targets(), batch.batch(), batch.time());
                    lossSum += ranks == 1 ? loss.item() : (double) loss.item() * batch.batch();
                    g.backward(loss);
                    g.reset();
                }
                if (gradientWeight != 1f) {
                    for (Parameter p : model.parameters()) {
                        Kernels.scale(p.gradient(), 0, p.size(), gradientWeight);
                    }
                }
                long computeNanos = System.nanoTime() - t0;
                long commBefore = group.nanos;
                double loss = ranks == 1 ? lossSum / config.accumulation()
                        : group.sum(lossSum) / ((double) config.batchSize() * config.accumulation());
                long lossCommNanos = group.nanos - commBefore;
                long t1 = System.nanoTime();
                StepResult r = optimizer.step();
                long optimizerNanos = System.nanoTime() - t1;
                double seconds = (System.nanoTime() - t0) / 1e9;
                trainSeconds += seconds;
                trainedTokens += tokensPerStep;
                if (sharded != null) {
                    ShardedOptimizer.StepStats st = sharded.lastStep();
                    timings.add(new StepTiming(computeNanos / 1e9, (st.communicationNanos() + lossCommNanos) / 1e9,
                            st.newtonSchulzNanos() / 1e9, (optimizerNanos - st.communicationNanos() - st.newtonSchulzNanos()) / 1e9,
                            st.bytesSent() + group.lossBytes, st.bytesReceived() + group.lossBytes));
                } else {
                    timings.add(new StepTiming(computeNanos / 1e9, 0, single.lastNewtonSchulzNanos() / 1e9,
                            (optimizerNanos - single.lastNewtonSchulzNanos()) / 1e9, 0, 0));
                }
                long done = step + 1;
                if (!Double.isFinite(loss)) {
                    throw new IllegalStateException("training loss became " + loss + " at step " + done
                            + "; lower the learning rate (" + config.learningRate() + ")");
                }
                double lr = config.learningRate() * r.lrFactor();
                StepPoint point = new StepPoint(done, done * tokensPerStep, loss, lr, r.gradientNorm(), seconds);
                points.add(point);
                if (root) {
                    metrics.step(point);
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
                if ((config.checkpointEvery() > 0 && done % config.checkpointEvery() == 0) || done == end) {
                    // The whole state, on rank 0 only: the other ranks never hold more than their part.
                    OptimizerState state = sharded != null ? sharded.saveStateOn(0) : single.saveState();
                    long saved = done;
                    group.onRoot(() -> {
                        store.save(saved, model.parameters(), state, checkpointConfig(), trainerState(saved, saved * tokensPerStep));
                        return 0;
                    }, "rank 0 failed to write the checkpoint of step " + done + " (its error says why)");
                }
                double rate = trainedTokens / trainSeconds;
                if (progress != null) {
                    progress.update(done, loss, rate, (config.steps() - done) * tokensPerStep / rate, lastVal);
                }
            }
        }
        return new Result(runDir, points, evals, trainedTokens / trainSeconds, start, trainSeconds, timings);
    }

    /** Mean cross-entropy over the validation batches, without recording a tape. */
    public static double evaluate(Graph g, LlamaModel model, List<Batch> batches) {
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
    private static double evaluate(Graph g, LlamaModel model, List<Batch> batches, Group group) {
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

        final Collectives comm;
        final MemorySegment buffer;
        final MemorySegment gathered;
        long nanos;
        long lossBytes;

        Group(Collectives comm, Arena arena) {
            this.comm = comm;
            this.buffer = arena.allocate(ValueLayout.JAVA_LONG, 4);
            this.gathered = arena.allocate(ValueLayout.JAVA_DOUBLE, Math.max(1, size()));
        }

        int rank() {
            return comm == null ? 0 : comm.rank();
        }

        int size() {
            return comm == null ? 1 : comm.size();
        }

        /** The sum over ranks of v: every rank's double, gathered, added in rank order in double (same bits everywhere). */
        double sum(double v) {
            if (size() == 1) {
                return v;
            }
            long t = System.nanoTime();
            buffer.setAtIndex(ValueLayout.JAVA_DOUBLE, 0, v);
            comm.allGather(buffer, 2, gathered);
            nanos += System.nanoTime() - t;
            lossBytes = 2L * (size() - 1) * Float.BYTES;
            double s = 0;
            for (int r = 0; r < size(); r++) {
                s += gathered.getAtIndex(ValueLayout.JAVA_DOUBLE, r);
            }
            return s;
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

    private Map<String, Object> checkpointConfig() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("model", modelConfig.toMap());
        m.put("train", config.toMap());
        m.put("tokenizer", tokenizerName);
        return m;
    }

    private Map<String, Object> trainerState(long step, long tokens) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("step", step);
        m.put("tokens", tokens);
        m.put("data_position", step * config.accumulation());
        m.put("seed", config.seed());
        return m;
    }

    @SuppressWarnings("unchecked")
    private void checkSameModel(CheckpointStore.Checkpoint cp) {
        Object model = cp.config().get("model");
        if (!(model instanceof Map<?, ?> m)) {
            throw new IllegalArgumentException("checkpoint " + cp.dir() + " has no model config");
        }
        LlamaConfig saved = LlamaConfig.fromMap((Map<String, ?>) m);
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
