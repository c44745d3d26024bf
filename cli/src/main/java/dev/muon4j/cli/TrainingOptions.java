package dev.muon4j.cli;

import dev.muon4j.data.Corpus;
import dev.muon4j.data.ShippedCorpus;
import dev.muon4j.data.TokenDataset;
import dev.muon4j.data.TokenizerKind;
import dev.muon4j.nn.LlamaConfig;
import dev.muon4j.nn.ModelConfig;
import dev.muon4j.optim.NewtonSchulzConfig;
import dev.muon4j.train.MuonVariant;
import dev.muon4j.train.OptimizerChoice;
import dev.muon4j.train.ScheduleKind;
import dev.muon4j.train.TrainConfig;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import picocli.CommandLine;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** Model, data and optimisation flags shared by {@code train} and {@code compare}. */
public final class TrainingOptions {
    /** The default of {@code --batch}. */
    static final String DEFAULT_BATCH = "16";

    @Option(names = "--preset", defaultValue = "TINY", paramLabel = "NAME",
            description = "Model size: ${COMPLETION-CANDIDATES} (default: ${DEFAULT-VALUE}).")
    ModelPreset preset;

    @Mixin
    ModelShapeOptions shape;

    @Option(names = "--router-bias-rate", paramLabel = "GAMMA",
            description = "deepseek: how far each expert's choice bias moves per step towards balanced loads "
                    + "(auxiliary-loss-free balancing); 0 turns it off (default: DeepSeek-V3's 0.001; 0.01 for compare, whose "
                    + "120 steps would move a bias at most 0.12 at 0.001, too little to balance the tiny model's 16 experts).")
    Double routerBiasRate;

    /** γ when {@code --router-bias-rate} is not given: DeepSeek-V3's, except where a command sets its own. */
    double defaultRouterBiasRate = 0.001;

    @Option(names = "--data", paramLabel = "PATH", arity = "1..*",
            description = "Text files or directories of .txt files (default: the shipped Gutenberg sample).")
    List<Path> data;

    @Option(names = "--corpus", paramLabel = "NAME", converter = CorpusName.class,
            description = "A corpus shipped with muon4j: gutenberg (eight Project Gutenberg books, the default) or sotu (the State "
                    + "of the Union addresses of 1970-2021); not with --data.")
    ShippedCorpus corpus;

    /** {@code --corpus NAME}: a shipped corpus by its name; an unknown one is refused with the names. */
    static final class CorpusName implements CommandLine.ITypeConverter<ShippedCorpus> {
        @Override
        public ShippedCorpus convert(String value) {
            try {
                return ShippedCorpus.parse(value);
            } catch (IllegalArgumentException e) {
                throw new CommandLine.TypeConversionException(e.getMessage());
            }
        }
    }

    @Option(names = "--tokenizer", defaultValue = "BYTE", description = "Tokenizer: ${COMPLETION-CANDIDATES} (default: ${DEFAULT-VALUE}).")
    TokenizerKind tokenizer;

    @Option(names = "--validation-fraction", defaultValue = "0.05", description = "Share of the corpus held out for validation (default: ${DEFAULT-VALUE}).")
    double validationFraction;

    @Option(names = "--lr", defaultValue = "3e-3", description = "Peak learning rate of AdamW (default: ${DEFAULT-VALUE}).")
    double learningRate;

    @Option(names = "--muon-lr", description = "Peak learning rate of Muon's hidden matrices (default: 4 x --lr; "
            + "Moonlight's 'same as AdamW' is --muon-lr equal to --lr).")
    Double muonLearningRate;

    @Option(names = "--muon-variant", defaultValue = "MOONLIGHT", paramLabel = "NAME",
            description = "Muon of the hidden matrices: ${COMPLETION-CANDIDATES} (default: ${DEFAULT-VALUE}); see README.")
    MuonVariant muonVariant;

    @Option(names = "--ns-method", defaultValue = "STANDARD", paramLabel = "METHOD",
            description = "How Muon's Newton-Schulz is computed: ${COMPLETION-CANDIDATES} (default: ${DEFAULT-VALUE}). 'gram' is "
                    + "Gram Newton-Schulz (same result in exact arithmetic, fewer flops when a matrix is more than twice as "
                    + "wide as tall; square matrices run the standard iteration); float32 only, not with --muon-variant torch.")
    NewtonSchulzConfig.Method nsMethod;

    @Option(names = "--ns-precision", paramLabel = "PRECISION",
            description = "Precision of Muon's Newton-Schulz: F32 or BF16 (default: the variant's, F32 but for --muon-variant torch, "
                    + "which is always BF16). BF16 multiplies bfloat16 matrices with float32 sums, twice as fast where the "
                    + "processor has bfloat16 dot products (AVX512_BF16, AMX); not with --ns-method gram.")
    dev.muon4j.tensor.DType nsPrecision;

    @Option(names = "--cautious-weight-decay", description = "Decay only the hidden matrices' weights that the Muon update "
            + "already pushes towards zero (cautious weight decay).")
    boolean cautiousWeightDecay;

    @Option(names = "--per-head-qk", description = "Orthogonalize the attention's query and key projections head by head "
            + "(each head's D x C block alone, scaled by its shape).")
    boolean perHeadQk;

    @Option(names = "--qk-clip", defaultValue = "0", paramLabel = "TAU",
            description = "QK-clip (MuonClip): after each optimizer step, scale down the query and key projections of every "
                    + "attention head whose largest pre-softmax logit in the step passed TAU (Kimi K2 uses 100); 0: off "
                    + "(default). metrics.jsonl then records max_logit and clipped_heads per step.")
    double qkClip;

    @Option(names = "--weight-decay", defaultValue = "0.1", description = "Decoupled weight decay (default: ${DEFAULT-VALUE}).")
    double weightDecay;

    @Option(names = "--beta2", defaultValue = "0.95", description = "AdamW beta2 (default: ${DEFAULT-VALUE}).")
    double beta2;

    @Option(names = "--momentum", defaultValue = "0.95", description = "Muon momentum (default: ${DEFAULT-VALUE}).")
    double momentum;

    @Option(names = "--schedule", defaultValue = "COSINE", description = "Learning-rate schedule: ${COMPLETION-CANDIDATES} (default: ${DEFAULT-VALUE}).")
    ScheduleKind schedule;

    @Option(names = "--warmup", defaultValue = "20", description = "Warm-up steps (default: ${DEFAULT-VALUE}).")
    long warmup;

    @Option(names = "--steps", description = "Optimizer steps (default: 300 for train, 120 for compare, or from --tokens).")
    Long steps;

    @Option(names = "--tokens", description = "Token budget; sets the step count from the tokens per step.")
    Long tokens;

    @Option(names = "--batch", defaultValue = DEFAULT_BATCH, description = "Sequences per micro-batch (default: ${DEFAULT-VALUE}).")
    int batch;

    @Option(names = "--accumulate", defaultValue = "1", description = "Micro-batches per optimizer step (default: ${DEFAULT-VALUE}).")
    int accumulate;

    @Option(names = "--clip", defaultValue = "1.0", description = "Global gradient-norm clip, 0 for none (default: ${DEFAULT-VALUE}).")
    double clip;

    @Option(names = "--seed", defaultValue = "1", description = "Seed of weights and data order (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--eval-every", description = "Validate every N steps (default: a tenth of the steps).")
    Long evalEvery;

    @Option(names = "--eval-batches", defaultValue = "8", description = "Validation batches per evaluation (default: ${DEFAULT-VALUE}).")
    int evalBatches;

    @Option(names = "--checkpoint-every", defaultValue = "100", description = "Checkpoint every N steps, 0 for only at the end (default: ${DEFAULT-VALUE}).")
    long checkpointEvery;

    @Option(names = "--keep", defaultValue = "3", description = "Newest checkpoints kept (default: ${DEFAULT-VALUE}).")
    int keep;

    /**
     * Checks every integer flag and every size the run will allocate, before anything is: counts
     * below their minimum, sequences or tokens per step beyond what the trainer counts, arrays longer
     * than a Java array (see {@link SizeLimits#checkArrays}) and a heap need beyond the JVM's limit
     * (see {@link SizeLimits#checkHeap}).
     *
     * @param optimizer the optimizer, whose state the heap need counts
     * @param ranks     the data-parallel ranks the batch and the optimizer state are split over, at least 1
     * @throws IllegalArgumentException naming the flag, its value and the limit
     */
    void checkSizes(OptimizerChoice optimizer, int ranks) {
        atLeast("--batch", batch, 1);
        atLeast("--accumulate", accumulate, 1);
        atLeast("--warmup", warmup, 0);
        atLeast("--eval-batches", evalBatches, 1);
        atLeast("--checkpoint-every", checkpointEvery, 0);
        atLeast("--keep", keep, 1);
        if (steps != null) {
            atLeast("--steps", steps, 1);
        }
        if (tokens != null) {
            atLeast("--tokens", tokens, 1);
        }
        if (evalEvery != null) {
            atLeast("--eval-every", evalEvery, 1);
        }
        if ((long) batch * accumulate > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(String.format(Locale.ROOT, "--batch %d × --accumulate %d = %,d sequences per step, "
                    + "more than the trainer counts (%,d)", batch, accumulate, (long) batch * accumulate, Integer.MAX_VALUE));
        }
        ModelConfig model = model(tokenizer.create().vocabSize());
        long tokensPerStep = (long) batch * accumulate * model.contextLength();
        if (steps != null && steps > Long.MAX_VALUE / tokensPerStep) {
            throw new IllegalArgumentException(String.format(Locale.ROOT, "--steps %d is too many: with %,d tokens per step "
                            + "(--batch %d × --accumulate %d × context %d) the run's token count exceeds %,d; the most steps are %,d",
                    steps, tokensPerStep, batch, accumulate, model.contextLength(), Long.MAX_VALUE, Long.MAX_VALUE / tokensPerStep));
        }
        SizeLimits.checkArrays(model, batch, ranks, new SizeLimits.Flags(preset.config(), Integer.parseInt(DEFAULT_BATCH), true));
        SizeLimits.checkHeap(b -> SizeLimits.trainingHeap(model, optimizer, b, ranks, false), batch, Runtime.getRuntime().maxMemory(),
                "--batch, --context or the model size");
    }

    private static void atLeast(String flag, long value, long least) {
        if (value < least) {
            throw new IllegalArgumentException(flag + " must be at least " + least + ", got " + value);
        }
    }

    /** The model of the directory a run starts from ({@code train --init-from}); null: the preset and the flags. */
    ModelConfig initialModel;

    /**
     * The model config: the directory's when a run starts from one, else the preset of the chosen family with
     * any flags applied, the vocabulary set from the tokenizer.
     */
    ModelConfig model(int vocabSize) {
        return initialModel != null ? initialModel : shape.model(preset, vocabSize);
    }

    /** Loads the corpus and tokenizes it. */
    TokenDataset dataset(int contextLength) {
        boolean files = data != null && !data.isEmpty();
        if (files && corpus != null) {
            throw new IllegalArgumentException("give --data or --corpus, not both (--corpus " + corpus.id() + " names a shipped corpus, "
                    + "--data files)");
        }
        Corpus text = files ? Corpus.fromPaths(data) : Corpus.shipped(corpus != null ? corpus : ShippedCorpus.GUTENBERG);
        return TokenDataset.of(text, tokenizer.create(), validationFraction, contextLength);
    }

    /** The training config for {@code optimizer}; {@code defaultSteps} applies when neither --steps nor --tokens is given. */
    TrainConfig train(OptimizerChoice optimizer, int contextLength, long defaultSteps) {
        if (steps != null && tokens != null) {
            throw new IllegalArgumentException("give --steps or --tokens, not both");
        }
        if (nsMethod == NewtonSchulzConfig.Method.GRAM && muonVariant == MuonVariant.TORCH) {
            throw new IllegalArgumentException("--ns-method gram does not combine with --muon-variant torch: Gram Newton-Schulz "
                    + "runs in float32, torch's Newton-Schulz in bfloat16");
        }
        if (nsPrecision != null && nsPrecision != muonVariant.defaultPrecision() && muonVariant == MuonVariant.TORCH) {
            throw new IllegalArgumentException("--ns-precision " + nsPrecision + " does not combine with --muon-variant torch: "
                    + "torch's Newton-Schulz is bfloat16 arithmetic");
        }
        if (nsPrecision == dev.muon4j.tensor.DType.BF16 && nsMethod == NewtonSchulzConfig.Method.GRAM) {
            throw new IllegalArgumentException("--ns-method gram does not combine with --ns-precision BF16: Gram Newton-Schulz "
                    + "runs in float32");
        }
        if (!(qkClip >= 0) || !Double.isFinite(qkClip)) {
            throw new IllegalArgumentException("--qk-clip must be a finite threshold > 0, or 0 for off; got " + qkClip);
        }
        long tokensPerStep = (long) batch * accumulate * contextLength;
        long n = steps != null ? steps : tokens != null ? Math.max(1, tokens / tokensPerStep) : defaultSteps;
        long every = evalEvery != null ? evalEvery : Math.max(1, n / 10);
        return new TrainConfig(optimizer, learningRate, muonLearningRate != null ? muonLearningRate : 4 * learningRate, weightDecay, 0.9, beta2, momentum, schedule, Math.min(warmup, n), n,
                0.1, batch, accumulate, clip, seed, every, evalBatches, checkpointEvery, keep).withMuon(muonVariant, cautiousWeightDecay, perHeadQk)
                .withQkClip(qkClip).withNsMethod(nsMethod).withRouterBiasRate(routerBiasRate != null ? routerBiasRate : defaultRouterBiasRate)
                .withNsPrecision(nsPrecision != null ? nsPrecision : muonVariant.defaultPrecision());
    }
}
