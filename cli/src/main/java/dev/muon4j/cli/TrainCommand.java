package dev.muon4j.cli;

import dev.muon4j.backend.Backend;
import dev.muon4j.data.TokenDataset;
import dev.muon4j.nn.LlamaConfig;
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

    @Option(names = "--resume", description = "Continue from the run directory's latest checkpoint (needs --run-dir).")
    boolean resume;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        if (resume && runDir == null) {
            throw new IllegalArgumentException("--resume needs --run-dir to say which run to continue");
        }
        PrintWriter out = spec.commandLine().getOut();
        LlamaConfig shape = options.model(256);
        TokenDataset data = options.dataset(shape.contextLength());
        LlamaConfig model = options.model(data.vocabSize());
        TrainConfig config = options.train(optimizer, model.contextLength(), 300);
        Path dir = runDir != null ? runDir
                : Path.of("runs", optimizer.name().toLowerCase(Locale.ROOT) + "-"
                + LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss")));
        try (Backend backend = backendOptions.open()) {
            out.println("backend: " + backend.description());
            out.println("data: " + data.describe());
            out.printf(Locale.ROOT, "model: %,d parameters %s%n", model.parameterCount(), model);
            out.printf(Locale.ROOT, "training: %s, %d steps of %d sequences x %d tokens, lr %.3g (AdamW) / %.3g (Muon), run directory %s%n",
                    optimizer, config.steps(), config.sequencesPerStep(), model.contextLength(), config.learningRate(),
                    config.muonLearningRate(), dir);
            out.flush();
            Trainer trainer = new Trainer(backend, model, config, data, dir, msg -> {
                out.println(msg);
                out.flush();
            }, Progress.onStandardError(optimizer.name().toLowerCase(Locale.ROOT), config.steps()));
            Trainer.Result r = trainer.run(resume);
            out.printf(Locale.ROOT, "done: final validation loss %.4f, %,.0f tokens/s; metrics in %s%n",
                    r.finalValidationLoss(), r.tokensPerSecond(), dir.resolve("metrics.jsonl"));
        }
        return 0;
    }
}
