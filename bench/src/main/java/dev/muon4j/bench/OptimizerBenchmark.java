package dev.muon4j.bench;

import dev.muon4j.tensor.DType;
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
 * GFLOP/s with the standard iteration and with Gram Newton–Schulz ({@link NewtonSchulzConfig.Method#GRAM}),
 * their accuracy against a float64 Newton–Schulz, and a full Muon step over GPT-2 small's hidden matrices
 * (with each method) against the time of the same work done with plain GEMMs.
 *
 * <p>Effective GFLOP/s counts Newton–Schulz as {@code 5·(4m²n + 2m³)} flops for an m×n input
 * (m ≤ n), the cost of the standard iteration with general products only, for both methods; the
 * symmetric products (SYRK) do {@code 5·(3m²n + m³)}, and Gram Newton–Schulz {@code 6m²n + 23m³}
 * (non-square inputs), which is how an effective rate can exceed the GEMM rate.
 *
 * <p>GEMM, the standard iteration and the Gram one are timed in turns (one repetition of each per
 * round), so a change of the machine's speed during the run reaches all three alike.
 */
public final class OptimizerBenchmark {
    /** Input shapes (rows × cols) timed for Newton–Schulz. */
    public static final int[][] NS_SHAPES = {{1024, 1024}, {1024, 4096}, {4096, 4096}};
    /** GPT-2 small: 12 layers of attention qkv, attention out, MLP up, MLP down (fan-out × fan-in as stored here). */
    public static final int[][] GPT2_HIDDEN = {{768, 2304}, {768, 768}, {768, 3072}, {3072, 768}};
    public static final int GPT2_LAYERS = 12;
    /**
     * The largest m²n (m ≤ n) whose float64 reference is computed: 1024×4096 (4.3e9, about 10 s of
     * float64 loops on two cores) is, 4096×4096 (6.9e10) is not.
     */
    public static final double ACCURACY_MAX_WORK = 5e9;

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

    /**
     * Results of one Newton–Schulz shape: the GEMM rate, and each method's median time, effective rate and
     * accuracy (null where the float64 reference was not computed).
     */
    public record NsResult(int rows, int cols, double gemmGflops, double nsSeconds, double nsEffectiveGflops,
                           double gramSeconds, double gramEffectiveGflops, Accuracy standardAccuracy, Accuracy gramAccuracy) {
        public double ratioToGemm() {
            return nsEffectiveGflops / gemmGflops;
        }

        public double gramRatioToGemm() {
            return gramEffectiveGflops / gemmGflops;
        }

        /** Standard time over Gram time. */
        public double gramSpeedup() {
            return nsSeconds / gramSeconds;
        }
    }

    /**
     * A float32 result against the float64 Newton–Schulz of the same input: the largest absolute
     * difference, the relative Frobenius error, and the ends of the singular-value band of each (from
     * the eigenvalues of O·Oᵀ in float64).
     */
    public record Accuracy(double maxAbsError, double relativeError, double minSingular, double maxSingular,
                           double referenceMinSingular, double referenceMaxSingular) {
    }

    /** Results of the GPT-2 optimizer step, with the standard Newton–Schulz, with the Gram one and with the standard one in bfloat16. */
    public record StepResult(int matrices, long parameters, double stepSeconds, double gramStepSeconds, double pureGemmSeconds,
                             double conventionalGflop, double bf16StepSeconds) {
        public double fractionOfGemm() {
            return stepSeconds / pureGemmSeconds;
        }

        public double gramFractionOfGemm() {
            return gramStepSeconds / pureGemmSeconds;
        }
    }

    public List<NsResult> runNewtonSchulz(int[][] shapes) {
        List<NsResult> results = new ArrayList<>();
        out.printf("%-10s %7s | %8s %7s %5s | %8s %7s %5s | %7s | %-47s | %-47s%n", "shape", "GEMM", "NS5 s", "eff", "ratio",
                "Gram s", "eff", "ratio", "speedup", "NS5 vs float64", "Gram vs float64");
        for (int[] shape : shapes) {
            int rows = shape[0];
            int cols = shape[1];
            int m = Math.min(rows, cols);
            int n = Math.max(rows, cols);
            float[] ga = random(m * m, 2);
            float[] gb = random(m * n, 3);
            float[] gc = new float[m * n];
            float[] g = random(rows * cols, 1);
            float[] o = new float[rows * cols];
            float[] oGram = new float[rows * cols];
            NewtonSchulz.Workspace ws = new NewtonSchulz.Workspace();
            NewtonSchulzConfig standard = NewtonSchulzConfig.defaults();
            NewtonSchulzConfig gram = standard.withMethod(NewtonSchulzConfig.Method.GRAM);
            double[] seconds = interleavedMedians(List.of(
                    () -> backend.gemm(false, false, m, n, m, 1f, ga, 0, m, gb, 0, n, 0f, gc, 0, n),
                    () -> NewtonSchulz.orthogonalize(backend, standard, g, 0, rows, cols, o, 0, ws),
                    () -> NewtonSchulz.orthogonalize(backend, gram, g, 0, rows, cols, oGram, 0, ws)));
            double gemm = 2.0 * m * n * m / seconds[0] / 1e9;
            double flops = NewtonSchulz.conventionalFlops(rows, cols, 5);
            Accuracy standardAccuracy = null;
            Accuracy gramAccuracy = null;
            if ((double) m * m * n <= ACCURACY_MAX_WORK) {
                double[] reference = float64NewtonSchulz(g, rows, cols, standard);
                double[] referenceBand = band(reference, rows, cols);
                standardAccuracy = accuracy(o, reference, rows, cols, referenceBand);
                gramAccuracy = accuracy(oGram, reference, rows, cols, referenceBand);
            }
            NsResult r = new NsResult(rows, cols, gemm, seconds[1], flops / seconds[1] / 1e9, seconds[2], flops / seconds[2] / 1e9,
                    standardAccuracy, gramAccuracy);
            results.add(r);
            out.printf("%-10s %7.1f | %8.4f %7.1f %4.0f%% | %8.4f %7.1f %4.0f%% | %6.2fx | %-47s | %-47s%n", rows + "x" + cols, gemm,
                    r.nsSeconds(), r.nsEffectiveGflops(), 100 * r.ratioToGemm(), r.gramSeconds(), r.gramEffectiveGflops(),
                    100 * r.gramRatioToGemm(), r.gramSpeedup(), describe(standardAccuracy), describe(gramAccuracy));
        }
        out.println("GEMM, eff: GFLOP/s (eff: conventional NS5 flops 5(4m^2n + 2m^3) / time, for both methods); ratio: eff / GEMM;");
        out.println("speedup: NS5 time / Gram time; vs float64: max |O - O64|, relative Frobenius error, singular values [min, max]"
                + " (float64's in parentheses); '-' above m^2n = " + ACCURACY_MAX_WORK);
        return results;
    }

    private static String describe(Accuracy a) {
        if (a == null) {
            return "-";
        }
        return String.format(java.util.Locale.ROOT, "%.1e %.1e [%.4f, %.4f] ([%.4f, %.4f])", a.maxAbsError(), a.relativeError(),
                a.minSingular(), a.maxSingular(), a.referenceMinSingular(), a.referenceMaxSingular());
    }

    /**
     * Warm-up: each body is run until it has run {@link #WARMUP_SECONDS} in all or {@link #WARMUP_RUNS} times (at
     * least once), so that the JIT has compiled the loops around the native products. One warm-up run was not enough for the first shape measured:
     * NS5 1024² in bfloat16 took 134 ms as the median of runs 2–4 and 53–58 ms from the fifth run on (2 Zen 5 cores,
     * oneDNN, 2026-11-28), the conversions to and from bfloat16 still running in the interpreter.
     */
    static final double WARMUP_SECONDS = 1.0;
    /** At most this many warm-up runs (tiny shapes reach it long before {@link #WARMUP_SECONDS}). */
    static final int WARMUP_RUNS = 10;

    /** Each body warmed up ({@link #WARMUP_SECONDS}), then {@code repetitions} rounds of one run of each in turn; the median time of each. */
    private double[] interleavedMedians(List<Runnable> bodies) {
        for (Runnable body : bodies) {
            long start = System.nanoTime();
            int runs = 0;
            do {
                body.run();
                runs++;
            } while (runs < WARMUP_RUNS && System.nanoTime() - start < WARMUP_SECONDS * 1e9);
        }
        double[][] t = new double[bodies.size()][repetitions];
        for (int rep = 0; rep < repetitions; rep++) {
            for (int i = 0; i < bodies.size(); i++) {
                long start = System.nanoTime();
                bodies.get(i).run();
                t[i][rep] = (System.nanoTime() - start) / 1e9;
            }
        }
        double[] medians = new double[bodies.size()];
        for (int i = 0; i < medians.length; i++) {
            Arrays.sort(t[i]);
            medians[i] = t[i][repetitions / 2];
        }
        return medians;
    }

    private static Accuracy accuracy(float[] got, double[] reference, int rows, int cols, double[] referenceBand) {
        double max = 0;
        double diff = 0;
        double norm = 0;
        double[] asDouble = new double[got.length];
        for (int i = 0; i < got.length; i++) {
            double d = got[i] - reference[i];
            max = Math.max(max, Math.abs(d));
            diff += d * d;
            norm += reference[i] * reference[i];
            asDouble[i] = got[i];
        }
        double[] gotBand = band(asDouble, rows, cols);
        return new Accuracy(max, Math.sqrt(diff / norm), gotBand[0], gotBand[1], referenceBand[0], referenceBand[1]);
    }

    // ------------------------------------------------------------------ float64 reference

    /**
     * The standard Newton–Schulz iteration in float64 (transpose when rows &gt; cols, X = G / (s·‖G‖_F + eps),
     * X ← a·X + (b·A + c·A·A)·X with A = X·Xᵀ, transpose back), rows in parallel.
     */
    static double[] float64NewtonSchulz(float[] g, int rows, int cols, NewtonSchulzConfig config) {
        boolean transposed = rows > cols;
        int m = Math.min(rows, cols);
        int n = Math.max(rows, cols);
        double[] x = new double[m * n];
        double sumSq = 0;
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                double v = g[r * cols + c];
                x[transposed ? c * n + r : r * n + c] = v;
                sumSq += v * v;
            }
        }
        double factor = 1.0 / (config.schedule().normScale() * Math.sqrt(sumSq) + config.eps());
        for (int i = 0; i < x.length; i++) {
            x[i] *= factor;
        }
        for (int step = 0; step < config.steps(); step++) {
            dev.muon4j.optim.Coefficients k = config.schedule().at(step);
            double[] a = multiplyByTranspose(x, m, n);
            double[] aa = multiply(a, m, m, a, m);
            for (int i = 0; i < aa.length; i++) {
                aa[i] = k.b() * a[i] + k.c() * aa[i];
            }
            double[] bx = multiply(aa, m, m, x, n);
            for (int i = 0; i < x.length; i++) {
                x[i] = k.a() * x[i] + bx[i];
            }
        }
        double[] result = new double[rows * cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                result[r * cols + c] = transposed ? x[c * n + r] : x[r * n + c];
            }
        }
        return result;
    }

    /** P (p×q) · Q (q×s) in float64, row major, output rows in parallel. */
    static double[] multiply(double[] p, int rowsP, int inner, double[] q, int colsQ) {
        double[] product = new double[rowsP * colsQ];
        java.util.stream.IntStream.range(0, rowsP).parallel().forEach(i -> {
            int row = i * colsQ;
            for (int l = 0; l < inner; l++) {
                double pil = p[i * inner + l];
                int qRow = l * colsQ;
                for (int j = 0; j < colsQ; j++) {
                    product[row + j] += pil * q[qRow + j];
                }
            }
        });
        return product;
    }

    /** X·Xᵀ for X rows×cols in float64. */
    static double[] multiplyByTranspose(double[] x, int rows, int cols) {
        double[] xt = new double[cols * rows];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                xt[c * rows + r] = x[r * cols + c];
            }
        }
        return multiply(x, rows, cols, xt, rows);
    }

    /**
     * The smallest and largest singular value of a rows×cols float64 matrix: square roots of the extreme
     * eigenvalues of its smaller Gram matrix S (m×m), from the Lanczos tridiagonalization of S run for all
     * m steps with full reorthogonalization (so its Ritz values are S's eigenvalues to rounding), whose
     * extreme eigenvalues are found by Sturm-sequence bisection.
     */
    static double[] band(double[] matrix, int rows, int cols) {
        int m = Math.min(rows, cols);
        int n = Math.max(rows, cols);
        double[] x = matrix;
        if (rows > cols) {
            x = new double[m * n];
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < cols; c++) {
                    x[c * n + r] = matrix[r * cols + c];
                }
            }
        }
        double[] s = multiplyByTranspose(x, m, n);
        double[] alpha = new double[m];
        double[] beta = new double[m]; // beta[i] couples i-1 and i; beta[0] = 0
        double[][] basis = new double[m][];
        SplittableRandom random = new SplittableRandom(12345);
        double[] v = unitRandom(random, m, basis, 0);
        double norm = 0;
        for (int i = 0; i < m * m; i++) {
            norm = Math.max(norm, Math.abs(s[i]));
        }
        for (int k = 0; k < m; k++) {
            basis[k] = v;
            double[] w = new double[m];
            final double[] vk = v;
            java.util.stream.IntStream.range(0, m).parallel().forEach(i -> {
                double sum = 0;
                for (int j = 0; j < m; j++) {
                    sum += s[i * m + j] * vk[j];
                }
                w[i] = sum;
            });
            alpha[k] = dot(w, v);
            // Full reorthogonalization, twice: w ⟂ every basis vector so far.
            for (int pass = 0; pass < 2; pass++) {
                for (int j = 0; j <= k; j++) {
                    double d = dot(w, basis[j]);
                    for (int i = 0; i < m; i++) {
                        w[i] -= d * basis[j][i];
                    }
                }
            }
            if (k + 1 == m) {
                break;
            }
            double b = Math.sqrt(dot(w, w));
            if (b <= 1e-12 * Math.max(norm, Double.MIN_NORMAL)) {
                // An invariant subspace: continue with a fresh direction (the tridiagonal matrix splits there).
                beta[k + 1] = 0;
                v = unitRandom(random, m, basis, k + 1);
            } else {
                beta[k + 1] = b;
                for (int i = 0; i < m; i++) {
                    w[i] /= b;
                }
                v = w;
            }
        }
        double bound = 0;
        for (int k = 0; k < m; k++) {
            bound = Math.max(bound, Math.abs(alpha[k]) + Math.abs(beta[k]) + (k + 1 < m ? Math.abs(beta[k + 1]) : 0));
        }
        double smallest = tridiagonalEigenvalue(alpha, beta, 0, bound);
        double largest = tridiagonalEigenvalue(alpha, beta, m - 1, bound);
        return new double[] {Math.sqrt(Math.max(0, smallest)), Math.sqrt(Math.max(0, largest))};
    }

    private static double dot(double[] p, double[] q) {
        double sum = 0;
        for (int i = 0; i < p.length; i++) {
            sum += p[i] * q[i];
        }
        return sum;
    }

    /** A random unit vector orthogonal to {@code basis[0..count)}. */
    private static double[] unitRandom(SplittableRandom random, int m, double[][] basis, int count) {
        double[] v = new double[m];
        for (int i = 0; i < m; i++) {
            v[i] = random.nextDouble() - 0.5;
        }
        for (int pass = 0; pass < 2; pass++) {
            for (int j = 0; j < count; j++) {
                double d = dot(v, basis[j]);
                for (int i = 0; i < m; i++) {
                    v[i] -= d * basis[j][i];
                }
            }
        }
        double norm = Math.sqrt(dot(v, v));
        for (int i = 0; i < m; i++) {
            v[i] /= norm;
        }
        return v;
    }

    /**
     * The k-th smallest eigenvalue (0-based) of the symmetric tridiagonal matrix with diagonal
     * {@code alpha} and off-diagonal {@code beta[1..]}, all eigenvalues within ±{@code bound}: bisection
     * on the Sturm count (the negative pivots of T − λI), to 1e-13 of the bound.
     */
    private static double tridiagonalEigenvalue(double[] alpha, double[] beta, int k, double bound) {
        double lo = -bound - 1e-300;
        double hi = bound + 1e-300;
        for (int iteration = 0; iteration < 200 && hi - lo > 1e-13 * bound; iteration++) {
            double mid = 0.5 * (lo + hi);
            int below = 0;
            double d = 1;
            for (int i = 0; i < alpha.length; i++) {
                d = alpha[i] - mid - (i == 0 ? 0 : beta[i] * beta[i] / d);
                if (d == 0) {
                    d = -1e-300;
                }
                if (d < 0) {
                    below++;
                }
            }
            if (below > k) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        return 0.5 * (lo + hi);
    }

    /**
     * Seconds a rate measured right after start-up is first run for: the JIT compilers are still
     * compiling then and take a core of their own (measured on 2 Zen 5 cores, 2048² GEMM: 255 GFLOP/s
     * in the first second against 335–340 after).
     */
    static final double SETTLE_SECONDS = 1.0;

    /** GFLOP/s of {@code C(m×n) = A(m×k)·B(k×n)}, the median of the repetitions after {@link #SETTLE_SECONDS} of the same. */
    public double gemmGflops(int m, int n, int k) {
        float[] a = random(m * k, 2);
        float[] b = random(k * n, 3);
        float[] c = new float[m * n];
        Runnable product = () -> backend.gemm(false, false, m, n, k, 1f, a, 0, k, b, 0, n, 0f, c, 0, n);
        settle(product);
        double seconds = median(product);
        return 2.0 * m * n * k / seconds / 1e9;
    }

    /**
     * GFLOP/s of the same product on bfloat16 matrices through the backend's {@link Backend#bf16Matmul()}
     * (float32 sums), measured like {@link #gemmGflops}; empty where the backend has none.
     */
    public java.util.OptionalDouble bf16GemmGflops(int m, int n, int k) {
        if (backend.bf16Matmul().isEmpty()) {
            return java.util.OptionalDouble.empty();
        }
        dev.muon4j.backend.Bf16Matmul matmul = backend.bf16Matmul().get();
        try (java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined()) {
            java.lang.foreign.MemorySegment a = arena.allocate(2L * m * k, 64);
            java.lang.foreign.MemorySegment b = arena.allocate(2L * k * n, 64);
            java.lang.foreign.MemorySegment c = arena.allocate(2L * m * n, 64);
            dev.muon4j.backend.Kernels.scaleToBFloat16(random(m * k, 2), 0, m * k, 1f, a, 0);
            dev.muon4j.backend.Kernels.scaleToBFloat16(random(k * n, 3), 0, k * n, 1f, b, 0);
            Runnable product = () -> matmul.gemm(false, false, m, n, k, 1f, a, k, b, n, 0f, c, n);
            settle(product);
            double seconds = median(product);
            return java.util.OptionalDouble.of(2.0 * m * n * k / seconds / 1e9);
        }
    }

    /** Runs {@code body} over and over for {@link #SETTLE_SECONDS}. */
    private static void settle(Runnable body) {
        long end = System.nanoTime() + (long) (SETTLE_SECONDS * 1e9);
        do {
            body.run();
        } while (System.nanoTime() < end);
    }

    /** Newton–Schulz in float32 and in bfloat16 on one shape: median times and the bfloat16 result's accuracy (null where not computed). */
    public record Bf16NsResult(int rows, int cols, double f32Seconds, double bf16Seconds, Accuracy bf16Accuracy) {
        public double bf16EffectiveGflops() {
            return NewtonSchulz.conventionalFlops(rows, cols, 5) / bf16Seconds / 1e9;
        }

        public double speedup() {
            return f32Seconds / bf16Seconds;
        }
    }

    /**
     * NS5 (Keller Jordan's coefficients) in float32 and in {@link DType#BF16} precision on each shape,
     * interleaved, with the bfloat16 result against the float64 iteration. On a backend with
     * {@link Backend#bf16Matmul()} the bfloat16 products run there; elsewhere they are float32 products
     * rounded afterwards, and no faster.
     */
    public List<Bf16NsResult> runNewtonSchulzBf16(int[][] shapes) {
        List<Bf16NsResult> results = new ArrayList<>();
        out.printf("%-10s | %8s | %8s %7s | %7s | %-47s%n", "shape", "f32 s", "bf16 s", "eff", "speedup", "bf16 vs float64");
        for (int[] shape : shapes) {
            int rows = shape[0];
            int cols = shape[1];
            int m = Math.min(rows, cols);
            int n = Math.max(rows, cols);
            float[] g = random(rows * cols, 1);
            float[] o32 = new float[rows * cols];
            float[] o16 = new float[rows * cols];
            NewtonSchulz.Workspace ws = new NewtonSchulz.Workspace();
            NewtonSchulzConfig f32 = NewtonSchulzConfig.defaults();
            NewtonSchulzConfig bf16 = f32.withPrecision(DType.BF16);
            double[] seconds = interleavedMedians(List.of(
                    () -> NewtonSchulz.orthogonalize(backend, f32, g, 0, rows, cols, o32, 0, ws),
                    () -> NewtonSchulz.orthogonalize(backend, bf16, g, 0, rows, cols, o16, 0, ws)));
            Accuracy accuracy = null;
            if ((double) m * m * n <= ACCURACY_MAX_WORK) {
                double[] reference = float64NewtonSchulz(g, rows, cols, f32);
                accuracy = accuracy(o16, reference, rows, cols, band(reference, rows, cols));
            }
            Bf16NsResult r = new Bf16NsResult(rows, cols, seconds[0], seconds[1], accuracy);
            results.add(r);
            out.printf("%-10s | %8.4f | %8.4f %7.1f | %6.2fx | %-47s%n", rows + "x" + cols, r.f32Seconds(), r.bf16Seconds(),
                    r.bf16EffectiveGflops(), r.speedup(), describe(accuracy));
        }
        out.println("eff: conventional NS5 flops / bf16 time, GFLOP/s; speedup: f32 time / bf16 time; vs float64 as above");
        return results;
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
        MuonConfig standard = MuonConfig.moonlight().learningRate(1e-3).build();
        MuonConfig gram = MuonConfig.moonlight().learningRate(1e-3)
                .newtonSchulz(NewtonSchulzConfig.defaults().withMethod(NewtonSchulzConfig.Method.GRAM)).build();
        HybridOptimizer opt = Optimizers.muon(backend, standard, params);
        HybridOptimizer gramOpt = Optimizers.muon(backend, gram, params);
        MuonConfig bf16 = MuonConfig.moonlight().learningRate(1e-3)
                .newtonSchulz(NewtonSchulzConfig.defaults().withPrecision(DType.BF16)).build();
        HybridOptimizer bf16Opt = Optimizers.muon(backend, bf16, params);
        double conventional = 0;
        for (int[] s : GPT2_HIDDEN) {
            conventional += GPT2_LAYERS * NewtonSchulz.conventionalFlops(s[0], s[1], 5);
        }
        double[] seconds = interleavedMedians(List.of(opt::step, gramOpt::step, () -> plainGemmNewtonSchulzWork(params), bf16Opt::step));
        StepResult r = new StepResult(params.size(), total, seconds[0], seconds[1], seconds[2], conventional / 1e9, seconds[3]);
        out.printf("GPT-2 small hidden matrices: %d matrices, %.1fM parameters%n", r.matrices(), total / 1e6);
        out.printf("  full Muon step (momentum + NS5 + update): %.3f s; with Gram Newton-Schulz: %.3f s (%.2fx)%n",
                r.stepSeconds(), r.gramStepSeconds(), r.stepSeconds() / r.gramStepSeconds());
        out.printf("  same NS5 flops (%.0f GFLOP) as plain GEMMs: %.3f s%n", r.conventionalGflop(), r.pureGemmSeconds());
        out.printf("  step / plain-GEMM time: %.2f (%.1f effective GFLOP/s); with Gram: %.2f (%.1f)%n", r.fractionOfGemm(),
                r.conventionalGflop() / r.stepSeconds(), r.gramFractionOfGemm(), r.conventionalGflop() / r.gramStepSeconds());
        out.printf("  with Newton-Schulz in bfloat16%s: %.3f s (%.2fx the float32 step; %.1f effective GFLOP/s)%n",
                backend.bf16Matmul().isPresent() ? " (bfloat16 products)" : " (float32 products rounded)", r.bf16StepSeconds(),
                r.stepSeconds() / r.bf16StepSeconds(), r.conventionalGflop() / r.bf16StepSeconds());
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
