package dev.muon4j.cli;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.BackendConfig;
import dev.muon4j.backend.BackendKind;
import dev.muon4j.backend.Backends;
import picocli.CommandLine.Option;

/** The {@code --backend} and {@code --threads} options shared by every command that computes. */
public final class BackendOptions {
    @Option(names = "--backend", paramLabel = "KIND", defaultValue = "AUTO",
            description = "Compute backend: ${COMPLETION-CANDIDATES} (default: ${DEFAULT-VALUE}: system OpenBLAS, else bundled OpenBLAS, else Vector API).")
    BackendKind kind;

    @Option(names = "--threads", paramLabel = "N",
            description = "Compute threads (default: number of processors).")
    Integer threads;

    public Backend open() {
        BackendConfig config = BackendConfig.defaults().withKind(kind);
        if (threads != null) {
            config = config.withThreads(threads);
        }
        return Backends.open(config);
    }
}
