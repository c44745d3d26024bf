package dev.muon4j.backend;

/** The compute backends muon4j knows; {@link Backends#open} says which {@link #AUTO} takes, and why. */
public enum BackendKind {
    /**
     * {@link #ONEDNN} where the processor has AVX-512, else {@link #OPENBLAS_SYSTEM}, then
     * {@link #OPENBLAS_BUNDLED}, then {@link #ONEDNN}, then {@link #VECTOR}: the first that loads and
     * passes a check against a scalar product.
     */
    AUTO,
    /** The system's libopenblas (e.g. Debian's libopenblas0-pthread), called through java.lang.foreign. */
    OPENBLAS_SYSTEM,
    /** The libopenblas shipped inside Maven's org.bytedeco:openblas (linux-x86_64), extracted and called through java.lang.foreign. */
    OPENBLAS_BUNDLED,
    /** oneDNN's GEMM, shipped inside Maven's org.bytedeco:dnnl (linux-x86_64), extracted and called through java.lang.foreign. */
    ONEDNN,
    /**
     * Pure Java: on the Vector API where the JVM was started with
     * {@code --add-modules jdk.incubator.vector}, as plain loops otherwise. Always available.
     */
    VECTOR
}
