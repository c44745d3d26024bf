package dev.muon4j.cli;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.VectorBackend;
import dev.muon4j.data.TokenDataset;
import dev.muon4j.distributed.Collectives;
import dev.muon4j.distributed.LocalRanks;
import dev.muon4j.distributed.MpiCollectives;
import dev.muon4j.distributed.PeerFailureException;
import dev.muon4j.distributed.ShardedOptimizer;
import dev.muon4j.nn.LlamaConfig;
import dev.muon4j.nn.ModelConfig;
import dev.muon4j.optim.NewtonSchulzConfig;
import dev.muon4j.train.ChangedSettingsException;
import dev.muon4j.train.HealthCheck;
import dev.muon4j.train.InitialWeights;
import dev.muon4j.train.OptimizerChoice;
import dev.muon4j.train.Progress;
import dev.muon4j.train.RunOptions;
import dev.muon4j.train.TrainConfig;
import dev.muon4j.train.Trainer;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code muon4j train}: train one model with one optimizer, with progress, validation, checkpoints and resume. */
@Command(name = "train", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Train a Llama-style model with AdamW or Muon. Writes checkpoints (safetensors weights, optimizer state, "
                + "configs) and metrics.jsonl into the run directory; --resume continues from its latest checkpoint.")
public final class TrainCommand implements Callable<Integer> {
    @Mixin
    TrainingOptions options;

    @Mixin
    BackendOptions backendOptions;

    @Option(names = "--optimizer", defaultValue = "MUON", description = "${COMPLETION-CANDIDATES} (default: ${DEFAULT-VALUE}).")
    OptimizerChoice optimizer;

    @Option(names = "--run-dir", paramLabel = "DIR", description = "Run directory (default: runs/<optimizer>-<date-time>).")
    Path runDir;

    @Option(names = "--init-from", paramLabel = "DIR",
            description = "Start the new run from the weights of DIR: a directory written by 'muon4j export' (or any Hugging Face "
                    + "llama or deepseek_v3 directory muon4j can compute), a run directory (its latest checkpoint) or one checkpoint "
                    + "directory. The model's shape is DIR's (shape flags may only repeat it); the optimizer starts fresh.")
    Path initFrom;

    @Option(names = "--resume", description = "Continue from the run directory's latest checkpoint (needs --run-dir); "
            + "refused when it holds none, or when settings differ from the checkpoint's (see --allow-changed).")
    boolean resume;

    @Option(names = "--resume-or-start", description = "Continue the run directory's latest checkpoint if there is one, "
            + "else start a new run there (for a job that is restarted with the same command).")
    boolean resumeOrStart;

    @Option(names = "--allow-changed", split = ",", paramLabel = "SETTING",
            description = "On resume, let these settings differ from the checkpoint's (recorded in metrics.jsonl): "
                    + "optimizer, lr, muon-lr, weight-decay, beta2, momentum, schedule, warmup, steps, batch, accumulate, clip, "
                    + "seed, muon-variant, cautious-weight-decay, per-head-qk, qk-clip, ns-method, data, or all.")
    java.util.List<String> allowChanged = new java.util.ArrayList<>();

    @Option(names = "--collapse-steps", paramLabel = "N",
            description = "Stop when the loss sits at the uniform value ln(vocab) or the gradient norm is exactly 0 for N steps "
                    + "in a row; checkpoints are put off while it lasts; 0 turns this off (default: "
                    + HealthCheck.DEFAULT_COLLAPSE_STEPS + ").")
    Integer collapseSteps;

    @Option(names = "--stop-after", paramLabel = "STEP", description = "Pause after this step with a checkpoint; "
            + "--resume finishes the run later exactly as if it had not paused (default: run to the end).")
    Long stopAfter;

    @Option(names = "--ranks", paramLabel = "N", description = "Data-parallel ranks (default: 1, or the mpirun world size). "
            + "With N > 1 the run is started under mpirun when it is installed, else as N threads in this process.")
    Integer ranks;

    @Option(names = "--launcher", defaultValue = "AUTO", paramLabel = "HOW",
            description = "How --ranks N > 1 starts: ${COMPLETION-CANDIDATES} (default: ${DEFAULT-VALUE}: mpirun if installed, else threads).")
    Launcher launcher;

    @Option(names = "--sharding", defaultValue = "DISTRIBUTED_MUON", paramLabel = "MODE",
            description = "How Muon's matrices are split over ranks: ${COMPLETION-CANDIDATES} (default: ${DEFAULT-VALUE}).")
    ShardedOptimizer.Mode sharding;

    @Option(names = "--rank-timeout", defaultValue = "300", paramLabel = "SECONDS",
            description = "A collective that waits longer than this for the other ranks ends the job with an error (default: ${DEFAULT-VALUE}).")
    long rankTimeout;

    /** How a multi-rank run starts. */
    enum Launcher { AUTO, MPIRUN, THREADS }

    @Spec
    CommandSpec spec;

    /** Stop requests and the exit code of this process's part of the run (not of a launcher's). */
    private JobControl job;

    @Override
    public Integer call() throws Exception {
        try {
            return start();
        } finally {
            if (job != null) {
                job.close();
            }
        }
    }

    private int start() throws Exception {
        if (resume && resumeOrStart) {
            throw new IllegalArgumentException("give --resume or --resume-or-start, not both");
        }
        if ((resume || resumeOrStart) && runDir == null) {
            throw new IllegalArgumentException((resume ? "--resume" : "--resume-or-start") + " needs --run-dir to say which run to continue");
        }
        if (collapseSteps != null && collapseSteps < 0) {
            throw new IllegalArgumentException("--collapse-steps must be >= 0 (0 turns the check off), got " + collapseSteps);
        }
        allowedChanges(); // unknown names fail before anything starts
        if (ranks != null && ranks < 1) {
            throw new IllegalArgumentException("--ranks must be at least 1, got " + ranks);
        }
        if (stopAfter != null && stopAfter < 1) {
            throw new IllegalArgumentException("--stop-after must be at least 1, got " + stopAfter);
        }
        if (rankTimeout < 1) {
            throw new IllegalArgumentException("--rank-timeout must be at least 1 second, got " + rankTimeout);
        }
        PrintWriter out = spec.commandLine().getOut();
        if (initFrom != null) {
            initialWeights = initialWeights(spec.commandLine().getErr());
        }
        int world = MpiLaunch.worldSize();
        options.checkSizes(optimizer, world > 0 ? world : ranks == null ? 1 : ranks);
        if (world > 0) {
            if (ranks != null && ranks != world) {
                throw new IllegalArgumentException("--ranks " + ranks + " but mpirun started " + world + " ranks");
            }
            if (runDir == null) {
                throw new IllegalArgumentException("under mpirun give --run-dir, so that every rank names the same run");
            }
            job = JobControl.forMpiRank(spec.root().commandLine().getParseResult().originalArgs());
            MpiCollectives comm = new MpiCollectives(Duration.ofSeconds(rankTimeout));
            job.attach(comm);
            try {
                PrintWriter rankOut = comm.rank() == 0 ? out : new PrintWriter(java.io.Writer.nullWriter());
                try (Backend backend = openForRank(MpiLaunch.localSize())) {
                    train(rankOut, backend, comm, world);
                }
            } catch (Throwable t) {
                // A rank that fails on its own must not wait in MPI_Finalize for ranks blocked in the
                // next collective: say why, then end the whole job.
                out.flush();
                System.err.println("muon4j: rank " + comm.rank() + " of " + world + " failed: " + t);
                if (!(t instanceof IllegalArgumentException || t instanceof IllegalStateException || t instanceof java.io.IOException)) {
                    t.printStackTrace();
                }
                System.err.flush();
                if (world == 1) {
                    comm.close();
                } else {
                    if (t instanceof PeerFailureException) {
                        Thread.sleep(2000); // the rank that failed first ends the job with its own message
                    }
                    comm.abort(1);
                }
                throw t;
            }
            comm.close();
            return job.exitCode(out);
        }
        int n = ranks == null ? 1 : ranks;
        if (n > 1 && launcher != Launcher.THREADS) {
            java.util.Optional<Path> mpirun = MpiLaunch.findOpenMpirun();
            if (mpirun.isPresent()) {
                if (runDir == null) {
                    runDir = defaultRunDir();
                }
                return MpiLaunch.relaunch(mpirun.get(), n, runDir,
                        spec.root().commandLine().getParseResult().originalArgs(), out);
            }
            if (launcher == Launcher.MPIRUN) {
                throw new IllegalArgumentException("--launcher MPIRUN but Open MPI's mpirun is not on the PATH or libmpi.so.40 "
                        + "does not load (Debian: apt-get install openmpi-bin libopenmpi-dev)");
            }
        }
        job = JobControl.forProcess(spec.root().commandLine().getParseResult().originalArgs());
        if (n == 1) {
            try (Backend backend = backendOptions.open()) {
                train(out, backend, null, 1);
            }
            return job.exitCode(out);
        }
        // N ranks as threads of this process: each with its own single-threaded Vector API backend
        // (one BLAS library must not be entered from several threads at once).
        out.println("ranks: " + n + " threads in this process (mpirun not used), each on a 1-thread Vector API backend"
                + (backendOptions.kind != dev.muon4j.backend.BackendKind.AUTO || backendOptions.threads != null
                ? "; --backend and --threads apply to mpirun ranks only" : ""));
        LocalRanks.run(n, Duration.ofSeconds(rankTimeout), comm -> {
            PrintWriter rankOut = comm.rank() == 0 ? out : new PrintWriter(java.io.Writer.nullWriter());
            try (Backend backend = new VectorBackend(1)) {
                train(rankOut, backend, comm, n);
            }
            return null;
        });
        return job.exitCode(out);
    }

    /** What --init-from read; null without it. */
    private InitialWeights initialWeights;

    /**
     * Reads --init-from's directory and checks it against the command line: --preset and shape flags that
     * contradict its model, and a tokenizer other than the one it was trained with, are refused.
     */
    private InitialWeights initialWeights(PrintWriter err) throws java.io.IOException {
        if (spec.commandLine().getParseResult().hasMatchedOption("--preset")) {
            throw new IllegalArgumentException("--preset and --init-from both set the model's shape; leave --preset out (the shape is "
                    + initFrom + "'s)");
        }
        InitialWeights init = InitialWeights.read(initFrom, warning -> {
            err.println("muon4j: warning: " + warning);
            err.flush();
        });
        ModelConfig model = options.shape.agreeWith(init.model(), initFrom.toString());
        if (init.tokenizer().isPresent() && init.tokenizer().get() != options.tokenizer) {
            throw new IllegalArgumentException(init.describe() + " was trained with tokenizer " + init.tokenizer().get().encodingName()
                    + "; give --tokenizer " + init.tokenizer().get().name().toLowerCase(Locale.ROOT) + " (this run's is "
                    + options.tokenizer.name().toLowerCase(Locale.ROOT) + ")");
        }
        int vocab = options.tokenizer.create().vocabSize();
        if (vocab > model.vocabSize()) {
            throw new IllegalArgumentException(init.describe() + " has a vocabulary of " + model.vocabSize() + ", fewer than the "
                    + vocab + " ids of --tokenizer " + options.tokenizer.name().toLowerCase(Locale.ROOT));
        }
        options.initialModel = model;
        return new InitialWeights(init.source(), init.kind(), init.step(), model, init.weights(), init.tokenizer(), init.checkpoint());
    }

    /** The settings --allow-changed may name: flag name → the setting's name in the checkpoint's config. */
    static final java.util.Map<String, String> SETTING_OF_FLAG = java.util.Map.ofEntries(
            java.util.Map.entry("optimizer", "optimizer"), java.util.Map.entry("lr", "learning_rate"),
            java.util.Map.entry("muon-lr", "muon_learning_rate"), java.util.Map.entry("weight-decay", "weight_decay"),
            java.util.Map.entry("beta2", "beta2"), java.util.Map.entry("momentum", "muon_momentum"),
            java.util.Map.entry("schedule", "schedule"), java.util.Map.entry("warmup", "warmup_steps"),
            java.util.Map.entry("steps", "steps"), java.util.Map.entry("batch", "batch_size"),
            java.util.Map.entry("accumulate", "accumulation"), java.util.Map.entry("clip", "clip_norm"),
            java.util.Map.entry("seed", "seed"), java.util.Map.entry("muon-variant", "muon_variant"),
            java.util.Map.entry("cautious-weight-decay", "cautious_weight_decay"), java.util.Map.entry("per-head-qk", "per_head_qk"),
            java.util.Map.entry("qk-clip", "qk_clip_threshold"), java.util.Map.entry("ns-method", "ns_method"),
            java.util.Map.entry("ns-precision", "ns_precision"),
            java.util.Map.entry("router-bias-rate", "router_bias_rate"), java.util.Map.entry("data", "data"));

    private java.util.Set<String> allowedChanges() {
        java.util.Set<String> names = new java.util.TreeSet<>();
        for (String raw : allowChanged) {
            String flag = raw.strip().replaceFirst("^--", "");
            if (flag.equals("all")) {
                names.add("all");
            } else if (SETTING_OF_FLAG.containsKey(flag)) {
                names.add(SETTING_OF_FLAG.get(flag));
            } else if (SETTING_OF_FLAG.containsValue(flag)) {
                names.add(flag);
            } else {
                throw new IllegalArgumentException("--allow-changed: unknown setting '" + raw + "'; the settings are "
                        + new java.util.TreeSet<>(SETTING_OF_FLAG.keySet()) + " and all");
            }
        }
        return names;
    }

    private RunOptions runOptions() {
        RunOptions.Start start = resume ? RunOptions.Start.RESUME
                : resumeOrStart ? RunOptions.Start.RESUME_OR_FRESH : RunOptions.Start.FRESH;
        return RunOptions.fresh().withStart(start).withStopAfter(stopAfter == null ? Long.MAX_VALUE : stopAfter)
                .withAllowedChanges(allowedChanges())
                .withHealth(collapseSteps == null ? HealthCheck.defaults()
                        : new HealthCheck(collapseSteps, HealthCheck.DEFAULT_UNIFORM_TOLERANCE));
    }

    /** The refusal in the command line's words: each differing setting by its flag. */
    static String describe(ChangedSettingsException e) {
        java.util.Map<String, String> flagOf = new java.util.HashMap<>();
        SETTING_OF_FLAG.forEach((flag, setting) -> flagOf.put(setting, flag));
        java.util.List<String> parts = new java.util.ArrayList<>();
        java.util.List<String> flags = new java.util.ArrayList<>();
        for (ChangedSettingsException.Change c : e.changes()) {
            String flag = flagOf.getOrDefault(c.setting(), c.setting());
            flags.add(flag);
            parts.add((flag.equals("data") ? "the training data (--data, --validation-fraction) differs" : "--" + flag + " is " + c.now()
                    + ", the checkpoint's " + c.saved()));
        }
        return "the resumed run would not continue the run it resumes: " + String.join("; ", parts)
                + ". Give the checkpoint's settings, or allow the change with --allow-changed " + String.join(",", flags)
                + " (recorded in metrics.jsonl)";
    }

    /** ", QK-clip at tau T" when QK-clip is on, else nothing: the training line's words for it. */
    static String qkClip(TrainConfig config) {
        return config.qkClip() ? ", QK-clip at tau "
                + java.math.BigDecimal.valueOf(config.qkClipThreshold()).stripTrailingZeros().toPlainString() : "";
    }

    private Path defaultRunDir() {
        return Path.of("runs", optimizer.name().toLowerCase(Locale.ROOT) + "-"
                + LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss")));
    }

    /** This rank's backend: the chosen one, with the machine's cores shared among the ranks on it. */
    private Backend openForRank(int ranksHere) {
        if (backendOptions.threads == null) {
            backendOptions.threads = Math.max(1, Runtime.getRuntime().availableProcessors() / Math.max(1, ranksHere));
        }
        return backendOptions.open();
    }

    private void train(PrintWriter out, Backend backend, Collectives comm, int n) throws Exception {
        ModelConfig shape = options.model(256);
        TokenDataset data = options.dataset(shape.contextLength());
        ModelConfig model = options.model(data.vocabSize());
        TrainConfig config = options.train(optimizer, model.contextLength(), 300);
        Path dir = runDir != null ? runDir : defaultRunDir();
        out.println(backendOptions.describe(backend));
        out.println("data: " + data.describe());
        out.println(model.table());
        out.printf(Locale.ROOT, "training: %s, %d steps of %d sequences x %d tokens, lr %.3g (AdamW) / %.3g (Muon), run directory %s%n",
                optimizer == OptimizerChoice.MUON ? "MUON (" + config.muonVariant().name().toLowerCase(Locale.ROOT)
                        + (config.cautiousWeightDecay() ? ", cautious weight decay" : "")
                        + (config.perHeadQk() ? ", per-head Q/K" : "")
                        + (config.nsMethod() == NewtonSchulzConfig.Method.GRAM ? ", Gram Newton-Schulz" : "")
                        + (config.nsPrecision() != config.muonVariant().defaultPrecision()
                                ? ", Newton-Schulz in " + config.nsPrecision().name().toLowerCase(Locale.ROOT) : "") + ")"
                        + qkClip(config) : optimizer + qkClip(config),
                config.steps(), config.sequencesPerStep(), model.contextLength(), config.learningRate(), config.muonLearningRate(), dir);
        if (n > 1) {
            out.printf(Locale.ROOT, "data parallel: %d ranks, %s, ZeRO-1 optimizer state%n", n, sharding);
        }
        out.flush();
        Progress progress = comm == null || comm.rank() == 0
                ? Progress.onStandardError(optimizer.name().toLowerCase(Locale.ROOT), config.steps()) : null;
        Trainer trainer = new Trainer(backend, model, config, data, dir, msg -> {
            out.println(msg);
            out.flush();
        }, progress, comm == null ? null : new Trainer.DataParallel(comm, sharding));
        if (initialWeights != null) {
            trainer.initializeFrom(initialWeights);
            out.println("initial weights: " + initialWeights.describe() + (initialWeights.step() != null ? " (step "
                    + initialWeights.step() + ")" : "") + "; the optimizer starts fresh (a run resuming its own checkpoint does not use them)");
        }
        Trainer.Result r;
        try {
            r = trainer.run(runOptions().withStopRequested(job.stopRequested()));
        } catch (ChangedSettingsException e) {
            throw new IllegalArgumentException(describe(e), e);
        }
        job.finished(r);
        if (r.stoppedOnRequest()) {
            out.printf(Locale.ROOT, "stopped after step %d: %,.0f tokens/s; metrics in %s%n",
                    r.steps().isEmpty() ? r.startStep() : r.steps().getLast().step(), r.tokensPerSecond(), dir.resolve("metrics.jsonl"));
        } else {
            out.printf(Locale.ROOT, "done: final validation loss %.4f, %,.0f tokens/s; metrics in %s%n",
                    r.finalValidationLoss(), r.tokensPerSecond(), dir.resolve("metrics.jsonl"));
        }
        printTimings(out, r.timings(), n);
        out.flush();
    }

    /** Rank 0's mean step, split; the first step (JIT warm-up) is left out when there are others. */
    static void printTimings(PrintWriter out, java.util.List<Trainer.StepTiming> timings, int n) {
        java.util.List<Trainer.StepTiming> t = timings.size() > 1 ? timings.subList(1, timings.size()) : timings;
        if (t.isEmpty()) {
            return;
        }
        Trainer.StepTiming m = Trainer.StepTiming.mean(t);
        int k = t.size();
        out.printf(Locale.ROOT, "step time (rank 0, mean of %d step%s%s): %.3f s = compute %.3f + communication %.3f + Newton-Schulz %.3f"
                        + " + other optimizer %.3f%s%n", k, k == 1 ? "" : "s", timings.size() > 1 ? " after the first" : "",
                m.totalSeconds(), m.computeSeconds(), m.communicationSeconds(), m.newtonSchulzSeconds(), m.optimizerSeconds(),
                n > 1 ? String.format(Locale.ROOT, "; sent %.2f MB, received %.2f MB per step", m.bytesSent() / 1e6, m.bytesReceived() / 1e6) : "");
    }
}
