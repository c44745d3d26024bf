package dev.muon4j.bench;

import dev.muon4j.autograd.Graph;
import dev.muon4j.autograd.Tensor;
import dev.muon4j.backend.Backend;
import dev.muon4j.nn.LlamaConfig;
import dev.muon4j.nn.DecoderModel;
import dev.muon4j.optim.AdamWConfig;
import dev.muon4j.optim.HybridOptimizer;
import dev.muon4j.optim.MuonConfig;
import dev.muon4j.optim.Route;
import java.io.PrintStream;
import java.util.SplittableRandom;

/**
 * Training throughput of a Llama model: tokens per second of whole steps (forward, backward,
 * optimizer) and the share of each phase, for AdamW on every parameter and for the hybrid
 * (Muon on hidden matrices, AdamW on the rest), measured in one run.
 */
public final class TrainingBenchmark {
    /** Timings of one optimizer setting, seconds per step (medians). */
    public record Result(String optimizer, double forward, double backward, double step, long tokensPerStep) {
        public double total() {
            return forward + backward + step;
        }

        public double tokensPerSecond() {
            return tokensPerStep / total();
        }
    }

    private final Backend backend;
    private final PrintStream out;

    public TrainingBenchmark(Backend backend, PrintStream out) {
        this.backend = backend;
        this.out = out;
    }

    /**
     * Runs {@code warmup + steps} optimizer steps, each over {@code accumulation} micro-batches of
     * {@code batch} sequences, and reports medians over the last {@code steps}.
     */
    public Result run(LlamaConfig config, int batch, int accumulation, boolean muon, int warmup, int steps) {
        DecoderModel model = new DecoderModel(config);
        model.initialize(1);
        AdamWConfig adamw = AdamWConfig.builder().learningRate(1e-3).weightDecay(0.1).build();
        HybridOptimizer.Builder builder = HybridOptimizer.builder(backend).adamw(adamw)
                .muon(MuonConfig.moonlight().learningRate(1e-3).weightDecay(0.1).build());
        if (!muon) {
            builder.routeAll(Route.ADAMW);
        }
        HybridOptimizer optimizer = builder.build(model.parameters());
        int time = config.contextLength();
        SplittableRandom random = new SplittableRandom(7);
        int[] inputs = new int[batch * time];
        int[] targets = new int[batch * time];
        double[] f = new double[steps];
        double[] b = new double[steps];
        double[] s = new double[steps];
        try (Graph g = new Graph(backend)) {
            for (int i = 0; i < warmup + steps; i++) {
                for (int j = 0; j < inputs.length; j++) {
                    inputs[j] = random.nextInt(config.vocabSize());
                    targets[j] = random.nextInt(config.vocabSize());
                }
                model.zeroGradients();
                long forward = 0;
                long backward = 0;
                for (int micro = 0; micro < accumulation; micro++) {
                    long t0 = System.nanoTime();
                    Tensor loss = model.loss(g, inputs, targets, batch, time);
                    long t1 = System.nanoTime();
                    g.backward(loss);
                    long t2 = System.nanoTime();
                    g.reset();
                    forward += t1 - t0;
                    backward += t2 - t1;
                }
                long t2 = System.nanoTime();
                optimizer.step();
                long t3 = System.nanoTime();
                if (i >= warmup) {
                    f[i - warmup] = forward / 1e9;
                    b[i - warmup] = backward / 1e9;
                    s[i - warmup] = (t3 - t2) / 1e9;
                }
            }
        }
        return new Result(muon ? "Muon (hybrid)" : "AdamW", median(f), median(b), median(s), (long) batch * accumulation * time);
    }

    /** Prints one row of the result table. */
    public void print(Result r) {
        double t = r.total();
        out.printf("%-14s %9.0f tok/s  step %.3f s = forward %.3f (%.0f%%) + backward %.3f (%.0f%%) + optimizer %.3f (%.1f%%)%n",
                r.optimizer(), r.tokensPerSecond(), t, r.forward(), 100 * r.forward() / t, r.backward(), 100 * r.backward() / t,
                r.step(), 100 * r.step() / t);
    }

    private static double median(double[] x) {
        double[] c = x.clone();
        java.util.Arrays.sort(c);
        return c[c.length / 2];
    }
}
