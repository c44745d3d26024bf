package dev.muon4j.experiments;

import dev.muon4j.train.Trainer;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Instant;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * One optimizer's run of a comparison as its run directory records it, over every sitting that
 * trained it: the steps and validations of metrics.jsonl, and per step the training wall-clock up to
 * the end of that step.
 *
 * <p>The training wall-clock comes from the lines' {@code time} fields (when each line was written):
 * the time from the start of step 1 (its {@code time} less its {@code seconds}) to the end of the
 * step, less each validation (a validation line's {@code time} less that of the step line it follows:
 * nothing else happens between the two) and less each break between sittings (from the last line
 * before a resumed run's first new step to that step's start, its {@code time} less its
 * {@code seconds}). What stays in is the steps themselves and what happens between them: writing
 * metrics lines and checkpoints. The sittings are those {@code sittings.jsonl} records
 * ({@link #recordSitting}); a sitting killed before it could write its line is not known as one.
 *
 * @param dir         the run directory
 * @param steps       every step, in order (QK-clip left out; the expert loads of a Mixture-of-Experts model kept)
 * @param evals       every validation, in order
 * @param wallSeconds per step, the training wall-clock from the start of step 1 to its end; NaN where a
 *                    line has no {@code time} (metrics written before lines carried one)
 */
public record CompareRun(Path dir, List<Trainer.StepPoint> steps, List<Trainer.EvalPoint> evals, double[] wallSeconds) {
    /** The metrics file of a run directory. */
    public static final String METRICS = "metrics.jsonl";

    public CompareRun {
        if (steps.size() != wallSeconds.length) {
            throw new IllegalArgumentException(dir + ": " + steps.size() + " steps but " + wallSeconds.length + " wall-clock times");
        }
        steps = List.copyOf(steps);
        evals = List.copyOf(evals);
    }

    /** The last validation loss; NaN without one. */
    public double finalValidationLoss() {
        return evals.isEmpty() ? Double.NaN : evals.getLast().loss();
    }

    /** Training tokens of the last step. */
    public long tokens() {
        return steps.isEmpty() ? 0 : steps.getLast().tokens();
    }

    /** The steps' own time ({@code seconds}, no validation, no checkpoints), summed. */
    public double trainSeconds() {
        return steps.stream().mapToDouble(Trainer.StepPoint::seconds).sum();
    }

    /** Training tokens per second of the steps' own time. */
    public double tokensPerSecond() {
        return tokens() / trainSeconds();
    }

    /** The training wall-clock of the whole run (see the class comment). */
    public double totalWallSeconds() {
        return wallSeconds.length == 0 ? 0 : wallSeconds[wallSeconds.length - 1];
    }

    /**
     * The training wall-clock when the run had trained {@code tokens} tokens: linear between the ends of
     * the steps around it (and from 0 at the start of step 1); NaN for NaN tokens or tokens beyond the run.
     */
    public double wallSecondsAt(double tokens) {
        double prevTokens = 0;
        double prevWall = 0;
        for (int i = 0; i < steps.size(); i++) {
            double t = steps.get(i).tokens();
            if (tokens <= t) {
                return prevWall + (tokens - prevTokens) / (t - prevTokens) * (wallSeconds[i] - prevWall);
            }
            prevTokens = t;
            prevWall = wallSeconds[i];
        }
        return Double.NaN;
    }

    /**
     * Reads a run directory: its metrics.jsonl and, if there, its sittings.jsonl.
     *
     * @throws IOException naming the file and line of a line that cannot be read, or a run without steps
     */
    public static CompareRun read(Path dir) throws IOException {
        Path file = dir.resolve(METRICS);
        List<Map<String, Object>> lines = dev.muon4j.train.MetricsLog.readLines(file);
        List<Trainer.StepPoint> steps = new ArrayList<>();
        List<Trainer.EvalPoint> evals = new ArrayList<>();
        int number = 0;
        for (Map<String, Object> m : lines) {
            number++;
            if (m.containsKey("event")) {
                continue;
            }
            long step = number(m, "step", file, number).longValue();
            long tokens = number(m, "tokens", file, number).longValue();
            if (m.get("val_loss") instanceof Number v) {
                evals.add(new Trainer.EvalPoint(step, tokens, v.doubleValue()));
            } else {
                steps.add(new Trainer.StepPoint(step, tokens, number(m, "loss", file, number).doubleValue(),
                        number(m, "lr", file, number).doubleValue(), number(m, "grad_norm", file, number).doubleValue(),
                        number(m, "seconds", file, number).doubleValue(), null, expertLoads(m)));
            }
        }
        if (steps.isEmpty()) {
            throw new IOException(file + " holds no step: the run has not trained");
        }
        return new CompareRun(dir, steps, evals, trainingWallSeconds(lines, resumedAfter(dir), file));
    }

    /**
     * Per step line of {@code lines} (in order), the training wall-clock up to the end of that step (see the class
     * comment); {@code resumedAfter}: the steps after which a new sitting resumed the run.
     */
    static double[] trainingWallSeconds(List<Map<String, Object>> lines, Set<Long> resumedAfter, Path file) throws IOException {
        List<Double> wall = new ArrayList<>();
        double clock = 0;
        Instant previous = null;   // the time of the last line read
        long previousStep = 0;
        int number = 0;
        boolean known = true;      // every line so far had a time
        for (Map<String, Object> m : lines) {
            number++;
            if (m.containsKey("event")) {
                continue;
            }
            Instant time = m.get("time") instanceof String t ? parse(t, file, number) : null;
            known &= time != null;
            boolean step = !(m.get("val_loss") instanceof Number);
            if (step) {
                long s = number(m, "step", file, number).longValue();
                double seconds = number(m, "seconds", file, number).doubleValue();
                if (!known) {
                    clock = Double.NaN;
                } else if (previous == null || resumedAfter.contains(previousStep)) {
                    clock += seconds; // the first step of a sitting: from its own start, the break before it left out
                } else {
                    clock += java.time.Duration.between(previous, time).toNanos() / 1e9;
                }
                wall.add(clock);
                previousStep = s;
            }
            // A validation's own time (from the step line before it to its line) is never added.
            previous = time;
        }
        return wall.stream().mapToDouble(Double::doubleValue).toArray();
    }

    /** The steps from which a sitting of {@code dir} resumed the run (its sittings.jsonl's {@code from_step} above 0). */
    static Set<Long> resumedAfter(Path dir) throws IOException {
        Set<Long> steps = new HashSet<>();
        for (Map<String, Object> m : dev.muon4j.train.MetricsLog.readLines(dir.resolve(GridRunner.SITTINGS))) {
            if (m.get("from_step") instanceof Number s && s.longValue() > 0) {
                steps.add(s.longValue());
            }
        }
        return steps;
    }

    /**
     * Appends a sitting's line to {@code dir}'s sittings.jsonl, as {@link GridRunner} does for a grid's runs: when it
     * started, its seconds, the step it started from and the one it ended at.
     */
    public static void recordSitting(Path dir, Instant started, double seconds, long fromStep, long toStep) throws IOException {
        GridRunner.appendSitting(dir, started, seconds, fromStep, "finished", toStep);
    }

    /** Per MoE layer, the experts' shares and biases of a step line; null for a dense model's line. */
    @SuppressWarnings("unchecked")
    private static Trainer.ExpertLoadPoint expertLoads(Map<String, Object> m) {
        if (!(m.get("expert_share") instanceof List<?> shares) || !(m.get("router_bias") instanceof List<?> biases)) {
            return null;
        }
        return new Trainer.ExpertLoadPoint(matrix((List<List<Object>>) shares), matrix((List<List<Object>>) biases));
    }

    private static double[][] matrix(List<List<Object>> rows) {
        double[][] out = new double[rows.size()][];
        for (int r = 0; r < out.length; r++) {
            out[r] = rows.get(r).stream().mapToDouble(v -> ((Number) v).doubleValue()).toArray();
        }
        return out;
    }

    private static Number number(Map<String, Object> m, String field, Path file, int line) throws IOException {
        if (m.get(field) instanceof Number n) {
            return n;
        }
        throw new IOException(file + " line " + line + " has no number '" + field + "': " + m);
    }

    private static Instant parse(String time, Path file, int line) throws IOException {
        try {
            return Instant.parse(time);
        } catch (DateTimeParseException e) {
            throw new IOException(file + " line " + line + " has a time that is not ISO-8601: " + time, e);
        }
    }
}
