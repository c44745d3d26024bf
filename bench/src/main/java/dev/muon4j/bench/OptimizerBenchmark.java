package dev.muon4j.bench;

import dev.muon4j.backend.Backend;
import dev.muon4j.optim.HybridOptimizer;
import dev.muon4j.optim.MuonConfig;
import dev.muon4j.optim.NewtonSchulz;
import dev.muon4j.optim.NewtonSchulzConfig;
import dev.muon4j.optim.Optimizers;
import dev.muon4j.optim.Parameter;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Measures, in one run on one backend: GEMM GFLOP/s, Newton–Schulz (5 steps) time and effective
 * GFLOP/s, and a full Muon step over GPT-2 small's hidden matrices against the time of the same
 * work done with plain GEMMs.
 *
 * <p>Effective GFLOP/s counts Newton–Schulz as {@code 5·(4m²n + 2m³)} flops for an m×n input
 * (m ≤ n), the cost of doing it with general products only; the symmetric products (SYRK) do
 * {@code 5·(3m²n + m³)}, which is how the effective rate can exceed the GEMM rate.
 */
public final class OptimizerBenchmark {
    /** Input shapes (rows × cols) timed for Newton–Schulz. */
    public static final int[][] NS_SHAPES = {{1024, 1024}, {1024, 4096}, {4096, 4096}};
    /** GPT-2 small: 12 layers of attention qkv, attention out, MLP up, MLP down (fan-out × fan-in as stored here). */
    public static final int[][] GPT2_HIDDEN = {{768, 2304}, {768, 768}, {768, 3072}, {3072, 768}};
    public static final int GPT2_LAYERS = 12;

    private final Backend backend;
    private final PrintStream out;
    private final int repetitions;

    public OptimizerBenchmark(Backend backend, PrintStream out, int repetitions) {
        if (repetitions < 1) {
            throw new IllegalArgumentException("repetitions must be >= 1, got " + repetitions);
        }
        this.backend = backend;
        this.out = out;
        this.repetitions = repetitions;
    }

    /** Results of one Newton–Schulz shape. */
    public record NsResult(int rows, int cols, double gemmGflops, double nsSeconds, double nsEffectiveGflops) {
        public double ratioToGemm() {
            return nsEffectiveGflops / gemmGflops;
        }
    }

    /** Results of the GPT-2 optimizer step. */
    public record StepResult(int matrices, long parameters, double stepSeconds, double pureGemmSeconds, double conventionalGflop) {
        public double fractionOfGemm() {
            return stepSeconds / pureGemmSeconds;
        }
    }

    public List<NsResult> runNewtonSchulz(int[][] shapes) {
        List<NsResult> results = new ArrayList<>();
        out.printf("%-12s %12s %10s %14s %10s%n", "shape", "GEMM GFLOP/s", "NS5 s", "NS5 eff GF/s", "NS/GEMM");
        for (int[] shape : shapes) {
            int rows = shape[0];
            int cols = shape[1];
            int m = Math.min(rows, cols);
            int n = Math.max(rows, cols);
            double gemm = gemmGflops(m, n, m);
            float[] g = random(rows * cols, 1);
            float[] o = new float[rows * cols];
            NewtonSchulz.Workspace ws = new NewtonSchulz.Workspace();
            NewtonSchulzConfig cfg = NewtonSchulzConfig.defaults();
            double seconds = median(() -> NewtonSchulz.orthogonalize(backend, cfg, g, 0, rows, cols, o, 0, ws));
            double eff = NewtonSchulz.conventionalFlops(rows, cols, 5) / seconds / 1e9;
            NsResult r = new NsResult(rows, cols, gemm, seconds, eff);
            results.add(r);
            out.printf("%-12s %12.1f %10.4f %14.1f %9.0f%%%n", rows + "x" + cols, gemm, seconds, eff, 100 * r.ratioToGemm());
        }
        return results;
    }

    /** GFLOP/s of {@code C(m×n) = A(m×k)·B(k×n)}, the median of the repetitions. */
    public double gemmGflops(int m, int n, int k) {
        float[] a = random(m * k, 2);
        float[] b = random(k * n, 3);
        float[] c = new float[m * n];
        double seconds = median(() -> backend.gemm(false, false, m, n, k, 1f, a, 0, k, b, 0, n, 0f, c, 0, n));
        return 2.0 * m * n * k / seconds / 1e9;
    }

    public StepResult runGpt2Step() {
        List<Parameter> params = new ArrayList<>();
        long total = 0;
        for (int layer = 0; layer < GPT2_LAYERS; layer++) {
            String[] names = {"attn.qkv", "attn.out", "mlp.up", "mlp.down"};
            for (int i = 0; i < GPT2_HIDDEN.length; i++) {
                int out = GPT2_HIDDEN[i][0];
                int in = GPT2_HIDDEN[i][1];
                Parameter p = Parameter.matrix("h." + layer + "." + names[i], out, in);
                fill(p.value(), 10L * layer + i, 0.02f);
                fill(p.gradient(), 1000L + 10L * layer + i, 1f);
                params.add(p);
                total += p.size();
            }
        }
        HybridOptimizer opt = Optimizers.muon(backend, MuonConfig.moonlight().learningRate(1e-3).build(), params);
        double step = median(opt::step);
        double conventional = 0;
        for (int[] s : GPT2_HIDDEN) {
            conventional += GPT2_LAYERS * NewtonSchulz.conventionalFlops(s[0], s[1], 5);
        }
        double pure = median(() -> plainGemmNewtonSchulzWork(params));
        StepResult r = new StepResult(params.size(), total, step, pure, conventional / 1e9);
        out.printf("GPT-2 small hidden matrices: %d matrices, %.1fM parameters%n", r.matrices(), total / 1e6);
        out.printf("  full Muon step (momentum + NS5 + update): %.3f s%n", step);
        out.printf("  same NS5 flops (%.0f GFLOP) as plain GEMMs: %.3f s%n", r.conventionalGflop(), pure);
        out.printf("  step / plain-GEMM time: %.2f  (%.1f effective GFLOP/s)%n", r.fractionOfGemm(), r.conventionalGflop() / step);
        return r;
    }

    /** The products of five Newton–Schulz steps done with general GEMMs only (no symmetric tricks), for every matrix. */
    private void plainGemmNewtonSchulzWork(List<Parameter> params) {
        float[] a = new float[3072 * 3072];
        float[] b = new float[3072 * 3072];
        float[] y = new float[3072 * 3072];
        for (Parameter p : params) {
            int m = Math.min(p.layout().fanOut(), p.layout().fanIn());
            int n = Math.max(p.layout().fanOut(), p.layout().fanIn());
            float[] x = p.gradient();
            for (int s = 0; s < 5; s++) {
                backend.gemm(false, true, m, m, n, 1f, x, 0, n, x, 0, n, 0f, a, 0, m);
                backend.gemm(false, false, m, m, m, 1f, a, 0, m, a, 0, m, 0f, b, 0, m);
                backend.gemm(false, false, m, n, m, 1f, b, 0, m, x, 0, n, 0f, y, 0, n);
            }
        }
    }

    private double median(Runnable body) {
        body.run(); // warm-up: JIT, page faults, thread start-up
        double[] t = new double[repetitions];
        for (int i = 0; i < repetitions; i++) {
            long start = System.nanoTime();
            body.run();
            t[i] = (System.nanoTime() - start) / 1e9;
        }
        Arrays.sort(t);
        return t[repetitions / 2];
    }

    private static float[] random(int n, long seed) {
        float[] x = new float[n];
        fill(x, seed, 1f);
        return x;
    }

    private static void fill(float[] x, long seed, float std) {
        SplittableRandom r = new SplittableRandom(seed);
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) (std * (r.nextDouble() * 2 - 1) * Math.sqrt(3));
        }
    }
}
