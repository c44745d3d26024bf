package dev.muon4j.backend;

/** The compute backends muon4j knows, in the order {@link Backends#open} tries them for {@link #AUTO}. */
public enum BackendKind {
    /** Try {@link #OPENBLAS_SYSTEM}, then {@link #OPENBLAS_BUNDLED}, then {@link #VECTOR}. */
    AUTO,
    /** The system's libopenblas (e.g. Debian's libopenblas0-pthread), called through java.lang.foreign. */
    OPENBLAS_SYSTEM,
    /** The libopenblas shipped inside Maven's org.bytedeco:openblas (linux-x86_64), extracted and called through java.lang.foreign. */
    OPENBLAS_BUNDLED,
    /** Pure Java, on the Vector API (jdk.incubator.vector). Always available. */
    VECTOR
}
