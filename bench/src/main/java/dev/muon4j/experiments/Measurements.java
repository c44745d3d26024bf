package dev.muon4j.experiments;

import dev.muon4j.train.StepObserver;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * What a grid run measures beyond the trainer's metrics, on step 1 and every {@code every} steps
 * ({@link MatrixStatsObserver} writes them into metrics.jsonl).
 *
 * @param every          measure step 1 and every step divisible by this
 * @param updateRms      per matrix, the RMS of the update per unit learning rate ({@code update_rms})
 * @param weightRms      per matrix, the RMS of its weights after the step ({@code weight_rms})
 * @param layerOutputRms per block, the RMS of its output over the step's forward passes ({@code layer_output_rms})
 * @param svdEntropy     per hidden matrix (each expert of a stack its own), the SVD entropy of its weights after the
 *                       step ({@code svd_entropy})
 */
public record Measurements(long every, boolean updateRms, boolean weightRms, boolean layerOutputRms, boolean svdEntropy) {
    public Measurements {
        if (every < 1) {
            throw new IllegalArgumentException("measurements every " + every + " steps: must be at least 1");
        }
    }

    /** The RMS measurements alone, no SVD entropy. */
    public Measurements(long every, boolean updateRms, boolean weightRms, boolean layerOutputRms) {
        this(every, updateRms, weightRms, layerOutputRms, false);
    }

    /** Nothing beyond the trainer's metrics. */
    public static Measurements none() {
        return new Measurements(1, false, false, false, false);
    }

    /** Whether anything is measured. */
    public boolean any() {
        return updateRms || weightRms || layerOutputRms || svdEntropy;
    }

    /** The observer that takes these measurements; null when there are none. */
    public StepObserver observer() {
        return any() ? new MatrixStatsObserver(this) : null;
    }

    /** Field name → value, for result.json. */
    public Map<String, Object> toMap() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("every", every);
        m.put("update_rms", updateRms);
        m.put("weight_rms", weightRms);
        m.put("layer_output_rms", layerOutputRms);
        if (svdEntropy) {
            // Only when asked: the grids of before it record no such field, and their run directories stay valid.
            m.put("svd_entropy", true);
        }
        return m;
    }
}
