package dev.muon4j.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** Entry point of the {@code muon4j} command line. */
@Command(name = "muon4j", mixinStandardHelpOptions = true, version = "muon4j 0.1.0",
        description = "The Muon optimizer and its training system on the JVM.",
        subcommands = {CompareCommand.class, TrainCommand.class, DataCommand.class, DemoCommand.class, BenchCommand.class})
public final class Main implements Callable<Integer> {

    @Override
    public Integer call() {
        new CommandLine(this).usage(System.out);
        return 0;
    }

    public static void main(String[] args) {
        // One line per log record: "INFO dev.muon4j.backend: message".
        System.setProperty("java.util.logging.SimpleFormatter.format", "%4$s %3$s: %5$s%6$s%n");
        System.exit(commandLine().execute(args));
    }

    /** The configured command line (also used by tests, which redirect its output). */
    public static CommandLine commandLine() {
        CommandLine cli = new CommandLine(new Main());
        cli.setCaseInsensitiveEnumValuesAllowed(true);
        cli.setExecutionExceptionHandler((ex, cmd, parsed) -> {
            if (ex instanceof IllegalArgumentException || ex instanceof IllegalStateException
                    || ex instanceof java.io.IOException || ex instanceof java.io.UncheckedIOException) {
                cmd.getErr().println("muon4j: " + ex.getMessage());
                return 2;
            }
            throw ex;
        });
        return cli;
    }
}
