package dev.muon4j.train;

import dev.muon4j.autograd.Graph;
import dev.muon4j.autograd.Tensor;
import dev.muon4j.backend.Backend;
import dev.muon4j.backend.Kernels;
import dev.muon4j.data.Batch;
import dev.muon4j.data.BatchSampler;
import dev.muon4j.data.TokenDataset;
import dev.muon4j.nn.LlamaConfig;
import dev.muon4j.nn.LlamaModel;
import dev.muon4j.optim.AdamWConfig;
import dev.muon4j.optim.HybridOptimizer;
import dev.muon4j.optim.LearningRateSchedule;
import dev.muon4j.optim.MomentumForm;
import dev.muon4j.optim.MuonConfig;
import dev.muon4j.optim.Parameter;
import dev.muon4j.optim.Route;
import dev.muon4j.optim.ScaleMode;
import dev.muon4j.optim.StepResult;
import java.io.IOException;
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
 */
public final class Trainer {
    /** One optimizer step's numbers. */
    public record StepPoint(long step, long tokens, double loss, double lr, double gradNorm, double seconds) {
    }

    /** One validation's numbers. */
    public record EvalPoint(long step, long tokens, double loss) {
    }

    /** What a run produced. */
    public record Result(Path runDir, List<StepPoint> steps, List<EvalPoint> evals, double tokensPerSecond,
                         long startStep, double trainSeconds) {
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

    public Trainer(Backend backend, LlamaConfig modelConfig, TrainConfig config, TokenDataset data, Path runDir,
                   Consumer<String> log, Progress progress) {
        this.backend = Objects.requireNonNull(backend, "backend");
        this.modelConfig = Objects.requireNonNull(modelConfig, "model config");
        this.config = Objects.requireNonNull(config, "train config");
        this.data = Objects.requireNonNull(data, "data");
        this.runDir = Objects.requireNonNull(runDir, "run directory");
        this.tokenizerName = data.tokenizerName();
        this.log = log;
        this.progress = progress;
        if (data.vocabSize() > modelConfig.vocabSize()) {
            throw new IllegalArgumentException("the tokenizer's vocabulary (" + data.vocabSize() + ") is larger than the model's ("
                    + modelConfig.vocabSize() + ")");
        }
    }

    /** The optimizer this config asks for, over the model's parameters. */
    public static HybridOptimizer optimizer(Backend backend, TrainConfig config, List<Parameter> params) {
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
        return b.build(params);
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
        long end = Math.min(stopAfter, config.steps());
        int time = modelConfig.contextLength();
        LlamaModel model = new LlamaModel(modelConfig);
        model.initialize(config.seed());
        HybridOptimizer optimizer = optimizer(backend, config, model.parameters());
        CheckpointStore store = new CheckpointStore(runDir, config.keepCheckpoints(), log);
        MetricsLog metrics = new MetricsLog(runDir.resolve("metrics.jsonl"));
        long start = 0;
        List<EvalPoint> evals = new ArrayList<>();
        if (resume) {
            Optional<CheckpointStore.Checkpoint> latest = store.latest();
            if (latest.isPresent()) {
                CheckpointStore.Checkpoint cp = latest.get();
                checkSameModel(cp);
                CheckpointStore.restoreWeights(cp, model.parameters());
                optimizer.loadState(cp.optimizer());
                start = cp.step();
                evals.addAll(metrics.truncateAfter(start));
                log.accept("resumed from " + cp.dir() + " at step " + start);
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
        if (start >= end) {
            log.accept("nothing to do: the checkpoint is at step " + start + " of " + config.steps()
                    + (end < config.steps() ? " (asked to stop after " + end + ")" : ""));
            return new Result(runDir, List.of(), evals, Double.NaN, start, 0);
        }
        BatchSampler sampler = data.trainSampler(time, config.batchSize(), config.seed());
        List<Batch> validation = data.validationBatches(config.evalBatches(), config.batchSize(), time);
        long tokensPerStep = (long) config.sequencesPerStep() * time;
        List<StepPoint> points = new ArrayList<>();
        double trainSeconds = 0;
        long trainedTokens = 0;
        Double lastVal = evals.isEmpty() ? null : evals.getLast().loss();
        try (Graph g = new Graph(backend)) {
            for (long step = start; step < end; step++) {
                long t0 = System.nanoTime();
                model.zeroGradients();
                double lossSum = 0;
                for (int micro = 0; micro < config.accumulation(); micro++) {
                    Batch batch = sampler.batch(step * config.accumulation() + micro);
                    Tensor loss = model.loss(g, batch.inputs(), batch.targets(), batch.batch(), batch.time());
                    lossSum += loss.item();
                    g.backward(loss);
                    g.reset();
                }
                if (config.accumulation() > 1) {
                    float scale = 1f / config.accumulation();
                    for (Parameter p : model.parameters()) {
                        Kernels.scale(p.gradient(), 0, p.size(), scale);
                    }
                }
                StepResult r = optimizer.step();
                double seconds = (System.nanoTime() - t0) / 1e9;
                trainSeconds += seconds;
                trainedTokens += tokensPerStep;
                long done = step + 1;
                double loss = lossSum / config.accumulation();
                if (!Double.isFinite(loss)) {
                    throw new IllegalStateException("training loss became " + loss + " at step " + done
                            + "; lower the learning rate (" + config.learningRate() + ")");
                }
                double lr = config.learningRate() * r.lrFactor();
                StepPoint point = new StepPoint(done, done * tokensPerStep, loss, lr, r.gradientNorm(), seconds);
                points.add(point);
                metrics.step(point);
                if (done % config.evalEvery() == 0 || done == config.steps()) {
                    double val = evaluate(g, model, validation);
                    EvalPoint e = new EvalPoint(done, done * tokensPerStep, val);
                    evals.add(e);
                    metrics.eval(e);
                    lastVal = val;
                }
                if ((config.checkpointEvery() > 0 && done % config.checkpointEvery() == 0) || done == end) {
                    store.save(done, model.parameters(), optimizer.saveState(), checkpointConfig(),
                            trainerState(done, done * tokensPerStep));
                }
                double rate = trainedTokens / trainSeconds;
                if (progress != null) {
                    progress.update(done, loss, rate, (config.steps() - done) * tokensPerStep / rate, lastVal);
                }
            }
        }
        return new Result(runDir, points, evals, trainedTokens / trainSeconds, start, trainSeconds);
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
