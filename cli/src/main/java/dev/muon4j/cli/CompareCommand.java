package dev.muon4j.cli;

import dev.muon4j.backend.Backend;
import dev.muon4j.data.TokenDataset;
import dev.muon4j.experiments.CompareReport;
import dev.muon4j.experiments.CompareRun;
import dev.muon4j.nn.DeepSeekConfig;
import dev.muon4j.nn.LlamaConfig;
import dev.muon4j.nn.ModelConfig;
import dev.muon4j.train.ChangedSettingsException;
import dev.muon4j.train.OptimizerChoice;
import dev.muon4j.train.Progress;
import dev.muon4j.train.RunOptions;
import dev.muon4j.train.TrainConfig;
import dev.muon4j.train.Trainer;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.time.Instant;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code muon4j compare}: the main job. Trains the same model on the same data and token budget
 * with AdamW and with Muon (Moonlight's variant, so AdamW's learning rate and weight decay carry
 * over), for one seed or several ({@code --seeds}), then prints a table and writes a report with the
 * validation-loss plot, the tokens and the training wall-clock each optimizer needed to reach AdamW's
 * final validation loss, their ratios and each optimizer's tokens/s (see {@link CompareReport}); for a
 * Mixture-of-Experts model also the expert-load plot. Each run has its own directory and resumes from
 * its latest checkpoint, so the same command after an interruption carries on (a run that ended trains
 * nothing). The model is the DeepSeek-V3-style Mixture-of-Experts model (Moonlight's architecture)
 * unless {@code --model llama} asks for the dense one, and the routers' bias rate defaults to 0.01
 * (see {@link TrainingOptions}).
 */
@Command(name = "compare", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Train the same model (by default the tiny Mixture-of-Experts model, Moonlight's architecture; --model llama for "
                + "the dense one) with AdamW and with Muon on the same data and token budget, for one seed or several; print a table "
                + "and write report.md and loss.svg (validation loss against tokens; the tokens and the training wall-clock each "
                + "optimizer needed to reach AdamW's final loss, their ratios, tokens/s); for a Mixture-of-Experts model also load.svg "
                + "(the largest expert load over the mean, per step). Run the same command again to carry on after an interruption.")
public final class CompareCommand implements Callable<Integer> {
    @Mixin
    TrainingOptions options;

    @Mixin
    BackendOptions backendOptions;

    @Option(names = "--out", paramLabel = "DIR", description = "Report and run directories (default: runs/compare-<date-time>).")
    Path out;

    @Option(names = "--seeds", paramLabel = "N", defaultValue = "1", description = "Seeds per optimizer: --seed, --seed + 1, …; "
            + "each seed's AdamW and Muon runs share initial weights and data order; the report gives the mean and spread over "
            + "the seeds (default: ${DEFAULT-VALUE}).")
    int seeds;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        if (seeds < 1) {
            throw new IllegalArgumentException("--seeds must be at least 1, got " + seeds);
        }
        // Moonlight's architecture by default; its routers balanced at a rate that acts within compare's short runs.
        options.shape.defaultFamily = ModelConfig.Family.DEEPSEEK;
        options.defaultRouterBiasRate = 0.01;
        // AdamW's run holds two moments per parameter, at least as much as Muon's: the larger of the two.
        options.checkSizes(OptimizerChoice.ADAMW, 1);
        PrintWriter w = spec.commandLine().getOut();
        ModelConfig shape = options.model(256);
        TokenDataset data = options.dataset(shape.contextLength());
        ModelConfig model = options.model(data.vocabSize());
        TrainConfig adamwConfig = options.train(OptimizerChoice.ADAMW, model.contextLength(), 120);
        long firstSeed = adamwConfig.seed();
        if (firstSeed > Long.MAX_VALUE - (seeds - 1)) {
            throw new IllegalArgumentException("--seed " + firstSeed + " with --seeds " + seeds + " runs past the largest seed, " + Long.MAX_VALUE);
        }
        Path dir = out != null ? out
                : Path.of("runs", "compare-" + LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss")));
        String training = String.format(Locale.ROOT, "%d steps x %d sequences x %d tokens = %,d tokens; AdamW lr %.3g, Muon lr %.3g (%s, %d warm-up), "
                        + "weight decay %.3g, clip %.2g, %s", adamwConfig.steps(), adamwConfig.sequencesPerStep(),
                model.contextLength(), adamwConfig.steps() * adamwConfig.sequencesPerStep() * model.contextLength(),
                adamwConfig.learningRate(), adamwConfig.muonLearningRate(), adamwConfig.schedule().name().toLowerCase(Locale.ROOT), adamwConfig.warmupSteps(),
                adamwConfig.weightDecay(), adamwConfig.clipNorm(), seeds == 1 ? "seed " + firstSeed
                        : String.format(Locale.ROOT, "seeds %d to %d (each seed's two runs share initial weights and data order)", firstSeed,
                        firstSeed + seeds - 1));
        if (model instanceof DeepSeekConfig) {
            training += String.format(Locale.ROOT, "; router bias rate %.3g", adamwConfig.routerBiasRate());
        }
        String modelText = model.describe();
        try (Backend backend = backendOptions.open()) {
            w.println(backendOptions.describe(backend));
            w.println("data: " + data.describe());
            w.println(model.table());
            w.println("training (each optimizer): " + training);
            w.println("output: " + dir);
            w.flush();
            List<CompareReport.Pair> pairs = new ArrayList<>();
            for (long seed = firstSeed; seed < firstSeed + seeds; seed++) {
                TrainConfig seeded = adamwConfig.toBuilder().seed(seed).build();
                CompareRun adamw = train(backend, model, seeded, data, runDir(dir, seed, firstSeed, seeded), w);
                TrainConfig muonConfig = seeded.withOptimizer(OptimizerChoice.MUON);
                CompareRun muon = train(backend, model, muonConfig, data, runDir(dir, seed, firstSeed, muonConfig), w);
                pairs.add(new CompareReport.Pair(seed, adamw, muon));
            }
            w.println();
            w.print(CompareReport.resultTable(pairs).text());
            w.println();
            w.println(CompareReport.verdict(pairs));
            boolean moe = CompareReport.hasExpertLoads(pairs);
            if (moe) {
                w.println();
                w.println("expert load, largest over mean in the worst MoE layer (1 = balanced):");
                for (CompareReport.Pair p : pairs) {
                    for (CompareRun r : List.of(p.adamw(), p.muon())) {
                        double[] worst = CompareReport.worstLoadPerStep(r);
                        w.printf(Locale.ROOT, "%-8s final %.3f, mean over the steps %.3f%n", (r == p.adamw() ? "AdamW" : "Muon")
                                        + (seeds == 1 ? "" : " seed " + p.seed()), worst[worst.length - 1],
                                java.util.Arrays.stream(worst).average().orElse(Double.NaN));
                    }
                }
            }
            String machine = Runtime.getRuntime().availableProcessors() + " processors, " + System.getProperty("os.arch")
                    + ", Java " + Runtime.version();
            Path report = CompareReport.write(dir, new CompareReport.Inputs(commandLine(), machine, backend.description(),
                    data.describe(), modelText, training, pairs,
                    model instanceof DeepSeekConfig ds ? ds.moe().firstDenseLayers() : 0));
            w.println("report: " + report + " (plot: " + dir.resolve("loss.svg") + (moe ? ", " + dir.resolve("load.svg") : "") + ")");
        }
        return 0;
    }

    /**
     * A run's directory: {@code <out>/adamw} and {@code <out>/muon} for the first seed (all there is with one seed),
     * {@code <out>/seed-<s>/adamw} and {@code <out>/seed-<s>/muon} for each further seed s; so more seeds on the same
     * {@code --out} add to the runs already there.
     */
    private static Path runDir(Path dir, long seed, long firstSeed, TrainConfig config) {
        String name = config.optimizer().name().toLowerCase(Locale.ROOT);
        return seed == firstSeed ? dir.resolve(name) : dir.resolve("seed-" + seed).resolve(name);
    }

    /**
     * Trains one run to its end: a new run, or one continued from its latest checkpoint (a run that ended earlier
     * trains nothing); then reads it back from its directory, every sitting of it.
     */
    private CompareRun train(Backend backend, ModelConfig model, TrainConfig config, TokenDataset data, Path dir, PrintWriter w)
            throws java.io.IOException {
        String label = config.optimizer().name().toLowerCase(Locale.ROOT) + (seeds == 1 ? "" : " seed " + config.seed());
        w.println();
        w.println("== " + label + " ==");
        w.flush();
        Trainer trainer = new Trainer(backend, model, config, data, dir, msg -> {
            w.println(msg);
            w.flush();
        }, Progress.onStandardError(label, config.steps()));
        Instant started = Instant.now();
        long t0 = System.nanoTime();
        Trainer.Result r;
        try {
            r = trainer.run(RunOptions.fresh().withStart(RunOptions.Start.RESUME_OR_FRESH));
        } catch (ChangedSettingsException e) {
            throw new IllegalStateException("run directory " + dir + " holds a checkpoint of other settings (" + e.getMessage()
                    + "): give another --out, or remove that directory to train the run anew", e);
        }
        if (!r.steps().isEmpty()) {
            CompareRun.recordSitting(dir, started, (System.nanoTime() - t0) / 1e9, r.startStep(), r.steps().getLast().step());
        }
        CompareRun run = CompareRun.read(dir);
        w.printf(Locale.ROOT, "%s: final validation loss %.4f, %,.0f tokens/s, %.0f s%n", label, run.finalValidationLoss(),
                run.tokensPerSecond(), run.trainSeconds());
        return run;
    }

    private String commandLine() {
        StringBuilder s = new StringBuilder("./muon4j");
        for (String arg : spec.commandLine().getParseResult().originalArgs()) {
            s.append(' ').append(arg);
        }
        return s.toString();
    }
}
