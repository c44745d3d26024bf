package dev.muon4j.train;

import java.io.PrintStream;
import java.util.Locale;

/**
 * A progress line for training: step, a bar, loss, tokens per second and time left. On a terminal
 * it redraws one line in place; otherwise (logs, CI) it prints a full line at most every
 * {@code quietSeconds} seconds and at the end.
 */
public final class Progress {
    private final PrintStream out;
    private final boolean interactive;
    private final String label;
    private final long totalSteps;
    private final double quietSeconds;
    private long lastPrint = Long.MIN_VALUE;
    private int lastLength;

    public Progress(PrintStream out, boolean interactive, String label, long totalSteps, double quietSeconds) {
        this.out = out;
        this.interactive = interactive;
        this.label = label;
        this.totalSteps = totalSteps;
        this.quietSeconds = quietSeconds;
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
        int width = 20;
        int filled = (int) Math.min(width, Math.round(width * (double) step / totalSteps));
        String bar = "#".repeat(filled) + ".".repeat(width - filled);
        String val = validationLoss == null ? "" : String.format(Locale.ROOT, " val %.4f", validationLoss);
        String load = expertLoad == null ? "" : String.format(Locale.ROOT, " | load %.2f", expertLoad);
        return String.format(Locale.ROOT, "%s step %d/%d [%s] %3.0f%% loss %.4f%s%s | %,.0f tok/s | ETA %s",
                label, step, totalSteps, bar, 100.0 * step / totalSteps, loss, val, load, tokensPerSecond, duration(secondsLeft));
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
