package dev.muon4j.cuda;

import dev.muon4j.backend.VectorBackend;
import dev.muon4j.optim.HybridOptimizer;
import dev.muon4j.optim.MuonConfig;
import dev.muon4j.optim.NewtonSchulzConfig;
import dev.muon4j.optim.ParamRole;
import dev.muon4j.optim.Parameter;
import dev.muon4j.optim.Preset;
import dev.muon4j.optim.Route;
import dev.muon4j.optim.UpdateRule;
import dev.muon4j.tensor.DType;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Random;

/**
 * {@code bench optimizer --backend cuda}: on the first GPU, timed with CUDA events (median and minimum of
 * the repetitions, after warm-up runs):
 *
 * <ul>
 *   <li>NS5 in bfloat16 on 4096×4096, with the symmetric products whole and in 2 and 4 blocks per side;</li>
 *   <li>a full Muon step (Moonlight's settings, bfloat16 Newton–Schulz) over GPT-2 small's hidden matrices,
 *       12 × {2304×768, 768×768, 3072×768, 768×3072} (out × in, as {@code nn.Linear} holds them), with
 *       symmetric blocks 1, 2 and 4, and the same with float32 Newton–Schulz;</li>
 *   <li>an AdamW step over the same matrices (the fused kernel).</li>
 * </ul>
 *
 * Each step includes what {@link CudaOptimizer#step} always does: the gradients' global norm, copied to
 * the host. Results print as a table and, with {@code jsonOut}, as one JSON object per line.
 */
public final class CudaBenchmark {
    /** GPT-2 small's hidden matrices per layer, out × in. */
    static final int[][] GPT2_SHAPES = {{2304, 768}, {768, 768}, {3072, 768}, {768, 3072}};
    static final int GPT2_LAYERS = 12;

    private final CudaDevice device;
    private final PrintStream out;
    private final int repetitions;
    private final List<String> json = new ArrayList<>();

    public CudaBenchmark(CudaDevice device, PrintStream out, int repetitions) {
        this.device = device;
        this.out = out;
        this.repetitions = repetitions;
    }

    private static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }

    private static double min(double[] v) {
        return Arrays.stream(v).min().orElse(Double.NaN);
    }

    private void record(String name, double[] ms, String extra) {
        out.printf(Locale.ROOT, "%-44s median %8.3f ms   min %8.3f ms   (%d runs)%s%n", name, median(ms), min(ms), ms.length,
                extra.isEmpty() ? "" : "   " + extra);
        json.add(String.format(Locale.ROOT, "{\"name\": \"%s\", \"ms_median\": %.4f, \"ms_min\": %.4f, \"reps\": %d, \"device\": \"%s\"}",
                name, median(ms), min(ms), ms.length, device.name()));
    }

    /** NS5 bf16 on a square matrix of side {@code n} with 1, 2 and 4 symmetric blocks. */
    public void newtonSchulz(int n) {
        NewtonSchulzConfig config = NewtonSchulzConfig.defaults().withPrecision(DType.BF16);
        Random r = new Random(1);
        float[] g = new float[n * n];
        for (int i = 0; i < g.length; i++) {
            g[i] = (float) r.nextGaussian();
        }
        try (DeviceArray in = device.upload(g)) {
            for (int blocks : new int[] {1, 2, 4}) {
                try (CudaNewtonSchulz ns = new CudaNewtonSchulz(device, config, n, n, 1, blocks)) {
                    double[] ms = device.time(() -> ns.orthogonalize(in.address()), 3, repetitions);
                    double tflops = ns.conventionalFlops() / (median(ms) * 1e-3) / 1e12;
                    record("ns5_bf16_" + n + "_blocks" + blocks, ms, String.format(Locale.ROOT, "%.0f TFLOP/s conventional%s", tflops,
                            ns.usesLt() ? ", cuBLASLt" : ", cuBLAS with copies"));
                }
            }
        }
    }

    /** GPT-2 small's 48 hidden matrices with random values and gradients. */
    static List<Parameter> gpt2Parameters(long seed) {
        Random r = new Random(seed);
        List<Parameter> params = new ArrayList<>();
        String[] names = {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"};
        for (int layer = 0; layer < GPT2_LAYERS; layer++) {
            for (int k = 0; k < GPT2_SHAPES.length; k++) {
                int rows = GPT2_SHAPES[k][0];
                int cols = GPT2_SHAPES[k][1];
                float[] w = new float[rows * cols];
                float[] g = new float[rows * cols];
                for (int i = 0; i < w.length; i++) {
                    w[i] = (float) r.nextGaussian() * 0.02f;
                    g[i] = (float) r.nextGaussian() * 1e-3f;
                }
                params.add(Parameter.of("h." + layer + "." + names[k] + ".weight", ParamRole.HIDDEN_MATRIX, new int[] {rows, cols}, w, g));
            }
        }
        return params;
    }

    /** One optimizer over GPT-2 small's hidden matrices, stepped {@link #repetitions} times after warm-up. */
    private void step(String name, HybridOptimizer.Builder builder, int symmetricBlocks) {
        List<Parameter> params = gpt2Parameters(2);
        try (CudaOptimizer opt = CudaOptimizer.build(device, builder, params, symmetricBlocks)) {
            opt.setGradients();
            double[] ms = device.time(opt::step, 3, repetitions);
            long t0 = System.nanoTime();
            int wall = Math.max(5, repetitions);
            for (int i = 0; i < wall; i++) {
                opt.step();
            }
            device.synchronize();
            double wallMs = (System.nanoTime() - t0) / 1e6 / wall;
            record(name, ms, String.format(Locale.ROOT, "wall %.3f ms/step, %d groups", wallMs, opt.plan().groups().size()));
        }
    }

    /** The Muon and AdamW steps over GPT-2 small's hidden matrices. */
    public void gpt2Steps() {
        VectorBackend cpu = new VectorBackend(1);
        MuonConfig bf16 = MuonConfig.moonlight().newtonSchulz(NewtonSchulzConfig.defaults().withPrecision(DType.BF16)).build();
        for (int blocks : new int[] {1, 2, 4}) {
            step("gpt2_small_muon_step_bf16_blocks" + blocks, Preset.MOONLIGHT.builder(cpu).muon(bf16).muonRule(UpdateRule.muon(bf16)),
                    blocks);
        }
        MuonConfig f32 = MuonConfig.moonlight().build();
        step("gpt2_small_muon_step_f32", Preset.MOONLIGHT.builder(cpu).muon(f32).muonRule(UpdateRule.muon(f32)), 1);
        step("gpt2_small_adamw_step", Preset.ADAMW.builder(cpu).routeAll(Route.ADAMW), 1);
    }

    /** Writes the JSON lines gathered so far to {@code file} (atomically enough for a benchmark: a temporary file renamed). */
    public void writeJson(Path file) throws IOException {
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        Files.write(tmp, json);
        Files.move(tmp, file, java.nio.file.StandardCopyOption.REPLACE_EXISTING, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
    }

    /** The whole benchmark on GPU 0. */
    public static void run(PrintStream out, int repetitions, Path jsonOut) throws IOException {
        try (CudaDevice device = CudaDevice.open(0)) {
            out.println("device: " + device.describe());
            out.printf("java %s%n%n", Runtime.version());
            CudaBenchmark bench = new CudaBenchmark(device, out, repetitions);
            bench.newtonSchulz(4096);
            bench.gpt2Steps();
            if (jsonOut != null) {
                bench.writeJson(jsonOut);
            }
        }
    }

    /** {@code java dev.muon4j.cuda.CudaBenchmark [repetitions] [json-out]}: the same as {@code bench optimizer --backend cuda}. */
    public static void main(String[] args) throws IOException {
        int repetitions = args.length > 0 ? Integer.parseInt(args[0]) : 20;
        Path jsonOut = args.length > 1 ? Path.of(args[1]) : null;
        run(System.out, repetitions, jsonOut);
    }
}
