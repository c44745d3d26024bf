package dev.muon4j.experiments;

import dev.muon4j.nn.ModelConfig;
import dev.muon4j.train.TrainConfig;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.regex.Pattern;

/**
 * One training run of an experiment's grid.
 *
 * @param id          the run directory's name under {@code <out>/runs/}: lower-case letters, digits, '.', '-' and '_'
 * @param point       what the experiment knows the run by
 * @param model       the model trained
 * @param train       how it is trained (its checkpoint cadence is how much of the run a cut can cost)
 * @param measurements what is measured beyond the trainer's own metrics
 */
public record GridRun<P>(String id, P point, ModelConfig model, TrainConfig train, Measurements measurements) {
    private static final Pattern ID = Pattern.compile("[a-z0-9][a-z0-9._-]*");

    public GridRun {
        Objects.requireNonNull(id, "id");
        if (!ID.matcher(id).matches()) {
            throw new IllegalArgumentException("grid run id '" + id + "' is not a plain directory name "
                    + "(lower-case letters, digits, '.', '-', '_', starting with a letter or digit)");
        }
        Objects.requireNonNull(point, "point");
        Objects.requireNonNull(model, "model");
        Objects.requireNonNull(train, "train config");
        Objects.requireNonNull(measurements, "measurements");
    }

    /** The settings that make the run what it is, as result.json records them: model, training, measurements. */
    public Map<String, Object> settings() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("model", model.toMap());
        m.put("train", train.toMap());
        m.put("measurements", measurements.toMap());
        return m;
    }
}
