package dev.muon4j.cli;

import dev.muon4j.train.TrainedModel;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/** The {@code --run-dir} option of the commands that use a trained model: which checkpoint to read. */
final class CheckpointOption {
    @Option(names = {"--run-dir", "--checkpoint"}, paramLabel = "DIR",
            description = "A run directory written by 'muon4j train' (its latest checkpoint is used), or one checkpoint "
                    + "directory in it (step-00000300).")
    Path path;

    /**
     * Loads the model; a damaged latest checkpoint falls back to an older one with a warning on {@code err}.
     *
     * @throws IllegalArgumentException when no --run-dir was given
     * @throws IOException              when there is no checkpoint there, or it is damaged
     */
    TrainedModel load(PrintWriter err) throws IOException {
        if (path == null) {
            throw new IllegalArgumentException("give --run-dir DIR: a run directory written by 'muon4j train', or a checkpoint "
                    + "directory in it");
        }
        return TrainedModel.load(path, warning -> {
            err.println("muon4j: warning: " + warning);
            err.flush();
        });
    }

    /** A path as the user would write it: relative to the working directory when it lies inside it. */
    static String shown(Path path) {
        Path here = Path.of("").toAbsolutePath().normalize();
        Path p = path.toAbsolutePath().normalize();
        return p.startsWith(here) && !p.equals(here) ? here.relativize(p).toString() : p.toString();
    }
}
