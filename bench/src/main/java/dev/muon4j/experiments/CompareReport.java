package dev.muon4j.experiments;

import dev.muon4j.io.AtomicFiles;
import dev.muon4j.train.Trainer;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/**
 * The report of a Muon-vs-AdamW comparison: validation loss against tokens for both, the table
 * of their numbers, and the token ratio "tokens Muon needed to reach AdamW's final validation
 * loss ÷ tokens AdamW used", with the validation curve interpolated linearly between evaluations.
 * For a Mixture-of-Experts model it adds the expert load balance over the run: per step, the
 * largest expert's share of the routed tokens over the mean share, in the worst MoE layer.
 */
public final class CompareReport {
    private CompareReport() {
    }

    /**
     * Tokens at which {@code evals} first reaches {@code target} (linear interpolation between the
     * evaluation before and the one at or below the target); NaN if it never does.
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

    /**
     * The comparison's inputs and results.
     *
     * @param firstMoeLayer the block index of the first Mixture-of-Experts layer (the report names layers by block);
     *                      ignored for a dense model
     */
    public record Inputs(String commandLine, String machine, String backend, String data, String model, String training,
                         Trainer.Result adamw, Trainer.Result muon, int firstMoeLayer) {
        /** A dense model's inputs. */
        public Inputs(String commandLine, String machine, String backend, String data, String model, String training,
                      Trainer.Result adamw, Trainer.Result muon) {
            this(commandLine, machine, backend, data, model, training, adamw, muon, 0);
        }
    }

    /** Whether every step of {@code r} carries the routing of a Mixture-of-Experts model. */
    public static boolean hasExpertLoads(Trainer.Result r) {
        return !r.steps().isEmpty() && r.steps().stream().allMatch(p -> p.experts() != null);
    }

    /** Per step, the worst MoE layer's largest expert load over the mean load. */
    public static double[] worstLoadPerStep(Trainer.Result r) {
        return r.steps().stream().mapToDouble(p -> p.experts().worstMaxOverMean()).toArray();
    }

    /** Per MoE layer, the mean over the run's steps of the largest expert load over the mean load. */
    public static double[] meanLoadPerLayer(Trainer.Result r) {
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

    /** The expert-load plot: the worst MoE layer's max/mean load per step for both optimizers, the y axis from 1. */
    public static SvgPlot loadPlot(Trainer.Result adamw, Trainer.Result muon) {
        return new SvgPlot("Expert load balance (worst MoE layer; 1 = balanced)", "step", "largest expert load / mean load")
                .yFrom(1)
                .add(loadSeries("AdamW", "#d62728", adamw))
                .add(loadSeries("Muon (hybrid, Moonlight scale)", "#1f77b4", muon));
    }

    private static SvgPlot.Series loadSeries(String name, String color, Trainer.Result r) {
        double[] x = r.steps().stream().mapToDouble(Trainer.StepPoint::step).toArray();
        return new SvgPlot.Series(name, color, x, worstLoadPerStep(r));
    }

    /** tokens(Muon reaches AdamW's final loss) / AdamW's total tokens; NaN if Muon never reaches it. */
    public static double tokenRatio(Trainer.Result adamw, Trainer.Result muon) {
        List<Trainer.EvalPoint> a = adamw.evals();
        double target = a.getLast().loss();
        return tokensToReach(muon.evals(), target) / a.getLast().tokens();
    }

    /**
     * Writes report.md and loss.svg into {@code dir}, and load.svg for a Mixture-of-Experts model (each atomically);
     * returns the report's path.
     */
    public static Path write(Path dir, Inputs in) throws IOException {
        Files.createDirectories(dir);
        SvgPlot plot = new SvgPlot("Validation loss vs tokens", "training tokens", "validation loss (nats/token)")
                .add(series("AdamW", "#d62728", in.adamw().evals()))
                .add(series("Muon (hybrid, Moonlight scale)", "#1f77b4", in.muon().evals()));
        writeAtomically(dir.resolve("loss.svg"), plot.render());
        if (hasExpertLoads(in.adamw()) && hasExpertLoads(in.muon())) {
            writeAtomically(dir.resolve("load.svg"), loadPlot(in.adamw(), in.muon()).render());
        }
        writeAtomically(dir.resolve("report.md"), markdown(in));
        return dir.resolve("report.md");
    }

    private static SvgPlot.Series series(String name, String color, List<Trainer.EvalPoint> evals) {
        double[] x = new double[evals.size()];
        double[] y = new double[evals.size()];
        for (int i = 0; i < evals.size(); i++) {
            x[i] = evals.get(i).tokens();
            y[i] = evals.get(i).loss();
        }
        return new SvgPlot.Series(name, color, x, y);
    }

    /** The Markdown text of the report. */
    public static String markdown(Inputs in) {
        Trainer.Result a = in.adamw();
        Trainer.Result m = in.muon();
        double target = a.finalValidationLoss();
        double reach = tokensToReach(m.evals(), target);
        double ratio = tokenRatio(a, m);
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
        s.append("| optimizer | final validation loss | tokens | tokens/s | training time |\n|---|---|---|---|---|\n");
        row(s, "AdamW", a);
        row(s, "Muon", m);
        s.append('\n');
        if (Double.isFinite(reach)) {
            s.append(String.format(Locale.ROOT,
                    "**Muon reached AdamW's final validation loss (%.4f) after %,.0f tokens: %.1f%% of AdamW's %,d tokens "
                            + "(token ratio %.3f).**%n%n", target, reach, 100 * ratio, a.evals().getLast().tokens(), ratio));
        } else {
            s.append(String.format(Locale.ROOT,
                    "**Muon did not reach AdamW's final validation loss (%.4f) within %,d tokens.**%n%n", target, m.evals().getLast().tokens()));
        }
        if (hasExpertLoads(a) && hasExpertLoads(m)) {
            expertLoads(s, in);
        }
        s.append("## Validation curves\n\n| step | tokens | AdamW | Muon |\n|---|---|---|---|\n");
        int n = Math.max(a.evals().size(), m.evals().size());
        for (int i = 0; i < n; i++) {
            Trainer.EvalPoint ea = i < a.evals().size() ? a.evals().get(i) : null;
            Trainer.EvalPoint em = i < m.evals().size() ? m.evals().get(i) : null;
            Trainer.EvalPoint any = ea != null ? ea : em;
            s.append(String.format(Locale.ROOT, "| %d | %,d | %s | %s |%n", any.step(), any.tokens(),
                    ea == null ? "" : String.format(Locale.ROOT, "%.4f", ea.loss()),
                    em == null ? "" : String.format(Locale.ROOT, "%.4f", em.loss())));
        }
        s.append("\nThe token ratio interpolates Muon's validation curve linearly between evaluations. "
                + "Both runs use the same initial weights, data order, token budget, weight decay and schedule shape; "
                + "the Muon run updates the hidden matrices with Muon (Moonlight's variant: classic Nesterov momentum, update scale "
                + "0.2·√max(out, in)) at the Muon learning rate, and the embedding, head and norms with AdamW at the AdamW rate.\n");
        return s.toString();
    }

    private static void expertLoads(StringBuilder s, Inputs in) {
        int layers = in.adamw().steps().getFirst().experts().shares().length;
        int experts = in.adamw().steps().getFirst().experts().shares()[0].length;
        s.append("## Expert load balance\n\n![expert load balance over the run](load.svg)\n\n");
        s.append(String.format(Locale.ROOT, "Per step and MoE layer, the largest of the %d experts' loads (routed tokens) over the mean load: "
                + "1 is perfect balance. The plot shows the worst layer at every step; "
                + "\"final\" is the last step's value, \"mean\" the average over all steps.%n%n", experts));
        StringBuilder header = new StringBuilder("| optimizer | worst layer: final | worst layer: mean |");
        StringBuilder rule = new StringBuilder("|---|---|---|");
        for (int l = 0; l < layers; l++) {
            header.append(String.format(Locale.ROOT, " layer %d: final | layer %d: mean |", in.firstMoeLayer() + l, in.firstMoeLayer() + l));
            rule.append("---|---|");
        }
        s.append(header).append('\n').append(rule).append('\n');
        loadRow(s, "AdamW", in.adamw());
        loadRow(s, "Muon", in.muon());
        s.append('\n');
    }

    private static void loadRow(StringBuilder s, String name, Trainer.Result r) {
        double[] worst = worstLoadPerStep(r);
        double[] last = r.steps().getLast().experts().maxOverMean();
        double[] mean = meanLoadPerLayer(r);
        s.append(String.format(Locale.ROOT, "| %s | %.3f | %.3f |", name, worst[worst.length - 1], java.util.Arrays.stream(worst).average().orElse(Double.NaN)));
        for (int l = 0; l < last.length; l++) {
            s.append(String.format(Locale.ROOT, " %.3f | %.3f |", last[l], mean[l]));
        }
        s.append('\n');
    }

    private static void row(StringBuilder s, String name, Trainer.Result r) {
        s.append(String.format(Locale.ROOT, "| %s | %.4f | %,d | %,.0f | %.1f s |%n", name, r.finalValidationLoss(),
                r.evals().isEmpty() ? 0 : r.evals().getLast().tokens(), r.tokensPerSecond(), r.trainSeconds()));
    }

    private static void writeAtomically(Path file, String text) throws IOException {
        AtomicFiles.write(file, out -> out.write(text.getBytes(StandardCharsets.UTF_8)));
    }
}
