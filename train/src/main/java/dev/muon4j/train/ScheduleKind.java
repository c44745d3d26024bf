package dev.muon4j.train;

/** Learning-rate schedule shapes offered on the command line. */
public enum ScheduleKind {
    CONSTANT,
    COSINE,
    WSD
}
