package dev.muon4j.experiments;

import java.util.List;
import java.util.stream.Collectors;

/** The experiments {@code muon4j experiment NAME} knows, in the order its help lists them. */
public final class Experiments {
    private Experiments() {
    }

    /** Every experiment; a new one is added here. */
    public static List<Experiment<?>> all() {
        return List.of(new ScalingExperiment(), new ScalingExperiment(ScalingExperiment.Family.MOE), new UpdateRmsExperiment(),
                new WeightDecayExperiment(), new SvdEntropyExperiment(), new FinetuneExperiment());
    }

    /**
     * The experiment called {@code name}.
     *
     * @throws IllegalArgumentException naming the known experiments when there is none of that name
     */
    public static Experiment<?> byName(String name) {
        for (Experiment<?> e : all()) {
            if (e.name().equals(name)) {
                return e;
            }
        }
        throw new IllegalArgumentException("no experiment named '" + name + "'; the experiments are "
                + all().stream().map(Experiment::name).collect(Collectors.joining(", ")));
    }
}
