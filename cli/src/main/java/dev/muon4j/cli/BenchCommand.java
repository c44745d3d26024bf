package dev.muon4j.cli;

import dev.muon4j.backend.Backend;
import dev.muon4j.bench.OptimizerBenchmark;
import dev.muon4j.bench.MemoryReport;
import dev.muon4j.bench.TrainingBenchmark;
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
                    + "and the share of forward, backward and optimizer step (and Newton-Schulz within it), then the peak resident "
                    + "memory (VmHWM, Linux only) and the heap's. "
                    + "--model deepseek times the small Mixture-of-Experts preset (54.5M parameters, 10.3M active), "
                    + "--model both the two in turns, step by step, with the ratio of their tokens/s.")
    static final class Training implements Callable<Integer> {
        /** Which models {@code --model} times. */
        enum Models {
            LLAMA, DEEPSEEK, BOTH
        }

        /** Which optimizers {@code --optimizer} times. */
        enum Optimizers {
            ADAMW, MUON, BOTH
        }

        @Mixin
        BackendOptions backendOptions;

        @Option(names = "--model", defaultValue = "llama", converter = ModelsConverter.class,
                description = "llama (the dense small model), deepseek (the small MoE preset) or both, timed in turns (default: ${DEFAULT-VALUE}).")
        Models models;

        @Option(names = "--optimizer", defaultValue = "both", converter = OptimizersConverter.class,
                description = "adamw, muon (the hybrid) or both, stepped in turns, with the median of the rounds' Muon/AdamW ratios "
                        + "(default: ${DEFAULT-VALUE}).")
        Optimizers optimizers;

        @Option(names = "--batch", defaultValue = TrainingOptions.DEFAULT_BATCH, description = "Sequences per step (default: ${DEFAULT-VALUE}).")
        int batch;

        @Option(names = "--accumulate", defaultValue = "1", description = "Micro-batches per optimizer step (default: ${DEFAULT-VALUE}).")
        int accumulate;

        @Option(names = "--ns-precision", defaultValue = "F32", paramLabel = "PRECISION",
                description = "Precision of Muon's Newton-Schulz: F32 or BF16 (bfloat16 products, twice as fast where the processor "
                        + "has bfloat16 dot products) (default: ${DEFAULT-VALUE}).")
        dev.muon4j.tensor.DType nsPrecision;

        @Option(names = "--steps", defaultValue = "5", description = "Timed steps per optimizer, median reported (default: ${DEFAULT-VALUE}).")
        int steps;

        @Option(names = "--warmup", defaultValue = "2", description = "Untimed steps first (default: ${DEFAULT-VALUE}).")
        int warmup;

        static final class ModelsConverter implements picocli.CommandLine.ITypeConverter<Models> {
            @Override
            public Models convert(String value) {
                return parse(Models.class, value, "llama, deepseek or both");
            }
        }

        static final class OptimizersConverter implements picocli.CommandLine.ITypeConverter<Optimizers> {
            @Override
            public Optimizers convert(String value) {
                return parse(Optimizers.class, value, "adamw, muon or both");
            }
        }

        private static <E extends Enum<E>> E parse(Class<E> type, String value, String expected) {
            try {
                return Enum.valueOf(type, value.toUpperCase(java.util.Locale.ROOT));
            } catch (IllegalArgumentException e) {
                throw new picocli.CommandLine.TypeConversionException("expected " + expected + ", got '" + value + "'");
            }
        }

        /** The models to time, in the order they step. */
        List<TrainingBenchmark.Case> cases() {
            List<TrainingBenchmark.Case> cases = new ArrayList<>();
            if (models != Models.DEEPSEEK) {
                cases.add(new TrainingBenchmark.Case("dense", ModelPreset.SMALL.config()));
            }
            if (models != Models.LLAMA) {
                cases.add(new TrainingBenchmark.Case("MoE", ModelPreset.SMALL.deepSeek()));
            }
            return cases;
        }

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
            List<TrainingBenchmark.Case> cases = cases();
            LlamaConfig trunk = ModelPreset.SMALL.config();
            SizeLimits.checkArrays(trunk, batch, 1, new SizeLimits.Flags(trunk, Integer.parseInt(TrainingOptions.DEFAULT_BATCH), false));
            // Every (model, optimizer) pair is a session of its own, stepped in turns with the others and
            // alive with them; each timed step keeps four doubles per session.
            List<TrainingBenchmark.Arm> arms = new ArrayList<>();
            for (TrainingBenchmark.Case c : cases) {
                if (optimizers != Optimizers.MUON) {
                    arms.add(new TrainingBenchmark.Arm(c, false));
                }
                if (optimizers != Optimizers.ADAMW) {
                    arms.add(new TrainingBenchmark.Arm(c, true));
                }
            }
            SizeLimits.checkHeap(b -> {
                List<SizeLimits.Heap.Part> parts = new ArrayList<>();
                for (TrainingBenchmark.Arm a : arms) {
                    OptimizerChoice choice = a.muon() ? OptimizerChoice.MUON : OptimizerChoice.ADAMW;
                    for (SizeLimits.Heap.Part part : SizeLimits.trainingHeap(a.c().config(), choice, b, 1, false).parts()) {
                        parts.add(arms.size() == 1 ? part : new SizeLimits.Heap.Part(a.c().label() + ", " + choice.name().toLowerCase(
                                java.util.Locale.ROOT) + ": " + part.what(), part.bytes()));
                    }
                }
                parts.add(new SizeLimits.Heap.Part("step timings", SizeLimits.times(4L * Double.BYTES * arms.size(), steps)));
                return new SizeLimits.Heap(parts);
            }, batch, Runtime.getRuntime().maxMemory(), "--batch or --steps");
            try (Backend backend = backendOptions.open()) {
                System.out.println(backendOptions.describe(backend));
                for (TrainingBenchmark.Case c : cases) {
                    System.out.printf("%s: %s%n", c.label(), c.config().describe());
                }
                System.out.printf("batch %d x %d tokens, %d micro-batch(es) per optimizer step%s%n", batch, trunk.contextLength(),
                        accumulate, arms.size() > 1 ? "; the " + (cases.size() > 1 ? "models" : "optimizers")
                                + (cases.size() > 1 && optimizers == Optimizers.BOTH ? " and optimizers" : "") + " step in turns" : "");
                if (optimizers != Optimizers.ADAMW) {
                    System.out.printf("Muon: Moonlight's, Newton-Schulz in %s%s%n", nsPrecision.name().toLowerCase(java.util.Locale.ROOT),
                            nsPrecision == dev.muon4j.tensor.DType.BF16
                                    ? backend.bf16Matmul().map(m -> " on " + m.description().replaceFirst(", \\d+ threads?$", ""))
                                            .orElse(" (float32 products rounded to bfloat16: this backend has no bfloat16 products)")
                                    : "");
                }
                System.out.println();
                TrainingBenchmark bench = new TrainingBenchmark(backend, System.out, nsPrecision);
                List<TrainingBenchmark.Result> results = bench.compareArms(arms, batch, accumulate, warmup, steps);
                List<TrainingBenchmark.Result> adam = optimizers == Optimizers.MUON ? null : new ArrayList<>();
                List<TrainingBenchmark.Result> muon = optimizers == Optimizers.ADAMW ? null : new ArrayList<>();
                for (int i = 0; i < arms.size(); i++) {
                    (arms.get(i).muon() ? muon : adam).add(results.get(i));
                }
                for (List<TrainingBenchmark.Result> r : java.util.Arrays.asList(adam, muon)) {
                    if (r != null) {
                        r.forEach(bench::print);
                    }
                }
                System.out.println();
                if (adam != null && muon != null) {
                    for (int i = 0; i < cases.size(); i++) {
                        System.out.printf("%s: Muon throughput / AdamW throughput: %.3f (median of the rounds' ratios: %.3f)%n",
                                cases.get(i).label(), muon.get(i).tokensPerSecond() / adam.get(i).tokensPerSecond(),
                                TrainingBenchmark.pairedRatio(muon.get(i), adam.get(i)));
                    }
                }
                if (cases.size() > 1) {
                    for (List<TrainingBenchmark.Result> r : java.util.Arrays.asList(adam, muon)) {
                        if (r != null) {
                            System.out.printf("%s: MoE throughput / dense throughput: %.3f (median of the rounds' ratios: %.3f; "
                                            + "%,d active of %,d parameters against %,d)%n",
                                    r.get(0).optimizer(), r.get(1).tokensPerSecond() / r.get(0).tokensPerSecond(),
                                    TrainingBenchmark.pairedRatio(r.get(1), r.get(0)),
                                    cases.get(1).config().activeParameterCount(), cases.get(1).config().parameterCount(),
                                    cases.get(0).config().parameterCount());
                        }
                    }
                }
                // The whole run's peak: --optimizer adamw or muon alone gives one optimizer's.
                System.out.println(MemoryReport.current().describe());
            }
            return 0;
        }
    }

    @Command(name = "optimizer", mixinStandardHelpOptions = true,
            description = "GEMM GFLOP/s, NS5 on 1024x1024, 1024x4096, 4096x4096 with the standard and the Gram iteration (time, "
                    + "effective GFLOP/s, accuracy against float64 up to 1024x4096), and a full Muon step on GPT-2 small's hidden "
                    + "matrices with each.")
    static final class Optimizer implements Callable<Integer> {
        @Option(names = "--backend", paramLabel = "KIND", defaultValue = "AUTO",
                description = "Compute backend: CUDA (the first NVIDIA GPU, through muon4j-cuda) or a CPU backend: "
                        + "AUTO, OPENBLAS_SYSTEM, OPENBLAS_BUNDLED, ONEDNN, VECTOR (default: ${DEFAULT-VALUE}).")
        String backend;

        @Option(names = "--threads", paramLabel = "N", description = "Compute threads of a CPU backend (default: number of processors).")
        Integer threads;

        @Option(names = "--repetitions", paramLabel = "N",
                description = "Timed repetitions per case, median reported (default: 3 on the CPU, 20 on CUDA).")
        Integer repetitions;

        @Option(names = "--json-out", paramLabel = "FILE", description = "CUDA only: also write the results as JSON lines to FILE.")
        java.nio.file.Path jsonOut;

        @Option(names = "--skip-gpt2", description = "Skip the GPT-2 small optimizer step (needs about 1.5 GB of heap).")
        boolean skipGpt2;

        @Override
        public Integer call() throws java.io.IOException {
            if (backend.equalsIgnoreCase("cuda")) {
                int reps = repetitions == null ? 20 : repetitions;
                atLeast("--repetitions", reps, 1);
                dev.muon4j.cuda.CudaBenchmark.run(System.out, reps, jsonOut);
                return 0;
            }
            int repetitions = this.repetitions == null ? 3 : this.repetitions;
            atLeast("--repetitions", repetitions, 1);
            BackendOptions backendOptions = new BackendOptions();
            try {
                backendOptions.kind = dev.muon4j.backend.BackendKind.valueOf(backend.toUpperCase(java.util.Locale.ROOT));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("--backend: no backend " + backend
                        + "; choose CUDA, AUTO, OPENBLAS_SYSTEM, OPENBLAS_BUNDLED, ONEDNN or VECTOR");
            }
            backendOptions.threads = threads;
            try (Backend backend = backendOptions.open()) {
                System.out.println(backendOptions.describe(backend));
                System.out.printf("java %s, %d processors%n%n", Runtime.version(), Runtime.getRuntime().availableProcessors());
                OptimizerBenchmark bench = new OptimizerBenchmark(backend, System.out, repetitions);
                double peak = dev.muon4j.bench.FmaPeak.gflops(backend.threads(), 5);
                System.out.printf("float32 FMA peak (probe, %d threads, %d-float vectors): %.1f GFLOP/s%n", backend.threads(),
                        dev.muon4j.bench.FmaPeak.lanes(), peak);
                double gemm = bench.gemmGflops(2048, 2048, 2048);
                System.out.printf("square GEMM 2048: %.1f GFLOP/s = %.0f%% of the probe's peak%n", gemm, 100 * gemm / peak);
                java.util.OptionalDouble bf16 = bench.bf16GemmGflops(2048, 2048, 2048);
                if (bf16.isPresent()) {
                    // a bfloat16 dot product does two multiply-adds per float32 lane where an FMA does one
                    System.out.printf("bfloat16 GEMM 2048 (%s): %.1f GFLOP/s = %.0f%% of twice the float32 peak%n",
                            backend.bf16Matmul().get().description(), bf16.getAsDouble(), 100 * bf16.getAsDouble() / (2 * peak));
                } else {
                    System.out.println("bfloat16 GEMM: this backend has no bfloat16 products");
                }
                System.out.println();
                bench.runNewtonSchulz(OptimizerBenchmark.NS_SHAPES);
                System.out.println();
                bench.runNewtonSchulzBf16(OptimizerBenchmark.NS_SHAPES);
                if (!skipGpt2) {
                    System.out.println();
                    bench.runGpt2Step();
                }
            }
            return 0;
        }
    }
}
