package dev.muon4j.backend;

import java.util.Objects;

/**
 * How to open a compute backend.
 *
 * @param kind    which implementation; {@link BackendKind#AUTO} picks the fastest available
 * @param threads compute threads, at least 1; the default is the number of available processors
 */
public record BackendConfig(BackendKind kind, int threads) {
    public BackendConfig {
        Objects.requireNonNull(kind, "kind");
        if (threads < 1) {
            throw new IllegalArgumentException("backend threads must be at least 1, got " + threads);
        }
    }

    /** AUTO with one thread per available processor. */
    public static BackendConfig defaults() {
        return new BackendConfig(BackendKind.AUTO, Runtime.getRuntime().availableProcessors());
    }

    public BackendConfig withKind(BackendKind newKind) {
        return new BackendConfig(newKind, threads);
    }

    public BackendConfig withThreads(int newThreads) {
        return new BackendConfig(kind, newThreads);
    }
}
