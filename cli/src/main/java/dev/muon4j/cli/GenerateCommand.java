package dev.muon4j.cli;

import dev.muon4j.backend.Backend;
import dev.muon4j.data.TokenTextStream;
import dev.muon4j.data.Tokenizer;
import dev.muon4j.nn.Generator;
import dev.muon4j.nn.Sampler;
import dev.muon4j.nn.SamplingConfig;
import dev.muon4j.train.TrainedModel;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.CharacterCodingException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code muon4j generate}: sample text from a trained model, token by token, as nanoGPT's {@code sample.py} does. */
@Command(name = "generate", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Sample text from a trained model's checkpoint and stream it to standard output as it is generated "
                + "(UTF-8; a character whose bytes span several tokens is printed once it is whole). The prompt is printed "
                + "first; what the run and the timing say goes to standard error.",
                "Works for the dense (llama) and the Mixture-of-Experts (deepseek) models. There is no key/value cache: each new "
                        + "token is one forward pass over the sequence so far, cropped to its last <context> tokens once it is "
                        + "longer (as nanoGPT's sample.py does)."})
public final class GenerateCommand implements Callable<Integer>, OneLineParseErrors {
    /** Without a prompt, generation starts after a newline (not printed), as nanoGPT's sample.py does. */
    static final String DEFAULT_START = "\n";

    @Mixin
    CheckpointOption checkpoint;

    @Option(names = "--prompt", paramLabel = "TEXT", description = "The text to continue (default: none; generation starts "
            + "after a newline).")
    String prompt;

    @Option(names = "--prompt-file", paramLabel = "FILE", description = "Read the prompt from this UTF-8 file instead.")
    Path promptFile;

    @Option(names = "--max-tokens", defaultValue = "500", paramLabel = "N",
            description = "Tokens to generate per sample (default: ${DEFAULT-VALUE}).")
    int maxTokens;

    @Option(names = "--temperature", defaultValue = "0.8", paramLabel = "T",
            description = "Divide the logits by T before the softmax: below 1 more likely tokens, above 1 more varied; "
                    + "0 is greedy decoding, always the most likely token (default: ${DEFAULT-VALUE}).")
    double temperature;

    @Option(names = "--top-k", defaultValue = "200", paramLabel = "K",
            description = "Draw only from the K most likely tokens; 0 turns it off (default: ${DEFAULT-VALUE}).")
    int topK;

    @Option(names = "--top-p", defaultValue = "1", paramLabel = "P",
            description = "Nucleus sampling: draw only from the smallest set of most likely tokens whose probabilities add up "
                    + "to P, in (0, 1]; 1 turns it off (default: ${DEFAULT-VALUE}).")
    double topP;

    @Option(names = "--seed", defaultValue = "1337", paramLabel = "N",
            description = "Seed of the draws: the same seed, checkpoint and flags give the same text (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--samples", defaultValue = "1", paramLabel = "N",
            description = "Samples of the same prompt, one after the other (the draws continue from one seeded generator), "
                    + "separated by a line of dashes (default: ${DEFAULT-VALUE}).")
    int samples;

    @Mixin
    BackendOptions backendOptions;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws IOException {
        SamplingConfig sampling = sampling();
        if (maxTokens < 0) {
            throw new IllegalArgumentException("--max-tokens must be >= 0, got " + maxTokens);
        }
        if (samples < 1) {
            throw new IllegalArgumentException("--samples must be >= 1, got " + samples);
        }
        String text = promptText();
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        TrainedModel trained = checkpoint.load(err);
        Tokenizer tokenizer = trained.tokenizer().create();
        int context = trained.config().contextLength();
        int[] promptTokens = tokenizer.encode(text.isEmpty() ? DEFAULT_START : text);
        if (promptTokens.length > context) {
            throw new IllegalArgumentException(String.format(Locale.ROOT, "%s is %,d tokens (%s), longer than the model's context "
                            + "of %d tokens; give at most %d tokens", promptFile != null ? "--prompt-file " + promptFile : "--prompt",
                    promptTokens.length, tokenizer.name(), context, context));
        }
        err.printf(Locale.ROOT, "checkpoint: %s (step %d); model: %s%n", CheckpointOption.shown(trained.checkpoint().dir()), trained.checkpoint().step(),
                trained.config().describe());
        err.flush();
        long generated = 0;
        long start = System.nanoTime();
        try (Backend backend = backendOptions.open();
             Generator generator = new Generator(backend, trained.model(), trained.config().vocabSize())) {
            err.println(backendOptions.describe(backend));
            err.flush();
            Sampler sampler = new Sampler(sampling, seed);
            TokenTextStream stream = new TokenTextStream(tokenizer);
            for (int s = 0; s < samples; s++) {
                if (s > 0) {
                    out.println("---------------");
                }
                out.print(text);
                out.flush();
                generated += generator.generate(promptTokens, maxTokens, sampler, token -> {
                    out.print(stream.push(token));
                    out.flush();
                }).length;
                out.println(stream.finish());
                out.flush();
            }
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        err.printf(Locale.ROOT, "generated %,d tokens in %.1f s (%,.0f tokens/s; %s)%n", generated, seconds,
                generated / Math.max(seconds, 1e-9), sampling.isGreedy() ? "greedy"
                        : String.format(Locale.ROOT, "temperature %s, top-k %d, top-p %s, seed %d", plain(temperature), topK, plain(topP), seed));
        err.flush();
        return 0;
    }

    /** The sampling settings, each flag checked with its name. */
    SamplingConfig sampling() {
        if (!(temperature >= 0) || Double.isInfinite(temperature)) {
            throw new IllegalArgumentException("--temperature must be a finite number >= 0 (0: greedy decoding), got " + temperature);
        }
        if (topK < 0) {
            throw new IllegalArgumentException("--top-k must be >= 0 (0: off), got " + topK);
        }
        if (!(topP > 0 && topP <= 1)) {
            throw new IllegalArgumentException("--top-p must lie in (0, 1] (1: off), got " + topP);
        }
        return new SamplingConfig(temperature, topK, topP);
    }

    private String promptText() throws IOException {
        if (prompt != null && promptFile != null) {
            throw new IllegalArgumentException("give --prompt or --prompt-file, not both");
        }
        if (promptFile == null) {
            return prompt == null ? "" : prompt;
        }
        try {
            return Files.readString(promptFile);
        } catch (NoSuchFileException e) {
            throw new IllegalArgumentException("--prompt-file " + promptFile + " does not exist");
        } catch (CharacterCodingException e) {
            throw new IllegalArgumentException("--prompt-file " + promptFile + " is not UTF-8 text");
        } catch (IOException e) {
            throw new IOException("--prompt-file " + promptFile + " cannot be read: " + e.getMessage(), e);
        }
    }

    private static String plain(double v) {
        return java.math.BigDecimal.valueOf(v).stripTrailingZeros().toPlainString();
    }
}
