package dev.muon4j.cli;

import dev.muon4j.backend.Backend;
import dev.muon4j.data.Corpus;
import dev.muon4j.data.ShippedCorpus;
import dev.muon4j.data.TokenDataset;
import dev.muon4j.data.TokenizerKind;
import dev.muon4j.experiments.Analysis;
import dev.muon4j.experiments.Experiment;
import dev.muon4j.experiments.Experiments;
import dev.muon4j.experiments.GridRun;
import dev.muon4j.experiments.GridRunner;
import dev.muon4j.experiments.GridSize;
import dev.muon4j.experiments.ReportFiles;
import dev.muon4j.experiments.RunRecord;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.function.BooleanSupplier;
import java.util.stream.Collectors;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code muon4j experiment NAME}: trains an experiment's grid of runs (one run directory each under
 * {@code --out}/runs; finished runs are skipped and cut-off ones resume from their checkpoints, so a
 * grid may take several sittings) and writes its report, plots and data into {@code --out}.
 */
@Command(name = "experiment", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Reproduce one of Moonlight's findings on muon4j's own runs: train the experiment's grid (each run in a "
                + "run directory of its own under --out/runs; a rerun skips finished runs and resumes cut-off ones from their "
                + "checkpoints, so the grid may span several sittings), then write report.md, the plots (SVG, and PNG where "
                + "rsvg-convert is installed) and the data behind them (CSV) into --out.",
                "Experiments: scaling (the training FLOPs Muon needs to reach AdamW's loss; 48 runs, about an hour on 2 cores), "
                        + "scaling-moe (the same on Mixture-of-Experts models, FLOPs counted on active parameters; 48 runs, about 70 minutes), "
                        + "update-rms (the update RMS of every matrix shape under each scale; 3 runs, about 25 minutes), "
                        + "weight-decay (weights, layer outputs and loss over long training, with and without decay; 3 runs, about 55 "
                        + "minutes), svd-entropy (the SVD entropy of every group of weight matrices under Muon and AdamW, dense and "
                        + "Mixture-of-Experts; 4 runs, about an hour), finetune (pretrained with AdamW or Muon, fine-tuned with AdamW or Muon on another corpus; 6 runs, "
                        + "about 30 minutes). docs/EXPERIMENTS.md has each one's command and time."})
public final class ExperimentCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "NAME", description = "The experiment: ${COMPLETION-CANDIDATES}.",
            completionCandidates = Names.class)
    String name;

    @Option(names = "--quick", description = "Run the quick grid instead: tiny models, under 2 minutes, to check that it all runs "
            + "(its numbers mean nothing).")
    boolean quick;

    @Option(names = "--out", paramLabel = "DIR", description = "Report and run directories (default: runs/experiment-NAME, "
            + "runs/experiment-NAME-quick with --quick). Give the same directory again to carry on an unfinished grid.")
    Path out;

    @Option(names = "--analyze-only", description = "Train nothing: write the report from the run directories, which must all have "
            + "finished.")
    boolean analyzeOnly;

    @Mixin
    BackendOptions backendOptions;

    @Spec
    CommandSpec spec;

    /** The experiments' names, for the help. */
    static final class Names implements Iterable<String> {
        @Override
        public java.util.Iterator<String> iterator() {
            return Experiments.all().stream().map(Experiment::name).iterator();
        }
    }

    @Override
    public Integer call() throws Exception {
        Experiment<?> experiment = Experiments.byName(name);
        PrintWriter w = spec.commandLine().getOut();
        GridSize size = quick ? GridSize.QUICK : GridSize.DEFAULT;
        Path dir = out != null ? out : Path.of("runs", "experiment-" + experiment.name() + (quick ? "-quick" : ""));
        Map<ShippedCorpus, Corpus> corpora = new EnumMap<>(ShippedCorpus.class);
        Map<String, TokenDataset> datasets = new HashMap<>();
        GridRunner.DataSource data = (corpus, context) -> datasets.computeIfAbsent(corpus.id() + "/" + context,
                k -> TokenDataset.of(corpora.computeIfAbsent(corpus, Corpus::shipped), TokenizerKind.BYTE.create(),
                        TokenDataset.DEFAULT_VALIDATION_FRACTION, context));
        w.println("experiment " + experiment.name() + (quick ? " (quick grid)" : "") + ": " + experiment.title());
        w.println("output: " + dir);
        w.flush();
        if (!analyzeOnly) {
            JobControl job = JobControl.forProcess(spec.root().commandLine().getParseResult().originalArgs());
            GridRunner.Summary summary;
            try (Backend backend = backendOptions.open()) {
                w.println(backendOptions.describe(backend));
                w.flush();
                summary = train(experiment, size, backend, data, dir, w, job.stopRequested());
            } finally {
                job.close();
            }
            if (!summary.complete()) {
                w.println("stopped on request; carry on with: " + commandLine(false));
                w.flush();
                return JobControl.STOPPED_EXIT_CODE;
            }
        }
        Path report = analyze(experiment, size, dir, describeData(experiment, size, data), w);
        w.println("report: " + report);
        w.flush();
        return 0;
    }

    /**
     * Trains the grid, then each extension the experiment asks for once the runs before it have ended
     * ({@link Experiment#extend}), until it asks for none or a stop is requested.
     */
    private static <P> GridRunner.Summary train(Experiment<P> e, GridSize size, Backend backend,
                                                GridRunner.DataSource data, Path dir, PrintWriter w,
                                                BooleanSupplier stop) throws IOException {
        GridRunner runner = new GridRunner(backend, data, dir, w, stop, true);
        List<GridRun<P>> grid = new ArrayList<>(e.grid(size));
        int base = grid.size();
        while (true) {
            GridRunner.Summary summary = runner.train(grid);
            if (!summary.complete()) {
                return summary;
            }
            List<GridRun<P>> more = checkExtension(e, base, grid, e.extend(size, GridRunner.load(dir, grid)));
            if (more.isEmpty()) {
                return summary;
            }
            w.println("the grid goes on with " + more.size() + " run(s): "
                    + more.stream().map(GridRun::id).collect(Collectors.joining(", ")));
            w.flush();
            grid.addAll(more);
        }
    }

    /** The grid with every extension its ended runs call for; all of them must have ended. */
    private static <P> List<RunRecord<P>> loadExtended(Experiment<P> e, GridSize size, Path dir) throws IOException {
        List<GridRun<P>> grid = new ArrayList<>(e.grid(size));
        int base = grid.size();
        while (true) {
            List<RunRecord<P>> runs = GridRunner.load(dir, grid);
            List<GridRun<P>> more = checkExtension(e, base, grid, e.extend(size, runs));
            if (more.isEmpty()) {
                return runs;
            }
            grid.addAll(more);
        }
    }

    /** Most runs an experiment's extensions may add to its grid, in all: a bound on a grid that would grow for ever. */
    static final int MAX_EXTENSION_RUNS = 1000;

    /**
     * {@code more}, once it is known to add only new ids and to keep the extensions within {@link #MAX_EXTENSION_RUNS}:
     * an experiment that broke {@link Experiment#extend}'s contract would otherwise train the same runs or grow its grid
     * without end.
     */
    private static <P> List<GridRun<P>> checkExtension(Experiment<P> e, int base, List<GridRun<P>> grid, List<GridRun<P>> more) {
        java.util.Set<String> ids = grid.stream().map(GridRun::id).collect(Collectors.toSet());
        List<String> again = more.stream().map(GridRun::id).filter(ids::contains).toList();
        if (!again.isEmpty()) {
            throw new IllegalStateException("experiment " + e.name() + " extends its grid with runs it already has: " + String.join(", ", again));
        }
        if (grid.size() + more.size() - base > MAX_EXTENSION_RUNS) {
            throw new IllegalStateException("experiment " + e.name() + " extends its grid past " + MAX_EXTENSION_RUNS + " added runs");
        }
        return more;
    }

    private <P> Path analyze(Experiment<P> e, GridSize size, Path dir, String data, PrintWriter w) throws IOException {
        // Loading needs no backend: the runner only reads the run directories.
        List<RunRecord<P>> runs = loadExtended(e, size, dir);
        ReportFiles files = new ReportFiles(dir, ReportFiles.findRsvgConvert());
        e.analyze(new Analysis<>(size, runs, files, new Analysis.Context(commandLine(true), data)));
        w.println("wrote " + files.written().stream().collect(Collectors.joining(", ")) + " in " + dir);
        return dir.resolve("report.md");
    }

    /**
     * The data the report describes: each corpus of the grid tokenized for the context length of its first run, the
     * corpus named where the grid has several.
     */
    private static String describeData(Experiment<?> e, GridSize size, GridRunner.DataSource data) {
        Map<ShippedCorpus, Integer> contexts = new LinkedHashMap<>();
        for (GridRun<?> run : e.grid(size)) {
            contexts.putIfAbsent(run.corpus(), run.model().contextLength());
        }
        return contexts.entrySet().stream().map(c -> (contexts.size() > 1 ? c.getKey().id() + ": " : "")
                + data.dataset(c.getKey(), c.getValue()).describe()).collect(Collectors.joining("; "));
    }

    /** The command as typed (without --analyze-only when {@code forReport}: the report names the command that trains it). */
    private String commandLine(boolean forReport) {
        StringBuilder s = new StringBuilder("./muon4j");
        for (String arg : spec.commandLine().getParseResult().originalArgs()) {
            if (forReport && arg.equals("--analyze-only")) {
                continue;
            }
            s.append(' ').append(arg);
        }
        return s.toString();
    }
}
