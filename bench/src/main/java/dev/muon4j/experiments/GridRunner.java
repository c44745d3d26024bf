package dev.muon4j.experiments;

import dev.muon4j.backend.Backend;
import dev.muon4j.data.ShippedCorpus;
import dev.muon4j.data.TokenDataset;
import dev.muon4j.io.AtomicFiles;
import dev.muon4j.io.JsonCodec;
import dev.muon4j.train.ChangedSettingsException;
import dev.muon4j.train.InitialWeights;
import dev.muon4j.train.OptimizerChoice;
import dev.muon4j.train.Progress;
import dev.muon4j.train.RunOptions;
import dev.muon4j.train.TrainConfig;
import dev.muon4j.train.Trainer;
import dev.muon4j.train.TrainingHealthException;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.function.BooleanSupplier;
import java.util.function.IntFunction;

/**
 * Trains an experiment's grid, one run directory per run under {@code <out>/runs/<id>/}, with the
 * ordinary {@link Trainer} and its checkpoints:
 *
 * <ul>
 * <li>a run whose {@code result.json} ({@link RunResult}) is there has ended and is skipped, once its
 * settings are checked to be the grid's (a grid that changed under an old directory is refused, naming
 * the difference);</li>
 * <li>any other run continues from its latest checkpoint if it has one (a sitting that was cut off
 * loses at most the steps since), else starts;</li>
 * <li>a run the trainer stops as broken (a NaN, a collapse: a learning rate too high for the model)
 * ends as {@code diverged}, and the grid goes on;</li>
 * <li>a stop request (Ctrl-C) finishes the step in progress, saves its checkpoint and ends the sitting;
 * the same command later carries on;</li>
 * <li>a run that starts from another run's weights ({@link GridRun#initFrom()}, fine-tuning) comes after that run in
 * the grid, and starts from its final checkpoint with a fresh optimizer once it has ended; if that run diverged, the
 * run is recorded as diverged without training.</li>
 * </ul>
 *
 * result.json is written atomically after the trainer returns, so a run counts as ended only when
 * every step is done and validated; each sitting that trained a run appends a line to its
 * {@code sittings.jsonl} (start, seconds, steps), from which the run's wall time is summed.
 */
public final class GridRunner {
    /** The directory under {@code --out} that holds the run directories. */
    public static final String RUNS = "runs";
    /** A run's end marker and summary. */
    public static final String RESULT = "result.json";
    /** One line per sitting that trained the run. */
    public static final String SITTINGS = "sittings.jsonl";

    private final Backend backend;
    private final String machine = Machine.describe();
    private final DataSource data;
    private final Path out;
    private final PrintWriter log;
    private final BooleanSupplier stopRequested;
    private final boolean progress;

    /** The tokenized corpora the runs train on. */
    @FunctionalInterface
    public interface DataSource {
        /** The shipped corpus {@code corpus} tokenized for context length {@code contextLength} (called once per run; cache it). */
        TokenDataset dataset(ShippedCorpus corpus, int contextLength);
    }

    /**
     * A runner for grids on the default corpus alone ({@link ShippedCorpus#GUTENBERG}); a run on another is refused.
     *
     * @param data the tokenized default corpus for a context length (called once per run; cache it)
     */
    public GridRunner(Backend backend, IntFunction<TokenDataset> data, Path out, PrintWriter log, BooleanSupplier stopRequested,
                      boolean progress) {
        this(backend, (corpus, context) -> {
            if (corpus != ShippedCorpus.GUTENBERG) {
                throw new IllegalArgumentException("this grid runner was given the default corpus only, not " + corpus.id());
            }
            return data.apply(context);
        }, out, log, stopRequested, progress);
        Objects.requireNonNull(data, "data");
    }

    /**
     * @param data          the tokenized corpora
     * @param out           the experiment's output directory
     * @param log           where the progress lines go
     * @param stopRequested polled after every step: true ends the sitting after that step, with a checkpoint
     * @param progress      whether each run shows the trainer's progress line on standard error
     */
    public GridRunner(Backend backend, DataSource data, Path out, PrintWriter log, BooleanSupplier stopRequested,
                      boolean progress) {
        this.backend = Objects.requireNonNull(backend, "backend");
        this.data = Objects.requireNonNull(data, "data");
        this.out = Objects.requireNonNull(out, "output directory");
        this.log = Objects.requireNonNull(log, "log");
        this.stopRequested = Objects.requireNonNull(stopRequested, "stopRequested");
        this.progress = progress;
    }

    /**
     * What a sitting did.
     *
     * @param runs     runs in the grid
     * @param skipped  runs that had ended before this sitting
     * @param trained  runs this sitting trained to their end (diverged ones included)
     * @param diverged of those, the ones the trainer stopped as broken
     * @param stopped  whether the sitting ended on a stop request before the grid was done
     * @param seconds  the sitting's wall time
     */
    public record Summary(int runs, int skipped, int trained, int diverged, boolean stopped, double seconds) {
        /** Whether every run of the grid has ended. */
        public boolean complete() {
            return skipped + trained == runs;
        }
    }

    /** The run directory of run {@code id} under {@code out}. */
    public static Path runDir(Path out, String id) {
        return out.resolve(RUNS).resolve(id);
    }

    /**
     * Trains every run of {@code grid} that has not ended, in order.
     *
     * @throws IllegalArgumentException when two runs share an id
     * @throws IllegalStateException    when a run directory holds a result or a checkpoint of other settings than the grid's
     * @throws IOException              when a file cannot be read or written (naming it)
     */
    public <P> Summary train(List<GridRun<P>> grid) throws IOException {
        checkIds(grid);
        long t0 = System.nanoTime();
        int n = grid.size();
        int skipped = 0;
        List<Integer> toTrain = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            if (ended(out, grid.get(i)).isPresent()) {
                skipped++;
            } else {
                toTrain.add(i);
            }
        }
        log.printf(Locale.ROOT, "grid: %d runs in %s; %d ended earlier (skipped), %d to train%n", n, out.resolve(RUNS), skipped,
                toTrain.size());
        log.flush();
        int trained = 0;
        int diverged = 0;
        boolean stopped = false;
        for (int i : toTrain) {
            if (stopRequested.getAsBoolean()) {
                stopped = true;
                break;
            }
            GridRun<P> run = grid.get(i);
            String label = String.format(Locale.ROOT, "[%d/%d] %s", i + 1, n, run.id());
            Outcome o = trainOne(grid, run, label);
            if (o == Outcome.STOPPED) {
                stopped = true;
                break;
            }
            trained++;
            if (o == Outcome.DIVERGED) {
                diverged++;
            }
        }
        Summary s = new Summary(n, skipped, trained, diverged, stopped, (System.nanoTime() - t0) / 1e9);
        log.printf(Locale.ROOT, "grid: %d of %d runs ended (%d trained in this sitting, %d of them diverged); %s%n", skipped + trained, n,
                trained, diverged, s.complete() ? "complete" : "stopped on request: run the same command again to carry on");
        log.flush();
        return s;
    }

    private enum Outcome { FINISHED, DIVERGED, STOPPED }

    private <P> Outcome trainOne(List<GridRun<P>> grid, GridRun<P> run, String label) throws IOException {
        Path dir = runDir(out, run.id());
        TrainConfig c = run.train();
        log.printf(Locale.ROOT, "%s: %s%n", label, describe(run));
        log.flush();
        InitialWeights initial = null;
        if (run.initFrom() != null) {
            GridRun<P> source = grid.stream().filter(r -> r.id().equals(run.initFrom())).findFirst().orElseThrow();
            RunResult ended = ended(out, source).orElseThrow(() -> new IllegalStateException("grid run " + run.id()
                    + " starts from the final weights of run " + source.id() + ", which has not ended in " + out.resolve(RUNS)));
            if (ended.diverged()) {
                String why = "its initial weights' run " + source.id() + " diverged";
                finishUntrained(run, why);
                log.printf(Locale.ROOT, "%s: not trained: %s; recorded as diverged, the grid goes on%n", label, why);
                log.flush();
                return Outcome.DIVERGED;
            }
            initial = InitialWeights.read(runDir(out, source.id()), msg -> {
                log.println(label + ": " + msg);
                log.flush();
            });
            if (initial.step() == null || initial.step() != source.train().steps()) {
                throw new IllegalStateException("grid run " + run.id() + " starts from the final weights of run " + source.id()
                        + ", but its latest checkpoint that loads, " + initial.describe() + ", is of step " + initial.step()
                        + ", not its last step " + source.train().steps() + "; remove " + runDir(out, source.id())
                        + " to train that run anew");
            }
        }
        TokenDataset tokens = data.dataset(run.corpus(), run.model().contextLength());
        Trainer trainer = new Trainer(backend, run.model(), c, tokens, dir, msg -> {
            log.println(label + ": " + msg);
            log.flush();
        }, progress ? Progress.onStandardError(label, c.steps()) : null);
        if (initial != null) {
            trainer.initializeFrom(initial);
        }
        Instant started = Instant.now();
        long t0 = System.nanoTime();
        RunOptions options = RunOptions.fresh().withStart(RunOptions.Start.RESUME_OR_FRESH).withStopRequested(stopRequested)
                .withObserver(run.measurements().observer());
        Trainer.Result r;
        try {
            r = trainer.run(options);
        } catch (TrainingHealthException e) {
            appendSitting(dir, started, (System.nanoTime() - t0) / 1e9, -1, "diverged");
            RunResult result = finish(run, RunResult.DIVERGED, e.getMessage());
            log.printf(Locale.ROOT, "%s: diverged after %d steps (%s); recorded, the grid goes on%n", label, result.steps(), e.getMessage());
            log.flush();
            return Outcome.DIVERGED;
        } catch (ChangedSettingsException e) {
            throw new IllegalStateException("run directory " + dir + " holds a checkpoint of other settings than the grid's ("
                    + e.getMessage() + "); the grid changed since that run began: remove the directory to train the run anew, "
                    + "or give another --out", e);
        }
        double seconds = (System.nanoTime() - t0) / 1e9;
        long last = r.steps().isEmpty() ? r.startStep() : r.steps().getLast().step();
        appendSitting(dir, started, seconds, r.startStep(), r.stoppedOnRequest() ? "stopped" : "finished", last);
        if (r.stoppedOnRequest()) {
            log.printf(Locale.ROOT, "%s: stopped after step %d of %d; its checkpoint is kept%n", label, last, c.steps());
            log.flush();
            return Outcome.STOPPED;
        }
        RunResult result = finish(run, RunResult.FINISHED, null);
        log.printf(Locale.ROOT, "%s: ended, validation loss %.4f, %,.0f tokens/s, %s%n", label, result.finalValidationLoss(),
                result.tokensPerSecond(), Progress.duration(seconds));
        log.flush();
        return Outcome.FINISHED;
    }

    /** "AdamW lr 0.004, 680 steps of 16 x 64 tokens, 1,234,567 parameters". */
    private static String describe(GridRun<?> run) {
        TrainConfig c = run.train();
        String optimizer = c.optimizer() == OptimizerChoice.ADAMW
                ? String.format(Locale.ROOT, "AdamW lr %.3g", c.learningRate())
                : String.format(Locale.ROOT, "Muon (%s) lr %.3g, AdamW part lr %.3g", c.muonVariant().name().toLowerCase(Locale.ROOT),
                c.muonLearningRate(), c.learningRate());
        return String.format(Locale.ROOT, "%s, weight decay %.3g, %,d steps of %d x %d tokens, %,d parameters%s%s", optimizer,
                c.weightDecay(), c.steps(), c.sequencesPerStep(), run.model().contextLength(), run.model().parameterCount(),
                run.corpus() == ShippedCorpus.GUTENBERG ? "" : ", corpus " + run.corpus().id(),
                run.initFrom() == null ? "" : ", from the final weights of " + run.initFrom());
    }

    /**
     * The result of a run that has ended, after checking that it ended with the grid's settings; empty when it has not.
     *
     * @throws IllegalStateException when its result.json records other settings
     * @throws IOException           naming the file when result.json cannot be read or is damaged
     */
    static <P> Optional<RunResult> ended(Path out, GridRun<P> run) throws IOException {
        Path file = runDir(out, run.id()).resolve(RESULT);
        if (!Files.exists(file)) {
            return Optional.empty();
        }
        RunResult r = JsonCodec.read(file, RunResult.class);
        Map<String, Object> wanted = JsonCodec.toObject(run.settings());
        Optional<String> difference = difference("", r.settings(), wanted);
        if (!r.id().equals(run.id()) || difference.isPresent()) {
            throw new IllegalStateException(file + " records a run of other settings than the grid's ("
                    + difference.orElse("id " + r.id() + " instead of " + run.id()) + "); the grid changed since that run ended: "
                    + "remove its directory to train it anew, or give another --out");
        }
        return Optional.of(r);
    }

    /**
     * The ended runs of {@code grid} under {@code out} with their metrics, in grid order, for the analysis.
     *
     * @throws IllegalStateException naming the runs that have not ended
     */
    public static <P> List<RunRecord<P>> load(Path out, List<GridRun<P>> grid) throws IOException {
        checkIds(grid);
        List<RunRecord<P>> records = new ArrayList<>();
        List<String> missing = new ArrayList<>();
        for (GridRun<P> run : grid) {
            Optional<RunResult> r = ended(out, run);
            if (r.isEmpty()) {
                missing.add(run.id());
                continue;
            }
            Path dir = runDir(out, run.id());
            RunRecord.Metrics m = RunRecord.readMetrics(dir.resolve("metrics.jsonl"));
            records.add(new RunRecord<>(run, dir, r.get(), m.evals(), m.steps()));
        }
        if (!missing.isEmpty()) {
            throw new IllegalStateException(missing.size() + " of the grid's " + grid.size() + " runs have not ended in " + out.resolve(RUNS)
                    + " (" + String.join(", ", missing.subList(0, Math.min(8, missing.size()))) + (missing.size() > 8 ? ", …" : "")
                    + "); train them first");
        }
        return records;
    }

    /** Writes the result.json of a run recorded as diverged without a step trained. */
    private void finishUntrained(GridRun<?> run, String failure) throws IOException {
        Path dir = runDir(out, run.id());
        Files.createDirectories(dir);
        RunResult r = new RunResult(RunResult.FORMAT, run.id(), RunResult.DIVERGED, failure, JsonCodec.toObject(run.settings()), 0, 0,
                null, 0, 0, Instant.now().toString(), machine, backend.description());
        AtomicFiles.write(dir.resolve(RESULT), o -> o.write(JsonCodec.prettyFile(r)));
    }

    /** Writes result.json from the run's metrics.jsonl and sittings.jsonl. */
    private RunResult finish(GridRun<?> run, String status, String failure) throws IOException {
        Path dir = runDir(out, run.id());
        Path metricsFile = dir.resolve("metrics.jsonl");
        RunRecord.Metrics m = RunRecord.readMetrics(metricsFile);
        long steps = m.steps().isEmpty() ? 0 : ((Number) m.steps().getLast().get("step")).longValue();
        long tokens = m.steps().isEmpty() ? 0 : ((Number) m.steps().getLast().get("tokens")).longValue();
        double trainSeconds = 0;
        for (Map<String, Object> s : m.steps()) {
            trainSeconds += ((Number) s.get("seconds")).doubleValue();
        }
        Double finalLoss = null;
        if (RunResult.FINISHED.equals(status)) {
            long want = run.train().steps();
            if (steps != want || m.evals().isEmpty() || m.evals().getLast().step() != want) {
                throw new IllegalStateException(metricsFile + " ends at step " + steps + " with its last validation at step "
                        + (m.evals().isEmpty() ? "none" : m.evals().getLast().step()) + ", but the run has " + want
                        + " steps; the run did not end as it should");
            }
            finalLoss = m.evals().getLast().loss();
        }
        double wall = 0;
        Path sittings = dir.resolve(SITTINGS);
        if (Files.exists(sittings)) {
            for (String line : Files.readAllLines(sittings, StandardCharsets.UTF_8)) {
                if (!line.isBlank() && JsonCodec.parseObject(line).get("seconds") instanceof Number s) {
                    wall += s.doubleValue();
                }
            }
        }
        RunResult r = new RunResult(RunResult.FORMAT, run.id(), status, failure, JsonCodec.toObject(run.settings()), steps, tokens,
                finalLoss, trainSeconds, wall, Instant.now().toString(), machine, backend.description());
        AtomicFiles.write(dir.resolve(RESULT), o -> o.write(JsonCodec.prettyFile(r)));
        return r;
    }

    private static void appendSitting(Path dir, Instant started, double seconds, long fromStep, String outcome) throws IOException {
        appendSitting(dir, started, seconds, fromStep, outcome, -1);
    }

    private static void appendSitting(Path dir, Instant started, double seconds, long fromStep, String outcome, long toStep)
            throws IOException {
        Files.createDirectories(dir);
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("started", started.toString());
        line.put("seconds", Math.round(seconds * 1000) / 1000.0);
        if (fromStep >= 0) {
            line.put("from_step", fromStep);
        }
        if (toStep >= 0) {
            line.put("to_step", toStep);
        }
        line.put("outcome", outcome);
        try (BufferedWriter w = Files.newBufferedWriter(dir.resolve(SITTINGS), StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                StandardOpenOption.APPEND)) {
            w.write(JsonCodec.write(line));
            w.newLine();
        }
    }

    /** Ids unique, and every run another starts from an earlier run of the grid. */
    private static void checkIds(List<? extends GridRun<?>> grid) {
        Set<String> ids = new HashSet<>();
        for (GridRun<?> r : grid) {
            if (r.initFrom() != null && !ids.contains(r.initFrom())) {
                throw new IllegalArgumentException("grid run " + r.id() + " starts from the weights of run " + r.initFrom()
                        + ", which is not an earlier run of the grid");
            }
            if (!ids.add(r.id())) {
                throw new IllegalArgumentException("the grid has two runs with id " + r.id());
            }
        }
    }

    /**
     * The first place where two JSON values differ ("train.learning_rate: 0.004 here, 0.008 in the grid"), numbers
     * compared by value; empty when they are equal.
     */
    static Optional<String> difference(String path, Object recorded, Object wanted) {
        if (recorded instanceof Number a && wanted instanceof Number b) {
            return a.doubleValue() == b.doubleValue() ? Optional.empty()
                    : Optional.of(path + ": " + a + " recorded, " + b + " in the grid");
        }
        if (recorded instanceof Map<?, ?> a && wanted instanceof Map<?, ?> b) {
            Set<Object> keys = new java.util.LinkedHashSet<>(b.keySet());
            keys.addAll(a.keySet());
            for (Object k : keys) {
                String p = path.isEmpty() ? k.toString() : path + "." + k;
                if (!a.containsKey(k) || !b.containsKey(k)) {
                    return Optional.of(p + (a.containsKey(k) ? " recorded but not in the grid" : " in the grid but not recorded"));
                }
                Optional<String> d = difference(p, a.get(k), b.get(k));
                if (d.isPresent()) {
                    return d;
                }
            }
            return Optional.empty();
        }
        if (recorded instanceof List<?> a && wanted instanceof List<?> b) {
            if (a.size() != b.size()) {
                return Optional.of(path + ": " + a.size() + " elements recorded, " + b.size() + " in the grid");
            }
            for (int i = 0; i < a.size(); i++) {
                Optional<String> d = difference(path + "[" + i + "]", a.get(i), b.get(i));
                if (d.isPresent()) {
                    return d;
                }
            }
            return Optional.empty();
        }
        return Objects.equals(recorded, wanted) ? Optional.empty()
                : Optional.of(path + ": " + recorded + " recorded, " + wanted + " in the grid");
    }
}
