package dev.muon4j.experiments;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * A line chart written as a standalone SVG document: axes with ticks, a grid, one polyline per
 * series and a legend. Enough for loss curves; no dependencies.
 *
 * <p>The legend stays on the canvas whatever the labels: a small one sits on a white box in the corner
 * of the plot that the curves cross least; one that would cover much of the plot (long labels, many
 * series) goes below the plot, each label wrapped to the canvas's width, and the canvas grows to hold
 * it. Text widths are estimated from the advance widths of DejaVu Sans, the widest of the common
 * sans-serif faces, so the estimate errs on the wide side.
 */
public final class SvgPlot {
    /** How a series is drawn. */
    public enum Style {
        /** A solid line through the points. */
        LINE,
        /** A dashed line through the points. */
        DASHED,
        /** A dot at each point, no line. */
        MARKERS
    }

    /** One named curve; x and y have the same length. */
    public record Series(String name, String color, double[] x, double[] y, Style style) {
        public Series {
            if (x.length != y.length) {
                throw new IllegalArgumentException("series " + name + ": " + x.length + " x values but " + y.length + " y values");
            }
            java.util.Objects.requireNonNull(style, "style");
        }

        /** A solid line. */
        public Series(String name, String color, double[] x, double[] y) {
            this(name, color, x, y, Style.LINE);
        }
    }

    private final String title;
    private final String xLabel;
    private final String yLabel;
    private final List<Series> series = new ArrayList<>();
    private final int width = 800;
    private final int height = 480;
    private final int left = 80;
    private final int right = 30;
    private final int top = 50;
    private final int bottom = 60;
    private double yFrom = Double.NaN;
    private boolean logX;

    /** Legend text size, line height, the swatch's width with its gap, and the padding around the legend. */
    private static final double LEGEND_FONT = 13;
    private static final int LEGEND_LINE = 17;
    private static final int SWATCH = 38;
    private static final int PAD = 8;

    public SvgPlot(String title, String xLabel, String yLabel) {
        this.title = title;
        this.xLabel = xLabel;
        this.yLabel = yLabel;
    }

    public SvgPlot add(Series s) {
        series.add(s);
        return this;
    }

    /** Starts the y axis at {@code y} (or lower, where a value is lower): e.g. 1 for a ratio whose best value is 1. */
    public SvgPlot yFrom(double y) {
        this.yFrom = y;
        return this;
    }

    /**
     * Puts the x axis on a logarithmic scale: ticks at powers of ten (and at 2 and 5 times them when the
     * axis spans two decades or less), labelled 10ⁿ. Points with x ≤ 0 are left out.
     */
    public SvgPlot logX() {
        this.logX = true;
        return this;
    }

    /** Where x lies on the axis: x itself, or log₁₀ x on a logarithmic axis (NaN for x ≤ 0). */
    private double axisX(double x) {
        return logX ? (x > 0 ? Math.log10(x) : Double.NaN) : x;
    }

    /**
     * Several plots on one canvas, {@code columns} to a row in the order given, under a title: one SVG document
     * holding each plot's own document (nested {@code <svg>} elements), each row as tall as its tallest plot.
     */
    public static String facets(String title, List<SvgPlot> plots, int columns) {
        if (plots.isEmpty() || columns < 1) {
            throw new IllegalArgumentException("facets of " + plots.size() + " plots in " + columns + " columns: need at least one of each");
        }
        int titleHeight = 44;
        int cols = Math.min(columns, plots.size());
        int plotWidth = plots.getFirst().width;
        int canvasWidth = cols * plotWidth;
        StringBuilder body = new StringBuilder();
        int y = titleHeight;
        for (int first = 0; first < plots.size(); first += cols) {
            int rowHeight = 0;
            for (int i = first; i < Math.min(first + cols, plots.size()); i++) {
                Document d = plots.get(i).document();
                rowHeight = Math.max(rowHeight, d.height());
                // The plot's own document, placed by x and y on the canvas.
                body.append(d.svg().replaceFirst("^<svg ", f("<svg x=\"%d\" y=\"%d\" ", (i - first) * plotWidth, y)));
            }
            y += rowHeight;
        }
        return f("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">%n",
                canvasWidth, y, canvasWidth, y)
                + f("<rect width=\"%d\" height=\"%d\" fill=\"white\"/>%n", canvasWidth, y)
                + f("<text x=\"%d\" y=\"30\" font-size=\"22\" font-weight=\"bold\" text-anchor=\"middle\">%s</text>%n", canvasWidth / 2,
                escape(title))
                + body + "</svg>\n";
    }

    /** The SVG document. */
    public String render() {
        return document().svg();
    }

    /** An SVG document and its canvas's height in pixels. */
    private record Document(String svg, int height) {
    }

    private Document document() {
        double xMin = Double.POSITIVE_INFINITY;
        double xMax = Double.NEGATIVE_INFINITY;
        double yMin = Double.POSITIVE_INFINITY;
        double yMax = Double.NEGATIVE_INFINITY;
        for (Series s : series) {
            for (int i = 0; i < s.x().length; i++) {
                double x = axisX(s.x()[i]);
                if (Double.isFinite(x) && Double.isFinite(s.y()[i])) {
                    xMin = Math.min(xMin, x);
                    xMax = Math.max(xMax, x);
                    yMin = Math.min(yMin, s.y()[i]);
                    yMax = Math.max(yMax, s.y()[i]);
                }
            }
        }
        if (Double.isFinite(yFrom)) {
            yMin = Math.min(yMin, yFrom);
            yMax = Math.max(yMax, yFrom);
        }
        if (!(xMin < xMax)) {
            xMax = xMin + 1;
        }
        if (!(yMin < yMax)) {
            yMax = yMin + 1;
        }
        double[] xTicks = logX ? logTicks(xMin, xMax) : ticks(xMin, xMax, 6);
        double[] yTicks = ticks(yMin, yMax, 6);
        if (Double.isFinite(yFrom)) {
            // The axis starts exactly at yFrom, which gets a tick of its own.
            double step = yTicks.length > 1 ? yTicks[1] - yTicks[0] : 1;
            double first = yMin;
            yTicks = java.util.stream.DoubleStream.concat(java.util.stream.DoubleStream.of(first),
                    java.util.Arrays.stream(yTicks).filter(t -> t > first + 0.25 * step)).toArray();
        }
        xMin = Math.min(xMin, xTicks[0]);
        xMax = Math.max(xMax, xTicks[xTicks.length - 1]);
        yMin = Math.min(yMin, yTicks[0]);
        yMax = Math.max(yMax, yTicks[yTicks.length - 1]);
        double plotW = width - left - right;
        double plotH = height - top - bottom;
        // A legend taking at most half the plot's width and height goes inside it; a larger one below it.
        double widest = series.stream().mapToDouble(ser -> textWidth(ser.name(), LEGEND_FONT)).max().orElse(0);
        int boxWidth = (int) Math.ceil(2 * PAD + SWATCH + widest);
        int boxHeight = LEGEND_LINE * series.size() + PAD;
        boolean inside = boxWidth <= plotW / 2 && boxHeight <= plotH / 2;
        Below below = inside ? null : below();
        int canvasHeight = inside ? height : height + below.height();
        StringBuilder svg = new StringBuilder();
        svg.append(f("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">%n",
                width, canvasHeight, width, canvasHeight));
        svg.append(f("<rect width=\"%d\" height=\"%d\" fill=\"white\"/>%n", width, canvasHeight));
        svg.append(f("<text x=\"%d\" y=\"28\" font-size=\"18\" text-anchor=\"middle\">%s</text>%n", width / 2, escape(title)));
        for (double t : xTicks) {
            double px = left + (t - xMin) / (xMax - xMin) * plotW;
            svg.append(f("<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#e0e0e0\"/>%n", px, top, px, height - bottom));
            svg.append(f("<text x=\"%.1f\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">%s</text>%n", px, height - bottom + 18,
                    logX ? powerLabel(t) : label(t, xTicks)));
        }
        for (double t : yTicks) {
            double py = top + (1 - (t - yMin) / (yMax - yMin)) * plotH;
            svg.append(f("<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e0e0e0\"/>%n", left, py, width - right, py));
            svg.append(f("<text x=\"%d\" y=\"%.1f\" font-size=\"12\" text-anchor=\"end\">%s</text>%n", left - 8, py + 4,
                    label(t, yTicks)));
        }
        svg.append(f("<rect x=\"%d\" y=\"%d\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"black\"/>%n", left, top, plotW, plotH));
        svg.append(f("<text x=\"%.1f\" y=\"%d\" font-size=\"14\" text-anchor=\"middle\">%s</text>%n", left + plotW / 2, height - 15, escape(xLabel)));
        svg.append(f("<text x=\"20\" y=\"%.1f\" font-size=\"14\" text-anchor=\"middle\" transform=\"rotate(-90 20 %.1f)\">%s</text>%n",
                top + plotH / 2, top + plotH / 2, escape(yLabel)));
        for (Series s : series) {
            StringBuilder points = new StringBuilder();
            for (int i = 0; i < s.x().length; i++) {
                double x = axisX(s.x()[i]);
                if (!Double.isFinite(x) || !Double.isFinite(s.y()[i])) {
                    continue;
                }
                double px = left + (x - xMin) / (xMax - xMin) * plotW;
                double py = top + (1 - (s.y()[i] - yMin) / (yMax - yMin)) * plotH;
                if (s.style() == Style.MARKERS) {
                    svg.append(f("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\" fill-opacity=\"0.8\"/>%n", px, py, s.color()));
                } else {
                    points.append(f("%.1f,%.1f ", px, py));
                }
            }
            if (s.style() != Style.MARKERS) {
                svg.append(f("<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"%s\"/>%n", s.color(),
                        s.style() == Style.DASHED ? " stroke-dasharray=\"7 4\"" : "", points.toString().strip()));
            }
        }
        if (inside) {
            legendInside(svg, boxWidth, boxHeight, xMin, xMax, yMin, yMax);
        } else {
            legendBelow(svg, below);
        }
        svg.append("</svg>\n");
        return new Document(svg.toString(), canvasHeight);
    }

    /** The legend on a white box over the curves, in the corner of the plot that the curves cross least. */
    private void legendInside(StringBuilder svg, int boxWidth, int boxHeight, double xMin, double xMax, double yMin, double yMax) {
        double plotW = width - left - right;
        double plotH = height - top - bottom;
        int[][] corners = {{width - right - PAD - boxWidth, top + PAD}, {width - right - PAD - boxWidth, height - bottom - PAD - boxHeight},
                {left + PAD, top + PAD}, {left + PAD, height - bottom - PAD - boxHeight}};
        int boxX = corners[0][0];
        int boxY = corners[0][1];
        long fewest = Long.MAX_VALUE;
        for (int[] c : corners) {
            long crossing = 0;
            for (Series s : series) {
                for (int i = 1; i < s.x().length; i++) {
                    for (int k = 0; k < 20; k++) {
                        double t = k / 20.0;
                        double xv = axisX(s.x()[i - 1]) + t * (axisX(s.x()[i]) - axisX(s.x()[i - 1]));
                        double yv = s.y()[i - 1] + t * (s.y()[i] - s.y()[i - 1]);
                        double px = left + (xv - xMin) / (xMax - xMin) * plotW;
                        double py = top + (1 - (yv - yMin) / (yMax - yMin)) * plotH;
                        if (px >= c[0] && px <= c[0] + boxWidth && py >= c[1] && py <= c[1] + boxHeight) {
                            crossing++;
                        }
                    }
                }
            }
            if (crossing < fewest) {
                fewest = crossing;
                boxX = c[0];
                boxY = c[1];
            }
        }
        svg.append(f("<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"white\" fill-opacity=\"0.85\" stroke=\"#c0c0c0\"/>%n",
                boxX, boxY, boxWidth, boxHeight));
        int y = boxY + PAD + LEGEND_LINE / 2;
        for (Series s : series) {
            entry(svg, s, List.of(s.name()), boxX + PAD, y);
            y += LEGEND_LINE;
        }
    }

    /**
     * The layout of a legend below the plot: the lines of each label, wrapped to the canvas's width, in
     * as many columns of {@code columnWidth} as fit side by side; {@code height} is what it adds to the canvas.
     */
    private record Below(List<List<String>> lines, int columns, double columnWidth, int height) {
    }

    private Below below() {
        double area = width - left - right - 2 * PAD;
        List<List<String>> lines = new ArrayList<>();
        double widest = 0;
        for (Series s : series) {
            List<String> wrapped = wrap(s.name(), area - SWATCH, LEGEND_FONT);
            lines.add(wrapped);
            for (String line : wrapped) {
                widest = Math.max(widest, textWidth(line, LEGEND_FONT));
            }
        }
        double columnWidth = SWATCH + widest + 2 * PAD;
        int columns = Math.max(1, (int) ((area + 2 * PAD) / columnWidth));
        int height = 2 * PAD;
        for (int row = 0; row < lines.size(); row += columns) {
            height += rowLines(lines, row, columns) * LEGEND_LINE + PAD / 2;
        }
        return new Below(lines, columns, columnWidth, height);
    }

    /** The most lines of a label in the row of entries that starts at {@code first}. */
    private static int rowLines(List<List<String>> lines, int first, int columns) {
        return lines.subList(first, Math.min(lines.size(), first + columns)).stream().mapToInt(List::size).max().orElse(1);
    }

    /** The legend under the x axis's label, entries row by row in the columns of {@code below}. */
    private void legendBelow(StringBuilder svg, Below below) {
        int y = height + PAD + LEGEND_LINE / 2;
        for (int row = 0; row < series.size(); row += below.columns()) {
            for (int i = row; i < Math.min(series.size(), row + below.columns()); i++) {
                entry(svg, series.get(i), below.lines().get(i), left + PAD + (int) ((i - row) * below.columnWidth()), y);
            }
            y += rowLines(below.lines(), row, below.columns()) * LEGEND_LINE + PAD / 2;
        }
    }

    /** A legend entry: the series' swatch at the height of its first line, then its label's lines, from x. */
    private static void entry(StringBuilder svg, Series s, List<String> lines, int x, int y) {
        if (s.style() == Style.MARKERS) {
            svg.append(f("<circle cx=\"%d\" cy=\"%d\" r=\"4\" fill=\"%s\"/>%n", x + (SWATCH - 8) / 2, y, s.color()));
        } else {
            svg.append(f("<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"3\"%s/>%n",
                    x, y, x + SWATCH - 8, y, s.color(), s.style() == Style.DASHED ? " stroke-dasharray=\"7 4\"" : ""));
        }
        for (int k = 0; k < lines.size(); k++) {
            svg.append(f("<text x=\"%d\" y=\"%d\" font-size=\"%.0f\">%s</text>%n", x + SWATCH, y + 4 + k * LEGEND_LINE, LEGEND_FONT,
                    escape(lines.get(k))));
        }
    }

    /**
     * The width of {@code text} at {@code fontSize} pixels, from DejaVu Sans's advance widths rounded up
     * into five classes of characters; any other face draws it narrower or about as wide.
     */
    static double textWidth(String text, double fontSize) {
        double em = 0;
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (" .,:;'|!()[]{}/fijlrtI".indexOf(c) >= 0) {
                em += 0.42;
            } else if ("mwMW@%".indexOf(c) >= 0) {
                em += 1.0;
            } else if (c >= 'a' && c <= 'z') {
                em += 0.64;
            } else if (c < 0x80) {
                em += 0.8;
            } else {
                em += 1.0;
            }
        }
        return em * fontSize;
    }

    /**
     * {@code text} broken into lines no wider than {@code room} pixels: at spaces where it can, inside a
     * word only where that word alone is too wide.
     */
    static List<String> wrap(String text, double room, double fontSize) {
        List<String> lines = new ArrayList<>();
        StringBuilder line = new StringBuilder();
        for (String word : text.strip().split("\\s+")) {
            String joined = line.isEmpty() ? word : line + " " + word;
            if (textWidth(joined, fontSize) <= room) {
                line.setLength(0);
                line.append(joined);
                continue;
            }
            if (!line.isEmpty()) {
                lines.add(line.toString());
                line.setLength(0);
            }
            String rest = word;
            while (textWidth(rest, fontSize) > room) {
                int fit = 1;
                while (fit < rest.length() && textWidth(rest.substring(0, fit + 1), fontSize) <= room) {
                    fit++;
                }
                lines.add(rest.substring(0, fit));
                rest = rest.substring(fit);
            }
            line.append(rest);
        }
        if (!line.isEmpty() || lines.isEmpty()) {
            lines.add(line.toString());
        }
        return lines;
    }

    /** "Nice" tick values covering [min, max]: steps of 1, 2 or 5 times a power of ten. */
    static double[] ticks(double min, double max, int target) {
        double raw = (max - min) / Math.max(1, target);
        double magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
        double step = magnitude;
        for (double m : new double[] {1, 2, 5, 10}) {
            if (m * magnitude >= raw) {
                step = m * magnitude;
                break;
            }
        }
        double start = Math.floor(min / step) * step;
        double end = Math.ceil(max / step) * step;
        int n = (int) Math.round((end - start) / step) + 1;
        double[] t = new double[n];
        for (int i = 0; i < n; i++) {
            t[i] = start + i * step;
        }
        return t;
    }

    /**
     * Ticks of a logarithmic axis over [min, max] (in log₁₀ units): every power of ten in range (every
     * second or fifth one over a wide range), and 2 and 5 times each when the range spans two
     * decades or less; always at least two ticks.
     */
    static double[] logTicks(double min, double max) {
        int first = (int) Math.floor(min);
        int last = (int) Math.ceil(max);
        List<Double> t = new ArrayList<>();
        if (last - first <= 2) {
            for (int k = first; k <= last; k++) {
                for (double m : new double[] {1, 2, 5}) {
                    double v = k + Math.log10(m);
                    if (v >= min - 1e-9 && v <= max + 1e-9) {
                        t.add(v);
                    }
                }
            }
            if (t.size() < 2) {
                t.clear();
                t.add((double) first);
                t.add((double) last);
            }
        } else {
            int every = last - first > 12 ? 5 : last - first > 6 ? 2 : 1;
            for (int k = first; k <= last; k++) {
                if (k % every == 0 || k == first || k == last) {
                    t.add((double) k);
                }
            }
        }
        return t.stream().mapToDouble(Double::doubleValue).toArray();
    }

    /** "10¹²", "2×10¹¹" for a tick at log₁₀ value v. */
    static String powerLabel(double v) {
        int k = (int) Math.floor(v + 1e-9);
        long m = Math.round(Math.pow(10, v - k));
        StringBuilder exponent = new StringBuilder(k < 0 ? "⁻" : "");
        for (char c : Integer.toString(Math.abs(k)).toCharArray()) {
            exponent.append("⁰¹²³⁴⁵⁶⁷⁸⁹".charAt(c - '0'));
        }
        return (m == 1 ? "" : m + "×") + "10" + exponent;
    }

    /** A tick label with as many decimals as the tick spacing needs (so 2.00, 2.20, 2.40 line up). */
    private static String label(double v, double[] ticks) {
        double step = ticks.length > 1 ? ticks[1] - ticks[0] : 1;
        double a = Math.abs(v);
        if (a >= 1e6 && step >= 1e5) {
            return f("%.1fM", v / 1e6);
        }
        if (a >= 1e3 && step >= 1e3) {
            return f("%.0fk", v / 1e3);
        }
        int decimals = step >= 1 ? 0 : (int) Math.ceil(-Math.log10(step) - 1e-9);
        return String.format(Locale.ROOT, "%." + decimals + "f", v);
    }

    private static String escape(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&quot;");
    }

    private static String f(String format, Object... args) {
        return String.format(Locale.ROOT, format, args);
    }
}
