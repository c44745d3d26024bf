package dev.muon4j.cli;

import dev.muon4j.backend.Backend;
import dev.muon4j.data.TokenDataset;
import dev.muon4j.experiments.CompareReport;
import dev.muon4j.nn.DeepSeekConfig;
import dev.muon4j.nn.LlamaConfig;
import dev.muon4j.nn.ModelConfig;
import dev.muon4j.train.OptimizerChoice;
import dev.muon4j.train.Progress;
import dev.muon4j.train.TrainConfig;
import dev.muon4j.train.Trainer;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
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
 * over), then prints a table and writes a report with the validation-loss plot and the token ratio;
 * for a Mixture-of-Experts model also the expert-load plot. The model is the DeepSeek-V3-style
 * Mixture-of-Experts model (Moonlight's architecture) unless {@code --model llama} asks for the
 * dense one, and the routers' bias rate defaults to 0.01 (see {@link TrainingOptions}).
 */
@Command(name = "compare", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Train the same model (by default the tiny Mixture-of-Experts model, Moonlight's architecture; --model llama for "
                + "the dense one) with AdamW and with Muon on the same data and token budget; print a table and write "
                + "report.md and loss.svg (validation loss against tokens, and the tokens Muon needed to reach AdamW's final loss); "
                + "for a Mixture-of-Experts model also load.svg (the largest expert load over the mean, per step).")
public final class CompareCommand implements Callable<Integer> {
    @Mixin
    TrainingOptions options;

    @Mixin
    BackendOptions backendOptions;

    @Option(names = "--out", paramLabel = "DIR", description = "Report and run directories (default: runs/compare-<date-time>).")
    Path out;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws Exception {
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
        TrainConfig muonConfig = adamwConfig.withOptimizer(OptimizerChoice.MUON);
        Path dir = out != null ? out
                : Path.of("runs", "compare-" + LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss")));
        String training = String.format(Locale.ROOT, "%d steps x %d sequences x %d tokens = %,d tokens; AdamW lr %.3g, Muon lr %.3g (%s, %d warm-up), "
                        + "weight decay %.3g, clip %.2g, seed %d", adamwConfig.steps(), adamwConfig.sequencesPerStep(),
                model.contextLength(), adamwConfig.steps() * adamwConfig.sequencesPerStep() * model.contextLength(),
                adamwConfig.learningRate(), adamwConfig.muonLearningRate(), adamwConfig.schedule().name().toLowerCase(Locale.ROOT), adamwConfig.warmupSteps(),
                adamwConfig.weightDecay(), adamwConfig.clipNorm(), adamwConfig.seed());
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
            Trainer.Result adamw = train(backend, model, adamwConfig, data, dir.resolve("adamw"), w);
            Trainer.Result muon = train(backend, model, muonConfig, data, dir.resolve("muon"), w);
            double ratio = CompareReport.tokenRatio(adamw, muon);
            w.println();
            w.printf(Locale.ROOT, "%-8s %22s %14s %12s%n", "", "final validation loss", "tokens", "tokens/s");
            w.printf(Locale.ROOT, "%-8s %22.4f %,14d %,12.0f%n", "AdamW", adamw.finalValidationLoss(),
                    adamw.evals().getLast().tokens(), adamw.tokensPerSecond());
            w.printf(Locale.ROOT, "%-8s %22.4f %,14d %,12.0f%n", "Muon", muon.finalValidationLoss(),
                    muon.evals().getLast().tokens(), muon.tokensPerSecond());
            if (Double.isFinite(ratio)) {
                w.printf(Locale.ROOT, "%nMuon reached AdamW's final validation loss with %.1f%% of AdamW's tokens (ratio %.3f).%n",
                        100 * ratio, ratio);
            } else {
                w.printf(Locale.ROOT, "%nMuon did not reach AdamW's final validation loss within the budget.%n");
            }
            boolean moe = CompareReport.hasExpertLoads(adamw) && CompareReport.hasExpertLoads(muon);
            if (moe) {
                w.println();
                w.println("expert load, largest over mean in the worst MoE layer (1 = balanced):");
                for (Trainer.Result r : new Trainer.Result[] {adamw, muon}) {
                    double[] worst = CompareReport.worstLoadPerStep(r);
                    w.printf(Locale.ROOT, "%-8s final %.3f, mean over the steps %.3f%n", r == adamw ? "AdamW" : "Muon",
                            worst[worst.length - 1], java.util.Arrays.stream(worst).average().orElse(Double.NaN));
                }
            }
            String machine = Runtime.getRuntime().availableProcessors() + " processors, " + System.getProperty("os.arch")
                    + ", Java " + Runtime.version();
            Path report = CompareReport.write(dir, new CompareReport.Inputs(commandLine(), machine, backend.description(),
                    data.describe(), modelText, training, adamw, muon,
                    model instanceof DeepSeekConfig ds ? ds.moe().firstDenseLayers() : 0));
            w.println("report: " + report + " (plot: " + dir.resolve("loss.svg") + (moe ? ", " + dir.resolve("load.svg") : "") + ")");
        }
        return 0;
    }

    private Trainer.Result train(Backend backend, ModelConfig model, TrainConfig config, TokenDataset data, Path dir, PrintWriter w)
            throws java.io.IOException {
        String label = config.optimizer().name().toLowerCase(Locale.ROOT);
        w.println();
        w.println("== " + label + " ==");
        w.flush();
        Trainer trainer = new Trainer(backend, model, config, data, dir, msg -> {
            w.println(msg);
            w.flush();
        }, Progress.onStandardError(label, config.steps()));
        Trainer.Result r = trainer.run(false);
        w.printf(Locale.ROOT, "%s: final validation loss %.4f, %,.0f tokens/s, %.0f s%n", label, r.finalValidationLoss(),
                r.tokensPerSecond(), r.trainSeconds());
        return r;
    }

    private String commandLine() {
        StringBuilder s = new StringBuilder("./muon4j");
        for (String arg : spec.commandLine().getParseResult().originalArgs()) {
            s.append(' ').append(arg);
        }
        return s.toString();
    }
}
