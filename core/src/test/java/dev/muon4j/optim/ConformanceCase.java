package dev.muon4j.optim;

import dev.muon4j.backend.Backend;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * The cases of the optimizer conformance suite: every {@link Preset}, and the variants worth
 * covering on top of them (cautious weight decay, per-head query/key orthogonalization), each over
 * the same small hybrid model, with its gradients and a float64 reference of its steps.
 *
 * <p>The reference states each preset's settings again, as docs/VARIANTS.md gives them from their
 * sources, rather than reading them from {@link Preset}: a preset whose chain or settings drift
 * from its source fails the suite. It computes in double with {@link Float64Reference} and
 * {@link VariantReference}; for torch.optim.Muon's presets Newton–Schulz is
 * {@link VariantReference#torchMuonNewtonSchulz}, the emulation of torch's bfloat16 arithmetic
 * that reproduced PyTorch's bits.
 *
 * <p>The suite itself is distributed's {@code OptimizerConformanceTest} (it also runs every case
 * over ranks), and distributed's {@code MpiSelfCheck} runs the cases over MPI.
 */
public enum ConformanceCase {
    ADAMW(Preset.ADAMW, false, false),
    MOONLIGHT(Preset.MOONLIGHT, false, false),
    KELLER_JORDAN(Preset.KELLER_JORDAN, false, false),
    TORCH_ORIGINAL(Preset.TORCH_ORIGINAL, false, false),
    TORCH_MATCH_RMS_ADAMW(Preset.TORCH_MATCH_RMS_ADAMW, false, false),
    NORMUON(Preset.NORMUON, false, false),
    MOONLIGHT_CAUTIOUS_WD(Preset.MOONLIGHT, true, false),
    NORMUON_CAUTIOUS_WD(Preset.NORMUON, true, false),
    MOONLIGHT_PER_HEAD_QK(Preset.MOONLIGHT, false, true),
    NORMUON_PER_HEAD_QK(Preset.NORMUON, false, true);

    /** Query heads of the model's q_proj, and their dimension: q_proj is (HEADS·HEAD_DIM) × HIDDEN. */
    public static final int HEADS = 4;
    public static final int HEAD_DIM = 4;
    static final int HIDDEN = 12;
    /** The parameter that per-head cases orthogonalize head by head (a glob for {@link HybridOptimizer.Builder#rule}). */
    public static final String Q_PROJ = "model.layers.0.self_attn.q_proj.weight";
    /** The schedule every case runs (warm-up over 2 steps, cosine to 0.1 at step 6), so lr changes every step. */
    public static final int WARMUP = 2;
    public static final int TOTAL = 6;
    public static final double MIN_FACTOR = 0.1;

    public final Preset preset;
    public final boolean cautiousWeightDecay;
    public final boolean perHeadQk;

    ConformanceCase(Preset preset, boolean cautiousWeightDecay, boolean perHeadQk) {
        this.preset = preset;
        this.cautiousWeightDecay = cautiousWeightDecay;
        this.perHeadQk = perHeadQk;
    }

    /**
     * A small Llama-like layer: embedding, norm and head go to AdamW; a tall q_proj of 4 heads, a square
     * v_proj, a wide o_proj, a tall up_proj and a stack of 3 wide experts to the preset's Muon. Values
     * are seeded, the same on every call.
     */
    public static List<Parameter> parameters() {
        List<Parameter> params = List.of(
                Parameter.zeros("model.embed_tokens.weight", ParamRole.EMBEDDING, 16, HIDDEN),
                Parameter.zeros("model.layers.0.input_layernorm.weight", ParamRole.NORM, HIDDEN),
                Parameter.matrix(Q_PROJ, HEADS * HEAD_DIM, HIDDEN),
                Parameter.matrix("model.layers.0.self_attn.v_proj.weight", HIDDEN, HIDDEN),
                Parameter.matrix("model.layers.0.self_attn.o_proj.weight", HIDDEN, HEADS * HEAD_DIM),
                Parameter.matrix("model.layers.0.mlp.up_proj.weight", 24, HIDDEN),
                Parameter.stackedMatrices("model.layers.0.mlp.experts.weight", 3, 8, HIDDEN, new float[3 * 8 * HIDDEN],
                        new float[3 * 8 * HIDDEN]),
                Parameter.zeros("lm_head.weight", ParamRole.HEAD, 16, HIDDEN));
        SplittableRandom random = new SplittableRandom(17);
        for (Parameter p : params) {
            float center = p.role() == ParamRole.NORM ? 1f : 0f;
            for (int i = 0; i < p.size(); i++) {
                p.value()[i] = center + (float) (0.1 * random.nextGaussian());
            }
        }
        return params;
    }

    /** The settings of this case: the preset's, the schedule, and the variant's rules. */
    public HybridOptimizer.Builder settings(Backend backend) {
        HybridOptimizer.Builder b = preset.builder(backend).schedule(LearningRateSchedule.warmupCosine(WARMUP, TOTAL, MIN_FACTOR));
        if (preset.usesMuon()) {
            UpdateRule rule = preset.rule(b.muonConfig());
            if (cautiousWeightDecay) {
                rule = rule.withWeightDecay(Transforms.WeightDecayMode.CAUTIOUS);
            }
            b.muonRule(rule);
            if (perHeadQk) {
                b.rule(Q_PROJ, rule.withRowBlocks(HEAD_DIM));
            }
        }
        return b;
    }

    /**
     * The global gradient of step {@code step} for rank {@code rank} of {@code ranks}: G + c·D with
     * c = rank − (ranks − 1)/2, so the c add up to 0. G and D are multiples of 1/64 below 8 in
     * magnitude, so every sum of the ranks' gradients is exact in float32 in any order (MPI's too) and
     * equals ranks·G; the ranks' mean is then {@link #meanGradient}.
     */
    public static void fillGradients(List<Parameter> params, int step, int rank, int ranks) {
        SplittableRandom base = new SplittableRandom(1000 + step);
        SplittableRandom spread = new SplittableRandom(2000 + step);
        float c = rank - (ranks - 1) / 2f;
        for (Parameter p : params) {
            for (int i = 0; i < p.size(); i++) {
                float g = dyadic(base);
                float d = dyadic(spread);
                p.gradient()[i] = g + c * d;
            }
        }
    }

    /**
     * The gradient a sharded optimizer on {@code ranks} ranks steps with, given {@link #fillGradients}:
     * the exact sum ranks·G times the float 1/ranks (what the ranks multiply their sum by).
     */
    public static void meanGradient(List<Parameter> params, int step, int ranks) {
        fillGradients(params, step, 0, 1);
        for (Parameter p : params) {
            float[] g = p.gradient();
            for (int i = 0; i < g.length; i++) {
                g[i] = (ranks * g[i]) * (1f / ranks);
            }
        }
    }

    private static float dyadic(SplittableRandom random) {
        return (float) Math.max(-500, Math.min(500, Math.rint(64 * random.nextGaussian()))) / 64;
    }

    // ------------------------------------------------------------------------- float64 reference

    /** Muon's settings as the preset's source states them (docs/VARIANTS.md), not as {@link Preset} builds them. */
    private record MuonSource(double lr, double weightDecay, double beta, boolean ema, boolean nesterov, boolean matchRms,
                              boolean torchBf16, boolean norMuon) {
    }

    private MuonSource source() {
        return switch (preset) {
            // Moonlight: classic momentum 0.95 with Nesterov, wd 0.1, 0.2·√max(out, in); lr 1e-3 (muon4j's default).
            case MOONLIGHT -> new MuonSource(1e-3, 0.1, 0.95, false, true, true, false, false);
            // Keller Jordan's muon.py: lr 0.02, EMA 0.95 with Nesterov, no decay, √max(1, out/in).
            case KELLER_JORDAN -> new MuonSource(0.02, 0, 0.95, true, true, false, false, false);
            // torch/optim/_muon.py: lr 1e-3, wd 0.1, lerp momentum 0.95 with Nesterov, bfloat16 Newton–Schulz.
            case TORCH_ORIGINAL -> new MuonSource(1e-3, 0.1, 0.95, true, true, false, true, false);
            case TORCH_MATCH_RMS_ADAMW -> new MuonSource(1e-3, 0.1, 0.95, true, true, true, true, false);
            // Moonlight's settings with dion's row normalisation.
            case NORMUON -> new MuonSource(1e-3, 0.1, 0.95, false, true, true, false, true);
            case ADAMW -> throw new IllegalStateException("AdamW has no Muon settings");
        };
    }

    /** torch.optim.AdamW's defaults. */
    private static final double ADAM_LR = 1e-3;
    private static final double ADAM_BETA1 = 0.9;
    private static final double ADAM_BETA2 = 0.999;
    private static final double ADAM_EPS = 1e-8;
    private static final double ADAM_WEIGHT_DECAY = 0.01;

    /**
     * The float64 reference after some steps.
     *
     * @param values each parameter's values, in parameter order
     * @param state  each parameter's state buffers by the names PyTorch and dion give them: Muon's
     *               {@code momentum} (and NorMuon's {@code row_second_moment}), or Adam's {@code exp_avg}
     *               and {@code exp_avg_sq}
     */
    public record Reference(double[][] values, List<Map<String, double[]>> state) {
    }

    /** The reference after {@code steps} steps from {@link #parameters()} with the gradients of {@link #fillGradients} (one rank). */
    public Reference reference(int steps) {
        List<Parameter> params = parameters();
        double[][] values = new double[params.size()][];
        double[][] momentum = new double[params.size()][];
        double[][] rowMoment = new double[params.size()][];
        Float64Reference.AdamW[] adam = new Float64Reference.AdamW[params.size()];
        for (int i = 0; i < params.size(); i++) {
            Parameter p = params.get(i);
            values[i] = Float64Reference.toDouble(p.value());
            momentum[i] = new double[p.size()];
            rowMoment[i] = p.layout() == null ? null : new double[p.layout().count() * p.layout().fanOut()];
            adam[i] = new Float64Reference.AdamW(p.value(), ADAM_BETA1, ADAM_BETA2, ADAM_EPS);
        }
        List<Map<String, double[]>> state = new ArrayList<>();
        for (int s = 0; s < steps; s++) {
            fillGradients(params, s, 0, 1);
            double factor = Float64Reference.warmupCosine(s, WARMUP, TOTAL, MIN_FACTOR);
            for (int i = 0; i < params.size(); i++) {
                Parameter p = params.get(i);
                if (adamw(p)) {
                    adam[i].step(p.gradient(), factor * ADAM_LR, ADAM_WEIGHT_DECAY);
                    values[i] = adam[i].value.clone();
                } else {
                    values[i] = muonStep(p, values[i], momentum[i], rowMoment[i], factor);
                }
            }
        }
        for (int i = 0; i < params.size(); i++) {
            Map<String, double[]> buffers = new LinkedHashMap<>();
            if (adamw(params.get(i))) {
                buffers.put("exp_avg", adam[i].m);
                buffers.put("exp_avg_sq", adam[i].v);
            } else {
                buffers.put("momentum", momentum[i]);
                if (source().norMuon()) {
                    buffers.put("row_second_moment", rowMoment[i]);
                }
            }
            state.add(buffers);
        }
        return new Reference(values, state);
    }

    /** Whether the reference updates {@code p} by AdamW: every parameter of the AdamW preset, else all but hidden matrices. */
    private boolean adamw(Parameter p) {
        return preset == Preset.ADAMW || p.role() != ParamRole.HIDDEN_MATRIX;
    }

    /** One Muon step of one parameter in double; updates {@code momentum} and {@code rowMoment} in place. */
    private double[] muonStep(Parameter p, double[] w, double[] momentum, double[] rowMoment, double factor) {
        MuonSource src = source();
        float[] g = p.gradient();
        double beta = src.beta();
        double[] u = new double[g.length];
        for (int k = 0; k < g.length; k++) {
            if (src.ema()) {
                momentum[k] = beta * momentum[k] + (1 - beta) * g[k];
                u[k] = src.nesterov() ? (1 - beta) * g[k] + beta * momentum[k] : momentum[k];
            } else {
                momentum[k] = beta * momentum[k] + g[k];
                u[k] = src.nesterov() ? g[k] + beta * momentum[k] : momentum[k];
            }
        }
        MatrixLayout m = p.layout();
        boolean perHead = perHeadQk && p.name().equals(Q_PROJ);
        // The unit Newton–Schulz, NorMuon's rescale and the scale see: a head, or a whole matrix.
        int rows = perHead ? HEAD_DIM : m.fanOut();
        int cols = m.fanIn();
        int blocks = m.count() * (m.fanOut() / rows);
        int size = rows * cols;
        double[] o = new double[u.length];
        for (int b = 0; b < blocks; b++) {
            double[] block = Arrays.copyOfRange(u, b * size, (b + 1) * size);
            double[] ob;
            if (src.torchBf16()) {
                float[] f = new float[size];
                for (int k = 0; k < size; k++) {
                    f[k] = (float) block[k];
                }
                ob = VariantReference.torchMuonNewtonSchulz(f, rows, cols, 5);
            } else {
                ob = Float64Reference.newtonSchulz(block, rows, cols, 5, 1e-7);
            }
            System.arraycopy(ob, 0, o, b * size, size);
        }
        if (src.norMuon()) {
            VariantReference.NorMuonStep n = VariantReference.norMuonStacked(o, blocks, rows, cols, rowMoment, 0.95, 1e-8);
            o = n.update();
            System.arraycopy(n.state(), 0, rowMoment, 0, rowMoment.length);
        }
        double scale = src.matchRms() ? 0.2 * Math.sqrt(Math.max(rows, cols)) : Math.sqrt(Math.max(1.0, (double) rows / cols));
        double lr = factor * src.lr();
        if (cautiousWeightDecay) {
            return VariantReference.cautiousStep(w, o, lr, src.weightDecay(), scale);
        }
        double[] next = new double[w.length];
        for (int k = 0; k < w.length; k++) {
            next[k] = w[k] * (1 - lr * src.weightDecay()) - lr * scale * o[k];
        }
        return next;
    }

    /**
     * The largest error allowed against {@link #reference}, as ‖actual − reference‖ / ‖reference − initial‖
     * per parameter ({@link #errorAgainstReference}). Float32 against double: 1e-4, MuonTest's bound
     * (measured at most 6.4e-5, on the norm weights, whose float32 values near 1 round coarsely against
     * their small change; Muon's matrices at most 2.6e-5). torch's bfloat16 Newton–Schulz is emulated
     * exactly, but the float32 momentum it starts from differs from the double one in the last bits, so
     * a value on a bfloat16 rounding boundary may round the other way (one bfloat16 ulp, 2⁻⁸ relative):
     * 5e-4 (measured 2.6e-5; float32 Newton–Schulz in place of torch's arithmetic is 1e-2 away).
     */
    public double tolerance() {
        return preset == Preset.TORCH_ORIGINAL || preset == Preset.TORCH_MATCH_RMS_ADAMW ? 5e-4 : 1e-4;
    }

    /**
     * The largest error allowed of a state buffer against the reference's, as ‖actual − reference‖ /
     * ‖reference‖: moments kept in float32 rather than double (measured 1.2e-7), NorMuon's per-row
     * moment also from the float32 Newton–Schulz output (measured 5.8e-7).
     */
    public static final double STATE_TOLERANCE = 1e-5;

    /** ‖actual − expected‖ / ‖expected − initial‖ (Frobenius): the error relative to the change the steps made. */
    public static double errorAgainstReference(float[] actual, double[] expected, float[] initial) {
        return Float64Reference.relativeToChange(actual, expected, initial);
    }

    /** ‖actual − expected‖ / ‖expected‖ (Frobenius). */
    public static double relativeError(float[] actual, double[] expected) {
        return Float64Reference.relativeError(actual, expected);
    }
}
