package dev.muon4j.experiments;

import dev.muon4j.data.ShippedCorpus;
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
 * @param corpus      the shipped corpus it trains on
 * @param initFrom    the id of an earlier run of the same grid whose final weights this run starts from (with a fresh
 *                    optimizer: fine-tuning); null to start from weights drawn from the seed
 */
public record GridRun<P>(String id, P point, ModelConfig model, TrainConfig train, Measurements measurements, ShippedCorpus corpus,
                         String initFrom) {
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
        Objects.requireNonNull(corpus, "corpus");
        if (id.equals(initFrom)) {
            throw new IllegalArgumentException("grid run " + id + " cannot start from its own weights");
        }
    }

    /** A run on the default corpus from weights drawn from the seed. */
    public GridRun(String id, P point, ModelConfig model, TrainConfig train, Measurements measurements) {
        this(id, point, model, train, measurements, ShippedCorpus.GUTENBERG, null);
    }

    /**
     * The settings that make the run what it is, as result.json records them: model, training, measurements, and
     * where they are not the default, the corpus and the run it starts from.
     */
    public Map<String, Object> settings() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("model", model.toMap());
        m.put("train", train.toMap());
        m.put("measurements", measurements.toMap());
        if (corpus != ShippedCorpus.GUTENBERG) {
            m.put("corpus", corpus.id());
        }
        if (initFrom != null) {
            m.put("init_from", initFrom);
        }
        return m;
    }
}
