package dev.muon4j.cli;

import dev.muon4j.backend.Backend;
import dev.muon4j.data.Batch;
import dev.muon4j.data.BatchSampler;
import dev.muon4j.data.Corpus;
import dev.muon4j.data.ShippedCorpus;
import dev.muon4j.data.TokenDataset;
import dev.muon4j.data.Tokenizer;
import dev.muon4j.nn.ModelConfig;
import dev.muon4j.train.Evaluation;
import dev.muon4j.train.TrainedModel;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code muon4j eval}: a checkpoint's loss, perplexity and bits per byte on a corpus. */
@Command(name = "eval", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Validation loss of a trained model's checkpoint: the mean next-token cross-entropy over consecutive "
                + "windows of the context's length, its perplexity exp(loss), and bits per byte (the loss over the text's "
                + "bytes in bits; loss / ln 2 for the byte tokenizer).",
                "By default the corpus, validation split, batch size and batch count are the run's own, so the loss is the "
                        + "validation loss the trainer computes at the checkpoint's step. The same inputs give the same numbers."})
public final class EvalCommand implements Callable<Integer>, OneLineParseErrors {
    /** What part of the corpus is evaluated. */
    enum Split {
        /** The end of the corpus a run holds out (--validation-fraction). */
        VALIDATION,
        /** The whole corpus, for text of its own that no run trained on. */
        ALL
    }

    @Mixin
    CheckpointOption checkpoint;

    @Option(names = "--data", paramLabel = "PATH", arity = "1..*",
            description = "Text files or directories of .txt files (default: the corpus the run trained on, as its checkpoint "
                    + "records it; the shipped corpus for checkpoints that do not).")
    List<Path> data;

    @Option(names = "--split", defaultValue = "VALIDATION", paramLabel = "PART",
            description = "validation: the held-out end of the corpus; all: the whole corpus (default: ${DEFAULT-VALUE}).")
    Split split;

    @Option(names = "--validation-fraction", paramLabel = "F",
            description = "Share of the corpus held out for validation, from its end (default: the run's, else "
                    + TokenDataset.DEFAULT_VALIDATION_FRACTION + ").")
    Double validationFraction;

    @Option(names = "--batches", paramLabel = "N",
            description = "Batches to evaluate, or 0 for every window of the split (default: the run's --eval-batches).")
    Integer batches;

    @Option(names = "--batch", paramLabel = "B",
            description = "Sequences per batch (default: the run's --batch).")
    Integer batch;

    @Mixin
    BackendOptions backendOptions;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws IOException {
        if (batches != null && batches < 0) {
            throw new IllegalArgumentException("--batches must be >= 1, or 0 for every window, got " + batches);
        }
        if (batch != null && batch < 1) {
            throw new IllegalArgumentException("--batch must be at least 1, got " + batch);
        }
        if (validationFraction != null && !(validationFraction > 0 && validationFraction < 1)) {
            throw new IllegalArgumentException("--validation-fraction must lie in (0, 1), got " + validationFraction);
        }
        if (validationFraction != null && split == Split.ALL) {
            throw new IllegalArgumentException("--validation-fraction applies to --split validation only");
        }
        PrintWriter out = spec.commandLine().getOut();
        TrainedModel trained = checkpoint.load(spec.commandLine().getErr());
        ModelConfig model = trained.config();
        int context = model.contextLength();
        int rows = batch != null ? batch : trained.batchSize().orElse(Integer.parseInt(TrainingOptions.DEFAULT_BATCH));
        int count = batches != null ? batches : trained.evalBatches().orElse(8);
        SizeLimits.checkArrays(model, rows, 1, new SizeLimits.Flags(model.trunk(), rows, false));
        Tokenizer tokenizer = trained.tokenizer().create();
        Corpus corpus = corpus(trained);
        double fraction = validationFraction != null ? validationFraction
                : trained.validationFraction().orElse(TokenDataset.DEFAULT_VALIDATION_FRACTION);
        int limit = count == 0 ? Integer.MAX_VALUE : count;
        List<Batch> evaluated;
        String part;
        if (split == Split.VALIDATION) {
            TokenDataset dataset = TokenDataset.of(corpus, tokenizer, fraction, context);
            evaluated = dataset.validationBatches(limit, rows, context);
            boolean same = trained.dataFingerprint().map(dataset.fingerprint()::equals).orElse(false);
            part = String.format(Locale.ROOT, "validation split (last %s): %,d tokens%s", percent(fraction),
                    dataset.validationTokens().length, same ? ", the tokens the run validated on"
                            : trained.dataFingerprint().isPresent() ? ", not the run's validation data" : "");
        } else {
            int[] tokens = tokenizer.encode(corpus.text());
            if (tokens.length < context + 1) {
                throw new IllegalArgumentException(String.format(Locale.ROOT, "the corpus %s is %,d tokens, too short for one window "
                        + "of the model's context (%d tokens and the one after)", corpus.source(), tokens.length, context));
            }
            evaluated = BatchSampler.windows(tokens, limit, rows, context);
            part = String.format(Locale.ROOT, "all of it: %,d tokens", tokens.length);
        }
        out.printf(Locale.ROOT, "checkpoint: %s (step %d)%n", CheckpointOption.shown(trained.checkpoint().dir()), trained.checkpoint().step());
        out.println(model.table());
        out.printf(Locale.ROOT, "data: %s; %s tokens, %s%n", corpus.describe(), tokenizer.name(), part);
        out.flush();
        Evaluation e;
        try (Backend backend = backendOptions.open()) {
            out.println(backendOptions.describe(backend));
            out.flush();
            e = Evaluation.of(backend, trained.model(), evaluated, tokenizer);
        }
        out.printf(Locale.ROOT, "evaluated: %d batch%s of up to %d x %d tokens, %,d tokens (%,d bytes of text)%n", evaluated.size(),
                evaluated.size() == 1 ? "" : "es", rows, context, e.tokens(), e.bytes());
        out.printf(Locale.ROOT, "loss %.6f   perplexity %.4f   bits per byte %.6f%n", e.loss(), e.perplexity(), e.bitsPerByte());
        out.flush();
        return 0;
    }

    /** The corpus asked for, or the one the run recorded, or the shipped one. */
    private Corpus corpus(TrainedModel trained) {
        if (data != null && !data.isEmpty()) {
            return Corpus.fromPaths(data);
        }
        Corpus.Origin origin = trained.corpus().orElse(Corpus.Origin.of(ShippedCorpus.GUTENBERG));
        if (origin.shipped()) {
            return Corpus.shipped(origin.shippedCorpus());
        }
        for (Path p : origin.paths()) {
            if (!Files.exists(p)) {
                throw new IllegalArgumentException("the run trained on " + p + ", which no longer exists; give the corpus with --data");
            }
        }
        return Corpus.fromPaths(origin.paths());
    }

    private static String percent(double fraction) {
        return java.math.BigDecimal.valueOf(fraction).movePointRight(2).stripTrailingZeros().toPlainString() + "%";
    }
}
