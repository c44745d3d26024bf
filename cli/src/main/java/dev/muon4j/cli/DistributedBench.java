package dev.muon4j.cli;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.annotation.JsonNaming;
import dev.muon4j.bench.DistributedBenchmark;
import dev.muon4j.bench.DistributedBenchmark.Measurement;
import dev.muon4j.bench.DistributedBenchmark.Setting;
import dev.muon4j.data.ByteTokenizer;
import dev.muon4j.data.Corpus;
import dev.muon4j.data.TokenDataset;
import dev.muon4j.io.AtomicFiles;
import dev.muon4j.io.JsonCodec;
import dev.muon4j.nn.ModelConfig;
import dev.muon4j.train.OptimizerChoice;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.LocalDate;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code muon4j bench distributed}: data-parallel training of a real Llama model on 1, 2 and 4
 * in-process ranks with the Muon hybrid (both ways of splitting Muon's matrices) and with AdamW:
 * bytes each rank sends and receives per step and the Muon/AdamW ratio, optimizer state per rank
 * against one process, and the step time split into compute, communication, Newton–Schulz and
 * the rest of the optimizer. See {@link DistributedBenchmark}.
 *
 * <p>Ranks are threads of this process ({@link dev.muon4j.distributed.LocalRanks}); there is no
 * {@code --launcher mpirun}: under mpirun each setting and rank count would be a separate job
 * whose ranks' numbers have to be gathered and handed back to this process, more machinery than
 * this benchmark needs. The traffic and state numbers do not depend on the launcher.
 */
@Command(name = "distributed", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Data-parallel training on N in-process ranks (threads, each on a 1-thread Vector API backend; one process "
                + "on the same backend for N = 1) with the Muon hybrid (DISTRIBUTED_MUON and WHOLE_MATRIX sharding) and with AdamW: "
                + "bytes per rank per step and the Muon/AdamW ratio, optimizer state per rank against one process, and the step "
                + "time split into compute (forward+backward), communication, Newton-Schulz and other optimizer work.")
final class DistributedBench implements Callable<Integer> {
    /** Untimed steps before the measured ones. */
    static final int WARMUP_STEPS = 1;

    @Option(names = "--preset", defaultValue = "SMALL", paramLabel = "NAME",
            description = "Model size: ${COMPLETION-CANDIDATES} (default: ${DEFAULT-VALUE}).")
    ModelPreset preset;

    @Mixin
    ModelShapeOptions shape;

    @Option(names = "--batch", defaultValue = TrainingOptions.DEFAULT_BATCH, description = "Sequences per step, split over the ranks (default: ${DEFAULT-VALUE}).")
    int batch;

    @Option(names = "--steps", defaultValue = "2",
            description = "Measured steps per run, after " + WARMUP_STEPS + " warm-up step (default: ${DEFAULT-VALUE}).")
    int steps;

    @Option(names = "--ranks", split = ",", defaultValue = "1,2,4", paramLabel = "N",
            description = "Rank counts to measure (default: ${DEFAULT-VALUE}).")
    List<Integer> ranks;

    @Option(names = "--data", paramLabel = "PATH", arity = "1..*",
            description = "Text files or directories of .txt files, byte-level (default: the shipped Gutenberg sample).")
    List<Path> data;

    @Option(names = "--rank-timeout", defaultValue = "600", paramLabel = "SECONDS",
            description = "A collective that waits longer than this for the other ranks fails the run (default: ${DEFAULT-VALUE}).")
    long rankTimeout;

    @Option(names = "--out", paramLabel = "FILE", description = "Also write the results to FILE: Markdown if it ends in .md, else JSON.")
    Path out;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        atLeast("--batch", batch, 1);
        atLeast("--steps", steps, 1);
        atLeast("--rank-timeout", rankTimeout, 1);
        if (steps > Integer.MAX_VALUE - WARMUP_STEPS) {
            throw new IllegalArgumentException("--steps " + steps + " is too many: with the warm-up step the benchmark counts at most "
                    + (Integer.MAX_VALUE - WARMUP_STEPS));
        }
        if (ranks.isEmpty() || ranks.stream().anyMatch(n -> n == null || n < 1)) {
            throw new IllegalArgumentException("--ranks must list rank counts >= 1, got " + ranks);
        }
        List<Integer> counts = ranks.stream().distinct().sorted().toList();
        checkSizes(shape.model(preset, 256), counts);
        PrintWriter w = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        int context = shape.model(preset, 256).contextLength();
        Corpus corpus = data == null || data.isEmpty() ? Corpus.defaultCorpus() : Corpus.fromPaths(data);
        TokenDataset dataset = TokenDataset.of(corpus, new ByteTokenizer(), TokenDataset.DEFAULT_VALIDATION_FRACTION, context);
        ModelConfig model = shape.model(preset, dataset.vocabSize());
        DistributedBenchmark bench = new DistributedBenchmark(model, dataset, batch, WARMUP_STEPS, steps, Duration.ofSeconds(rankTimeout));

        int processors = Runtime.getRuntime().availableProcessors();
        int most = counts.getLast();
        List<String> notes = new ArrayList<>();
        notes.add("ranks are threads of this process over in-process collectives (shared-memory copies), each on its own "
                + "1-thread Vector API backend; 1 rank is one process without data parallelism on the same 1-thread backend "
                + "(like for like, so it uses 1 of the " + processors + " processors)");
        notes.add("bytes are the bandwidth-optimal volumes a ring moves (MeteredCollectives), means over ranks and measured steps");
        notes.add("communication time includes waiting in a collective for slower ranks");
        if (most > processors) {
            notes.add(counts.stream().filter(n -> n > processors).map(String::valueOf).reduce((a, b) -> a + " and " + b).orElseThrow()
                    + " ranks on " + processors + " processors oversubscribe the cores: their times include waiting for a core");
        }
        notes.add("no --launcher mpirun: ranks always run in-process");
        String machine = processors + " processors, " + System.getProperty("os.arch") + ", " + cpuName().map(c -> c + ", ").orElse("")
                + "Java " + Runtime.version();
        String modelText = model.describe();
        String stepsText = String.format(Locale.ROOT, "%d warm-up + %d measured step(s) per run, %d sequences x %d tokens per step "
                + "(the global batch, split over the ranks)", WARMUP_STEPS, steps, batch, model.contextLength());
        w.println("machine: " + machine);
        w.println("data: " + dataset.describe());
        w.println("model: " + modelText);
        w.println("steps: " + stepsText);
        for (String n : notes) {
            w.println("note: " + n);
        }
        w.flush();

        List<Measurement> results = new ArrayList<>();
        for (int n : counts) {
            for (Setting s : Setting.values()) {
                if (n == 1 && s == Setting.MUON_WHOLE_MATRIX) {
                    continue; // one process: nothing to split
                }
                long t0 = System.nanoTime();
                err.printf(Locale.ROOT, "bench distributed: %d rank(s), %s, %s ...%n", n, s.optimizerLabel(), s.shardingLabel(n));
                err.flush();
                Measurement m = bench.measure(s, n);
                err.printf(Locale.ROOT, "bench distributed: %d rank(s), %s, %s: %.3f s per step (run took %.0f s)%n", n,
                        s.optimizerLabel(), s.shardingLabel(n), m.stepSeconds(), (System.nanoTime() - t0) / 1e9);
                err.flush();
                results.add(m);
            }
        }

        w.println();
        w.println("Traffic and optimizer state per rank (means over ranks and measured steps):");
        w.printf(Locale.ROOT, "%5s  %-13s  %-16s  %12s  %12s  %14s  %14s  %11s%n", "ranks", "optimizer", "sharding", "sent/step",
                "received/step", "state (max)", "one process", "state ratio");
        for (Measurement m : results) {
            w.printf(Locale.ROOT, "%5d  %-13s  %-16s  %12s  %12s  %14s  %14s  %11.4f%n", m.ranks(), m.setting().optimizerLabel(),
                    m.setting().shardingLabel(m.ranks()), bytes(m.bytesSent()), bytes(m.bytesReceived()), bytes(m.stateBytesLargest()),
                    bytes(m.singleProcessStateBytes()), m.stateRatio());
        }
        w.println();
        w.println("Step time, seconds per step (means over ranks and measured steps; share of the step):");
        w.printf(Locale.ROOT, "%5s  %-13s  %-16s  %8s  %15s  %15s  %15s  %15s  %10s%n", "ranks", "optimizer", "sharding", "step",
                "compute", "communication", "Newton-Schulz", "other optim.", "vs 1 rank");
        for (Measurement m : results) {
            double t = m.stepSeconds();
            w.printf(Locale.ROOT, "%5d  %-13s  %-16s  %8.3f  %15s  %15s  %15s  %15s  %10s%n", m.ranks(), m.setting().optimizerLabel(),
                    m.setting().shardingLabel(m.ranks()), t, share(m.computeSeconds(), t), share(m.communicationSeconds(), t),
                    share(m.newtonSchulzSeconds(), t), share(m.optimizerSeconds(), t), speedup(results, m));
        }
        List<String> ratios = ratioLines(results);
        w.println();
        w.println("Ratios:");
        if (ratios.isEmpty()) {
            w.println("(none: the ratios compare N > 1 ranks with AdamW and with one process; give --ranks with a count above 1)");
        }
        for (String line : ratios) {
            w.println(line);
        }
        w.flush();

        if (out != null) {
            String command = commandLine();
            String text = out.getFileName().toString().toLowerCase(Locale.ROOT).endsWith(".md")
                    ? markdown(command, machine, dataset.describe(), modelText, stepsText, notes, results, ratios)
                    : JsonCodec.pretty(report(command, machine, dataset.describe(), model, notes, results)) + "\n";
            AtomicFiles.write(out, stream -> stream.write(text.getBytes(StandardCharsets.UTF_8)));
            w.println("report: " + out);
            w.flush();
        }
        return 0;
    }

    /**
     * Checks the sizes of every run before any is allocated. The smallest rank count has the
     * longest micro-batches. Every rank is a thread of this process with its own model and gradients,
     * the optimizer state (AdamW's, the largest) is split over them, and their forward and backward
     * passes over the shares of the batch together hold at least one pass over the whole batch.
     */
    private void checkSizes(ModelConfig model, List<Integer> counts) {
        SizeLimits.Flags flags = new SizeLimits.Flags(preset.config(), Integer.parseInt(TrainingOptions.DEFAULT_BATCH), true);
        SizeLimits.checkArrays(model, batch, counts.getFirst(), flags);
        int most = counts.getLast();
        if (most > 1) {
            SizeLimits.checkArrays(model, batch, most, flags); // shorter micro-batches; adds the checkpoint's gather of all parameters
        }
        SizeLimits.checkHeap(b -> SizeLimits.trainingHeap(model, OptimizerChoice.ADAMW, b, most, true),
                batch, Runtime.getRuntime().maxMemory(), "--batch, the largest of --ranks, --context or the model size");
    }

    private static void atLeast(String flag, long value, long least) {
        if (value < least) {
            throw new IllegalArgumentException(flag + " must be at least " + least + ", got " + value);
        }
    }

    /** One line per rank count above 1: the Muon/AdamW bytes ratio for both modes, and each setting's state ratio. */
    static List<String> ratioLines(List<Measurement> results) {
        List<String> lines = new ArrayList<>();
        for (Measurement m : results) {
            if (m.ranks() > 1 && m.setting() != Setting.ADAMW) {
                Measurement adamw = find(results, Setting.ADAMW, m.ranks());
                lines.add(String.format(Locale.ROOT, "bytes per rank per step, Muon/AdamW, %d ranks, %s: %.4f (%s vs %s sent + received)",
                        m.ranks(), m.setting().mode(), m.bytesMoved() / adamw.bytesMoved(), bytes(m.bytesMoved()), bytes(adamw.bytesMoved())));
            }
        }
        for (Measurement m : results) {
            if (m.ranks() > 1) {
                lines.add(String.format(Locale.ROOT, "optimizer state per rank / one process, %d ranks, %s %s: %.4f "
                                + "(largest rank %s of %s; mean rank %.4f; 1/N = %.4f)", m.ranks(), m.setting().optimizerLabel(),
                        m.setting().shardingLabel(m.ranks()), m.stateRatio(), bytes(m.stateBytesLargest()),
                        bytes(m.singleProcessStateBytes()), m.meanStateRatio(), 1.0 / m.ranks()));
            }
        }
        return lines;
    }

    private static Measurement find(List<Measurement> results, Setting setting, int ranks) {
        return results.stream().filter(m -> m.setting() == setting && m.ranks() == ranks).findFirst().orElseThrow();
    }

    /** One process's step time over this one's, same optimizer ("-" without a 1-rank run). */
    private static String speedup(List<Measurement> results, Measurement m) {
        return results.stream().filter(o -> o.ranks() == 1 && o.setting().optimizer() == m.setting().optimizer()).findFirst()
                .map(one -> String.format(Locale.ROOT, "%.2fx", one.stepSeconds() / m.stepSeconds())).orElse("-");
    }

    private static String share(double part, double total) {
        return String.format(Locale.ROOT, "%.3f (%4.1f%%)", part, total > 0 ? 100 * part / total : 0);
    }

    static String bytes(double b) {
        if (b >= 1e9) {
            return String.format(Locale.ROOT, "%.2f GB", b / 1e9);
        }
        if (b >= 1e6) {
            return String.format(Locale.ROOT, "%.2f MB", b / 1e6);
        }
        if (b >= 1e3) {
            return String.format(Locale.ROOT, "%.1f kB", b / 1e3);
        }
        return String.format(Locale.ROOT, "%.0f B", b);
    }

    private String markdown(String command, String machine, String data, String modelText, String stepsText, List<String> notes,
                            List<Measurement> results, List<String> ratios) {
        StringBuilder s = new StringBuilder("# muon4j bench distributed\n\n");
        s.append("Command: `").append(command).append("`\n\n");
        s.append("- date: ").append(LocalDate.now()).append('\n');
        s.append("- machine: ").append(machine).append('\n');
        s.append("- data: ").append(data).append('\n');
        s.append("- model: ").append(modelText).append('\n');
        s.append("- steps: ").append(stepsText).append('\n');
        for (String n : notes) {
            s.append("- ").append(n).append('\n');
        }
        s.append("\n## Traffic and optimizer state per rank\n\n");
        s.append("| ranks | optimizer | sharding | sent / step | received / step | state, largest rank | state, one process | ratio (largest) | ratio (mean) |\n");
        s.append("|---|---|---|---|---|---|---|---|---|\n");
        for (Measurement m : results) {
            s.append(String.format(Locale.ROOT, "| %d | %s | %s | %s | %s | %s | %s | %.4f | %.4f |%n", m.ranks(),
                    m.setting().optimizerLabel(), m.setting().shardingLabel(m.ranks()), bytes(m.bytesSent()), bytes(m.bytesReceived()),
                    bytes(m.stateBytesLargest()), bytes(m.singleProcessStateBytes()), m.stateRatio(), m.meanStateRatio()));
        }
        s.append("\n## Step time (seconds per step; share of the step)\n\n");
        s.append("| ranks | optimizer | sharding | step | compute | communication | Newton–Schulz | other optimizer | speed-up vs 1 rank |\n");
        s.append("|---|---|---|---|---|---|---|---|---|\n");
        for (Measurement m : results) {
            double t = m.stepSeconds();
            s.append(String.format(Locale.ROOT, "| %d | %s | %s | %.3f | %s | %s | %s | %s | %s |%n", m.ranks(), m.setting().optimizerLabel(),
                    m.setting().shardingLabel(m.ranks()), t, share(m.computeSeconds(), t), share(m.communicationSeconds(), t),
                    share(m.newtonSchulzSeconds(), t), share(m.optimizerSeconds(), t), speedup(results, m).strip()));
        }
        s.append("\n## Ratios\n\n");
        for (String r : ratios) {
            s.append("- ").append(r).append('\n');
        }
        return s.toString();
    }

    /** The JSON report: how it was run, then one row per setting and rank count. */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    record Report(String command, String date, String machine, String data, Map<String, Object> model, int batch, int context,
                  int warmupSteps, int measuredSteps, List<String> notes, List<Row> results) {
    }

    /** One setting at one rank count; {@code bytesRatioToAdamw} only for Muon on more than one rank. */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    @JsonInclude(JsonInclude.Include.NON_NULL)
    record Row(int ranks, String optimizer, String sharding, double stepSeconds, double computeSeconds, double communicationSeconds,
               double newtonSchulzSeconds, double otherOptimizerSeconds, double bytesSentPerRank, double bytesReceivedPerRank,
               Double bytesRatioToAdamw, long stateBytesLargestRank, double stateBytesMeanRank, long stateBytesOneProcess,
               double stateRatioLargest, double stateRatioMean) {
    }

    private Report report(String command, String machine, String data, ModelConfig model, List<String> notes,
                          List<Measurement> results) {
        Map<String, Object> m = new LinkedHashMap<>(model.toMap());
        m.put("parameters", model.parameterCount());
        List<Row> rows = new ArrayList<>();
        for (Measurement r : results) {
            rows.add(new Row(r.ranks(), r.setting().optimizer().name(),
                    r.ranks() == 1 ? "NONE" : r.setting() == Setting.ADAMW ? "ZERO1" : r.setting().mode().name(),
                    r.stepSeconds(), r.computeSeconds(), r.communicationSeconds(), r.newtonSchulzSeconds(), r.optimizerSeconds(),
                    r.bytesSent(), r.bytesReceived(), r.ranks() > 1 && r.setting() != Setting.ADAMW
                            ? r.bytesMoved() / find(results, Setting.ADAMW, r.ranks()).bytesMoved() : null,
                    r.stateBytesLargest(), r.stateBytesMean(), r.singleProcessStateBytes(), r.stateRatio(), r.meanStateRatio()));
        }
        return new Report(command, LocalDate.now().toString(), machine, data, m, batch, model.contextLength(), WARMUP_STEPS, steps,
                notes, rows);
    }

    private static Optional<String> cpuName() {
        try {
            return Files.readAllLines(Path.of("/proc/cpuinfo")).stream().filter(l -> l.startsWith("model name"))
                    .map(l -> l.substring(l.indexOf(':') + 1).trim()).findFirst();
        } catch (IOException | RuntimeException e) {
            return Optional.empty();
        }
    }

    private String commandLine() {
        StringBuilder s = new StringBuilder("./muon4j");
        for (String arg : spec.root().commandLine().getParseResult().originalArgs()) {
            s.append(' ').append(arg);
        }
        return s.toString();
    }
}
