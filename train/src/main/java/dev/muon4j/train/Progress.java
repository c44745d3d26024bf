package dev.muon4j.train;

import java.io.PrintStream;
import java.util.Locale;

/**
 * A progress line for training: step, a bar, loss, tokens per second and time left. On a terminal
 * it redraws one line in place; otherwise (logs, CI) it prints a full line at most every
 * {@code quietSeconds} seconds and at the end.
 *
 * <p>A line is at most {@link #width} columns, 79 unless {@code COLUMNS} says the terminal is
 * narrower: a line that reaches a terminal's last column wraps, and a line redrawn with {@code \r}
 * then lands on a new row every time. What does not fit goes, least useful first: the bar shrinks
 * (to nothing), then the expert load, the validation loss, the tokens per second.
 */
public final class Progress {
    private final PrintStream out;
    private final boolean interactive;
    private final String label;
    private final long totalSteps;
    private final double quietSeconds;
    private final int width;
    private long lastPrint = Long.MIN_VALUE;
    private int lastLength;

    /** Widest line: one column less than an 80-column terminal. */
    public static final int DEFAULT_WIDTH = 79;
    /** The bar's width when there is room. */
    static final int BAR = 20;
    /** A bar narrower than this is left out. */
    static final int MIN_BAR = 5;

    public Progress(PrintStream out, boolean interactive, String label, long totalSteps, double quietSeconds) {
        this(out, interactive, label, totalSteps, quietSeconds, widthFrom(System.getenv("COLUMNS")));
    }

    /** As the other constructor, with lines of at most {@code width} columns (at least 20). */
    public Progress(PrintStream out, boolean interactive, String label, long totalSteps, double quietSeconds, int width) {
        if (width < 20) {
            throw new IllegalArgumentException("a progress line needs at least 20 columns, got " + width);
        }
        this.out = out;
        this.interactive = interactive;
        this.label = label;
        this.totalSteps = totalSteps;
        this.quietSeconds = quietSeconds;
        this.width = width;
    }

    /** {@link #DEFAULT_WIDTH}, or one less than {@code columns} (the shell's {@code COLUMNS}) when that is narrower. */
    static int widthFrom(String columns) {
        if (columns != null) {
            try {
                int c = Integer.parseInt(columns.strip());
                if (c > 20) {
                    return Math.min(DEFAULT_WIDTH, c - 1);
                }
            } catch (NumberFormatException e) {
                // not a number: keep the default
            }
        }
        return DEFAULT_WIDTH;
    }

    /** The widest line this progress prints. */
    public int width() {
        return width;
    }

    /** Progress on standard error; redraws in place when a console is attached. */
    public static Progress onStandardError(String label, long totalSteps) {
        return new Progress(System.err, System.console() != null && System.console().isTerminal(), label, totalSteps, 15);
    }

    /** Reports step {@code step} (1-based, of totalSteps) with the latest loss and rates. */
    public void update(long step, double loss, double tokensPerSecond, double secondsLeft, Double validationLoss) {
        update(step, loss, tokensPerSecond, secondsLeft, validationLoss, null);
    }

    /**
     * As {@link #update(long, double, double, double, Double)}, with a Mixture-of-Experts model's
     * worst expert load over the mean load ({@code null} for a dense model).
     */
    public void update(long step, double loss, double tokensPerSecond, double secondsLeft, Double validationLoss, Double expertLoad) {
        long now = System.nanoTime();
        boolean last = step >= totalSteps;
        if (!interactive && !last && lastPrint != Long.MIN_VALUE && (now - lastPrint) / 1e9 < quietSeconds) {
            return;
        }
        lastPrint = now;
        String line = line(step, loss, tokensPerSecond, secondsLeft, validationLoss, expertLoad);
        if (interactive) {
            String padded = line + " ".repeat(Math.max(0, lastLength - line.length()));
            out.print("\r" + padded);
            lastLength = line.length();
            if (last) {
                out.println();
            }
        } else {
            out.println(line);
        }
        out.flush();
    }

    /** Ends an interactive line early (before printing something else). */
    public void breakLine() {
        if (interactive && lastLength > 0) {
            out.println();
            lastLength = 0;
        }
    }

    String line(long step, double loss, double tokensPerSecond, double secondsLeft, Double validationLoss) {
        return line(step, loss, tokensPerSecond, secondsLeft, validationLoss, null);
    }

    String line(long step, double loss, double tokensPerSecond, double secondsLeft, Double validationLoss, Double expertLoad) {
        String head = String.format(Locale.ROOT, "%s %d/%d", label, step, totalSteps);
        String percent = String.format(Locale.ROOT, "%3.0f%%", 100.0 * step / totalSteps);
        String lossText = String.format(Locale.ROOT, "loss %.4f", loss);
        String val = validationLoss == null ? null : String.format(Locale.ROOT, "val %.4f", validationLoss);
        String load = expertLoad == null ? null : String.format(Locale.ROOT, "load %.2f", expertLoad);
        String rate = String.format(Locale.ROOT, "%,.0f tok/s", tokensPerSecond);
        String eta = "ETA " + duration(secondsLeft);
        // dropped in this order until the line fits: the expert load, the validation loss, the rate
        String[][] tries = {
                {lossText, val, load, rate, eta},
                {lossText, val, rate, eta},
                {lossText, rate, eta},
                {lossText, eta},
        };
        for (String[] fields : tries) {
            StringBuilder tail = new StringBuilder();
            for (String f : fields) {
                if (f != null) {
                    tail.append(' ').append(f);
                }
            }
            // head [bar] percent tail: the bar takes what is left, up to BAR
            int fixed = head.length() + 1 + percent.length() + tail.length();
            int bar = Math.min(BAR, width - fixed - 3);
            if (bar >= MIN_BAR) {
                int filled = (int) Math.min(bar, Math.round(bar * (double) step / totalSteps));
                return head + " [" + "#".repeat(filled) + ".".repeat(bar - filled) + "] " + percent + tail;
            }
            if (fixed <= width) {
                return head + " " + percent + tail;
            }
        }
        String bare = head + " " + percent + " " + lossText;
        return bare.length() <= width ? bare : bare.substring(0, width);
    }

    /** "1h02m", "3m07s", "42s". */
    public static String duration(double seconds) {
        if (!Double.isFinite(seconds) || seconds < 0) {
            return "?";
        }
        long s = Math.round(seconds);
        if (s >= 3600) {
            return String.format(Locale.ROOT, "%dh%02dm", s / 3600, (s % 3600) / 60);
        }
        if (s >= 60) {
            return String.format(Locale.ROOT, "%dm%02ds", s / 60, s % 60);
        }
        return s + "s";
    }
}
