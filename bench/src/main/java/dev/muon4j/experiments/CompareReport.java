package dev.muon4j.experiments;

import dev.muon4j.io.AtomicFiles;
import dev.muon4j.train.Trainer;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.function.ToDoubleFunction;

/**
 * The report of a Muon-vs-AdamW comparison over one or more seeds, each seed a pair of runs from the
 * same initial weights and data order. The target is each pair's AdamW final validation loss; for
 * both optimizers the report gives the tokens and the training wall-clock until their validation
 * curve first reached it (AdamW's is normally its whole run), their Muon/AdamW ratios, and each
 * optimizer's tokens per second. Over several seeds it adds the mean, the sample standard deviation
 * (n − 1) and the min–max of the final losses and of the ratios. Plots: validation loss against
 * tokens with the target as a dashed line and a marker where Muon reaches it; for a
 * Mixture-of-Experts model the expert load balance over the run: per step, the largest expert's
 * share of the routed tokens over the mean share, in the worst MoE layer.
 */
public final class CompareReport {
    private CompareReport() {
    }

    private static final String ADAMW_COLOR = "#d62728";
    private static final String MUON_COLOR = "#1f77b4";
    private static final String MUON_NAME = "Muon (hybrid, Moonlight scale)";

    /**
     * Tokens at which {@code evals} first reaches {@code target}: the first evaluation at or below it,
     * interpolated linearly in tokens between that evaluation and the one before it (the first evaluation's
     * own tokens if it is already there); NaN if it never does.
     */
    public static double tokensToReach(List<Trainer.EvalPoint> evals, double target) {
        for (int i = 0; i < evals.size(); i++) {
            Trainer.EvalPoint e = evals.get(i);
            if (e.loss() <= target) {
                if (i == 0) {
                    return e.tokens();
                }
                Trainer.EvalPoint prev = evals.get(i - 1);
                double f = (prev.loss() - target) / (prev.loss() - e.loss());
                return prev.tokens() + f * (e.tokens() - prev.tokens());
            }
        }
        return Double.NaN;
    }

    /** One seed's two runs, from the same initial weights and data order; the target is AdamW's final validation loss. */
    public record Pair(long seed, CompareRun adamw, CompareRun muon) {
        /** AdamW's final validation loss. */
        public double target() {
            return adamw.finalValidationLoss();
        }

        /** Tokens until AdamW's validation curve first reached its final loss (its whole run unless it dipped there earlier). */
        public double adamwTokensToTarget() {
            return tokensToReach(adamw.evals(), target());
        }

        /** Tokens until Muon's validation curve first reached the target; NaN if it never did. */
        public double muonTokensToTarget() {
            return tokensToReach(muon.evals(), target());
        }

        /** Whether Muon reached the target within its run. */
        public boolean reached() {
            return Double.isFinite(muonTokensToTarget());
        }

        /** Muon's tokens to the target over AdamW's; NaN if Muon never reached it. */
        public double tokenRatio() {
            return muonTokensToTarget() / adamwTokensToTarget();
        }

        /** AdamW's training wall-clock at the tokens where it reached the target. */
        public double adamwWallToTarget() {
            return adamw.wallSecondsAt(adamwTokensToTarget());
        }

        /** Muon's training wall-clock at the tokens where it reached the target; NaN if it never did. */
        public double muonWallToTarget() {
            return muon.wallSecondsAt(muonTokensToTarget());
        }

        /** Muon's wall-clock to the target over AdamW's; NaN if Muon never reached it. */
        public double wallRatio() {
            return muonWallToTarget() / adamwWallToTarget();
        }

        /** Muon's tokens per second over AdamW's. */
        public double speedRatio() {
            return muon.tokensPerSecond() / adamw.tokensPerSecond();
        }
    }

    /**
     * Some values' count, mean, sample standard deviation (n − 1; NaN for one value) and range.
     */
    public record Spread(int count, double mean, double sd, double min, double max) {
        /** The spread of {@code values} (at least one). */
        public static Spread of(double... values) {
            if (values.length == 0) {
                throw new IllegalArgumentException("the spread of no values");
            }
            double mean = Arrays.stream(values).sum() / values.length;
            double squares = 0;
            for (double v : values) {
                squares += (v - mean) * (v - mean);
            }
            double sd = values.length > 1 ? Math.sqrt(squares / (values.length - 1)) : Double.NaN;
            return new Spread(values.length, mean, sd, Arrays.stream(values).min().orElseThrow(), Arrays.stream(values).max().orElseThrow());
        }

        /** The spread of one number of each pair. */
        public static Spread over(List<Pair> pairs, ToDoubleFunction<Pair> value) {
            return of(pairs.stream().mapToDouble(value).toArray());
        }
    }

    /**
     * The comparison's inputs and results.
     *
     * @param pairs         one pair of runs per seed, in seed order (at least one)
     * @param firstMoeLayer the block index of the first Mixture-of-Experts layer (the report names layers by block);
     *                      ignored for a dense model
     */
    public record Inputs(String commandLine, String machine, String backend, String data, String model, String training,
                         List<Pair> pairs, int firstMoeLayer) {
        public Inputs {
            if (pairs.isEmpty()) {
                throw new IllegalArgumentException("a comparison needs at least one pair of runs");
            }
            pairs = List.copyOf(pairs);
        }
    }

    /** Whether every step of {@code r} carries the routing of a Mixture-of-Experts model. */
    public static boolean hasExpertLoads(CompareRun r) {
        return !r.steps().isEmpty() && r.steps().stream().allMatch(p -> p.experts() != null);
    }

    /** Whether every run of every pair carries expert loads. */
    public static boolean hasExpertLoads(List<Pair> pairs) {
        return pairs.stream().allMatch(p -> hasExpertLoads(p.adamw()) && hasExpertLoads(p.muon()));
    }

    /** Per step, the worst MoE layer's largest expert load over the mean load. */
    public static double[] worstLoadPerStep(CompareRun r) {
        return r.steps().stream().mapToDouble(p -> p.experts().worstMaxOverMean()).toArray();
    }

    /** Per MoE layer, the mean over the run's steps of the largest expert load over the mean load. */
    public static double[] meanLoadPerLayer(CompareRun r) {
        double[] sum = new double[r.steps().getFirst().experts().shares().length];
        for (Trainer.StepPoint p : r.steps()) {
            double[] m = p.experts().maxOverMean();
            for (int l = 0; l < sum.length; l++) {
                sum[l] += m[l];
            }
        }
        for (int l = 0; l < sum.length; l++) {
            sum[l] /= r.steps().size();
        }
        return sum;
    }

    /**
     * The expert-load plot: the worst MoE layer's max/mean load per step for both optimizers (over several seeds each
     * seed thin and the mean over seeds), the y axis from 1.
     */
    public static SvgPlot loadPlot(List<Pair> pairs) {
        SvgPlot plot = new SvgPlot("Expert load balance (worst MoE layer; 1 = balanced)", "step", "largest expert load / mean load").yFrom(1);
        addRuns(plot, "AdamW", ADAMW_COLOR, pairs.stream().map(p -> loadCurve(p.adamw())).toList());
        addRuns(plot, MUON_NAME, MUON_COLOR, pairs.stream().map(p -> loadCurve(p.muon())).toList());
        return plot;
    }

    private static double[][] loadCurve(CompareRun r) {
        return new double[][] {r.steps().stream().mapToDouble(Trainer.StepPoint::step).toArray(), worstLoadPerStep(r)};
    }

    private static double[][] lossCurve(CompareRun r) {
        return new double[][] {r.evals().stream().mapToDouble(Trainer.EvalPoint::tokens).toArray(),
                r.evals().stream().mapToDouble(Trainer.EvalPoint::loss).toArray()};
    }

    /**
     * Adds one optimizer's curves ({x, y} per seed): one run as a line named {@code name}; several as thin lines
     * without legend entries and their mean over seeds, point by point, as the named line.
     *
     * @return the curve drawn as the named line
     * @throws IllegalArgumentException when the runs' x values differ (runs of other settings)
     */
    static double[][] addRuns(SvgPlot plot, String name, String color, List<double[][]> runs) {
        if (runs.size() == 1) {
            plot.add(new SvgPlot.Series(name, color, runs.getFirst()[0], runs.getFirst()[1]));
            return runs.getFirst();
        }
        double[] x = runs.getFirst()[0];
        double[] mean = new double[x.length];
        for (double[][] r : runs) {
            if (!Arrays.equals(r[0], x)) {
                throw new IllegalArgumentException(name + ": the seeds' runs have points at different x (" + Arrays.toString(r[0])
                        + " against " + Arrays.toString(x) + "): they were trained with other settings");
            }
            plot.add(new SvgPlot.Series("", color, r[0], r[1], SvgPlot.Style.THIN));
            for (int i = 0; i < x.length; i++) {
                mean[i] += r[1][i] / runs.size();
            }
        }
        plot.add(new SvgPlot.Series(name + ", mean of " + runs.size() + " seeds", color, x, mean));
        return new double[][] {x, mean};
    }

    /**
     * The loss plot: validation loss against tokens (over several seeds each seed thin and the mean over seeds), the
     * target (AdamW's final validation loss, or its mean over seeds) as a dashed line, and a marker with a note where
     * Muon's curve (its mean over seeds) first reaches it.
     */
    public static SvgPlot lossPlot(List<Pair> pairs) {
        SvgPlot plot = new SvgPlot("Validation loss vs tokens", "training tokens", "validation loss (nats/token)");
        double[][] adamw = addRuns(plot, "AdamW", ADAMW_COLOR, pairs.stream().map(p -> lossCurve(p.adamw())).toList());
        double[][] muon = addRuns(plot, MUON_NAME, MUON_COLOR, pairs.stream().map(p -> lossCurve(p.muon())).toList());
        boolean one = pairs.size() == 1;
        double target = adamw[1][adamw[1].length - 1];
        double from = Math.min(adamw[0][0], muon[0][0]);
        double to = Math.max(adamw[0][adamw[0].length - 1], muon[0][muon[0].length - 1]);
        plot.add(new SvgPlot.Series(f(one ? "target: AdamW's final loss, %.4f" : "target: AdamW's final loss, mean of seeds, %.4f", target),
                "#555555", new double[] {from, to}, new double[] {target, target}, SvgPlot.Style.DASHED));
        double reach = tokensToReach(evalsOf(muon), target);
        double adamwReach = tokensToReach(evalsOf(adamw), target);
        String who = one ? "Muon" : "Muon's mean";
        if (Double.isFinite(reach)) {
            plot.add(new SvgPlot.Series("", "#000000", new double[] {reach}, new double[] {target}, SvgPlot.Style.MARKERS));
            plot.annotate(reach, target, f("%s reaches the target at %,.0f tokens, %.3f of AdamW's", who, reach, reach / adamwReach));
        } else {
            plot.annotate(to, target, who + " never reaches the target");
        }
        return plot;
    }

    private static List<Trainer.EvalPoint> evalsOf(double[][] curve) {
        List<Trainer.EvalPoint> evals = new ArrayList<>();
        for (int i = 0; i < curve[0].length; i++) {
            evals.add(new Trainer.EvalPoint(i, Math.round(curve[0][i]), curve[1][i]));
        }
        return evals;
    }

    /**
     * Writes report.md and loss.svg into {@code dir}, and load.svg for a Mixture-of-Experts model (each atomically);
     * returns the report's path.
     */
    public static Path write(Path dir, Inputs in) throws IOException {
        Files.createDirectories(dir);
        writeAtomically(dir.resolve("loss.svg"), lossPlot(in.pairs()).render());
        if (hasExpertLoads(in.pairs())) {
            writeAtomically(dir.resolve("load.svg"), loadPlot(in.pairs()).render());
        }
        writeAtomically(dir.resolve("report.md"), markdown(in));
        return dir.resolve("report.md");
    }

    /** A table as a header and rows of cells, written as Markdown or as aligned text. */
    public record Table(List<String> header, List<List<String>> rows) {
        /** The Markdown table. */
        public String markdown() {
            StringBuilder s = new StringBuilder("| " + String.join(" | ", header) + " |\n|");
            s.append("---|".repeat(header.size())).append('\n');
            for (List<String> row : rows) {
                s.append("| ").append(String.join(" | ", row)).append(" |\n");
            }
            return s.toString();
        }

        /** The table as text: the first column left-aligned, the others right-aligned, each as wide as its widest cell. */
        public String text() {
            int[] width = new int[header.size()];
            for (List<String> row : rowsWithHeader()) {
                for (int c = 0; c < row.size(); c++) {
                    width[c] = Math.max(width[c], row.get(c).replace("**", "").length());
                }
            }
            StringBuilder s = new StringBuilder();
            for (List<String> row : rowsWithHeader()) {
                StringBuilder line = new StringBuilder();
                for (int c = 0; c < row.size(); c++) {
                    String cell = row.get(c).replace("**", "");
                    line.append(c == 0 ? cell + " ".repeat(width[c] - cell.length()) : "  " + " ".repeat(width[c] - cell.length()) + cell);
                }
                s.append(line.toString().stripTrailing()).append('\n');
            }
            return s.toString();
        }

        private List<List<String>> rowsWithHeader() {
            List<List<String>> all = new ArrayList<>();
            all.add(header);
            all.addAll(rows);
            return all;
        }
    }

    /**
     * The results table. One seed: a row per optimizer (final validation loss, tokens, tokens/s, the steps' own
     * time, the training wall-clock, tokens and wall-clock to the target) and a row of Muon/AdamW ratios. Several
     * seeds: a row per number (both optimizers' final losses, tokens/s, tokens and wall-clock to the target, the
     * ratios), a column per seed, then the mean ± sample standard deviation and the min–max over the seeds.
     */
    public static Table resultTable(List<Pair> pairs) {
        if (pairs.size() == 1) {
            Pair p = pairs.getFirst();
            List<List<String>> rows = List.of(
                    runRow("AdamW", p.adamw(), p.adamwTokensToTarget(), p.adamwWallToTarget()),
                    runRow("Muon", p.muon(), p.muonTokensToTarget(), p.muonWallToTarget()),
                    List.of("Muon / AdamW", "", "", f("%.3f", p.speedRatio()), "", "", ratio(p.tokenRatio()), ratio(p.wallRatio())));
            return new Table(List.of("optimizer", "final validation loss", "tokens", "tokens/s", "training time",
                    "training wall-clock", "tokens to target", "wall-clock to target"), rows);
        }
        boolean all = pairs.stream().allMatch(Pair::reached);
        List<String> header = new ArrayList<>(List.of(""));
        pairs.forEach(p -> header.add("seed " + p.seed()));
        header.addAll(List.of("mean ± sd", "min–max"));
        List<List<String>> rows = new ArrayList<>();
        for (Column c : SEED_COLUMNS) {
            List<String> row = new ArrayList<>(List.of(c.header()));
            pairs.forEach(p -> row.add(c.cell(c.value().applyAsDouble(p))));
            // Muon's numbers at the target have no mean when some seed never reached it.
            Spread sp = c.atTarget() && !all ? null : Spread.over(pairs, c.value());
            row.add(sp == null ? "–" : c.cell(sp.mean()) + " ± " + c.cell(sp.sd()));
            row.add(sp == null ? "–" : c.cell(sp.min()) + "–" + c.cell(sp.max()));
            rows.add(row);
        }
        return new Table(header, rows);
    }

    /** A row of the several-seeds table: a number of each pair; {@code atTarget}: NaN where Muon never reached the target. */
    private record Column(String header, ToDoubleFunction<Pair> value, String format, boolean atTarget) {
        String cell(double v) {
            return Double.isFinite(v) ? f(format, v) : atTarget && header.endsWith("tokens to target") ? "not reached" : "–";
        }
    }

    private static final List<Column> SEED_COLUMNS = List.of(
            new Column("AdamW final loss", p -> p.adamw().finalValidationLoss(), "%.4f", false),
            new Column("Muon final loss", p -> p.muon().finalValidationLoss(), "%.4f", false),
            new Column("AdamW tokens/s", p -> p.adamw().tokensPerSecond(), "%,.0f", false),
            new Column("Muon tokens/s", p -> p.muon().tokensPerSecond(), "%,.0f", false),
            new Column("AdamW tokens to target", Pair::adamwTokensToTarget, "%,.0f", false),
            new Column("Muon tokens to target", Pair::muonTokensToTarget, "%,.0f", true),
            new Column("token ratio", Pair::tokenRatio, "%.3f", true),
            new Column("AdamW wall-clock to target", Pair::adamwWallToTarget, "%.1f s", false),
            new Column("Muon wall-clock to target", Pair::muonWallToTarget, "%.1f s", true),
            new Column("wall-clock ratio", Pair::wallRatio, "%.3f", true));

    private static List<String> runRow(String name, CompareRun r, double tokensToTarget, double wallToTarget) {
        return List.of(name, f("%.4f", r.finalValidationLoss()), f("%,d", r.tokens()), f("%,.0f", r.tokensPerSecond()),
                seconds(r.trainSeconds()), seconds(r.totalWallSeconds()), tokens(tokensToTarget), seconds(wallToTarget));
    }

    private static String tokens(double t) {
        return Double.isFinite(t) ? f("%,.0f", t) : "not reached";
    }

    private static String seconds(double s) {
        return Double.isFinite(s) ? f("%.1f s", s) : "–";
    }

    private static String ratio(double r) {
        return Double.isFinite(r) ? f("**%.3f**", r) : "–";
    }

    /** The sentences that state the result: whether and when Muon reached the target, with the ratios. */
    public static String verdict(List<Pair> pairs) {
        if (pairs.size() == 1) {
            Pair p = pairs.getFirst();
            if (!p.reached()) {
                return f("Muon did not reach AdamW's final validation loss (%.4f) within its %,d tokens: no ratio. "
                        + "Muon ran at %.3f × AdamW's tokens/s.", p.target(), p.muon().tokens(), p.speedRatio());
            }
            return f("Muon reached AdamW's final validation loss (%.4f) after %,.0f tokens, %.1f%% of the %,.0f AdamW needed "
                            + "(token ratio %.3f), and after %s of training wall-clock, %.1f%% of AdamW's %s (wall-clock ratio %.3f). "
                            + "Muon ran at %.3f × AdamW's tokens/s.", p.target(), p.muonTokensToTarget(), 100 * p.tokenRatio(),
                    p.adamwTokensToTarget(), p.tokenRatio(), seconds(p.muonWallToTarget()), 100 * p.wallRatio(),
                    seconds(p.adamwWallToTarget()), p.wallRatio(), p.speedRatio());
        }
        int n = pairs.size();
        Spread adamw = Spread.over(pairs, p -> p.adamw().finalValidationLoss());
        Spread muon = Spread.over(pairs, p -> p.muon().finalValidationLoss());
        String losses = f("Over %d seeds the final validation loss was %.4f ± %.4f for AdamW and %.4f ± %.4f for Muon (mean ± sample "
                + "standard deviation). ", n, adamw.mean(), adamw.sd(), muon.mean(), muon.sd());
        List<String> missed = pairs.stream().filter(p -> !p.reached()).map(p -> Long.toString(p.seed())).toList();
        if (!missed.isEmpty()) {
            return losses + f("Muon did not reach its seed's AdamW final validation loss in %d of %d seeds (seed %s): no mean ratio.",
                    missed.size(), n, String.join(", ", missed));
        }
        Spread tokens = Spread.over(pairs, Pair::tokenRatio);
        Spread wall = Spread.over(pairs, Pair::wallRatio);
        Spread speed = Spread.over(pairs, Pair::speedRatio);
        return losses + f("Muon reached its seed's AdamW final validation loss in every seed: token ratio %.3f ± %.3f (%.3f–%.3f), "
                        + "wall-clock ratio %.3f ± %.3f (%.3f–%.3f). Muon ran at %.3f × AdamW's tokens/s (%.3f–%.3f).",
                tokens.mean(), tokens.sd(), tokens.min(), tokens.max(), wall.mean(), wall.sd(), wall.min(), wall.max(),
                speed.mean(), speed.min(), speed.max());
    }

    /** The Markdown text of the report. */
    public static String markdown(Inputs in) {
        List<Pair> pairs = in.pairs();
        StringBuilder s = new StringBuilder();
        s.append("# Muon vs AdamW\n\n");
        s.append("Command: `").append(in.commandLine()).append("`\n\n");
        s.append("- Machine: ").append(in.machine()).append('\n');
        s.append("- Backend: ").append(in.backend()).append('\n');
        s.append("- Data: ").append(in.data()).append('\n');
        s.append("- Model: ").append(in.model()).append('\n');
        s.append("- Training: ").append(in.training()).append("\n\n");
        s.append("![validation loss against tokens](loss.svg)\n\n");
        s.append("## Result\n\n");
        s.append(resultTable(pairs).markdown()).append('\n');
        s.append("**").append(verdict(pairs)).append("**\n\n");
        s.append("How these are measured:\n\n");
        s.append("- The target is AdamW's final validation loss").append(pairs.size() > 1 ? ", per seed" : "")
                .append(". Tokens to target: where the validation curve first reaches it, linear in tokens between the last "
                        + "evaluation above it and the first at or below it (AdamW's own curve too: normally its last evaluation).\n");
        s.append("- Wall-clock to target: the training wall-clock at those tokens, linear between the ends of the steps around "
                + "them. The training wall-clock comes from the `time` of each metrics.jsonl line: from the start of step 1 (its "
                + "`time` less its `seconds`), less every validation (a validation line's `time` less the step line's before it) and "
                + "every break between sittings of a resumed run; writing metrics and checkpoints stays in.\n");
        s.append("- Tokens/s and training time: the steps' own time (`seconds`, no validation, no checkpoints).\n");
        CompareRun adamw = pairs.getFirst().adamw();
        CompareRun muon = pairs.getFirst().muon();
        s.append(f("- Both include the Java virtual machine's warm-up, mostly in the first run a process trains (normally the first "
                        + "AdamW run): step 1 took %.2f s for AdamW and %.2f s for Muon%s, against a median step of %.3f s and %.3f s.%n",
                adamw.steps().getFirst().seconds(), muon.steps().getFirst().seconds(),
                pairs.size() > 1 ? " (seed " + pairs.getFirst().seed() + ")" : "", medianStep(adamw), medianStep(muon)));
        if (pairs.size() > 1) {
            s.append("- Each ratio is Muon's over AdamW's of the same seed; ± is the sample standard deviation (n − 1) over "
                    + "the seeds. The plot shows each seed thin and the mean over seeds bold; its marker is where Muon's mean "
                    + "curve reaches the mean of AdamW's final losses.\n");
        }
        s.append('\n');
        if (hasExpertLoads(pairs)) {
            expertLoads(s, in);
        }
        validationCurves(s, pairs);
        s.append("\nBoth runs of a seed use the same initial weights, data order, token budget, weight decay and schedule shape; "
                + "the Muon run updates the hidden matrices with Muon (Moonlight's variant: classic Nesterov momentum, update scale "
                + "0.2·√max(out, in)) at the Muon learning rate, and the embedding, head and norms with AdamW at the AdamW rate.\n");
        return s.toString();
    }

    private static double medianStep(CompareRun r) {
        double[] seconds = r.steps().stream().mapToDouble(Trainer.StepPoint::seconds).sorted().toArray();
        int n = seconds.length;
        return n % 2 == 1 ? seconds[n / 2] : (seconds[n / 2 - 1] + seconds[n / 2]) / 2;
    }

    private static void validationCurves(StringBuilder s, List<Pair> pairs) {
        boolean one = pairs.size() == 1;
        List<String> header = new ArrayList<>(List.of("step", "tokens"));
        List<CompareRun> runs = new ArrayList<>();
        for (String name : List.of("AdamW", "Muon")) {
            for (Pair p : pairs) {
                header.add(one ? name : name + " seed " + p.seed());
                runs.add(name.equals("AdamW") ? p.adamw() : p.muon());
            }
        }
        List<List<String>> rows = new ArrayList<>();
        int n = runs.stream().mapToInt(r -> r.evals().size()).max().orElse(0);
        for (int i = 0; i < n; i++) {
            int row = i;
            Trainer.EvalPoint any = runs.stream().filter(r -> row < r.evals().size()).findFirst().orElseThrow().evals().get(i);
            List<String> cells = new ArrayList<>(List.of(Long.toString(any.step()), f("%,d", any.tokens())));
            for (CompareRun r : runs) {
                cells.add(i < r.evals().size() ? f("%.4f", r.evals().get(i).loss()) : "");
            }
            rows.add(cells);
        }
        s.append("## Validation curves\n\n").append(new Table(header, rows).markdown());
    }

    private static void expertLoads(StringBuilder s, Inputs in) {
        CompareRun first = in.pairs().getFirst().adamw();
        int layers = first.steps().getFirst().experts().shares().length;
        int experts = first.steps().getFirst().experts().shares()[0].length;
        s.append("## Expert load balance\n\n![expert load balance over the run](load.svg)\n\n");
        s.append(f("Per step and MoE layer, the largest of the %d experts' loads (routed tokens) over the mean load: "
                + "1 is perfect balance. The plot shows the worst layer at every step; "
                + "\"final\" is the last step's value, \"mean\" the average over all steps.%n%n", experts));
        StringBuilder header = new StringBuilder("| optimizer | worst layer: final | worst layer: mean |");
        StringBuilder rule = new StringBuilder("|---|---|---|");
        for (int l = 0; l < layers; l++) {
            header.append(f(" layer %d: final | layer %d: mean |", in.firstMoeLayer() + l, in.firstMoeLayer() + l));
            rule.append("---|---|");
        }
        s.append(header).append('\n').append(rule).append('\n');
        boolean one = in.pairs().size() == 1;
        for (String name : List.of("AdamW", "Muon")) {
            for (Pair p : in.pairs()) {
                loadRow(s, one ? name : name + ", seed " + p.seed(), name.equals("AdamW") ? p.adamw() : p.muon());
            }
        }
        s.append('\n');
    }

    private static void loadRow(StringBuilder s, String name, CompareRun r) {
        double[] worst = worstLoadPerStep(r);
        double[] last = r.steps().getLast().experts().maxOverMean();
        double[] mean = meanLoadPerLayer(r);
        s.append(f("| %s | %.3f | %.3f |", name, worst[worst.length - 1], Arrays.stream(worst).average().orElse(Double.NaN)));
        for (int l = 0; l < last.length; l++) {
            s.append(f(" %.3f | %.3f |", last[l], mean[l]));
        }
        s.append('\n');
    }

    private static String f(String format, Object... args) {
        return String.format(Locale.ROOT, format, args);
    }

    private static void writeAtomically(Path file, String text) throws IOException {
        AtomicFiles.write(file, out -> out.write(text.getBytes(StandardCharsets.UTF_8)));
    }
}
