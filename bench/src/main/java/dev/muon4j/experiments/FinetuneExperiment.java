package dev.muon4j.experiments;

import dev.muon4j.data.ShippedCorpus;
import dev.muon4j.nn.LlamaConfig;
import dev.muon4j.train.OptimizerChoice;
import dev.muon4j.train.ScheduleKind;
import dev.muon4j.train.TrainConfig;
import dev.muon4j.train.Trainer;
import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;

/**
 * Moonlight's fine-tuning finding (arXiv 2502.16982, §3.5.1 and Table 6): of the four pairings of the optimizer a
 * model was pretrained with and the one it is fine-tuned with, pretraining and fine-tuning both with Muon works best
 * (MMLU 55.7 against 55.3, 50.2 and 52.0 for AdamW-then-Muon, Muon-then-AdamW and AdamW-then-AdamW), while a
 * fine-tuning optimizer other than the pretraining one shows Muon no clear advantage.
 *
 * <p>Six runs of one dense model: pretrained with AdamW and with Muon on the Gutenberg books (the same initial weights,
 * data order, token budget and schedule, as {@code compare} trains its two), then each of the two fine-tuned with AdamW
 * and with Muon on the State of the Union addresses ({@link ShippedCorpus#SOTU}), starting from the pretrained run's
 * final weights with a fresh optimizer. The grid trains the pretraining runs first; the fine-tuning runs name theirs
 * in {@link GridRun#initFrom()}. The result is the 2 × 2 table of the fine-tuning runs' final validation loss.
 */
public final class FinetuneExperiment implements Experiment<FinetuneExperiment.Point> {
    /** AdamW's peak rate: its best for the tiny model in a sweep (docs/EXPERIMENTS.md, "Learning rates at the tiny preset"). */
    static final double PRETRAIN_LR = 3e-3;
    /** Muon's rate on the hidden matrices: 4 × AdamW's, {@code compare}'s and {@code train}'s default (same sweep). */
    static final double MUON_LR_FACTOR = 4;
    /**
     * Fine-tuning runs at a third of the pretraining peak rates, for both optimizers. Not from a source: fine-tuning
     * usually starts below the pretraining peak, and a third keeps it well above the 10% the pretraining schedule ended at.
     */
    static final double FINETUNE_LR_FACTOR = 1.0 / 3;

    /**
     * A run of the grid: a pretraining run ({@code finetune} null) or a fine-tuning run of the model pretrained with
     * {@code pretrain}.
     */
    public record Point(OptimizerChoice pretrain, OptimizerChoice finetune) {
        public Point {
            Objects.requireNonNull(pretrain, "pretraining optimizer");
        }

        /** Whether this is a pretraining run. */
        public boolean pretraining() {
            return finetune == null;
        }

        /** The run's directory name: {@code pretrain-muon}, {@code muon-then-adamw}. */
        String id() {
            return pretraining() ? "pretrain-" + key(pretrain) : key(pretrain) + "-then-" + key(finetune);
        }

        /** "pretrained with Muon, fine-tuned with AdamW". */
        String label() {
            return "pretrained with " + name(pretrain) + (pretraining() ? "" : ", fine-tuned with " + name(finetune));
        }
    }

    static String key(OptimizerChoice o) {
        return o.name().toLowerCase(Locale.ROOT);
    }

    static String name(OptimizerChoice o) {
        return o == OptimizerChoice.ADAMW ? "AdamW" : "Muon";
    }

    /** Red for AdamW, blue for Muon, as in the other experiments' plots: the pretraining optimizer's colour. */
    static String color(OptimizerChoice o) {
        return o == OptimizerChoice.ADAMW ? "#d62728" : "#1f77b4";
    }

    @Override
    public String name() {
        return "finetune";
    }

    @Override
    public String title() {
        return "Fine-tuning: a model pretrained with AdamW or with Muon, fine-tuned with AdamW or with Muon on another corpus";
    }

    /** The default grid's model is {@code compare --model llama}'s, the {@code tiny} preset (cli's ModelPreset.TINY). */
    static LlamaConfig model(GridSize size) {
        return switch (size) {
            case DEFAULT -> ScalingExperiment.llama(4, 192, 4, 512, 128);
            case QUICK -> ScalingExperiment.llama(1, 16, 2, 32, 16);
        };
    }

    /**
     * The default grid: pretraining 2,500 steps of 16 × 128 tokens (5.1M tokens, about one pass over the books' 5.08M
     * training bytes), fine-tuning 500 steps (1.0M tokens, 0.6 of a pass over the addresses' 1.74M); cosine schedules to
     * 10% after a 5% warm-up (the scaling grid's), validation every 5% of the steps.
     */
    @Override
    public List<GridRun<Point>> grid(GridSize size) {
        boolean quick = size == GridSize.QUICK;
        LlamaConfig model = model(size);
        long pretrainSteps = quick ? 60 : 2_500;
        long finetuneSteps = quick ? 30 : 500;
        int batch = quick ? 4 : 16;
        List<GridRun<Point>> runs = new ArrayList<>();
        for (OptimizerChoice pretrain : OptimizerChoice.values()) {
            Point p = new Point(pretrain, null);
            runs.add(new GridRun<>(p.id(), p, model, config(pretrain, PRETRAIN_LR, pretrainSteps, batch, quick), Measurements.none(),
                    ShippedCorpus.GUTENBERG, null));
        }
        for (OptimizerChoice pretrain : OptimizerChoice.values()) {
            for (OptimizerChoice finetune : OptimizerChoice.values()) {
                Point p = new Point(pretrain, finetune);
                runs.add(new GridRun<>(p.id(), p, model, config(finetune, PRETRAIN_LR * FINETUNE_LR_FACTOR, finetuneSteps, batch, quick),
                        Measurements.none(), ShippedCorpus.SOTU, new Point(pretrain, null).id()));
            }
        }
        return runs;
    }

    private static TrainConfig config(OptimizerChoice o, double lr, long steps, int batch, boolean quick) {
        return new TrainConfig(o, lr, MUON_LR_FACTOR * lr, WeightDecayExperiment.WEIGHT_DECAY, 0.9, 0.95, 0.95, ScheduleKind.COSINE, steps / 20, steps, 0.1,
                batch, 1, 1.0, 1, steps / 20, quick ? 2 : 8, quick ? steps / 3 : steps / 8, 2);
    }

    @Override
    public void analyze(Analysis<Point> a) throws IOException {
        ReportFiles files = a.files();
        SvgPlot finetune = new SvgPlot("Fine-tuning on the State of the Union addresses", "fine-tuning tokens",
                "validation loss (nats/byte)");
        SvgPlot pretrain = new SvgPlot("Pretraining on the Gutenberg books", "tokens", "validation loss (nats/byte)");
        List<List<Object>> finetuneRows = new ArrayList<>();
        List<List<Object>> pretrainRows = new ArrayList<>();
        Map<Point, RunRecord<Point>> byPoint = new LinkedHashMap<>();
        for (RunRecord<Point> r : a.runs()) {
            Point p = r.point();
            byPoint.put(p, r);
            double[] tokens = r.evals().stream().mapToDouble(Trainer.EvalPoint::tokens).toArray();
            double[] losses = r.evals().stream().mapToDouble(Trainer.EvalPoint::loss).toArray();
            if (p.pretraining()) {
                pretrain.add(new SvgPlot.Series(name(p.pretrain()), color(p.pretrain()), tokens, losses));
            } else {
                finetune.add(new SvgPlot.Series(name(p.pretrain()) + " → " + name(p.finetune()), color(p.pretrain()), tokens, losses,
                        p.finetune() == OptimizerChoice.MUON ? SvgPlot.Style.LINE : SvgPlot.Style.DASHED));
            }
            for (Trainer.EvalPoint e : r.evals()) {
                List<Object> row = new ArrayList<>(List.of(r.run().id(), key(p.pretrain())));
                if (!p.pretraining()) {
                    row.add(key(p.finetune()));
                }
                row.addAll(List.of(e.step(), e.tokens(), e.loss()));
                (p.pretraining() ? pretrainRows : finetuneRows).add(row);
            }
        }
        String finetunePlot = files.plot("finetune-loss", finetune, "fine-tuning validation loss against tokens, four runs");
        String pretrainPlot = files.plot("pretrain-loss", pretrain, "pretraining validation loss against tokens");
        files.csv("finetune-loss", List.of("run", "pretrain_optimizer", "finetune_optimizer", "step", "tokens", "validation_loss"),
                finetuneRows);
        files.csv("pretrain-loss", List.of("run", "pretrain_optimizer", "step", "tokens", "validation_loss"), pretrainRows);
        List<List<Object>> tableRows = new ArrayList<>();
        for (RunRecord<Point> r : a.runs()) {
            if (!r.point().pretraining()) {
                tableRows.add(List.of(key(r.point().pretrain()), key(r.point().finetune()), r.result().status(), r.finalLoss(),
                        bestLoss(r)));
            }
        }
        files.csv("finetune-table", List.of("pretrain_optimizer", "finetune_optimizer", "status", "final_validation_loss",
                "best_validation_loss"), tableRows);
        files.text("report.md", report(a, byPoint, finetunePlot, pretrainPlot));
    }

    /** "step", "40 steps". */
    private static String steps(long n) {
        return n == 1 ? "step" : String.format(Locale.ROOT, "%,d steps", n);
    }

    /** The lowest validation loss of a run; NaN for one without validations. */
    static double bestLoss(RunRecord<Point> r) {
        return r.evals().stream().mapToDouble(Trainer.EvalPoint::loss).min().orElse(Double.NaN);
    }

    /** The fine-tuning run of lowest final validation loss; null when every one diverged. */
    static Point best(Map<Point, RunRecord<Point>> runs) {
        Point best = null;
        for (RunRecord<Point> r : runs.values()) {
            if (!r.point().pretraining() && Double.isFinite(r.finalLoss()) && (best == null || r.finalLoss() < runs.get(best).finalLoss())) {
                best = r.point();
            }
        }
        return best;
    }

    private String report(Analysis<Point> a, Map<Point, RunRecord<Point>> runs, String finetunePlot, String pretrainPlot) {
        StringBuilder s = new StringBuilder(a.header(title()));
        LlamaConfig model = (LlamaConfig) a.runs().getFirst().run().model();
        TrainConfig pre = runs.get(new Point(OptimizerChoice.ADAMW, null)).run().train();
        TrainConfig fine = runs.get(new Point(OptimizerChoice.ADAMW, OptimizerChoice.ADAMW)).run().train();
        long tokensPerStep = (long) pre.sequencesPerStep() * model.contextLength();
        s.append(String.format(Locale.ROOT, "Model: %s. Pretraining: %,d steps, %,d tokens of the Gutenberg books. Fine-tuning: %,d steps, "
                        + "%,d tokens of the State of the Union addresses, from the pretrained run's final weights with a fresh optimizer.%n%n",
                model.describe(), pre.steps(), pre.steps() * tokensPerStep, fine.steps(), fine.steps() * (long) fine.sequencesPerStep()
                        * model.contextLength()));
        s.append("## Result\n\nFinal validation loss of fine-tuning, on the addresses' held-out end (nats per byte; lower is better):\n\n");
        s.append("| pretrained with ↓ / fine-tuned with → | AdamW | Muon |\n|---|---|---|\n");
        Point best = best(runs);
        for (OptimizerChoice p : OptimizerChoice.values()) {
            s.append("| ").append(name(p)).append(" |");
            for (OptimizerChoice f : OptimizerChoice.values()) {
                RunRecord<Point> r = runs.get(new Point(p, f));
                String cell = r.result().diverged() ? "diverged" : String.format(Locale.ROOT, "%.4f", r.finalLoss());
                s.append(' ').append(r.point().equals(best) ? "**" + cell + "**" : cell).append(" |");
            }
            s.append('\n');
        }
        s.append('\n');
        Point muonMuon = new Point(OptimizerChoice.MUON, OptimizerChoice.MUON);
        if (best != null) {
            s.append("Lowest: **").append(best.label()).append("**. ");
        }
        s.append("Moonlight (arXiv 2502.16982, §3.5.1 and Table 6: supervised fine-tuning of its 1.2T-token models pretrained with "
                + "AdamW and with Muon, measured on benchmarks): pretraining and fine-tuning both with Muon works best (MMLU 55.7 for "
                + "Muon then Muon; 55.3 AdamW then Muon, 50.2 Muon then AdamW, 52.0 AdamW then AdamW), and where the two "
                + "optimizers differ, fine-tuning with Muon shows no significant advantage over AdamW. ");
        if (best != null) {
            s.append(best.equals(muonMuon) ? "This grid agrees: Muon then Muon ends lowest.\n\n"
                    : "This grid does not: Muon then Muon is not the lowest here.\n\n");
        } else {
            s.append("Every fine-tuning run of this grid diverged.\n\n");
        }
        s.append("Pretraining, final validation loss on the books' held-out end: ");
        List<String> pretrained = new ArrayList<>();
        for (OptimizerChoice p : OptimizerChoice.values()) {
            RunRecord<Point> r = runs.get(new Point(p, null));
            pretrained.add(name(p) + " " + (r.result().diverged() ? "diverged" : String.format(Locale.ROOT, "%.4f", r.finalLoss())));
        }
        s.append(String.join(", ", pretrained)).append(".\n\n");
        s.append("### Fine-tuning\n\n").append(finetunePlot).append("\nValidation loss on the addresses against the fine-tuning tokens; "
                + "colour: the pretraining optimizer (red AdamW, blue Muon), line: the fine-tuning one (dashed AdamW, solid Muon). "
                + "`finetune-loss.csv` holds every validation, `finetune-table.csv` the table with each run's best validation loss.\n\n");
        s.append("### Pretraining\n\n").append(pretrainPlot).append("\n`pretrain-loss.csv` holds every validation.\n\n");
        s.append("## How it is computed\n\n");
        s.append(String.format(Locale.ROOT, "- Pretraining, both runs from the same initial weights (seed 1) and data order: AdamW at %s on "
                        + "every parameter; Muon (Moonlight's: classic Nesterov momentum 0.95, scale 0.2·√max(out, in)) at %s on the hidden "
                        + "matrices and AdamW at %s on the embedding, head and norms (`compare`'s rates).%n",
                ScalingExperiment.number(pre.learningRate()), ScalingExperiment.number(pre.muonLearningRate()),
                ScalingExperiment.number(pre.learningRate())));
        s.append(String.format(Locale.ROOT, "- Fine-tuning at a third of those rates (AdamW %s; Muon %s on the matrices, AdamW %s on the rest), "
                        + "all four runs on the same data order (seed 1), each from its pretrained run's final checkpoint with the "
                        + "optimizer state (moments, momentum) started anew.%n",
                ScalingExperiment.number(fine.learningRate()), ScalingExperiment.number(fine.muonLearningRate()),
                ScalingExperiment.number(fine.learningRate())));
        s.append(String.format(Locale.ROOT, "- Every run: cosine schedule to 10%% after a %d-step warm-up (5%%), weight decay %s (decoupled), "
                        + "β2 0.95, gradient clipping 1.0, batches of %d sequences of %d bytes; validation every %s (pretraining) "
                        + "and every %s (fine-tuning) on %d fixed batches of the held-out last 5%% of each corpus.%n",
                pre.warmupSteps(), ScalingExperiment.number(pre.weightDecay()), pre.sequencesPerStep(), model.contextLength(),
                steps(pre.evalEvery()), steps(fine.evalEvery()), pre.evalBatches()));
        s.append("- Moonlight fine-tuned instruction-following models and compared benchmark scores; here the fine-tuning is further "
                + "language-model training on a corpus of another kind (speeches against novels), and the measure is the loss on "
                + "that corpus's held-out part. One seed per run.\n");
        return s.toString();
    }
}
