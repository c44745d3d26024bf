package dev.muon4j.experiments;

import dev.muon4j.io.AtomicFiles;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * The files of an experiment's report, each written atomically into the output directory: Markdown,
 * SVG plots with a PNG copy of each where {@code rsvg-convert} (librsvg) is there to draw it, and the
 * data behind each plot as CSV.
 */
public final class ReportFiles {
    private final Path out;
    private final Optional<Path> rsvgConvert;
    private final List<String> written = new ArrayList<>();
    private String pngProblem;

    /**
     * @param out         the output directory
     * @param rsvgConvert the {@code rsvg-convert} program, or empty to write no PNGs
     */
    public ReportFiles(Path out, Optional<Path> rsvgConvert) {
        this.out = out;
        this.rsvgConvert = rsvgConvert;
        this.pngProblem = rsvgConvert.isEmpty() ? "rsvg-convert (librsvg; Debian and Ubuntu: librsvg2-bin) is not on the PATH" : null;
    }

    /** {@code rsvg-convert} on the PATH, if it is there. */
    public static Optional<Path> findRsvgConvert() {
        String path = System.getenv("PATH");
        if (path == null) {
            return Optional.empty();
        }
        for (String dir : path.split(File.pathSeparator)) {
            if (dir.isEmpty()) {
                continue;
            }
            Path p = Path.of(dir, "rsvg-convert");
            if (Files.isRegularFile(p) && Files.isExecutable(p)) {
                return Optional.of(p);
            }
        }
        return Optional.empty();
    }

    public Path out() {
        return out;
    }

    /** The names of the files written so far, in order. */
    public List<String> written() {
        return List.copyOf(written);
    }

    /** Writes a text file (UTF-8). */
    public void text(String name, String content) throws IOException {
        Files.createDirectories(out);
        AtomicFiles.write(out.resolve(name), o -> o.write(content.getBytes(StandardCharsets.UTF_8)));
        written.add(name);
    }

    /**
     * Writes {@code name}.svg and, where rsvg-convert draws it, {@code name}.png; returns the Markdown that shows
     * the SVG with a link to the PNG when there is one.
     */
    public String plot(String name, SvgPlot plot, String alt) throws IOException {
        return svg(name, plot.render(), alt);
    }

    /**
     * Writes several plots as one faceted figure ({@link SvgPlot#facets}) to {@code name}.svg and, where rsvg-convert
     * draws it, {@code name}.png; returns the Markdown as {@link #plot} does.
     */
    public String facets(String name, String title, List<SvgPlot> plots, int columns, String alt) throws IOException {
        return svg(name, SvgPlot.facets(title, plots, columns), alt);
    }

    private String svg(String name, String document, String alt) throws IOException {
        text(name + ".svg", document);
        boolean png = png(name);
        return "![" + alt + "](" + name + ".svg)" + (png ? "\n(PNG: [" + name + ".png](" + name + ".png))" : "") + "\n";
    }

    /**
     * Writes {@code name}.csv: a header line and one line per row; integers as they are, other numbers to 7
     * significant digits, NaN as an empty field, text quoted where it holds a comma or a quote.
     */
    public void csv(String name, List<String> header, List<List<Object>> rows) throws IOException {
        StringBuilder s = new StringBuilder();
        line(s, new ArrayList<>(header));
        for (List<Object> row : rows) {
            if (row.size() != header.size()) {
                throw new IllegalArgumentException(name + ".csv: a row of " + row.size() + " values under " + header.size() + " columns");
            }
            line(s, row);
        }
        text(name + ".csv", s.toString());
    }

    private static void line(StringBuilder s, List<?> values) {
        for (int i = 0; i < values.size(); i++) {
            if (i > 0) {
                s.append(',');
            }
            Object v = values.get(i);
            if (v == null || v instanceof Double d && !Double.isFinite(d)) {
                continue;
            }
            String text = v instanceof Double d ? Double.toString(Double.parseDouble(String.format(Locale.ROOT, "%.7g", d))) : v.toString();
            if (text.contains(",") || text.contains("\"") || text.contains("\n")) {
                text = "\"" + text.replace("\"", "\"\"") + "\"";
            }
            s.append(text);
        }
        s.append('\n');
    }

    /** A sentence for the report: where the PNG copies are, or why there are none. */
    public String pngNote() {
        return pngProblem == null ? "Each plot is an SVG file with a PNG copy beside it (drawn by rsvg-convert)."
                : "The plots are SVG files only: " + pngProblem + ", so no PNG copies were drawn.";
    }

    private boolean png(String name) throws IOException {
        if (pngProblem != null) {
            return false;
        }
        Path svg = out.resolve(name + ".svg");
        Path tmp = out.resolve(".tmp-" + name + ".png");
        Process p = new ProcessBuilder(rsvgConvert.orElseThrow().toString(), "-o", tmp.toString(), svg.toString())
                .redirectErrorStream(true).start();
        String output;
        boolean done;
        try {
            done = p.waitFor(60, TimeUnit.SECONDS);
            if (!done) {
                p.destroyForcibly();
            }
            output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            p.destroyForcibly();
            throw new IOException("interrupted while rsvg-convert drew " + svg, e);
        }
        if (!done || p.exitValue() != 0 || !Files.isRegularFile(tmp)) {
            Files.deleteIfExists(tmp);
            pngProblem = String.format(Locale.ROOT, "rsvg-convert failed on %s (%s)", svg.getFileName(),
                    done ? "exit code " + p.exitValue() + (output.isEmpty() ? "" : ": " + output) : "no answer in 60 s");
            return false;
        }
        Files.move(tmp, out.resolve(name + ".png"), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        written.add(name + ".png");
        return true;
    }
}
