package dev.muon4j.experiments;

import dev.muon4j.linalg.SvdEntropy;
import dev.muon4j.nn.DeepSeekConfig;
import dev.muon4j.nn.ModelConfig;
import dev.muon4j.optim.MatrixLayout;
import dev.muon4j.optim.ParamRole;
import dev.muon4j.optim.Parameter;
import dev.muon4j.train.OptimizerChoice;
import dev.muon4j.train.ScheduleKind;
import dev.muon4j.train.TrainConfig;
import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Moonlight's singular-spectrum finding (arXiv 2502.16982, §3.4): the weight matrices a model trained with
 * Muon has a higher SVD entropy ({@link SvdEntropy}) than the same model's trained with AdamW, in every group
 * of matrices of their Mixture-of-Experts model (attention, experts, shared experts, router, the dense layer),
 * over the training; Muon's orthogonalized updates spread the weights over more singular directions.
 *
 * <p>Four runs: the dense Llama model and the Mixture-of-Experts model ({@code --preset tiny} of
 * {@code --model llama} and {@code --model deepseek}: 4 layers of width 192; the MoE model with latent
 * attention, a dense first layer, 16 routed experts of width 128 of which 2 are active, 2 shared), each trained
 * by AdamW and by Muon (Moonlight's) from the same initialisation on the same batches under the same schedule,
 * with {@code compare}'s settings: AdamW at 3e-3, Muon's matrices at 4 times that, weight decay 0.1, β2 0.95,
 * clipping 1.0, the routers' bias rate 0.01. On step 1 and every 100 steps (every 5 in the quick grid)
 * {@link MatrixStatsObserver} writes the SVD entropy of every hidden matrix into metrics.jsonl, each expert of
 * a stack as its own matrix, so a resumed run keeps what it measured before the cut.
 */
public final class SvdEntropyExperiment implements Experiment<SvdEntropyExperiment.Arm> {
    /** AdamW's learning rate in {@code compare} (cli's {@code --lr} default), on every parameter AdamW steps. */
    static final double LEARNING_RATE = 3e-3;
    /** Muon's on the hidden matrices: {@code compare}'s default, 4 × AdamW's (docs/EXPERIMENTS.md, the tiny preset's sweep). */
    static final double MUON_LEARNING_RATE = 4 * LEARNING_RATE;
    /** The routers' bias rate γ that {@code compare} uses (docs/EXPERIMENTS.md: balances within short runs). */
    static final double ROUTER_BIAS_RATE = 0.01;

    /** The two models. */
    public enum Family {
        DENSE("dense Llama model", "dense"),
        MOE("Mixture-of-Experts model", "moe");

        final String label;
        final String id;

        Family(String label, String id) {
            this.label = label;
            this.id = id;
        }
    }

    /** One run: a model and its optimizer. */
    public record Arm(Family family, OptimizerChoice optimizer) {
        String id() {
            return family.id + "-" + optimizer.name().toLowerCase(Locale.ROOT);
        }

        String optimizerLabel() {
            return optimizer == OptimizerChoice.MUON ? "Muon" : "AdamW";
        }
    }

    @Override
    public String name() {
        return "svd-entropy";
    }

    @Override
    public String title() {
        return "SVD entropy: Muon's weight matrices spread over more singular directions than AdamW's, in every group";
    }

    /** The model of a family: the MoE model of the update-rms experiment (the tiny preset) and its dense trunk. */
    static ModelConfig model(Family family, GridSize size) {
        DeepSeekConfig moe = (DeepSeekConfig) UpdateRmsExperiment.model(size);
        return family == Family.MOE ? moe : moe.trunk();
    }

    /**
     * The default runs: 3,000 steps of 16 × 128 tokens (6.1M tokens, the shipped corpus's training split about 1.2
     * times over), validation every 300 steps; the quick ones: 40 steps of 4 × 16 tokens.
     */
    @Override
    public List<GridRun<Arm>> grid(GridSize size) {
        boolean quick = size == GridSize.QUICK;
        long steps = quick ? 40 : 3_000;
        int batch = quick ? 4 : 16;
        List<GridRun<Arm>> runs = new ArrayList<>();
        for (Family family : Family.values()) {
            for (OptimizerChoice o : List.of(OptimizerChoice.ADAMW, OptimizerChoice.MUON)) {
                Arm arm = new Arm(family, o);
                TrainConfig c = new TrainConfig(o, LEARNING_RATE, MUON_LEARNING_RATE, 0.1, 0.9, 0.95, 0.95, ScheduleKind.COSINE, steps / 20,
                        steps, 0.1, batch, 1, 1.0, 1, steps / 10, quick ? 2 : 8, steps / 6, 1).withRouterBiasRate(ROUTER_BIAS_RATE);
                runs.add(new GridRun<>(arm.id(), arm, model(family, size), c,
                        new Measurements(quick ? 5 : 100, false, false, false, true)));
            }
        }
        return runs;
    }

    /**
     * The group of a hidden matrix, from its name within its layer: the attention's q, k, v, o (and the latent
     * attention's kv_a and kv_b), the dense layers' gate, up and down, and in a Mixture-of-Experts layer the router,
     * the shared experts and the routed experts; any other matrix is a group of its own name.
     */
    static String group(String parameterName) {
        String inLayer = parameterName.replaceFirst("^model\\.layers\\.\\d+\\.", "").replaceFirst("\\.weight$", "");
        if (inLayer.startsWith("mlp.experts.")) {
            return "experts";
        }
        if (inLayer.startsWith("mlp.shared_experts.")) {
            return "shared experts";
        }
        return switch (inLayer) {
            case "self_attn.q_proj", "self_attn.q_a_proj", "self_attn.q_b_proj" -> "q";
            case "self_attn.k_proj" -> "k";
            case "self_attn.v_proj" -> "v";
            case "self_attn.kv_a_proj_with_mqa" -> "kv_a";
            case "self_attn.kv_b_proj" -> "kv_b";
            case "self_attn.o_proj" -> "o";
            case "mlp.gate_proj" -> "gate";
            case "mlp.up_proj" -> "up";
            case "mlp.down_proj" -> "down";
            case "mlp.gate" -> "router";
            default -> inLayer;
        };
    }

    /** The hidden matrices of one group: how many (each expert counted), and their shapes. */
    record GroupInfo(String name, int matrices, List<String> shapes) {
        /** "12 matrices, 16×32 and 32×16". */
        String describe() {
            return String.format(Locale.ROOT, "%d matri%s, %s", matrices, matrices == 1 ? "x" : "ces", String.join(" and ", shapes));
        }
    }

    /** The model's groups in parameter order. */
    static List<GroupInfo> groups(ModelConfig model) {
        Map<String, int[]> counts = new LinkedHashMap<>();
        Map<String, List<String>> shapes = new LinkedHashMap<>();
        for (Parameter p : model.create().parameters()) {
            MatrixLayout m = p.layout();
            if (p.role() != ParamRole.HIDDEN_MATRIX || m == null) {
                continue;
            }
            String g = group(p.name());
            counts.computeIfAbsent(g, k -> new int[1])[0] += m.count();
            List<String> s = shapes.computeIfAbsent(g, k -> new ArrayList<>());
            String shape = m.fanOut() + "×" + m.fanIn();
            if (!s.contains(shape)) {
                s.add(shape);
            }
        }
        List<GroupInfo> out = new ArrayList<>();
        counts.forEach((g, n) -> out.add(new GroupInfo(g, n[0], shapes.get(g))));
        return out;
    }

    /**
     * A run's SVD entropies from its metrics: the measured steps and, per step, matrix → value; an expert of a
     * stack is named {@code <parameter>[e]}; NaN where the value was undefined.
     */
    record Entropies(double[] steps, List<Map<String, Double>> values) {
        @SuppressWarnings("unchecked")
        static Entropies of(RunRecord<?> run) {
            List<Map<String, Object>> lines = run.stepsWith("svd_entropy");
            double[] steps = new double[lines.size()];
            List<Map<String, Double>> values = new ArrayList<>();
            for (int i = 0; i < lines.size(); i++) {
                steps[i] = ((Number) lines.get(i).get("step")).doubleValue();
                Map<String, Double> v = new LinkedHashMap<>();
                for (Map.Entry<String, Object> e : ((Map<String, Object>) lines.get(i).get("svd_entropy")).entrySet()) {
                    if (e.getValue() instanceof List<?> experts) {
                        for (int x = 0; x < experts.size(); x++) {
                            v.put(e.getKey() + "[" + x + "]", number(experts.get(x)));
                        }
                    } else {
                        v.put(e.getKey(), number(e.getValue()));
                    }
                }
                values.add(v);
            }
            return new Entropies(steps, values);
        }

        private static double number(Object o) {
            return o instanceof Number n ? n.doubleValue() : Double.NaN;
        }

        /** Per measured step, the mean entropy over the group's matrices (NaN where none is defined). */
        double[] groupMean(String group) {
            double[] out = new double[steps.length];
            for (int i = 0; i < steps.length; i++) {
                double sum = 0;
                int n = 0;
                for (Map.Entry<String, Double> e : values.get(i).entrySet()) {
                    if (group(e.getKey().replaceFirst("\\[\\d+]$", "")).equals(group) && Double.isFinite(e.getValue())) {
                        sum += e.getValue();
                        n++;
                    }
                }
                out[i] = n == 0 ? Double.NaN : sum / n;
            }
            return out;
        }
    }

    private static final String ADAMW_COLOR = "#d62728";
    private static final String MUON_COLOR = "#1f77b4";

    @Override
    public void analyze(Analysis<Arm> a) throws IOException {
        ReportFiles files = a.files();
        List<List<Object>> meanRows = new ArrayList<>();
        List<List<Object>> finalRows = new ArrayList<>();
        Map<Family, FamilyResult> results = new LinkedHashMap<>();
        for (Family family : Family.values()) {
            RunRecord<Arm> adamw = find(a, family, OptimizerChoice.ADAMW);
            RunRecord<Arm> muon = find(a, family, OptimizerChoice.MUON);
            if (adamw == null || muon == null) {
                continue;
            }
            List<GroupInfo> groups = groups(adamw.run().model());
            Entropies adamwValues = Entropies.of(adamw);
            Entropies muonValues = Entropies.of(muon);
            List<SvgPlot> panels = new ArrayList<>();
            List<GroupRow> rows = new ArrayList<>();
            for (GroupInfo g : groups) {
                double[] ya = adamwValues.groupMean(g.name());
                double[] ym = muonValues.groupMean(g.name());
                panels.add(new SvgPlot(g.name() + ": " + g.describe(), "step", "mean SVD entropy")
                        .add(new SvgPlot.Series("AdamW", ADAMW_COLOR, adamwValues.steps(), ya, SvgPlot.Style.DASHED))
                        .add(new SvgPlot.Series("Muon", MUON_COLOR, muonValues.steps(), ym)));
                for (int i = 0; i < ya.length; i++) {
                    meanRows.add(List.of(family.id, "adamw", (long) adamwValues.steps()[i], g.name(), g.matrices(), ya[i]));
                }
                for (int i = 0; i < ym.length; i++) {
                    meanRows.add(List.of(family.id, "muon", (long) muonValues.steps()[i], g.name(), g.matrices(), ym[i]));
                }
                rows.add(new GroupRow(g, first(ya), last(ya), first(ym), last(ym)));
            }
            for (RunRecord<Arm> r : List.of(adamw, muon)) {
                Entropies e = r == adamw ? adamwValues : muonValues;
                if (e.values().isEmpty()) {
                    continue;
                }
                long step = (long) e.steps()[e.steps().length - 1];
                e.values().getLast().forEach((matrix, v) -> finalRows.add(List.of(family.id, r.point().optimizer() == OptimizerChoice.MUON
                        ? "muon" : "adamw", step, group(matrix.replaceFirst("\\[\\d+]$", "")), matrix, v)));
            }
            String plot = files.facets("svd-entropy-" + family.id, "SVD entropy of the " + family.label + "'s hidden matrices, "
                            + "mean per group: AdamW (dashed) and Muon", panels, 2,
                    "mean SVD entropy per group over the steps, AdamW and Muon, " + family.label);
            results.put(family, new FamilyResult(family, adamw, muon, rows, stepsAhead(groups, adamwValues, muonValues), plot));
        }
        files.csv("svd-entropy", List.of("model", "optimizer", "step", "group", "matrices", "mean_svd_entropy"), meanRows);
        files.csv("svd-entropy-final", List.of("model", "optimizer", "step", "group", "matrix", "svd_entropy"), finalRows);
        files.text("report.md", report(a, results));
    }

    private static RunRecord<Arm> find(Analysis<Arm> a, Family family, OptimizerChoice o) {
        return a.runs().stream().filter(r -> r.point().family() == family && r.point().optimizer() == o).findFirst().orElse(null);
    }

    private static double first(double[] v) {
        return v.length == 0 ? Double.NaN : v[0];
    }

    private static double last(double[] v) {
        return v.length == 0 ? Double.NaN : v[v.length - 1];
    }

    /** A group's mean entropy at the first and at the last measurement, for each optimizer. */
    record GroupRow(GroupInfo group, double adamwFirst, double adamwLast, double muonFirst, double muonLast) {
        boolean muonHigher() {
            return muonLast > adamwLast;
        }
    }

    /**
     * One model's result.
     *
     * @param ahead [measurements after the first at which Muon's mean was higher in every group, such measurements]
     */
    record FamilyResult(Family family, RunRecord<Arm> adamw, RunRecord<Arm> muon, List<GroupRow> rows, int[] ahead, String plot) {
        long higher() {
            return rows.stream().filter(GroupRow::muonHigher).count();
        }
    }

    /** Of the measurements after the first that both runs took, how many had Muon higher in every group; and how many there were. */
    static int[] stepsAhead(List<GroupInfo> groups, Entropies adamw, Entropies muon) {
        int n = Math.min(adamw.steps().length, muon.steps().length);
        int ahead = 0;
        List<double[]> a = groups.stream().map(g -> adamw.groupMean(g.name())).toList();
        List<double[]> m = groups.stream().map(g -> muon.groupMean(g.name())).toList();
        for (int i = 1; i < n; i++) {
            boolean all = true;
            for (int g = 0; g < groups.size(); g++) {
                all &= m.get(g)[i] > a.get(g)[i];
            }
            ahead += all ? 1 : 0;
        }
        return new int[] {ahead, Math.max(0, n - 1)};
    }

    private String report(Analysis<Arm> a, Map<Family, FamilyResult> results) {
        StringBuilder s = new StringBuilder(a.header(title()));
        s.append("## The claim\n\n");
        s.append("Moonlight (arXiv 2502.16982, §3.4) computes the SVD entropy H = −(1/log n)·Σᵢ pᵢ·log pᵢ, pᵢ = σᵢ²/Σⱼσⱼ², "
                + "n = min(rows, cols), of the weight matrices of a Mixture-of-Experts model trained with Muon and with AdamW, in "
                + "groups (the attention's query and output projections, its key and value projections, the experts, the shared "
                + "experts, the router, the dense layer), and finds Muon's higher in every group over the training: Muon's "
                + "orthogonalized updates spread the weights over more singular directions. The gap it reports is largest for "
                + "the router.\n\n");
        s.append("## Result\n\n");
        for (FamilyResult f : results.values()) {
            long higher = f.higher();
            int groups = f.rows().size();
            s.append(String.format(Locale.ROOT, "**%s**: Muon's mean SVD entropy at the end is higher than AdamW's in **%d of %d** "
                            + "groups%s; at %d of the %d measurements after the first, Muon was higher in every group.%n%n", capitalized(f.family().label),
                    higher, groups, higher == groups ? " (every group, as Moonlight reports)" : " (Moonlight: every group)",
                    f.ahead()[0], f.ahead()[1]));
        }
        for (FamilyResult f : results.values()) {
            s.append("### ").append(capitalized(f.family().label)).append("\n\n");
            ModelConfig model = f.adamw().run().model();
            s.append(model.describe()).append(".\n\n");
            s.append(String.format(Locale.ROOT, "Mean SVD entropy per group after step %s (both runs start from the same weights, so "
                    + "these differ by one update) and at the end (step %s):%n%n", firstStep(f), lastStep(f)));
            s.append("| group | matrices | after step 1: AdamW | Muon | at the end: AdamW | Muon | Muon − AdamW | Muon higher |\n");
            s.append("|---|---|---|---|---|---|---|---|\n");
            for (GroupRow r : f.rows()) {
                s.append(String.format(Locale.ROOT, "| %s | %s | %.4f | %.4f | %.4f | %.4f | %+.4f | %s |%n", r.group().name(),
                        r.group().describe(), r.adamwFirst(), r.muonFirst(), r.adamwLast(), r.muonLast(), r.muonLast() - r.adamwLast(),
                        r.muonHigher() ? "yes" : "**no**"));
            }
            s.append('\n').append(f.plot()).append('\n');
        }
        s.append("## Final validation loss\n\n| run | final validation loss |\n|---|---|\n");
        for (RunRecord<Arm> r : a.runs()) {
            s.append(String.format(Locale.ROOT, "| %s, %s | %s |%n", r.point().family().label, r.point().optimizerLabel(),
                    r.result().diverged() ? "diverged" : String.format(Locale.ROOT, "%.4f", r.finalLoss())));
        }
        TrainConfig c = a.runs().getFirst().run().train();
        s.append("\n## How it is computed\n\n");
        s.append(String.format(Locale.ROOT, "- Each model is trained twice from the same initial weights on the same batches (seed %d): "
                        + "AdamW at %s on every parameter; Muon (Moonlight's: Nesterov momentum 0.95, scale 0.2·√max(out, in)) at %s on "
                        + "the hidden matrices and AdamW at %s on the embedding, head and norms. %,d steps of %d sequences, cosine "
                        + "schedule to 10%% after a %,d-step warm-up, weight decay 0.1, β2 0.95, gradient clipping 1.0; the Mixture-of-Experts "
                        + "routers' bias rate %s (`compare`'s settings).%n", c.seed(), ScalingExperiment.number(c.learningRate()),
                ScalingExperiment.number(c.muonLearningRate()), ScalingExperiment.number(c.learningRate()), c.steps(), c.sequencesPerStep(),
                c.warmupSteps(), ScalingExperiment.number(c.routerBiasRate())));
        s.append("- On step 1 and every measured step after it, the singular values of every hidden matrix's weights after the "
                + "optimizer step come from LAPACK (OpenBLAS's `sgesdd`, values only, float32), and H is computed from them in "
                + "double. Each expert of a stack of experts is its own matrix. A group's value is the mean of H over its "
                + "matrices, in every layer; the groups are the matrices' names within their layers (the latent attention's "
                + "`kv_a_proj_with_mqa` and `kv_b_proj` are kv_a and kv_b; `mlp.gate` is the router; the first layer of the "
                + "Mixture-of-Experts model is dense and gives its gate, up and down).\n");
        s.append("- Data: `svd-entropy.csv` holds every group's mean at every measurement, `svd-entropy-final.csv` every matrix's "
                + "H at the last one (an expert as `<parameter>[e]`); every run's `metrics.jsonl` holds every matrix at every "
                + "measurement (`svd_entropy`).\n");
        return s.toString();
    }

    private static String firstStep(FamilyResult f) {
        double[] steps = f.adamw().stepsOf("svd_entropy");
        return steps.length == 0 ? "none" : String.format(Locale.ROOT, "%,d", (long) steps[0]);
    }

    private static String lastStep(FamilyResult f) {
        double[] steps = f.adamw().stepsOf("svd_entropy");
        return steps.length == 0 ? "none" : String.format(Locale.ROOT, "%,d", (long) steps[steps.length - 1]);
    }

    private static String capitalized(String s) {
        return Character.toUpperCase(s.charAt(0)) + s.substring(1);
    }
}
