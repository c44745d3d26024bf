package dev.muon4j.experiments;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.annotation.JsonNaming;
import java.util.Map;
import java.util.Objects;

/**
 * A grid run's {@code result.json}: written (atomically) once the run has ended, and what marks it
 * as ended. A rerun of the grid skips a run whose result.json holds the settings the grid asks for.
 *
 * @param format             {@value #FORMAT}
 * @param id                 the run's id in the grid
 * @param status             {@code finished} (every step done and validated) or {@code diverged} (the
 *                           trainer stopped it as broken: a NaN, a collapse; {@code failure} says how)
 * @param failure            the trainer's message for a diverged run; absent otherwise
 * @param settings           model, training and measurements ({@link GridRun#settings()})
 * @param steps              optimizer steps done
 * @param tokens             training tokens seen
 * @param finalValidationLoss the last validation loss; absent for a diverged run
 * @param trainSeconds       the steps' own time, summed over metrics.jsonl (no validation, no checkpoints)
 * @param wallSeconds        the time of the sittings that trained the run (sittings.jsonl), validation and
 *                           checkpoints included; a sitting that was killed is not counted
 * @param finishedAt         when the run ended (ISO-8601, UTC)
 * @param machine            the machine of the sitting that ended the run ({@link Machine#describe()})
 * @param backend            that sitting's compute backend
 */
@JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
@JsonInclude(JsonInclude.Include.NON_NULL)
public record RunResult(int format, String id, String status, String failure, Map<String, Object> settings, long steps,
                        long tokens, Double finalValidationLoss, double trainSeconds, double wallSeconds, String finishedAt,
                        String machine, String backend) {
    /** The format of result.json. */
    public static final int FORMAT = 1;
    public static final String FINISHED = "finished";
    public static final String DIVERGED = "diverged";

    public RunResult {
        if (format != FORMAT) {
            throw new IllegalArgumentException("result.json format " + format + ", this version reads " + FORMAT);
        }
        Objects.requireNonNull(id, "id");
        Objects.requireNonNull(settings, "settings");
        if (!FINISHED.equals(status) && !DIVERGED.equals(status)) {
            throw new IllegalArgumentException("result.json status '" + status + "', expected " + FINISHED + " or " + DIVERGED);
        }
        if (FINISHED.equals(status) && (finalValidationLoss == null || !Double.isFinite(finalValidationLoss))) {
            throw new IllegalArgumentException("result.json of a finished run has no finite final validation loss: " + finalValidationLoss);
        }
    }

    /** Whether the trainer stopped the run as broken. */
    public boolean diverged() {
        return DIVERGED.equals(status);
    }

    /** Training tokens per second of the steps' own time. */
    public double tokensPerSecond() {
        return trainSeconds > 0 ? tokens / trainSeconds : Double.NaN;
    }
}
