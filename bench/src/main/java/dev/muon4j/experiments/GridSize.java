package dev.muon4j.experiments;

/** Which grid of an {@link Experiment} to run. */
public enum GridSize {
    /** The grid the report is made from: sized to finish within 90 minutes on 2 cores. */
    DEFAULT,
    /** A grid of tiny runs that exercises the whole experiment in under 2 minutes (for the tests and a first try). */
    QUICK
}
