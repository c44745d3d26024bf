package dev.muon4j.io;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Runs {@code python3} for the tests that check a file with Python; they are skipped where there is none. */
public final class Python3 {
    /** What a run printed (standard output and error together) and its exit code. */
    public record Run(int exitCode, String output) {
    }

    private Python3() {
    }

    /** Skips the calling test when {@code python3 --version} does not run. */
    public static void assumeAvailable() throws InterruptedException {
        boolean available;
        try {
            Process p = new ProcessBuilder("python3", "--version").redirectErrorStream(true).start();
            p.getInputStream().readAllBytes();
            available = p.waitFor(20, TimeUnit.SECONDS) && p.exitValue() == 0;
        } catch (IOException e) {
            available = false;
        }
        assumeTrue(available, "python3 is not available");
    }

    /** Runs {@code python3 args…} to its end (at most a minute). */
    public static Run run(String... args) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>(List.of("python3"));
        command.addAll(List.of(args));
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "python3 finished");
        return new Run(p.exitValue(), output);
    }
}
