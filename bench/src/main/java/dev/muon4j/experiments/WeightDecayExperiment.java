package dev.muon4j.experiments;

import dev.muon4j.nn.LlamaConfig;
import dev.muon4j.optim.ParamRole;
import dev.muon4j.optim.Parameter;
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

/**
 * Moonlight's weight decay finding (arXiv 2502.16982, §2.2 and Figure 2): without weight decay
 * Muon's weights and layer outputs keep growing over a long run (in bf16 they outgrow its precise
 * range), and Muon with decoupled weight decay ends best when a model is trained far past its
 * compute-optimal tokens; at first Muon without decay is ahead.
 *
 * <p>Three runs of one small dense model (3 layers, width 64), trained for 18 times Chinchilla's 20 tokens
 * per parameter (arXiv 2203.15556): AdamW with weight decay 0.1, Muon (Moonlight's) without weight decay,
 * Muon with weight decay 0.1, Moonlight's value. The RMS of every matrix's weights and of every block's
 * output is measured on every 1% of the steps ({@link MatrixStatsObserver}); validation every 2%.
 */
public final class WeightDecayExperiment implements Experiment<WeightDecayExperiment.Arm> {
    /** The weight decay of Moonlight's pretraining, "set to 0.1 for all stages" (arXiv 2502.16982, §3.3). */
    public static final double WEIGHT_DECAY = 0.1;

    /** The three runs. */
    public enum Arm {
        ADAMW("AdamW, weight decay 0.1", "adamw", "#d62728"),
        MUON_NO_DECAY("Muon, no weight decay", "muon-no-decay", "#ff7f0e"),
        MUON_DECAY("Muon, weight decay 0.1", "muon-decay", "#1f77b4");

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
        return "weight-decay";
    }

    @Override
    public String title() {
        return "Weight decay: Muon's weights and layer outputs grow without it, and Muon with it ends best over long training";
    }

    static LlamaConfig model(GridSize size) {
        return switch (size) {
            case DEFAULT -> ScalingExperiment.llama(3, 64, 2, 176, 64);
            case QUICK -> ScalingExperiment.llama(1, 16, 2, 32, 16);
        };
    }

    /**
     * The default runs: 60,000 steps of 16 × 64 tokens, 61.4M tokens for N = 166,912 matrix parameters
     * ({@link TrainingFlops#matmulParameters}), 368 tokens per parameter, 18 times Chinchilla's 20.
     */
    @Override
    public List<GridRun<Arm>> grid(GridSize size) {
        boolean quick = size == GridSize.QUICK;
        long steps = quick ? 150 : 60_000;
        int batch = quick ? 4 : 16;
        LlamaConfig model = model(size);
        List<GridRun<Arm>> runs = new ArrayList<>();
        for (Arm arm : Arm.values()) {
            OptimizerChoice o = arm == Arm.ADAMW ? OptimizerChoice.ADAMW : OptimizerChoice.MUON;
            double decay = arm == Arm.MUON_NO_DECAY ? 0 : WEIGHT_DECAY;
            TrainConfig c = new TrainConfig(o, 3e-3, 1.2e-2, decay, 0.9, 0.95, 0.95, ScheduleKind.COSINE, steps / 100, steps, 0.1, batch, 1,
                    1.0, 1, steps / 50, quick ? 2 : 32, quick ? steps / 3 : 2_000, 2);
            runs.add(new GridRun<>(arm.id, arm, model, c, new Measurements(steps / 100, false, true, true)));
        }
        return runs;
    }

    @Override
    public void analyze(Analysis<Arm> a) throws IOException {
        LlamaConfig model = (LlamaConfig) a.runs().getFirst().run().model();
        Map<String, Integer> hidden = new LinkedHashMap<>();
        for (Parameter p : model.create().parameters()) {
            if (p.role() == ParamRole.HIDDEN_MATRIX) {
                hidden.put(p.name(), p.size());
            }
        }
        ReportFiles files = a.files();
        SvgPlot weights = new SvgPlot("RMS of the hidden matrices' weights", "step", "weight RMS (all hidden matrices)").yFrom(0);
        SvgPlot outputs = new SvgPlot("RMS of the layers' outputs (the largest over the layers)", "step", "layer-output RMS").yFrom(0);
        SvgPlot losses = new SvgPlot("Validation loss (from 10% of the steps)", "step", "validation loss (nats/byte)");
        SvgPlot lateLosses = new SvgPlot("Validation loss over the second half of the steps", "step", "validation loss (nats/byte)");
        List<List<Object>> weightRows = new ArrayList<>();
        List<List<Object>> outputRows = new ArrayList<>();
        List<List<Object>> lossRows = new ArrayList<>();
        Map<Arm, Summary> summaries = new LinkedHashMap<>();
        for (RunRecord<Arm> r : a.runs()) {
            Arm arm = r.point();
            double[] steps = r.stepsOf("weight_rms");
            double[] w = hiddenRms(r.perMatrix("weight_rms"), hidden, steps.length);
            weights.add(new SvgPlot.Series(arm.label, arm.color, steps, w));
            for (int i = 0; i < steps.length; i++) {
                weightRows.add(List.of(arm.id, (long) steps[i], w[i]));
            }
            double[] outSteps = r.stepsOf("layer_output_rms");
            double[][] perLayer = r.perLayer("layer_output_rms");
            double[] largest = new double[perLayer.length];
            for (int i = 0; i < perLayer.length; i++) {
                largest[i] = java.util.Arrays.stream(perLayer[i]).filter(Double::isFinite).max().orElse(Double.NaN);
                List<Object> row = new ArrayList<>(List.of(arm.id, (long) outSteps[i]));
                for (double v : perLayer[i]) {
                    row.add(v);
                }
                outputRows.add(row);
            }
            outputs.add(new SvgPlot.Series(arm.label, arm.color, outSteps, largest));
            long from = r.run().train().steps() / 10;
            List<Trainer.EvalPoint> shown = r.evals().stream().filter(e -> e.step() >= from).toList();
            losses.add(new SvgPlot.Series(arm.label, arm.color, shown.stream().mapToDouble(Trainer.EvalPoint::step).toArray(),
                    shown.stream().mapToDouble(Trainer.EvalPoint::loss).toArray()));
            List<Trainer.EvalPoint> late = r.evals().stream().filter(e -> e.step() >= r.run().train().steps() / 2).toList();
            lateLosses.add(new SvgPlot.Series(arm.label, arm.color, late.stream().mapToDouble(Trainer.EvalPoint::step).toArray(),
                    late.stream().mapToDouble(Trainer.EvalPoint::loss).toArray()));
            for (Trainer.EvalPoint e : r.evals()) {
                lossRows.add(List.of(arm.id, e.step(), e.tokens(), e.loss()));
            }
            summaries.put(arm, new Summary(r, w.length == 0 ? Double.NaN : w[0], w.length == 0 ? Double.NaN : w[w.length - 1],
                    largest.length == 0 ? Double.NaN : largest[0], largest.length == 0 ? Double.NaN : largest[largest.length - 1]));
        }
        String weightPlot = files.plot("weight-rms", weights, "weight RMS of the hidden matrices over the steps");
        String outputPlot = files.plot("layer-output-rms", outputs, "largest layer-output RMS over the steps");
        String lossPlot = files.plot("validation-loss", losses, "validation loss over the steps")
                + "\n" + files.plot("validation-loss-end", lateLosses, "validation loss over the second half of the steps");
        files.csv("weight-rms", List.of("run", "step", "hidden_weight_rms"), weightRows);
        List<String> outputHeader = new ArrayList<>(List.of("run", "step"));
        for (int l = 0; l < model.layers(); l++) {
            outputHeader.add("layer_" + l);
        }
        files.csv("layer-output-rms", outputHeader, outputRows);
        files.csv("validation-loss", List.of("run", "step", "tokens", "validation_loss"), lossRows);
        files.text("report.md", report(a, model, summaries, weightPlot, outputPlot, lossPlot));
    }

    /** Per measured step, the RMS over all hidden matrices together: √(Σ size·rms² / Σ size). */
    static double[] hiddenRms(Map<String, double[]> perMatrix, Map<String, Integer> hidden, int steps) {
        double[] out = new double[steps];
        for (int i = 0; i < steps; i++) {
            double squares = 0;
            long count = 0;
            for (Map.Entry<String, Integer> h : hidden.entrySet()) {
                double[] v = perMatrix.get(h.getKey());
                if (v != null && Double.isFinite(v[i])) {
                    squares += h.getValue() * v[i] * v[i];
                    count += h.getValue();
                }
            }
            out[i] = count == 0 ? Double.NaN : Math.sqrt(squares / count);
        }
        return out;
    }

    /** A run's numbers for the report's table. */
    record Summary(RunRecord<Arm> run, double firstWeightRms, double lastWeightRms, double firstOutputRms, double lastOutputRms) {
    }

    private String report(Analysis<Arm> a, LlamaConfig model, Map<Arm, Summary> summaries, String weightPlot, String outputPlot,
                          String lossPlot) {
        StringBuilder s = new StringBuilder(a.header(title()));
        RunRecord<Arm> any = a.runs().getFirst();
        TrainConfig c = any.run().train();
        long tokens = c.steps() * c.sequencesPerStep() * model.contextLength();
        long n = TrainingFlops.matmulParameters(model);
        s.append(String.format(Locale.ROOT, "Model: %s. Each run: %,d steps, %,d tokens: %.3g tokens per matrix parameter (N = %,d), "
                + "%.3g times Chinchilla's compute-optimal 20.%n%n", model.describe(), c.steps(), tokens, (double) tokens / n, n,
                (double) tokens / n / 20));
        s.append("## Result\n\n| run | final validation loss | best validation loss (step) | hidden weight RMS: first → last | "
                + "largest layer-output RMS: first → last |\n|---|---|---|---|---|\n");
        Arm bestArm = null;
        for (Map.Entry<Arm, Summary> e : summaries.entrySet()) {
            Summary m = e.getValue();
            RunRecord<Arm> r = m.run();
            Trainer.EvalPoint best = r.evals().stream().min(java.util.Comparator.comparingDouble(Trainer.EvalPoint::loss)).orElse(null);
            s.append(String.format(Locale.ROOT, "| %s | %s | %s | %.4f → %.4f (×%.2f) | %.3f → %.3f (×%.2f) |%n", e.getKey().label,
                    r.result().diverged() ? "diverged" : String.format(Locale.ROOT, "%.4f", r.finalLoss()),
                    best == null ? "" : String.format(Locale.ROOT, "%.4f (%,d)", best.loss(), best.step()), m.firstWeightRms(),
                    m.lastWeightRms(), m.lastWeightRms() / m.firstWeightRms(), m.firstOutputRms(), m.lastOutputRms(),
                    m.lastOutputRms() / m.firstOutputRms()));
            if (Double.isFinite(r.finalLoss()) && (bestArm == null || r.finalLoss() < summaries.get(bestArm).run().finalLoss())) {
                bestArm = e.getKey();
            }
        }
        s.append('\n');
        if (bestArm != null) {
            s.append("Lowest final validation loss: **").append(bestArm.label).append("**");
            Summary decay = summaries.get(Arm.MUON_DECAY);
            Summary none = summaries.get(Arm.MUON_NO_DECAY);
            if (decay != null && none != null) {
                long lastAhead = lastStepAhead(none.run(), decay.run());
                s.append(lastAhead < 0 ? "; Muon without decay was never ahead of Muon with decay at a validation."
                        : lastAhead == c.steps() ? "; Muon without decay is still ahead of Muon with decay (lower validation loss) at the end."
                        : String.format(Locale.ROOT, "; Muon without decay was last ahead of Muon with decay (lower validation loss) at step %,d of %,d.",
                        lastAhead, c.steps()));
            }
            s.append(" Moonlight (Figure 2): Muon without weight decay leads at first, Muon with it ends lowest over long training, "
                    + "and without it the weights and layer outputs keep growing.\n\n");
        }
        s.append("### Weight RMS\n\n").append(weightPlot)
                .append("\nThe RMS over the entries of every hidden matrix (the attention and SwiGLU projections) together, after the step.\n\n");
        s.append("### Layer-output RMS\n\n").append(outputPlot)
                .append("\nPer measured step, the RMS of each block's output (the residual stream after the block) over the step's "
                        + "training batch; the plot shows the largest over the layers, `layer-output-rms.csv` every layer.\n\n");
        s.append("### Validation loss\n\n").append(lossPlot)
                .append("\nFrom 10% of the steps on, and the second half alone, so that the end of the runs is visible; "
                        + "`validation-loss.csv` holds every validation.\n\n");
        s.append("## How it is computed\n\n");
        s.append(String.format(Locale.ROOT, "- AdamW at %s on every parameter; Muon (Moonlight's: classic Nesterov momentum 0.95, scale "
                        + "0.2·√max(out, in)) at %s on the hidden matrices and AdamW at %s on the embedding, head and norms. Weight decay "
                        + "(decoupled, W ← W·(1 − η·λ)) 0.1, or 0 for every parameter of the run without it. Cosine schedule to 10%% "
                        + "after a 1%% warm-up, β2 0.95, gradient clipping 1.0, the same seed and data order for the three runs.%n",
                ScalingExperiment.number(c.learningRate()), ScalingExperiment.number(c.muonLearningRate()),
                ScalingExperiment.number(c.learningRate())));
        long trainBytes = a.runs().getFirst().result().tokens();
        s.append(String.format(Locale.ROOT, "- Repeated data: each run reads %,d training tokens from the data above (%s), so it sees "
                + "the training split many times over, where Moonlight's runs saw fresh tokens. A run whose best validation loss came "
                + "well before its end shows that in the table.%n", trainBytes, a.context().data()));
        return s.toString();
    }

    /** The last validation step at which {@code a} had a lower loss than {@code b}; -1 if none. */
    static long lastStepAhead(RunRecord<Arm> a, RunRecord<Arm> b) {
        Map<Long, Double> other = new LinkedHashMap<>();
        for (Trainer.EvalPoint e : b.evals()) {
            other.put(e.step(), e.loss());
        }
        long last = -1;
        for (Trainer.EvalPoint e : a.evals()) {
            Double v = other.get(e.step());
            if (v != null && e.loss() < v) {
                last = e.step();
            }
        }
        return last;
    }
}
