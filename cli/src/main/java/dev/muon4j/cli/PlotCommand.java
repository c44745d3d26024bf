package dev.muon4j.cli;

import dev.muon4j.experiments.SvgPlot;
import dev.muon4j.io.AtomicFiles;
import dev.muon4j.io.JsonCodec;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code muon4j plot}: any runs' metrics as one picture. Reads each run directory's
 * {@code metrics.jsonl} (what {@code train} and {@code compare} write) and draws one metric of every
 * run against steps, tokens or wall-clock time into an SVG file, one line per run.
 */
@Command(name = "plot", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Draw a metric of one or more runs (their run directories' metrics.jsonl) against steps, tokens or time "
                + "into an SVG file, one line per run.")
public final class PlotCommand implements Callable<Integer> {
    /** Line colours, in order (the compare report's AdamW and Muon first). */
    static final String[] COLORS = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};

    @Parameters(paramLabel = "RUN_DIR", arity = "1..*", description = "Run directories (each with a metrics.jsonl), or metrics.jsonl files.")
    List<Path> runs;

    @Option(names = "--metric", defaultValue = "val_loss", paramLabel = "NAME",
            description = "The metric to draw: a field of metrics.jsonl's lines, e.g. loss, val_loss, lr, muon_lr, grad_norm, seconds, "
                    + "max_logit (default: ${DEFAULT-VALUE}).")
    String metric;

    @Option(names = "--x", defaultValue = "step", paramLabel = "AXIS",
            description = "What the x axis counts: step, tokens, or time (minutes since the run's first line) (default: ${DEFAULT-VALUE}).")
    String xAxis;

    @Option(names = "--out", paramLabel = "FILE", description = "The SVG file to write (default: <metric>.svg in the current directory).")
    Path out;

    @Option(names = "--title", paramLabel = "TEXT", description = "The plot's title (default: the metric's name).")
    String title;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws IOException {
        if (!List.of("step", "tokens", "time").contains(xAxis)) {
            throw new IllegalArgumentException("--x must be step, tokens or time, got '" + xAxis + "'");
        }
        if (metric.isBlank()) {
            throw new IllegalArgumentException("--metric must name a field of metrics.jsonl, got an empty name");
        }
        SvgPlot plot = new SvgPlot(title != null ? title : metric, xLabel(), metric);
        Map<String, Integer> labels = new LinkedHashMap<>();
        List<String> leftOut = new ArrayList<>();
        int drawn = 0;
        for (int i = 0; i < runs.size(); i++) {
            Path file = Files.isDirectory(runs.get(i)) ? runs.get(i).resolve("metrics.jsonl") : runs.get(i);
            if (!Files.isRegularFile(file)) {
                throw new IllegalArgumentException(runs.get(i) + " has no metrics.jsonl (is it a run directory?)");
            }
            double[][] xy = series(file);
            String label = label(runs.get(i), labels);
            if (xy[0].length == 0) {
                leftOut.add(String.format(Locale.ROOT, "plot: %s has no '%s' in its lines; left out", file, metric));
                continue;
            }
            plot.add(new SvgPlot.Series(label, COLORS[i % COLORS.length], xy[0], xy[1]));
            drawn++;
            spec.commandLine().getOut().printf(Locale.ROOT, "%s: %d points, last %s = %.6g%n", label, xy[0].length, metric,
                    xy[1][xy[1].length - 1]);
        }
        if (drawn == 0) {
            throw new IllegalArgumentException("no run has a '" + metric + "' to draw; metrics.jsonl's fields are e.g. loss, val_loss, lr, "
                    + "grad_norm, seconds");
        }
        leftOut.forEach(spec.commandLine().getErr()::println);
        Path target = out != null ? out : Path.of(metric.replaceAll("[^A-Za-z0-9_.-]", "_") + ".svg");
        byte[] svg = plot.render().getBytes(StandardCharsets.UTF_8);
        AtomicFiles.write(target, stream -> stream.write(svg));
        spec.commandLine().getOut().println("plot: " + target);
        spec.commandLine().getOut().flush();
        return 0;
    }

    private String xLabel() {
        return switch (xAxis) {
            case "tokens" -> "tokens";
            case "time" -> "minutes";
            default -> "step";
        };
    }

    /** The run's name in the legend: its directory's name, made unique with its parent's where two are alike. */
    private static String label(Path run, Map<String, Integer> seen) {
        Path dir = run.getFileName() != null && run.getFileName().toString().equals("metrics.jsonl") ? run.toAbsolutePath().getParent() : run;
        Path abs = dir.toAbsolutePath().normalize();
        String name = abs.getFileName() == null ? abs.toString() : abs.getFileName().toString();
        if (seen.containsKey(name) && abs.getParent() != null && abs.getParent().getFileName() != null) {
            name = abs.getParent().getFileName() + "/" + name;
        }
        seen.merge(name, 1, Integer::sum);
        return name;
    }

    /** The (x, y) points of the metric in a metrics.jsonl, in file order; lines without it are skipped. */
    double[][] series(Path file) throws IOException {
        List<double[]> points = new ArrayList<>();
        Instant first = null;
        int number = 0;
        List<Map<String, Object>> lines;
        try {
            lines = dev.muon4j.train.MetricsLog.readLines(file);
        } catch (IOException e) {
            throw new IllegalArgumentException(e.getMessage(), e);
        }
        for (Map<String, Object> m : lines) {
            number++;
            Instant when = m.get("time") instanceof String t ? Instant.parse(t) : null;
            if (first == null && when != null) {
                first = when;
            }
            if (!(m.get(metric) instanceof Number y)) {
                continue;
            }
            double x = switch (xAxis) {
                case "tokens" -> m.get("tokens") instanceof Number n ? n.doubleValue() : Double.NaN;
                case "time" -> when == null ? Double.NaN : (when.toEpochMilli() - first.toEpochMilli()) / 60000.0;
                default -> m.get("step") instanceof Number n ? n.doubleValue() : Double.NaN;
            };
            if (Double.isNaN(x)) {
                throw new IllegalArgumentException(file + " line " + number + " has no " + ("time".equals(xAxis)
                        ? "time (runs written before metrics carried one cannot be drawn against time)" : xAxis));
            }
            points.add(new double[] {x, y.doubleValue()});
        }
        double[][] xy = new double[2][points.size()];
        for (int i = 0; i < points.size(); i++) {
            xy[0][i] = points.get(i)[0];
            xy[1][i] = points.get(i)[1];
        }
        return xy;
    }
}
