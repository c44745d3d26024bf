package dev.muon4j.experiments;

import dev.muon4j.io.JsonCodec;
import dev.muon4j.train.Trainer;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What an ended grid run left in its directory, as the analysis reads it: its result.json and the
 * lines of its metrics.jsonl.
 *
 * @param run    the grid's run
 * @param dir    its run directory
 * @param result its result.json
 * @param evals  its validations, in step order
 * @param steps  its step lines, in step order, each as metrics.jsonl holds it (measurements included)
 */
public record RunRecord<P>(GridRun<P> run, Path dir, RunResult result, List<Trainer.EvalPoint> evals, List<Map<String, Object>> steps) {
    /** The experiment's point of this run. */
    public P point() {
        return run.point();
    }

    /** The last validation loss; NaN for a diverged run. */
    public double finalLoss() {
        return result.finalValidationLoss() == null ? Double.NaN : result.finalValidationLoss();
    }

    /** The step lines that carry {@code field} (a measurement taken on some steps only). */
    public List<Map<String, Object>> stepsWith(String field) {
        return steps.stream().filter(s -> s.get(field) != null).toList();
    }

    /** The steps of {@link #stepsWith(String)}. */
    public double[] stepsOf(String field) {
        return stepsWith(field).stream().mapToDouble(s -> ((Number) s.get("step")).doubleValue()).toArray();
    }

    /**
     * A per-matrix measurement ({@code update_rms}, {@code weight_rms}) over the steps that carry it:
     * name → one value per such step (NaN where it was undefined), names in the order of the first line.
     */
    @SuppressWarnings("unchecked")
    public Map<String, double[]> perMatrix(String field) {
        List<Map<String, Object>> lines = stepsWith(field);
        Map<String, double[]> out = new LinkedHashMap<>();
        for (int i = 0; i < lines.size(); i++) {
            Map<String, Object> values = (Map<String, Object>) lines.get(i).get(field);
            for (Map.Entry<String, Object> e : values.entrySet()) {
                double[] series = out.computeIfAbsent(e.getKey(), k -> filledNaN(lines.size()));
                series[i] = e.getValue() instanceof Number n ? n.doubleValue() : Double.NaN;
            }
        }
        return out;
    }

    /** A per-layer measurement ({@code layer_output_rms}): [step][layer], NaN where undefined. */
    public double[][] perLayer(String field) {
        List<Map<String, Object>> lines = stepsWith(field);
        double[][] out = new double[lines.size()][];
        for (int i = 0; i < lines.size(); i++) {
            List<?> values = (List<?>) lines.get(i).get(field);
            out[i] = new double[values.size()];
            for (int l = 0; l < values.size(); l++) {
                out[i][l] = values.get(l) instanceof Number n ? n.doubleValue() : Double.NaN;
            }
        }
        return out;
    }

    private static double[] filledNaN(int n) {
        double[] v = new double[n];
        java.util.Arrays.fill(v, Double.NaN);
        return v;
    }

    /**
     * Reads a run directory's metrics.jsonl: validations and step lines (event lines are skipped).
     *
     * @throws IOException naming the file and line of a line that is not a JSON object with a step
     */
    static Metrics readMetrics(Path file) throws IOException {
        List<Trainer.EvalPoint> evals = new ArrayList<>();
        List<Map<String, Object>> steps = new ArrayList<>();
        int number = 0;
        for (Map<String, Object> m : dev.muon4j.train.MetricsLog.readLines(file)) {
            number++;
            if (!(m.get("step") instanceof Number step)) {
                throw new IOException(file + " line " + number + " has no step");
            }
            if (m.containsKey("event")) {
                continue;
            }
            if (m.get("val_loss") instanceof Number v) {
                evals.add(new Trainer.EvalPoint(step.longValue(), ((Number) m.get("tokens")).longValue(), v.doubleValue()));
            } else if (m.get("loss") instanceof Number) {
                steps.add(m);
            } else {
                throw new IOException(file + " line " + number + " is neither a step nor a validation: " + m);
            }
        }
        return new Metrics(evals, steps);
    }

    /** The two kinds of lines of a metrics.jsonl. */
    record Metrics(List<Trainer.EvalPoint> evals, List<Map<String, Object>> steps) {
    }
}
