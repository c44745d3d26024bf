package dev.muon4j.cli;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.BackendConfig;
import dev.muon4j.backend.BackendKind;
import dev.muon4j.backend.Backends;
import picocli.CommandLine.Option;

/** The {@code --backend} and {@code --threads} options shared by every command that computes. */
public final class BackendOptions {
    @Option(names = "--backend", paramLabel = "KIND", defaultValue = "AUTO",
            description = "Compute backend: ${COMPLETION-CANDIDATES} (default: ${DEFAULT-VALUE}: oneDNN where the processor has AVX-512, else system OpenBLAS, bundled OpenBLAS, oneDNN, Vector API; the first that loads and computes right).")
    BackendKind kind;

    @Option(names = "--threads", paramLabel = "N",
            description = "Compute threads (default: number of processors).")
    Integer threads;

    /** Why {@link #open()} took the backend it opened last. */
    private String reason;

    /**
     * Opens the chosen backend with the chosen thread count.
     *
     * @throws IllegalArgumentException when {@code --threads} is below 1
     */
    public Backend open() {
        if (threads != null && threads < 1) {
            throw new IllegalArgumentException("--threads must be at least 1, got " + threads);
        }
        BackendConfig config = BackendConfig.defaults().withKind(kind);
        if (threads != null) {
            config = config.withThreads(threads);
        }
        Backends.Choice choice = Backends.choose(config);
        reason = choice.reason();
        return choice.backend();
    }

    /**
     * The one line a command prints about the backend it opened with {@link #open()}: its description
     * and why it was taken (the library's own log line says the same, so commands open without it).
     */
    public String describe(Backend backend) {
        return "backend: " + backend.description() + (reason == null ? "" : " (" + reason + ")");
    }
}
