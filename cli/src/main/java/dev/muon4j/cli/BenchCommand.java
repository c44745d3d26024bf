package dev.muon4j.cli;

import dev.muon4j.backend.Backend;
import dev.muon4j.bench.OptimizerBenchmark;
import dev.muon4j.nn.LlamaConfig;
import dev.muon4j.train.OptimizerChoice;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code muon4j bench optimizer}: GEMM rate, Newton–Schulz speed and a GPT-2-sized Muon step, in one run;
 * {@code bench training}: training throughput; {@code bench distributed}: see {@link DistributedBench}.
 */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = "Benchmarks. 'optimizer': backend GEMM GFLOP/s, NS5 time and effective GFLOP/s (standard and Gram Newton-Schulz), "
                + "and a Muon step over GPT-2 small's hidden matrices. "
                + "'training': tokens/s of the small Llama with AdamW and Muon. 'distributed': traffic, optimizer state and step time "
                + "of data-parallel training on 1, 2 and 4 ranks.",
        subcommands = {BenchCommand.Optimizer.class, BenchCommand.Training.class, DistributedBench.class})
public final class BenchCommand implements Callable<Integer> {
    @Override
    public Integer call() {
        new picocli.CommandLine(this).usage(System.out);
        return 0;
    }

    private static void atLeast(String flag, int value, int least) {
        if (value < least) {
            throw new IllegalArgumentException(flag + " must be at least " + least + ", got " + value);
        }
    }

    @Command(name = "training", mixinStandardHelpOptions = true,
            description = "Training throughput (tokens/s) of the standard small Llama (byte-level, 6 layers, width 384, 6 heads, "
                    + "SwiGLU 1024, context 256, batch 16, untied head: 10.8M parameters) with AdamW and with Muon, "
                    + "and the share of forward, backward and optimizer step.")
    static final class Training implements Callable<Integer> {
        @Mixin
        BackendOptions backendOptions;

        @Option(names = "--batch", defaultValue = TrainingOptions.DEFAULT_BATCH, description = "Sequences per step (default: ${DEFAULT-VALUE}).")
        int batch;

        @Option(names = "--accumulate", defaultValue = "1", description = "Micro-batches per optimizer step (default: ${DEFAULT-VALUE}).")
        int accumulate;

        @Option(names = "--steps", defaultValue = "5", description = "Timed steps per optimizer, median reported (default: ${DEFAULT-VALUE}).")
        int steps;

        @Option(names = "--warmup", defaultValue = "2", description = "Untimed steps first (default: ${DEFAULT-VALUE}).")
        int warmup;

        @Override
        public Integer call() {
            atLeast("--batch", batch, 1);
            atLeast("--accumulate", accumulate, 1);
            atLeast("--steps", steps, 1);
            atLeast("--warmup", warmup, 0);
            if ((long) warmup + steps > Integer.MAX_VALUE) {
                throw new IllegalArgumentException("--warmup " + warmup + " + --steps " + steps + " is more steps than the benchmark counts ("
                        + Integer.MAX_VALUE + ")");
            }
            LlamaConfig config = LlamaConfig.standardSmall();
            SizeLimits.checkArrays(config, batch, 1, new SizeLimits.Flags(config, Integer.parseInt(TrainingOptions.DEFAULT_BATCH), false));
            // AdamW runs first and holds the larger optimizer state; each timed step keeps three doubles.
            SizeLimits.checkHeap(b -> {
                List<SizeLimits.Heap.Part> parts = new ArrayList<>(SizeLimits.trainingHeap(config, OptimizerChoice.ADAMW, b, 1, false).parts());
                parts.add(new SizeLimits.Heap.Part("step timings", SizeLimits.times(3L * Double.BYTES, steps)));
                return new SizeLimits.Heap(parts);
            }, batch, Runtime.getRuntime().maxMemory(), "--batch or --steps");
            try (Backend backend = backendOptions.open()) {
                System.out.println("backend: " + backend.description());
                System.out.printf("model: %,d parameters, batch %d x %d tokens, %d micro-batch(es) per optimizer step%n%n",
                        config.parameterCount(), batch, config.contextLength(), accumulate);
                dev.muon4j.bench.TrainingBenchmark bench = new dev.muon4j.bench.TrainingBenchmark(backend, System.out);
                var adam = bench.run(config, batch, accumulate, false, warmup, steps);
                bench.print(adam);
                var muon = bench.run(config, batch, accumulate, true, warmup, steps);
                bench.print(muon);
                System.out.printf("%nMuon throughput / AdamW throughput: %.3f%n", muon.tokensPerSecond() / adam.tokensPerSecond());
            }
            return 0;
        }
    }

    @Command(name = "optimizer", mixinStandardHelpOptions = true,
            description = "GEMM GFLOP/s, NS5 on 1024x1024, 1024x4096, 4096x4096 with the standard and the Gram iteration (time, "
                    + "effective GFLOP/s, accuracy against float64 up to 1024x4096), and a full Muon step on GPT-2 small's hidden "
                    + "matrices with each.")
    static final class Optimizer implements Callable<Integer> {
        @Mixin
        BackendOptions backendOptions;

        @Option(names = "--repetitions", defaultValue = "3", description = "Timed repetitions per case, median reported (default: ${DEFAULT-VALUE}).")
        int repetitions;

        @Option(names = "--skip-gpt2", description = "Skip the GPT-2 small optimizer step (needs about 1.5 GB of heap).")
        boolean skipGpt2;

        @Override
        public Integer call() {
            atLeast("--repetitions", repetitions, 1);
            try (Backend backend = backendOptions.open()) {
                System.out.println("backend: " + backend.description());
                System.out.printf("java %s, %d processors%n%n", Runtime.version(), Runtime.getRuntime().availableProcessors());
                OptimizerBenchmark bench = new OptimizerBenchmark(backend, System.out, repetitions);
                System.out.printf("square GEMM 2048: %.1f GFLOP/s%n%n", bench.gemmGflops(2048, 2048, 2048));
                bench.runNewtonSchulz(OptimizerBenchmark.NS_SHAPES);
                if (!skipGpt2) {
                    System.out.println();
                    bench.runGpt2Step();
                }
            }
            return 0;
        }
    }
}
