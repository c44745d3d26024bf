package dev.muon4j.train;

import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.BooleanSupplier;

/**
 * How {@link Trainer#run(RunOptions)} starts a run, where it pauses, which settings a resumed run
 * may change, how it watches the run's health, and how it is asked to stop early.
 *
 * @param start          a new run, a continuation, or whichever applies
 * @param stopAfter      pause with a checkpoint once this many steps are done (counted from step 0);
 *                       {@code Long.MAX_VALUE} runs to the end
 * @param allowedChanges settings (as named by {@link Trainer#RESUME_SETTINGS}, or {@code "all"}) a
 *                       resumed run may change from the checkpoint's; every other change is refused
 * @param health         collapse detection
 * @param stopRequested  polled after every step; once it returns true the run finishes that step,
 *                       saves a checkpoint and returns with {@link Trainer.Result#stoppedOnRequest()}
 *                       (with several ranks, any rank's request stops them all after the same step)
 * @param observer       extra measurements of some steps, written into metrics.jsonl; null (the default): none
 */
public record RunOptions(Start start, long stopAfter, Set<String> allowedChanges, HealthCheck health,
                         BooleanSupplier stopRequested, StepObserver observer) {

    /** How a run begins. */
    public enum Start {
        /** A new run; refused when the run directory already holds a checkpoint. */
        FRESH,
        /** Continue the run directory's latest checkpoint; refused when it holds none. */
        RESUME,
        /** Continue the latest checkpoint when there is one, else start a new run (for jobs that are restarted as they are). */
        RESUME_OR_FRESH
    }

    public RunOptions {
        Objects.requireNonNull(start, "start");
        if (stopAfter < 1) {
            throw new IllegalArgumentException("stopAfter must be >= 1, got " + stopAfter);
        }
        allowedChanges = Set.copyOf(allowedChanges);
        for (String name : allowedChanges) {
            if (!name.equals("all") && !Trainer.RESUME_SETTINGS.contains(name)) {
                throw new IllegalArgumentException("unknown setting '" + name + "' allowed to change on resume; the settings are "
                        + new TreeSet<>(Trainer.RESUME_SETTINGS) + " and all");
            }
        }
        Objects.requireNonNull(health, "health");
        Objects.requireNonNull(stopRequested, "stopRequested");
    }

    /** A new run to the end, default health checks, never asked to stop. */
    public static RunOptions fresh() {
        return new RunOptions(Start.FRESH, Long.MAX_VALUE, Set.of(), HealthCheck.defaults(), () -> false, null);
    }

    /** A continuation of the latest checkpoint, otherwise as {@link #fresh()}. */
    public static RunOptions resume() {
        return fresh().withStart(Start.RESUME);
    }

    public RunOptions withStart(Start s) {
        return new RunOptions(s, stopAfter, allowedChanges, health, stopRequested, observer);
    }

    public RunOptions withStopAfter(long step) {
        return new RunOptions(start, step, allowedChanges, health, stopRequested, observer);
    }

    public RunOptions withAllowedChanges(Set<String> names) {
        return new RunOptions(start, stopAfter, names, health, stopRequested, observer);
    }

    public RunOptions withHealth(HealthCheck h) {
        return new RunOptions(start, stopAfter, allowedChanges, h, stopRequested, observer);
    }

    public RunOptions withStopRequested(BooleanSupplier s) {
        return new RunOptions(start, stopAfter, allowedChanges, health, s, observer);
    }

    /** These options with {@code o} measuring steps (null: none). */
    public RunOptions withObserver(StepObserver o) {
        return new RunOptions(start, stopAfter, allowedChanges, health, stopRequested, o);
    }

    /** Whether {@code setting} may differ from the checkpoint's on resume. */
    public boolean allowsChange(String setting) {
        return allowedChanges.contains("all") || allowedChanges.contains(setting);
    }
}
