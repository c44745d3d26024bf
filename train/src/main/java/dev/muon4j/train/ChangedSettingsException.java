package dev.muon4j.train;

import java.util.List;

/**
 * A resume refused because settings differ from the checkpoint's ({@link Trainer#RESUME_SETTINGS})
 * and were not allowed to change; {@link #changes()} lists every one.
 */
public final class ChangedSettingsException extends IllegalArgumentException {
    /** One setting that differs: its name in {@link TrainConfig#toMap()} (or {@code "data"}), the saved and the new value. */
    public record Change(String setting, Object saved, Object now) {
        @Override
        public String toString() {
            return setting + " (checkpoint " + saved + ", now " + now + ")";
        }
    }

    private final List<Change> changes;

    public ChangedSettingsException(String message, List<Change> changes) {
        super(message);
        this.changes = List.copyOf(changes);
    }

    /** The refused changes, in the order of the settings. */
    public List<Change> changes() {
        return changes;
    }
}
