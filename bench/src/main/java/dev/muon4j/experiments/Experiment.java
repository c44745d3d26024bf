package dev.muon4j.experiments;

import java.io.IOException;
import java.util.List;

/**
 * One experiment of {@code muon4j experiment NAME}: a grid of training runs and the analysis that
 * turns their metrics into a report. The {@link GridRunner} trains the runs (each in a run directory
 * of its own, skipping finished ones and resuming cut-off ones); the analysis reads only what the run
 * directories hold, so it can be run again without training. A new experiment is one class
 * implementing this, listed in {@link Experiments#all()}.
 *
 * @param <P> what identifies a run within the grid (its point: an optimizer, a size, a learning rate…)
 */
public interface Experiment<P> {
    /** The name on the command line, lower case ({@code "scaling"}). */
    String name();

    /** One line saying what the experiment shows, for the command's help and the report's title. */
    String title();

    /** The runs of the default grid or of the quick one, in the order they are trained; ids unique. */
    List<GridRun<P>> grid(GridSize size);

    /**
     * Runs to add to the grid once every run of {@code ended} (the grid so far, in its order) has
     * ended: a grid that adapts to its results, such as a learning-rate sweep that goes on past an edge
     * where the best rate lies. The command trains them and asks again with the grown grid until none
     * come; the analysis sees the grid with all of them. A function of the ended runs alone, so that
     * training and a later {@code --analyze-only} find the same runs; ids not already in the grid.
     * None by default.
     */
    default List<GridRun<P>> extend(GridSize size, List<RunRecord<P>> ended) {
        return List.of();
    }

    /**
     * Writes report.md, the plots and the data behind them into {@link Analysis#out()}, from the
     * finished runs of the grid and its extensions ({@link Analysis#runs()}, in grid order).
     */
    void analyze(Analysis<P> analysis) throws IOException;
}
