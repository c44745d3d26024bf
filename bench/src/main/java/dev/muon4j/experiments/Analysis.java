package dev.muon4j.experiments;

import java.util.List;
import java.util.Locale;
import java.util.Objects;

/**
 * What an experiment's analysis works from: the ended runs of its grid and where the report goes.
 *
 * @param size    which grid the runs are
 * @param runs    the grid's runs, in grid order, each ended ({@link RunResult})
 * @param files   the report's files, in the output directory
 * @param context the command, machine, backend and data, for the report's header
 */
public record Analysis<P>(GridSize size, List<RunRecord<P>> runs, ReportFiles files, Context context) {
    public Analysis {
        runs = List.copyOf(runs);
        Objects.requireNonNull(size, "grid size");
        Objects.requireNonNull(files, "report files");
        Objects.requireNonNull(context, "context");
    }

    /**
     * How the report was made.
     *
     * @param commandLine the command that makes the report ({@code ./muon4j experiment scaling})
     * @param data        the corpus and tokenizer
     */
    public record Context(String commandLine, String data) {
    }

    /** The distinct values of a field of the runs' results, joined: one machine, or several where sittings differed. */
    private String distinct(java.util.function.Function<RunResult, String> field) {
        return String.join("; ", runs.stream().map(r -> field.apply(r.result())).filter(Objects::nonNull).distinct().toList());
    }

    /** The wall time of every sitting that trained a run of the grid, summed. */
    public double wallSeconds() {
        return runs.stream().mapToDouble(r -> r.result().wallSeconds()).sum();
    }

    /**
     * The report's opening: title, command, machine, backend, data, the grid's size and time, and the PNG note.
     */
    public String header(String title) {
        StringBuilder s = new StringBuilder();
        s.append("# ").append(title).append("\n\n");
        s.append("Command: `").append(context.commandLine()).append("`\n\n");
        s.append("- Machine: ").append(distinct(RunResult::machine)).append('\n');
        s.append("- Backend: ").append(distinct(RunResult::backend)).append('\n');
        s.append("- Data: ").append(context.data()).append('\n');
        long diverged = runs.stream().filter(r -> r.result().diverged()).count();
        s.append(String.format(Locale.ROOT, "- Grid: %s, %d runs%s; training took %s of wall time in all (the sum over the runs' "
                        + "sittings, validation and checkpoints included; the steps alone %s)%n", size == GridSize.QUICK ? "quick" : "default",
                runs.size(), diverged == 0 ? "" : String.format(Locale.ROOT, " (%d diverged)", diverged), minutes(wallSeconds()),
                minutes(runs.stream().mapToDouble(r -> r.result().trainSeconds()).sum())));
        s.append("- Files: ").append(files.pngNote()).append(" The data behind each plot is the CSV file of the same name; ")
                .append("every run's metrics are in `runs/<id>/metrics.jsonl`, its summary in `runs/<id>/result.json`.\n\n");
        if (size == GridSize.QUICK) {
            s.append("**This is the quick grid**: tiny models and a few steps, made to check that the experiment runs end to end. "
                    + "Its numbers say nothing about the finding; the default grid's report does.\n\n");
        }
        return s.toString();
    }

    /** "1 h 02 min", "3 min 07 s", "42 s". */
    public static String minutes(double seconds) {
        long s = Math.round(seconds);
        if (s >= 3600) {
            return String.format(Locale.ROOT, "%d h %02d min", s / 3600, (s % 3600) / 60);
        }
        if (s >= 60) {
            return String.format(Locale.ROOT, "%d min %02d s", s / 60, s % 60);
        }
        return s + " s";
    }
}
