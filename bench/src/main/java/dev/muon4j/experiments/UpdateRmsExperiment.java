package dev.muon4j.experiments;

import dev.muon4j.nn.DeepSeekConfig;
import dev.muon4j.nn.LlamaConfig;
import dev.muon4j.nn.MlaConfig;
import dev.muon4j.nn.MoeConfig;
import dev.muon4j.nn.ModelConfig;
import dev.muon4j.optim.MatrixLayout;
import dev.muon4j.optim.ParamRole;
import dev.muon4j.optim.Parameter;
import dev.muon4j.train.MuonVariant;
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
 * Moonlight's update scale (arXiv 2502.16982, §2.2): Muon's orthogonalized update O of an A × B
 * matrix has an RMS of about 1/√max(A, B), so Keller Jordan's scale √max(1, A/B) leaves each matrix
 * an update RMS of about 1/√B that depends on its shape, while Moonlight's 0.2·√max(A, B) gives every
 * shape about 0.2, the RMS AdamW's updates settle at (Moonlight measured 0.2 to 0.4), so that AdamW's
 * learning rate and weight decay carry over.
 *
 * <p>Three runs of the tiny DeepSeek-V3-style Mixture-of-Experts model (the {@code --model deepseek}
 * tiny preset: latent attention, a dense first layer, 16 routed experts of width 128), whose hidden
 * matrices are square (o_proj 192 × 192), wide (down_proj 192 × 512, kv_a 72 × 192, the router
 * 16 × 192), tall (up_proj 512 × 192, q_proj 288 × 192, kv_b 384 × 48) and stacks of experts
 * (16 × 128 × 192 and 16 × 192 × 128): AdamW on everything; Muon with Keller Jordan's scale
 * (muon4j's {@code keller} variant; its EMA momentum gives the same direction as Moonlight's classic
 * momentum, which Newton–Schulz's normalisation makes the same update) at its own learning rate 0.02;
 * Muon with Moonlight's scale at AdamW's learning rate, Moonlight's recipe. Every 10 steps each
 * matrix's update per unit learning rate is measured ({@link MatrixStatsObserver}), so the learning
 * rates and the schedule do not enter the RMS.
 */
public final class UpdateRmsExperiment implements Experiment<UpdateRmsExperiment.Arm> {
    /** The RMS Moonlight's scale aims at: its factor 0.2 (arXiv 2502.16982, §2.2). */
    public static final double MOONLIGHT_TARGET_RMS = 0.2;
    /** AdamW's update RMS as Moonlight observed it, "typically around 0.2 to 0.4" (ibid., §2.2). */
    public static final double ADAMW_RMS_LOW = 0.2;
    public static final double ADAMW_RMS_HIGH = 0.4;

    /** The three runs. */
    public enum Arm {
        ADAMW("AdamW", "adamw", "#d62728"),
        MUON_ORIGINAL("Muon, scale √max(1, A/B) (ORIGINAL)", "muon-original", "#2ca02c"),
        MUON_MATCH_RMS("Muon, scale 0.2·√max(A, B) (MATCH_RMS_ADAMW)", "muon-match-rms", "#1f77b4");

        final String label;
        final String id;
        final String color;

        Arm(String label, String id, String color) {
            this.label = label;
            this.id = id;
            this.color = color;
        }
    }

    @Override
    public String name() {
        return "update-rms";
    }

    @Override
    public String title() {
        return "Update RMS: Moonlight's 0.2·√max(A, B) scale gives every matrix shape AdamW's update RMS";
    }

    static ModelConfig model(GridSize size) {
        return switch (size) {
            // The tiny preset of --model deepseek (cli's ModelPreset.TINY).
            case DEFAULT -> new DeepSeekConfig(new LlamaConfig(256, 192, 4, 4, 4, 512, 128, false, 10000, 1e-5, 0.02),
                    new MoeConfig(16, 2, 128, 2, 2.446, 1), new MlaConfig(0, 48, 48, 24, 48));
            case QUICK -> new DeepSeekConfig(new LlamaConfig(256, 32, 2, 2, 2, 64, 16, false, 10000, 1e-5, 0.02),
                    new MoeConfig(4, 2, 16, 1, 2.446, 1), new MlaConfig(0, 8, 8, 4, 16));
        };
    }

    @Override
    public List<GridRun<Arm>> grid(GridSize size) {
        boolean quick = size == GridSize.QUICK;
        long steps = quick ? 30 : 1500;
        int batch = quick ? 4 : 16;
        ModelConfig model = model(size);
        List<GridRun<Arm>> runs = new ArrayList<>();
        for (Arm arm : Arm.values()) {
            double lr = 3e-3;
            OptimizerChoice o = arm == Arm.ADAMW ? OptimizerChoice.ADAMW : OptimizerChoice.MUON;
            MuonVariant variant = arm == Arm.MUON_ORIGINAL ? MuonVariant.KELLER : MuonVariant.MOONLIGHT;
            double muonLr = arm == Arm.MUON_ORIGINAL ? 0.02 : lr;
            TrainConfig c = new TrainConfig(o, lr, muonLr, 0.1, 0.9, 0.95, 0.95, ScheduleKind.COSINE, steps / 20, steps, 0.1, batch, 1,
                    1.0, 1, steps / 10, quick ? 2 : 16, steps / 5, 1).withMuon(variant, false, false);
            runs.add(new GridRun<>(arm.id, arm, model, c, new Measurements(quick ? 3 : 10, true, true, false)));
        }
        return runs;
    }

    /** How a hidden matrix's shape sits: the classes the finding is about. */
    enum ShapeClass {
        SQUARE, WIDE, TALL, EXPERTS;

        static ShapeClass of(MatrixLayout m) {
            return m.count() > 1 ? EXPERTS : m.fanOut() == m.fanIn() ? SQUARE : m.fanOut() < m.fanIn() ? WIDE : TALL;
        }

        String word() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    /** The hidden matrices of one shape, over the layers: the lines of the plots and the rows of the table. */
    record ShapeGroup(MatrixLayout layout, ShapeClass shapeClass, List<String> names) {
        /** "gate_proj, up_proj 512×192 (tall)": the matrices' names within their layers, the shape and its class. */
        String label() {
            return String.format(Locale.ROOT, "%s %s (%s)", shortNames(), shape(), shapeClass.word());
        }

        /** The distinct names of the matrices within their layers ("o_proj", "experts.down_proj"), joined by ", ". */
        String shortNames() {
            return String.join(", ", names.stream().map(n -> n.replaceFirst("^model\\.layers\\.\\d+\\.", "")
                    .replaceFirst("\\.weight$", "").replace("self_attn.", "").replace("mlp.", "")).distinct().toList());
        }

        String shape() {
            return (layout.count() > 1 ? layout.count() + "×" : "") + layout.fanOut() + "×" + layout.fanIn();
        }
    }

    /** The model's hidden matrices grouped by shape, in parameter order. */
    static List<ShapeGroup> groups(ModelConfig config) {
        Map<MatrixLayout, List<String>> byShape = new LinkedHashMap<>();
        for (Parameter p : config.create().parameters()) {
            if (p.role() == ParamRole.HIDDEN_MATRIX && p.layout() != null) {
                byShape.computeIfAbsent(p.layout(), k -> new ArrayList<>()).add(p.name());
            }
        }
        List<ShapeGroup> out = new ArrayList<>();
        byShape.forEach((layout, names) -> out.add(new ShapeGroup(layout, ShapeClass.of(layout), names)));
        return out;
    }

    private static final String[] PALETTE = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf", "#393b79", "#ad494a"};

    @Override
    public void analyze(Analysis<Arm> a) throws IOException {
        ModelConfig model = a.runs().getFirst().run().model();
        List<ShapeGroup> groups = groups(model);
        ReportFiles files = a.files();
        Map<Arm, double[]> late = new LinkedHashMap<>();  // per arm: per group, the mean over the run's second half
        Map<Arm, String> plots = new LinkedHashMap<>();
        List<List<Object>> rows = new ArrayList<>();
        for (RunRecord<Arm> r : a.runs()) {
            Arm arm = r.point();
            double[] steps = r.stepsOf("update_rms");
            Map<String, double[]> perMatrix = r.perMatrix("update_rms");
            SvgPlot plot = new SvgPlot("Update RMS per unit learning rate: " + arm.label, "step", "RMS of the update / learning rate")
                    .yFrom(0);
            double[] means = new double[groups.size()];
            for (int g = 0; g < groups.size(); g++) {
                ShapeGroup group = groups.get(g);
                double[] y = new double[steps.length];
                for (int i = 0; i < steps.length; i++) {
                    double sum = 0;
                    int n = 0;
                    for (String name : group.names()) {
                        double v = perMatrix.getOrDefault(name, new double[steps.length])[i];
                        if (Double.isFinite(v)) {
                            sum += v;
                            n++;
                        }
                    }
                    y[i] = n == 0 ? Double.NaN : sum / n;
                    rows.add(List.of(arm.id, (long) steps[i], group.label(), group.shapeClass().word(), group.layout().count(),
                            group.layout().fanOut(), group.layout().fanIn(), y[i]));
                }
                plot.add(new SvgPlot.Series(group.label(), PALETTE[g % PALETTE.length], steps, y));
                means[g] = secondHalfMean(steps, y);
            }
            late.put(arm, means);
            plots.put(arm, files.plot("update-rms-" + arm.id, plot, "update RMS per matrix shape over the steps, " + arm.label));
        }
        files.csv("update-rms", List.of("run", "step", "matrices", "class", "count", "fan_out", "fan_in", "update_rms"), rows);
        files.text("report.md", report(a, groups, late, plots));
    }

    /** The mean of y over the points with x in the second half of x's range (NaNs left out). */
    static double secondHalfMean(double[] x, double[] y) {
        if (x.length == 0) {
            return Double.NaN;
        }
        double half = x[x.length - 1] / 2;
        double sum = 0;
        int n = 0;
        for (int i = 0; i < x.length; i++) {
            if (x[i] > half && Double.isFinite(y[i])) {
                sum += y[i];
                n++;
            }
        }
        return n == 0 ? Double.NaN : sum / n;
    }

    private String report(Analysis<Arm> a, List<ShapeGroup> groups, Map<Arm, double[]> late, Map<Arm, String> plots) {
        StringBuilder s = new StringBuilder(a.header(title()));
        s.append("## Result\n\n");
        s.append("Mean update RMS per unit learning rate over the second half of each run, over the matrix shapes of the model "
                + "(lowest to highest, and their ratio):\n\n| run | lowest | highest | highest / lowest | mean |\n|---|---|---|---|---|\n");
        for (Map.Entry<Arm, double[]> e : late.entrySet()) {
            double[] v = java.util.Arrays.stream(e.getValue()).filter(Double::isFinite).toArray();
            if (v.length == 0) {
                continue;
            }
            double lo = java.util.Arrays.stream(v).min().orElseThrow();
            double hi = java.util.Arrays.stream(v).max().orElseThrow();
            s.append(String.format(Locale.ROOT, "| %s | %.4f | %.4f | %.2f | %.4f |%n", e.getKey().label, lo, hi, hi / lo,
                    java.util.Arrays.stream(v).average().orElseThrow()));
        }
        s.append(String.format(Locale.ROOT, "%nMoonlight's claim: with 0.2·√max(A, B) every shape's update RMS is about %.1f (times the RMS "
                        + "of the Newton–Schulz output's singular values, which land near 0.7 to 1.1), the %.1f–%.1f AdamW's updates "
                        + "settle at; with √max(1, A/B) it is about 1/√B, B the fan-in, and varies with the shape "
                        + "(arXiv 2502.16982, §2.2).%n%n", MOONLIGHT_TARGET_RMS, ADAMW_RMS_LOW, ADAMW_RMS_HIGH));
        s.append("| matrices | class | fan-out × fan-in | in the model | ");
        for (Arm arm : late.keySet()) {
            s.append(arm.label).append(" | ");
        }
        s.append("1/√B |\n|---|---|---|---|");
        s.append("---|".repeat(late.size())).append("---|\n");
        for (int g = 0; g < groups.size(); g++) {
            ShapeGroup group = groups.get(g);
            s.append(String.format(Locale.ROOT, "| %s | %s | %s | %d |", group.shortNames(), group.shapeClass().word(),
                    group.shape(), group.names().size()));
            for (double[] v : late.values()) {
                s.append(String.format(Locale.ROOT, " %.4f |", v[g]));
            }
            s.append(String.format(Locale.ROOT, " %.4f |%n", 1 / Math.sqrt(group.layout().fanIn())));
        }
        s.append("\n");
        for (Map.Entry<Arm, String> e : plots.entrySet()) {
            s.append("### ").append(e.getKey().label).append("\n\n").append(e.getValue()).append('\n');
        }
        s.append("## Final validation loss\n\n| run | learning rate (Muon's matrices) | final validation loss |\n|---|---|---|\n");
        for (RunRecord<Arm> r : a.runs()) {
            TrainConfig c = r.run().train();
            s.append(String.format(Locale.ROOT, "| %s | %s%s | %s |%n", r.point().label, ScalingExperiment.number(c.learningRate()),
                    c.optimizer() == OptimizerChoice.MUON ? " (" + ScalingExperiment.number(c.muonLearningRate()) + ")" : "",
                    r.result().diverged() ? "diverged" : String.format(Locale.ROOT, "%.4f", r.finalLoss())));
        }
        s.append("\n## How it is computed\n\n");
        s.append("- Each measured step, for every matrix: u = (W·(1 − η·λ) − W′)/η from the weights W before and W′ after the step, η the "
                + "matrix's learning rate in that step, λ its weight decay; the RMS of u is the RMS of the update itself (Muon: s·O; "
                + "AdamW: m̂/(√v̂ + ε)), whatever the learning rate and schedule. A line of a plot is the mean over the matrices of one "
                + "shape (the same projection in every layer); the CSV holds the lines, `runs/<id>/metrics.jsonl` every matrix.\n");
        s.append("- AdamW at 3e-3 on every parameter; Muon ORIGINAL (muon4j's `keller` variant: EMA Nesterov momentum 0.95, "
                + "√max(1, A/B)) at 0.02 on the hidden matrices, Keller Jordan's rate; Muon MATCH_RMS_ADAMW (Moonlight's variant) at 3e-3, "
                + "AdamW's rate, as Moonlight prescribes. Embedding, head and norms get AdamW at 3e-3 in every run. Weight decay 0.1, "
                + "cosine schedule after a 5% warm-up.\n");
        return s.toString();
    }
}
