package dev.muon4j.autograd;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.BackendConfig;
import dev.muon4j.backend.BackendKind;
import dev.muon4j.backend.Backends;
import java.util.Arrays;
import java.util.Random;

/**
 * Times causal attention's forward and backward with the whole T×T matrices ({@code blockRows ≥ T},
 * the computation before blocks) and by blocks of several sizes, in turns within each repetition so
 * that a busy machine slows all of them alike; prints the medians and their ratios. Not a test: run
 * by hand with the test classes on the class path (docs/BENCHMARKS.md has the command).
 *
 * <p>Arguments: repetitions (default 5), backend threads (default 2), then the block sizes to try
 * (default 64 128 256). Shapes:
 * H = K = 6 heads of D = Dv = 64 (the small dense preset's), B·T = 4096 tokens at T = 256 … 2048.
 */
final class AttentionBenchmark {
    private static final int HEADS = 6;
    private static final int HEAD_DIM = 64;
    private static final int TOKENS = 4096;
    private static final int[] TIMES = {256, 512, 1024, 2048};

    private AttentionBenchmark() {
    }

    public static void main(String[] args) {
        int repetitions = args.length > 0 ? Integer.parseInt(args[0]) : 5;
        int threads = args.length > 1 ? Integer.parseInt(args[1]) : 2;
        int[] blocks = args.length > 2
                ? Arrays.stream(args, 2, args.length).mapToInt(Integer::parseInt).toArray()
                : new int[] {64, 128, 256};
        int[] variants = new int[blocks.length + 1];
        variants[0] = Integer.MAX_VALUE;
        System.arraycopy(blocks, 0, variants, 1, blocks.length);
        try (Backend backend = Backends.open(new BackendConfig(BackendKind.AUTO, threads))) {
            System.out.println("backend: " + backend.description() + "; repetitions " + repetitions
                    + "; H=K=" + HEADS + " D=Dv=" + HEAD_DIM + " B·T=" + TOKENS);
            System.out.println("| T | B | variant | forward ms | backward ms | fwd / whole | bwd / whole |");
            System.out.println("|---|---|---|---|---|---|---|");
            // the first pass (T = 256, not printed) lets the JIT compile the softmax and row loops
            for (int pass = -1; pass < TIMES.length; pass++) {
                int time = TIMES[Math.max(0, pass)];
                int batch = TOKENS / time;
                Random rnd = new Random(time);
                int n = batch * time;
                int w = HEADS * HEAD_DIM;
                float[] q = GradientCheckTest.randn(rnd, n * w, 1);
                float[] k = GradientCheckTest.randn(rnd, n * w, 1);
                float[] v = GradientCheckTest.randn(rnd, n * w, 1);
                float[] r = GradientCheckTest.randn(rnd, n * w, 1);
                double[][] fwd = new double[variants.length][repetitions];
                double[][] bwd = new double[variants.length][repetitions];
                try (Graph g = new Graph(backend)) {
                    // leaves made once: their gradient arrays are allocated in the warm-up, then accumulate
                    Tensor tq = g.variable(q, n, w);
                    Tensor tk = g.variable(k, n, w);
                    Tensor tv = g.variable(v, n, w);
                    for (int rep = -1; rep < repetitions; rep++) { // rep −1 warms up
                        for (int i = 0; i < variants.length; i++) {
                            float[] maxLogits = new float[HEADS];
                            long t0 = System.nanoTime();
                            Tensor y = AttentionOps.causal(g, tq, tk, tv, batch, time, HEADS, HEADS, HEAD_DIM,
                                    maxLogits, 0, variants[i]);
                            long t1 = System.nanoTime();
                            Tensor loss = GradientCheckTest.projectedLoss(g, y, r);
                            long t2 = System.nanoTime();
                            g.backward(loss);
                            long t3 = System.nanoTime();
                            g.reset();
                            if (rep >= 0) {
                                fwd[i][rep] = (t1 - t0) / 1e6;
                                bwd[i][rep] = (t3 - t2) / 1e6;
                            }
                        }
                    }
                }
                if (pass < 0) {
                    continue;
                }
                double fwdWhole = median(fwd[0]);
                double bwdWhole = median(bwd[0]);
                for (int i = 0; i < variants.length; i++) {
                    String name = variants[i] == Integer.MAX_VALUE ? "whole T×T" : "blocks of " + variants[i];
                    double f = median(fwd[i]);
                    double b = median(bwd[i]);
                    System.out.printf("| %d | %d | %s | %.1f | %.1f | %.2f | %.2f |%n", time, batch, name, f, b,
                            f / fwdWhole, b / bwdWhole);
                }
            }
        }
    }

    private static double median(double[] xs) {
        double[] s = xs.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }
}
