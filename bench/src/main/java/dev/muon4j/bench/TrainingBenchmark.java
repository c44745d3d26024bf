package dev.muon4j.bench;

import dev.muon4j.tensor.DType;
import dev.muon4j.autograd.Graph;
import dev.muon4j.autograd.Tensor;
import dev.muon4j.backend.Backend;
import dev.muon4j.nn.DecoderModel;
import dev.muon4j.nn.ModelConfig;
import dev.muon4j.optim.AdamWConfig;
import dev.muon4j.optim.HybridOptimizer;
import dev.muon4j.optim.MuonConfig;
import dev.muon4j.optim.Route;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Training throughput of a decoder model (dense Llama or Mixture-of-Experts): tokens per second of
 * whole steps (forward, backward, optimizer) and the share of each phase, for AdamW on every
 * parameter and for the hybrid (Muon on hidden matrices, AdamW on the rest). Several models can be
 * timed in one run with their steps interleaved ({@link #compare}), so that the machine's drift
 * falls on all of them alike.
 *
 * <p>A Mixture-of-Experts model balances its routers after every optimizer step as the trainer
 * does (γ = {@link #ROUTER_BIAS_RATE}); that is counted in the optimizer's time.
 */
public final class TrainingBenchmark {
    /** The trainer's default bias update speed γ. */
    public static final double ROUTER_BIAS_RATE = 0.001;

    /**
     * Timings of one model and optimizer, seconds per step (medians of each phase).
     *
     * @param model        the model's label
     * @param optimizer    the optimizer's label
     * @param newtonSchulz the part of {@code step} spent in Newton–Schulz (0 with AdamW)
     * @param stepTimes    each timed step's whole time, seconds, in the order they ran
     */
    public record Result(String model, String optimizer, double forward, double backward, double step, double newtonSchulz,
                         long tokensPerStep, double[] stepTimes) {
        public double total() {
            return forward + backward + step;
        }

        public double tokensPerSecond() {
            return tokensPerStep / total();
        }
    }

    /**
     * The median over rounds of {@code a}'s tokens/s over {@code b}'s, each round's steps taken
     * together: steps run side by side in {@link #compare}, so a burst of load on the machine falls
     * on both steps of a round and cancels in their ratio, where the ratio of the two medians mixes rounds.
     */
    public static double pairedRatio(Result a, Result b) {
        int n = Math.min(a.stepTimes().length, b.stepTimes().length);
        double[] r = new double[n];
        for (int i = 0; i < n; i++) {
            r[i] = (a.tokensPerStep() / a.stepTimes()[i]) / (b.tokensPerStep() / b.stepTimes()[i]);
        }
        return median(r);
    }

    /** A model to time: its label and config. */
    public record Case(String label, ModelConfig config) {
    }

    /** A model with the optimizer to step it: Moonlight's Muon (hybrid) when {@code muon}, else AdamW on every parameter. */
    public record Arm(Case c, boolean muon) {
    }

    private final Backend backend;
    private final PrintStream out;
    private final DType nsPrecision;

    /** A benchmark whose Muon runs Newton–Schulz in float32. */
    public TrainingBenchmark(Backend backend, PrintStream out) {
        this(backend, out, DType.F32);
    }

    /** A benchmark whose Muon (Moonlight's) runs Newton–Schulz in {@code nsPrecision}. */
    public TrainingBenchmark(Backend backend, PrintStream out, DType nsPrecision) {
        this.backend = backend;
        this.out = out;
        this.nsPrecision = java.util.Objects.requireNonNull(nsPrecision, "Newton–Schulz precision");
    }

    /**
     * Runs {@code warmup + steps} optimizer steps, each over {@code accumulation} micro-batches of
     * {@code batch} sequences, and reports medians over the last {@code steps}.
     */
    public Result run(ModelConfig config, int batch, int accumulation, boolean muon, int warmup, int steps) {
        return compare(List.of(new Case(config.family().key(), config)), batch, accumulation, muon, warmup, steps).getFirst();
    }

    /**
     * Times the cases in turns: each case's warm-up steps, then {@code steps} rounds of one step of
     * each case in order. Medians over the timed steps, one result per case in their order.
     */
    public List<Result> compare(List<Case> cases, int batch, int accumulation, boolean muon, int warmup, int steps) {
        return compareArms(cases.stream().map(c -> new Arm(c, muon)).toList(), batch, accumulation, warmup, steps);
    }

    /**
     * Times the arms in turns, as {@link #compare} times models: each arm's warm-up steps, then
     * {@code steps} rounds of one step of each arm in order, so that a model's AdamW and Muon steps
     * alternate and {@link #pairedRatio} compares them round by round. One result per arm in their order.
     */
    public List<Result> compareArms(List<Arm> arms, int batch, int accumulation, int warmup, int steps) {
        List<Session> sessions = new ArrayList<>();
        try {
            for (Arm a : arms) {
                sessions.add(new Session(a.c(), batch, accumulation, a.muon(), steps));
            }
            for (Session s : sessions) {
                for (int i = 0; i < warmup; i++) {
                    s.step(-1);
                }
            }
            for (int i = 0; i < steps; i++) {
                for (Session s : sessions) {
                    s.step(i);
                }
            }
            List<Result> results = new ArrayList<>();
            for (Session s : sessions) {
                results.add(s.result());
            }
            return results;
        } finally {
            for (Session s : sessions) {
                s.graph.close();
            }
        }
    }

    /** One model with its optimizer and graph, stepped by {@link #compare}. */
    private final class Session {
        final Case c;
        final DecoderModel model;
        final HybridOptimizer optimizer;
        final Graph graph;
        final boolean muon;
        final boolean experts;
        final int batch;
        final int accumulation;
        final int time;
        final SplittableRandom random = new SplittableRandom(7);
        final int[] inputs;
        final int[] targets;
        final double[] f;
        final double[] b;
        final double[] s;
        final double[] ns;
        final double[] whole;

        Session(Case c, int batch, int accumulation, boolean muon, int steps) {
            this.c = c;
            this.batch = batch;
            this.accumulation = accumulation;
            this.muon = muon;
            model = new DecoderModel(c.config());
            model.initialize(1);
            experts = !model.expertLayers().isEmpty();
            AdamWConfig adamw = AdamWConfig.builder().learningRate(1e-3).weightDecay(0.1).build();
            HybridOptimizer.Builder builder = HybridOptimizer.builder(backend).adamw(adamw)
                    .muon(MuonConfig.moonlight().learningRate(1e-3).weightDecay(0.1)
                            .newtonSchulz(dev.muon4j.optim.NewtonSchulzConfig.defaults().withPrecision(nsPrecision)).build());
            if (!muon) {
                builder.routeAll(Route.ADAMW);
            }
            optimizer = builder.build(model.parameters());
            time = c.config().contextLength();
            inputs = new int[batch * time];
            targets = new int[batch * time];
            f = new double[steps];
            b = new double[steps];
            s = new double[steps];
            ns = new double[steps];
            whole = new double[steps];
            graph = new Graph(backend);
        }

        /** One optimizer step; its timings go to slot {@code i}, none when negative (warm-up). */
        void step(int i) {
            int vocab = c.config().vocabSize();
            for (int j = 0; j < inputs.length; j++) {
                inputs[j] = random.nextInt(vocab);
                targets[j] = random.nextInt(vocab);
            }
            model.zeroGradients();
            long forward = 0;
            long backward = 0;
            for (int micro = 0; micro < accumulation; micro++) {
                long t0 = System.nanoTime();
                Tensor loss = model.loss(graph, inputs, targets, batch, time);
                long t1 = System.nanoTime();
                graph.backward(loss);
                long t2 = System.nanoTime();
                graph.reset();
                forward += t1 - t0;
                backward += t2 - t1;
            }
            long t2 = System.nanoTime();
            optimizer.step();
            if (experts) {
                model.balanceExperts(ROUTER_BIAS_RATE, model.expertLoads());
                model.resetExpertLoads();
            }
            long t3 = System.nanoTime();
            if (i >= 0) {
                f[i] = forward / 1e9;
                b[i] = backward / 1e9;
                s[i] = (t3 - t2) / 1e9;
                ns[i] = optimizer.lastNewtonSchulzNanos() / 1e9;
                whole[i] = f[i] + b[i] + s[i];
            }
        }

        Result result() {
            return new Result(c.label(), muon ? "Muon (hybrid)" : "AdamW", median(f), median(b), median(s), median(ns),
                    (long) batch * accumulation * time, whole.clone());
        }
    }

    /** Prints one row of the result table. */
    public void print(Result r) {
        double t = r.total();
        out.printf("%-10s %-14s %9.0f tok/s  step %.3f s = forward %.3f (%.0f%%) + backward %.3f (%.0f%%) + optimizer %.3f (%.1f%%",
                r.model(), r.optimizer(), r.tokensPerSecond(), t, r.forward(), 100 * r.forward() / t, r.backward(),
                100 * r.backward() / t, r.step(), 100 * r.step() / t);
        if (r.newtonSchulz() > 0) {
            out.printf("; Newton-Schulz %.3f", r.newtonSchulz());
        }
        out.println(")");
    }

    private static double median(double[] x) {
        double[] c = x.clone();
        java.util.Arrays.sort(c);
        return c[c.length / 2];
    }
}
