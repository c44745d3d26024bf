package dev.muon4j.experiments;

import dev.muon4j.nn.DeepSeekConfig;
import dev.muon4j.nn.LlamaConfig;
import dev.muon4j.nn.ModelConfig;
import dev.muon4j.nn.MoeConfig;
import dev.muon4j.train.OptimizerChoice;
import dev.muon4j.train.ScheduleKind;
import dev.muon4j.train.TrainConfig;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Moonlight's scaling-law comparison (arXiv 2502.16982, §3.2, Figure 3): dense models of several
 * sizes, each trained on two token budgets with AdamW and with Muon, each optimizer at each point
 * with a sweep of learning rates of which the best is kept; each optimizer's compute-optimal frontier
 * L(C) = a·C^(−b) + L∞ is fitted to the lower envelope of its best runs, and the report gives the
 * training FLOPs Muon needs to reach the loss AdamW reaches with C FLOPs. Moonlight found about 52%
 * (a sample efficiency of 1.92×).
 *
 * <p>Models: byte-level Llama models on the shipped Gutenberg corpus, context 64, batches of 16
 * sequences (1,024 tokens a step). Budgets are tokens per matrix parameter N
 * ({@link TrainingFlops#matmulParameters}): 8·N and 32·N, either side of Chinchilla's compute-optimal 20
 * (arXiv 2203.15556); with sizes about twice apart, each size's smaller budget costs about what the next
 * smaller size's larger one does, so the lower envelope compares sizes at equal compute. Schedule: cosine to 10% of the peak after
 * a warm-up of 5% of the steps; weight decay 0.1 and β2 0.95 as Moonlight's runs; gradient clipping 1.0.
 * Muon is Moonlight's (classic Nesterov momentum 0.95, scale 0.2·√max(out, in)) on the hidden
 * matrices, at 4 times the learning rate of its AdamW part (embedding, head, norms), the ratio
 * muon4j's short runs favour (docs/EXPERIMENTS.md); the sweep moves both together.
 *
 * <p>The same comparison runs on each {@link Family} of models, each an experiment of its own: {@code scaling} on
 * dense Llama models, {@code scaling-moe} on DeepSeek-V3-style Mixture-of-Experts models, whose N counts the active
 * matrix parameters ({@link TrainingFlops}). A family is its name, its grids ({@link #design}) and the words its
 * report uses for its models.
 */
public final class ScalingExperiment implements Experiment<ScalingExperiment.Point> {
    /** Muon's share of AdamW's training FLOPs at compute-optimal settings (Moonlight, arXiv 2502.16982, §3.2 and Figure 3). */
    public static final double MOONLIGHT_FLOP_RATIO = 0.52;
    /** Muon's sample efficiency over AdamW that Moonlight reports with it (ibid.: "~2× computational efficiency", 1/0.52 ≈ 1.92). */
    public static final double MOONLIGHT_EFFICIENCY = 1.92;

    /** The models a scaling grid trains. */
    public enum Family {
        /** Dense Llama models: {@code scaling}. */
        DENSE("scaling"),
        /** DeepSeek-V3-style Mixture-of-Experts models with grouped-query attention, the first layer dense: {@code scaling-moe}. */
        MOE("scaling-moe");

        private final String experiment;

        Family(String experiment) {
            this.experiment = experiment;
        }

        /** The experiment's name on the command line. */
        public String experiment() {
            return experiment;
        }
    }

    private final Family family;

    /** The dense family's experiment, {@code scaling}. */
    public ScalingExperiment() {
        this(Family.DENSE);
    }

    /** The experiment of {@code family}'s models. */
    public ScalingExperiment(Family family) {
        this.family = java.util.Objects.requireNonNull(family, "family");
    }

    /**
     * A model size of the grid with the centres of its learning-rate sweeps.
     *
     * @param adamwRate AdamW's centre: the sweep is half, once and twice it, at every budget
     * @param muonRate  the centre for Muon's AdamW part (its hidden matrices get 4 times each rate) at the smallest
     *                  budget; at a budget k times larger the centre is 1/√k of it, Muon's best rate falling as the
     *                  run lengthens
     */
    public record Size(String name, ModelConfig model, double adamwRate, double muonRate) {
    }

    /**
     * A run of the grid.
     *
     * @param size               the model
     * @param tokensPerParameter the token budget over N, the model's matrix parameters
     * @param optimizer          AdamW, or Muon on the hidden matrices
     * @param learningRate       AdamW's peak rate (for Muon: its AdamW part's; its matrices get 4 times it)
     */
    public record Point(Size size, double tokensPerParameter, OptimizerChoice optimizer, double learningRate) {
    }

    /**
     * The grid's shape: sizes with their learning rates, budgets, and the training constants.
     *
     * @param routerBiasRate the Mixture-of-Experts routers' bias rate γ ({@link TrainConfig#routerBiasRate()}); a dense
     *                       grid keeps the TrainConfig default, which its runs record and which does nothing to them
     */
    record Design(List<Size> sizes, double[] budgets, int batch, int evalBatches, int checkpointsPerRun, double routerBiasRate,
                  int extensions) {
    }

    /**
     * Rates each sweep may go on by beyond either end of its first three ({@link #extend}): where the best final loss
     * is at the sweep's lowest or highest rate, the grid adds half the lowest or twice the highest, up to this many
     * on each side.
     */
    static final int SWEEP_EXTENSIONS = 2;

    private static final int VOCAB = 256;

    static LlamaConfig llama(int layers, int width, int heads, int mlpWidth, int context) {
        return new LlamaConfig(VOCAB, width, layers, heads, heads, mlpWidth, context, false, 10000, 1e-5, 0.02);
    }

    /** Moonlight's routed scaling factor (moonshotai/Moonlight-16B-A3B config.json, {@code routed_scaling_factor}). */
    static final double ROUTED_SCALE = 2.446;

    /**
     * The Mixture-of-Experts model with the trunk of {@link #llama} (its SwiGLU width F is the first, dense layer's) and
     * muon4j's Moonlight proportions (cli's {@code ModelPreset}): {@code experts} routed experts of width F/4 of which
     * each token goes to 2, and 2 shared ones, so that the 4 experts a token passes through make the dense width F.
     */
    static DeepSeekConfig moe(int layers, int width, int heads, int mlpWidth, int context, int experts) {
        if (mlpWidth % 4 != 0) {
            throw new IllegalArgumentException("MoE scaling model: the dense SwiGLU width " + mlpWidth
                    + " is not a multiple of 4, so experts of a quarter of it do not make it up");
        }
        return new DeepSeekConfig(llama(layers, width, heads, mlpWidth, context), new MoeConfig(experts, 2, mlpWidth / 4, 2, ROUTED_SCALE, 1));
    }

    /** Rates r/2, r, 2r, each to 2 significant digits. */
    static List<Double> around(double r) {
        return List.of(twoDigits(r / 2), twoDigits(r), twoDigits(2 * r));
    }

    private static double twoDigits(double v) {
        return new java.math.BigDecimal(v).round(new java.math.MathContext(2)).doubleValue();
    }

    /** The rates swept for optimizer {@code o} at size {@code s} and budget {@code k} of the design's budgets. */
    static List<Double> rates(Design d, Size s, double k, OptimizerChoice o) {
        return o == OptimizerChoice.ADAMW ? around(s.adamwRate()) : around(s.muonRate() * Math.sqrt(d.budgets()[0] / k));
    }

    /** The grid of {@code family}'s models: its default or its quick one. */
    static Design design(Family family, GridSize size) {
        return switch (family) {
            case DENSE -> dense(size);
            case MOE -> moe(size);
        };
    }

    /**
     * The default dense grid: 4 sizes of N = 34,816 to 356,352 matrix parameters (43k to 0.38M parameters in all),
     * 2 budgets of 8·N and 32·N tokens (either side of Chinchilla's 20), 3 learning rates per optimizer and
     * point: 48 runs, 150M tokens. The sweeps' centres come from a first sitting of this grid with budgets of
     * 5·N and 20·N (docs/EXPERIMENTS.md): AdamW was best near 4e-3 (8e-3 at width 32), Muon's AdamW part near
     * 8e-3 at width 32 falling to 2e-3 at width 96, and half that on the 4 times longer budget. That sitting
     * trained the four sizes at about 120k, 105k, 55k and 31k tokens a second on 2 Zen 5 cores shared with
     * other jobs, which puts this grid at about an hour. The quick grid: one layer of widths 8 to 24, context 16, on
     * 0.5·N and 1·N tokens.
     */
    private static Design dense(GridSize size) {
        return switch (size) {
            case DEFAULT -> new Design(List.of(
                    new Size("l2w32", llama(2, 32, 2, 96, 64), 8e-3, 8e-3),
                    new Size("l2w48", llama(2, 48, 2, 128, 64), 4e-3, 6e-3),
                    new Size("l3w64", llama(3, 64, 2, 176, 64), 4e-3, 3e-3),
                    new Size("l3w96", llama(3, 96, 3, 256, 64), 4e-3, 2e-3)),
                    new double[] {8, 32}, 16, 32, 4, TrainConfig.DEFAULT_ROUTER_BIAS_RATE, SWEEP_EXTENSIONS);
            case QUICK -> new Design(List.of(
                    new Size("l1w8", llama(1, 8, 2, 16, 16), 1e-2, 1e-2),
                    new Size("l1w12", llama(1, 12, 2, 24, 16), 1e-2, 1e-2),
                    new Size("l1w16", llama(1, 16, 2, 32, 16), 1e-2, 1e-2),
                    new Size("l1w24", llama(1, 24, 2, 48, 16), 1e-2, 1e-2)),
                    new double[] {0.5, 1}, 4, 2, 2, TrainConfig.DEFAULT_ROUTER_BIAS_RATE, 1);
        };
    }

    /**
     * The routers' bias rate γ of the MoE grids: {@code compare}'s 0.01. At DeepSeek-V3's 0.001 a bias moves at most 0.27
     * in the shortest run's 274 steps, and in 120 steps the tiny MoE model's routers sent nearly every token of a layer to
     * the same 2 experts; at 0.01 they balanced (docs/EXPERIMENTS.md, "Muon against AdamW on the tiny Mixture-of-Experts
     * model").
     */
    static final double MOE_ROUTER_BIAS_RATE = 0.01;

    /**
     * The default MoE grid: 4 sizes of 2 layers, the first a dense SwiGLU and the second a Mixture-of-Experts layer, of
     * widths 32, 48, 64 and 80 (heads of width 16 to 32; the dense grid's SwiGLU widths, 216 at width 80), whose expert
     * layers have 8 routed experts of a quarter of that width, 2 of them active, and 2 shared: N = 35,072 to 176,000
     * active matrix parameters (57k to 275k parameters in all); the dense grid's 2 budgets of 8·N and 32·N tokens and 3
     * learning rates per optimizer and point: 48 runs, 95M tokens. The sweeps' centres are the dense grid's at the same
     * width (at width 64 those of the 3-layer {@code l3w64}, at width 80 halfway between {@code l3w64}'s and
     * {@code l3w96}'s): they were not tuned for the MoE model, and the report marks a best rate at the edge of its sweep.
     *
     * <p>The sizes were chosen by measurement (2026-11-28): 600-step runs of each candidate at its 8·N settings, one
     * with each optimizer, trained through the grid runner on the 2 Zen 5 cores of the development machine while other
     * jobs ran beside them (load average 5 to 6.6; dense {@code l2w32} and {@code l3w64} ran there at 26k–31k and
     * 16k–17k tokens a second, a quarter to a third of what the dense grid's sizing measured at a load of 2 to 4).
     * Tokens a second over each run's wall time, validation and checkpoints included, AdamW / Muon: {@code m2w32} 29k /
     * 27k–29k, {@code m2w48} 26k / 23k–24k, {@code m2w64} 22k–28k / 20k–21k, {@code m2w80} 21k–24k / 16k–22k. The
     * grid's tokens at the means of those take about 71 minutes, at the slowest of each 76 minutes. A third layer costs
     * more than widening: {@code m3w64} (two expert layers) trained at 16k tokens a second with either optimizer, which
     * would have made its 12 runs alone 43 minutes. The quick grid: the same 2 layers at widths 8 to 24, 4 routed
     * experts, context 16, on 0.5·N and 1·N tokens.
     */
    private static Design moe(GridSize size) {
        return switch (size) {
            case DEFAULT -> new Design(List.of(
                    new Size("m2w32", moe(2, 32, 2, 96, 64, 8), 8e-3, 8e-3),
                    new Size("m2w48", moe(2, 48, 2, 128, 64, 8), 4e-3, 6e-3),
                    new Size("m2w64", moe(2, 64, 2, 176, 64, 8), 4e-3, 3e-3),
                    new Size("m2w80", moe(2, 80, 4, 216, 64, 8), 4e-3, 2.5e-3)),
                    new double[] {8, 32}, 16, 32, 4, MOE_ROUTER_BIAS_RATE, SWEEP_EXTENSIONS);
            case QUICK -> new Design(List.of(
                    new Size("m2w8", moe(2, 8, 2, 16, 16, 4), 1e-2, 1e-2),
                    new Size("m2w12", moe(2, 12, 2, 24, 16, 4), 1e-2, 1e-2),
                    new Size("m2w16", moe(2, 16, 2, 32, 16, 4), 1e-2, 1e-2),
                    new Size("m2w24", moe(2, 24, 2, 48, 16, 4), 1e-2, 1e-2)),
                    new double[] {0.5, 1}, 4, 2, 2, MOE_ROUTER_BIAS_RATE, 1);
        };
    }

    @Override
    public String name() {
        return family.experiment();
    }

    @Override
    public String title() {
        return switch (family) {
            case DENSE -> "Scaling: the training FLOPs Muon needs to reach AdamW's loss (Moonlight, Figure 3)";
            case MOE -> "Scaling, Mixture of Experts (MoE): the training FLOPs Muon needs to reach AdamW's loss, counted on active "
                    + "parameters (Moonlight, Figure 3)";
        };
    }

    @Override
    public List<GridRun<Point>> grid(GridSize size) {
        Design d = design(family, size);
        List<GridRun<Point>> runs = new ArrayList<>();
        for (Size s : d.sizes()) {
            for (double k : d.budgets()) {
                for (OptimizerChoice o : List.of(OptimizerChoice.ADAMW, OptimizerChoice.MUON)) {
                    for (double lr : rates(d, s, k, o)) {
                        runs.add(run(d, new Point(s, k, o, lr)));
                    }
                }
            }
        }
        return runs;
    }

    /** The run of one point of design {@code d}. */
    private static GridRun<Point> run(Design d, Point p) {
        Size s = p.size();
        double k = p.tokensPerParameter();
        double lr = p.learningRate();
        long n = TrainingFlops.matmulParameters(s.model());
        int tokensPerStep = d.batch() * s.model().contextLength();
        long steps = Math.max(1, Math.round(k * n / tokensPerStep));
        TrainConfig c = new TrainConfig(p.optimizer(), lr, 4 * lr, 0.1, 0.9, 0.95, 0.95, ScheduleKind.COSINE,
                Math.max(1, steps / 20), steps, 0.1, d.batch(), 1, 1.0, 1,
                Math.max(1, steps / 4), d.evalBatches(), Math.max(1, steps / d.checkpointsPerRun()), 1)
                .withRouterBiasRate(d.routerBiasRate());
        String id = String.format(Locale.ROOT, "%s-%sn-%s-lr%s", s.name(), number(k), p.optimizer().name().toLowerCase(Locale.ROOT),
                number(lr));
        return new GridRun<>(id, p, s.model(), c, Measurements.none());
    }

    /**
     * The sweeps that go on past an edge: for each (size, budget, optimizer) whose lowest final loss is at its lowest
     * rate, a run at half that rate, or at its highest, a run at twice it (2 significant digits), while fewer than the
     * design's {@code extensions} lie beyond that end of the first three rates. A diverged run counts as a rate of its
     * sweep and never as the best, so a sweep whose highest rate diverged does not go higher.
     */
    @Override
    public List<GridRun<Point>> extend(GridSize size, List<RunRecord<Point>> ended) {
        Design d = design(family, size);
        List<GridRun<Point>> more = new ArrayList<>();
        for (Sweep w : sweeps(ended)) {
            Point first = w.runs().getFirst().point();
            List<Double> sweep = rates(d, first.size(), first.tokensPerParameter(), first.optimizer());
            long below = w.runs().stream().filter(r -> r.point().learningRate() < sweep.getFirst()).count();
            long above = w.runs().stream().filter(r -> r.point().learningRate() > sweep.getLast()).count();
            if (w.bestAtLowest() && below < d.extensions()) {
                more.add(run(d, new Point(first.size(), first.tokensPerParameter(), first.optimizer(), twoDigits(w.lowest() / 2))));
            } else if (w.bestAtHighest() && above < d.extensions()) {
                more.add(run(d, new Point(first.size(), first.tokensPerParameter(), first.optimizer(), twoDigits(w.highest() * 2))));
            }
        }
        return more;
    }

    /** "5", "0.5", "0.004": a number as a short plain string for ids and tables. */
    static String number(double v) {
        return java.math.BigDecimal.valueOf(v).stripTrailingZeros().toPlainString();
    }

    /**
     * One learning-rate sweep: the ended runs of one (size, budget, optimizer) in grid order, the best of them (the
     * lowest final loss; the first of equal ones), and its lowest and highest rate, a diverged run's included.
     */
    record Sweep(List<RunRecord<Point>> runs, RunRecord<Point> best, double lowest, double highest) {
        boolean bestAtLowest() {
            return best.point().learningRate() == lowest;
        }

        boolean bestAtHighest() {
            return best.point().learningRate() == highest;
        }

        boolean bestAtEdge() {
            return bestAtLowest() || bestAtHighest();
        }
    }

    /** The sweeps of {@code runs} in the order they first appear; a sweep whose runs all diverged has no best and is left out. */
    static List<Sweep> sweeps(List<RunRecord<Point>> runs) {
        Map<String, List<RunRecord<Point>>> groups = new LinkedHashMap<>();
        for (RunRecord<Point> r : runs) {
            Point p = r.point();
            groups.computeIfAbsent(p.size().name() + "/" + p.tokensPerParameter() + "/" + p.optimizer(), g -> new ArrayList<>()).add(r);
        }
        List<Sweep> sweeps = new ArrayList<>();
        for (List<RunRecord<Point>> g : groups.values()) {
            g.stream().filter(r -> Double.isFinite(r.finalLoss())).min(Comparator.comparingDouble(RunRecord::finalLoss))
                    .ifPresent(best -> sweeps.add(new Sweep(List.copyOf(g), best,
                            g.stream().mapToDouble(r -> r.point().learningRate()).min().orElseThrow(),
                            g.stream().mapToDouble(r -> r.point().learningRate()).max().orElseThrow())));
        }
        return sweeps;
    }

    /** The best run of one (size, budget, optimizer): the lowest final loss over the learning rates. */
    record Best(Size size, double tokensPerParameter, OptimizerChoice optimizer, RunRecord<Point> run, boolean atEdge,
                double flops, long tokens) {
        double loss() {
            return run.finalLoss();
        }
    }

    /** Each optimizer's frontier: its best points, the lower envelope among them, and the fit. */
    record Frontier(OptimizerChoice optimizer, List<Best> best, List<Best> envelope, FrontierFit fit, String fittedTo) {
        double[] flops(List<Best> points) {
            return points.stream().mapToDouble(Best::flops).toArray();
        }
    }

    /** One comparison: at AdamW's compute C, the loss AdamW's fit gives and the compute Muon's fit needs for it. */
    record Ratio(double adamwFlops, double adamwLoss, double muonFlops, boolean extrapolated) {
        double ratio() {
            return muonFlops / adamwFlops;
        }
    }

    @Override
    public void analyze(Analysis<Point> a) throws IOException {
        Map<OptimizerChoice, Frontier> frontiers = new LinkedHashMap<>();
        for (OptimizerChoice o : List.of(OptimizerChoice.ADAMW, OptimizerChoice.MUON)) {
            frontiers.put(o, frontier(a, o));
        }
        Frontier adamw = frontiers.get(OptimizerChoice.ADAMW);
        Frontier muon = frontiers.get(OptimizerChoice.MUON);
        List<Ratio> ratios = ratios(adamw, muon);
        ReportFiles files = a.files();

        // Plot 1: both frontiers against log C (Moonlight's Figure 3).
        SvgPlot plot = new SvgPlot("Compute frontiers: validation loss against training FLOPs", family == Family.MOE
                ? "training FLOPs (6·N·D + attention, N the active matrix parameters)" : "training FLOPs (6·N·D + attention)",
                "validation loss (nats/byte)").logX();
        List<List<Object>> plotRows = new ArrayList<>();
        for (Frontier f : frontiers.values()) {
            String name = f.optimizer() == OptimizerChoice.ADAMW ? "AdamW" : "Muon";
            String color = f.optimizer() == OptimizerChoice.ADAMW ? "#d62728" : "#1f77b4";
            double[] x = f.flops(f.best());
            double[] y = f.best().stream().mapToDouble(Best::loss).toArray();
            plot.add(new SvgPlot.Series(name + ": best run of each size and budget", color, x, y, SvgPlot.Style.MARKERS));
            for (Best b : f.best()) {
                plotRows.add(List.of(name, "run", b.flops(), b.loss(), b.run().run().id()));
            }
            if (f.fit() != null) {
                double[] cx = curveFlops(a, f);
                double[] cy = java.util.Arrays.stream(cx).map(f.fit()::loss).toArray();
                plot.add(new SvgPlot.Series(String.format(Locale.ROOT, "%s frontier: %.3g·C^(−%.3f) + %.3f", name, f.fit().a(), f.fit().b(),
                        f.fit().lInf()), color, cx, cy, SvgPlot.Style.LINE));
                for (int i = 0; i < cx.length; i++) {
                    plotRows.add(List.of(name, "fit", cx[i], cy[i], ""));
                }
            }
        }
        String frontierPlot = files.plot("frontier", plot, "validation loss against training FLOPs, both optimizers' frontiers");
        files.csv("frontier", List.of("optimizer", "kind", "flops", "validation_loss", "run"), plotRows);

        // Plot 2: the FLOP ratio against C, beside Moonlight's.
        String ratioPlot = "";
        if (!ratios.isEmpty()) {
            double[] x = ratios.stream().mapToDouble(Ratio::adamwFlops).toArray();
            double[] y = ratios.stream().mapToDouble(Ratio::ratio).toArray();
            SvgPlot rp = new SvgPlot("FLOPs Muon needs to reach AdamW's loss, as a share of AdamW's", "AdamW's training FLOPs",
                    "Muon's FLOPs / AdamW's FLOPs").logX().yFrom(0)
                    .add(new SvgPlot.Series("muon4j (the two fitted frontiers)", "#1f77b4", x, y, SvgPlot.Style.LINE))
                    .add(new SvgPlot.Series("Moonlight: 0.52", "#7f7f7f", new double[] {x[0], x[x.length - 1]},
                            new double[] {MOONLIGHT_FLOP_RATIO, MOONLIGHT_FLOP_RATIO}, SvgPlot.Style.DASHED));
            ratioPlot = files.plot("flop-ratio", rp, "Muon's FLOPs over AdamW's to reach the same loss");
            List<List<Object>> rows = new ArrayList<>();
            for (Ratio r : ratios) {
                rows.add(List.of(r.adamwFlops(), r.adamwLoss(), r.muonFlops(), r.ratio(), r.extrapolated()));
            }
            files.csv("flop-ratio", List.of("adamw_flops", "adamw_fitted_loss", "muon_flops", "ratio", "muon_extrapolated"), rows);
        }
        runsCsv(a);
        files.text("report.md", report(a, frontiers, ratios, frontierPlot, ratioPlot));
    }

    /** The best run of each (size, budget) for {@code o}, their lower envelope and the fit. */
    private static Frontier frontier(Analysis<Point> a, OptimizerChoice o) {
        List<Best> best = new ArrayList<>();
        for (Sweep w : sweeps(a.runs())) {
            RunRecord<Point> b = w.best();
            if (b.point().optimizer() == o) {
                long tokens = b.result().tokens();
                best.add(new Best(b.point().size(), b.point().tokensPerParameter(), o, b, w.bestAtEdge(),
                        TrainingFlops.training(b.point().size().model(), tokens), tokens));
            }
        }
        best.sort(Comparator.comparingDouble(Best::flops));
        double[] c = best.stream().mapToDouble(Best::flops).toArray();
        double[] l = best.stream().mapToDouble(Best::loss).toArray();
        List<Best> envelope = new ArrayList<>();
        for (int i : FrontierFit.lowerEnvelope(c, l)) {
            envelope.add(best.get(i));
        }
        FrontierFit fit = null;
        String fittedTo;
        if (envelope.size() >= 3) {
            fit = FrontierFit.fit(envelope.stream().mapToDouble(Best::flops).toArray(), envelope.stream().mapToDouble(Best::loss).toArray());
            fittedTo = "the " + envelope.size() + " points of the lower envelope";
        } else if (best.size() >= 3) {
            fit = FrontierFit.fit(c, l);
            fittedTo = "all " + best.size() + " best points (the lower envelope has only " + envelope.size() + ")";
        } else {
            fittedTo = "nothing: fewer than 3 points";
        }
        return new Frontier(o, best, envelope, fit, fittedTo);
    }

    /** Compute values for drawing a fitted curve: log-spaced over the grid's whole range. */
    private static double[] curveFlops(Analysis<Point> a, Frontier f) {
        double lo = Double.POSITIVE_INFINITY;
        double hi = 0;
        for (RunRecord<Point> r : a.runs()) {
            double c = TrainingFlops.training(r.point().size().model(), r.result().tokens());
            lo = Math.min(lo, c);
            hi = Math.max(hi, c);
        }
        int n = 40;
        double[] x = new double[n];
        for (int i = 0; i < n; i++) {
            x[i] = lo * Math.pow(hi / lo, i / (n - 1.0));
        }
        return x;
    }

    /**
     * At 9 log-spaced AdamW computes across AdamW's envelope: the loss AdamW's fit gives there and the
     * compute Muon's fit needs for that loss; marked extrapolated when that compute lies outside Muon's
     * envelope. Empty when either fit is missing.
     */
    static List<Ratio> ratios(Frontier adamw, Frontier muon) {
        List<Ratio> out = new ArrayList<>();
        if (adamw.fit() == null || muon.fit() == null || adamw.envelope().isEmpty() || muon.envelope().isEmpty()) {
            return out;
        }
        double lo = adamw.envelope().getFirst().flops();
        double hi = adamw.envelope().getLast().flops();
        double muonLo = muon.envelope().getFirst().flops();
        double muonHi = muon.envelope().getLast().flops();
        int n = lo < hi ? 9 : 1;
        for (int i = 0; i < n; i++) {
            double c = n == 1 ? lo : lo * Math.pow(hi / lo, i / (n - 1.0));
            double loss = adamw.fit().loss(c);
            double m = muon.fit().computeFor(loss);
            if (Double.isFinite(m)) {
                out.add(new Ratio(c, loss, m, m < muonLo * 0.999 || m > muonHi * 1.001));
            }
        }
        return out;
    }

    private static void runsCsv(Analysis<Point> a) throws IOException {
        List<List<Object>> rows = new ArrayList<>();
        for (RunRecord<Point> r : a.runs()) {
            Point p = r.point();
            rows.add(List.of(r.run().id(), p.size().name(), p.size().model().parameterCount(), TrainingFlops.matmulParameters(p.size().model()),
                    p.tokensPerParameter(), r.result().tokens(), TrainingFlops.training(p.size().model(), r.result().tokens()),
                    p.optimizer().name().toLowerCase(Locale.ROOT), p.learningRate(), r.run().train().muonLearningRate(),
                    r.result().status(), r.finalLoss(), r.result().tokensPerSecond(), r.result().wallSeconds()));
        }
        a.files().csv("runs", List.of("id", "size", "parameters", "matrix_parameters", "tokens_per_parameter", "tokens", "flops",
                "optimizer", "lr", "muon_lr", "status", "final_validation_loss", "tokens_per_second", "wall_seconds"), rows);
    }

    private String report(Analysis<Point> a, Map<OptimizerChoice, Frontier> frontiers, List<Ratio> ratios, String frontierPlot,
                          String ratioPlot) {
        Frontier adamw = frontiers.get(OptimizerChoice.ADAMW);
        Frontier muon = frontiers.get(OptimizerChoice.MUON);
        StringBuilder s = new StringBuilder(a.header(title()));
        s.append("## Result\n\n");
        List<Ratio> inside = ratios.stream().filter(r -> !r.extrapolated()).toList();
        List<Ratio> used = inside.isEmpty() ? ratios : inside;
        if (!used.isEmpty()) {
            double geo = Math.exp(used.stream().mapToDouble(r -> Math.log(r.ratio())).average().orElseThrow());
            double min = used.stream().mapToDouble(Ratio::ratio).min().orElseThrow();
            double max = used.stream().mapToDouble(Ratio::ratio).max().orElseThrow();
            s.append(String.format(Locale.ROOT, "**To reach the loss AdamW reaches with C training FLOPs, Muon needs %.0f%% of C** "
                            + "(geometric mean over %d computes across AdamW's frontier%s; from %.0f%% to %.0f%%): a sample efficiency of "
                            + "%.2f×. Moonlight: **%.0f%%**, %.2f× (arXiv 2502.16982, §3.2, Figure 3).%n%n",
                    100 * geo, used.size(), inside.isEmpty() ? ", every one extrapolated beyond Muon's runs" : ", where Muon's fit stays within its runs",
                    100 * min, 100 * max, 1 / geo, 100 * MOONLIGHT_FLOP_RATIO, MOONLIGHT_EFFICIENCY));
        } else {
            s.append("The two frontiers could not be compared: ").append(adamw.fit() == null || muon.fit() == null
                    ? "a fit is missing (fewer than 3 points)." : "Muon's fitted curve never reaches AdamW's losses.").append("\n\n");
        }
        s.append(frontierPlot).append('\n');
        s.append("| optimizer | fitted to | a | b | L∞ | RMS residual |\n|---|---|---|---|---|---|\n");
        for (Frontier f : frontiers.values()) {
            FrontierFit fit = f.fit();
            s.append(String.format(Locale.ROOT, "| %s | %s | %s | %s | %s | %s |%n", label(f.optimizer()), f.fittedTo(),
                    fit == null ? "" : String.format(Locale.ROOT, "%.4g", fit.a()), fit == null ? "" : String.format(Locale.ROOT, "%.4f", fit.b()),
                    fit == null ? "" : String.format(Locale.ROOT, "%.4f", fit.lInf()), fit == null ? "" : String.format(Locale.ROOT, "%.4f", fit.rmse())));
        }
        s.append("\n");
        if (!ratios.isEmpty()) {
            s.append("### FLOPs Muon needs for AdamW's loss\n\n").append(ratioPlot).append('\n');
            s.append("| AdamW's FLOPs C | AdamW's fitted loss | Muon's FLOPs for that loss | ratio | within Muon's runs |\n|---|---|---|---|---|\n");
            for (Ratio r : ratios) {
                s.append(String.format(Locale.ROOT, "| %.3e | %.4f | %.3e | %.3f | %s |%n", r.adamwFlops(), r.adamwLoss(), r.muonFlops(), r.ratio(),
                        r.extrapolated() ? "no (extrapolated)" : "yes"));
            }
            s.append("\n");
        }
        s.append("### The best learning rate of each point\n\n");
        s.append("A point is a model size and a token budget; its loss is the lowest final validation loss over the learning-rate sweep. "
                + "\"edge\" marks a best rate at the end of the sweep, where a rate beyond it might have done better. "
                + "\"envelope\" marks the points of the lower envelope (no point with less compute has a lower loss), to which the frontier is fitted.\n\n");
        s.append("| optimizer | model | N (").append(family == Family.MOE ? "active " : "")
                .append("matrix parameters) | tokens | FLOPs | best lr (Muon's matrices) | final validation loss | |\n"
                + "|---|---|---|---|---|---|---|---|\n");
        for (Frontier f : frontiers.values()) {
            for (Best b : f.best()) {
                ModelConfig m = b.size().model();
                s.append(String.format(Locale.ROOT, "| %s | %s: %s | %,d | %,d (%s·N) | %.3e | %s%s | %.4f | %s |%n",
                        label(f.optimizer()), b.size().name(), shape(m), TrainingFlops.matmulParameters(m), b.tokens(),
                        number(b.tokensPerParameter()), b.flops(), number(b.run().point().learningRate()),
                        f.optimizer() == OptimizerChoice.MUON ? " (" + number(b.run().run().train().muonLearningRate()) + ")" : "",
                        b.loss(), (f.envelope().contains(b) ? "envelope" : "") + (b.atEdge() ? (f.envelope().contains(b) ? ", " : "") + "edge" : "")));
            }
        }
        s.append("\n## Every run\n\n| run | optimizer | lr | tokens | final validation loss | tokens/s | wall time |\n|---|---|---|---|---|---|---|\n");
        for (RunRecord<Point> r : a.runs()) {
            s.append(String.format(Locale.ROOT, "| %s | %s | %s | %,d | %s | %,.0f | %s |%n", r.run().id(), label(r.point().optimizer()),
                    number(r.point().learningRate()), r.result().tokens(),
                    r.result().diverged() ? "diverged" : String.format(Locale.ROOT, "%.4f", r.finalLoss()), r.result().tokensPerSecond(),
                    Analysis.minutes(r.result().wallSeconds())));
        }
        s.append("\n## How it is computed\n\n");
        s.append(switch (family) {
            case DENSE -> "- Models: byte-level Llama models (vocabulary 256) of the sizes above, heads of width 16 to 32, key/value heads = heads, "
                    + "SwiGLU, untied head; all trained from the same seed on the same data order.\n";
            case MOE -> moeModels(a);
        });
        s.append("- Training: cosine schedule to 10% after a 5% warm-up, weight decay 0.1, β2 0.95, gradient clipping 1.0. AdamW runs AdamW "
                + "on every parameter; Muon runs Moonlight's Muon (classic Nesterov momentum 0.95, update scale 0.2·√max(out, in)) on the "
                + "hidden matrices at 4× the learning rate of its AdamW part (embedding, head, norms), both moved together by the sweep.\n");
        s.append(switch (family) {
            case DENSE -> "- FLOPs: C = D·(6·N + 6·L·H·D_head·(T+1)): N counts the projections of every layer and the output head; the attention "
                    + "term counts the causal scores and value sums (a token at position t attends to t + 1 keys). See `TrainingFlops`.\n";
            case MOE -> "- FLOPs: C = D·(6·N + 6·L·H·D_head·(T+1)), where N counts the **active parameters**: the matrices each token is "
                    + "multiplied by, which are every layer's attention projections, the first layer's dense SwiGLU, in each MoE layer the "
                    + "router (width × experts: every token scores every expert) and the SwiGLUs of the routed experts the token goes to and of "
                    + "the shared ones (3 × width × expert width each), and the output head. The routed experts a token does not go to are left "
                    + "out, as in the activated parameters Moonlight and DeepSeek-V3 count; the budgets of 8·N and 32·N tokens are per active "
                    + "matrix parameter too. The attention term counts the causal scores and value sums (a token at position t attends to "
                    + "t + 1 keys). See `TrainingFlops`.\n";
        });
        s.append("- Frontier: the best run of each point; the lower envelope of those; L(C) = a·C^(−b) + L∞ fitted to it by least squares "
                + "(a global search over b with a and L∞ solved exactly, a ≥ 0, 0 ≤ L∞ ≤ the lowest loss). See `FrontierFit`.\n");
        s.append("- Ratio: at computes C across AdamW's envelope, L = AdamW's fitted L(C), and Muon's FLOPs for L from Muon's fitted curve, "
                + "C_Muon = (a/(L − L∞))^(1/b). Where C_Muon lies outside Muon's own envelope the value rests on the curve's extrapolation, "
                + "and the headline uses only the others when there are any.\n");
        s.append(switch (family) {
            case DENSE -> "- Learning rates: each sweep starts at half, once and twice a centre set per size (and for Muon per budget, lower on "
                    + "the longer one) from a first sitting of the grid; docs/EXPERIMENTS.md has its numbers. ";
            case MOE -> "- Learning rates: each sweep starts at half, once and twice a centre set per size (and for Muon per budget, lower on "
                    + "the longer one), taken from the dense grid's (`scaling`) for the same widths: **they were not tuned for the "
                    + "Mixture-of-Experts model**. ";
        });
        s.append(String.format(Locale.ROOT, "Where a sweep's best rate was its lowest or its highest, the grid went on past that end, "
                + "halving or doubling, up to %d rate(s) beyond the first three (`ScalingExperiment.extend`). A best rate still at the edge "
                + "is marked \"edge\" above: there a rate beyond the sweep might have done better, and the point's loss may be too high for "
                + "its optimizer.\n", design(family, a.size()).extensions()));
        s.append("- Moonlight's runs were language models far larger than these, which have tens to hundreds of thousands of parameters and "
                + "read a few million bytes of one corpus: the comparison is of the method and the direction, not of the scale.\n");
        return s.toString();
    }

    /** "2 layers, width 32" for a dense model; a Mixture-of-Experts model adds its experts. */
    private static String shape(ModelConfig m) {
        LlamaConfig t = m.trunk();
        String layers = String.format(Locale.ROOT, "%d layer%s, width %d", t.layers(), t.layers() == 1 ? "" : "s", t.width());
        return switch (m) {
            case LlamaConfig l -> layers;
            case DeepSeekConfig d -> String.format(Locale.ROOT, "%s, %d experts (%d active + %d shared) of width %d", layers, d.moe().experts(),
                    d.moe().activeExperts(), d.moe().sharedExperts(), d.moe().expertWidth());
        };
    }

    /** The Models line of the MoE report's "How it is computed", from the grid's models (their experts are alike). */
    private static String moeModels(Analysis<Point> a) {
        DeepSeekConfig first = (DeepSeekConfig) a.runs().getFirst().point().size().model();
        MoeConfig e = first.moe();
        java.util.IntSummaryStatistics headWidths = a.runs().stream().mapToInt(r -> r.point().size().model().trunk().headDim())
                .summaryStatistics();
        return String.format(Locale.ROOT, "- Models: byte-level DeepSeek-V3-style Mixture-of-Experts (MoE) models (vocabulary 256) of the sizes "
                        + "above: grouped-query attention with heads of width %d to %d, key/value heads = heads; %s a dense SwiGLU of width "
                        + "F, every later layer %d routed experts of width F/4 of which each token goes to %d, plus %d shared "
                        + "experts of that width, routed scale %s (muon4j's Moonlight proportions: the %d experts a token passes through make "
                        + "the dense width F); auxiliary-loss-free balancing with router bias rate %s; untied head. Each model has more "
                        + "parameters in all than the active ones N counts (runs.csv's `parameters` column has them all). All "
                        + "trained from the same seed on the same data order.\n",
                headWidths.getMin(), headWidths.getMax(), e.firstDenseLayers() == 1 ? "the first layer is"
                        : "the first " + e.firstDenseLayers() + " layers are each",
                e.experts(), e.activeExperts(), e.sharedExperts(), number(e.routedScale()), e.activeExperts() + e.sharedExperts(),
                number(a.runs().getFirst().run().train().routerBiasRate()));
    }

    private static String label(OptimizerChoice o) {
        return o == OptimizerChoice.ADAMW ? "AdamW" : "Muon";
    }
}
