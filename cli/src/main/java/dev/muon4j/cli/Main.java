package dev.muon4j.cli;

import java.io.IOException;
import java.io.InputStream;
import java.util.Properties;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** Entry point of the {@code muon4j} command line. */
@Command(name = "muon4j", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        description = "The Muon optimizer and its training system on the JVM.",
        subcommands = {CompareCommand.class, ExperimentCommand.class, TrainCommand.class, ExportCommand.class, GenerateCommand.class,
                EvalCommand.class, PlotCommand.class, DataCommand.class, DemoCommand.class, BenchCommand.class})
public final class Main implements Callable<Integer> {

    @Override
    public Integer call() {
        new CommandLine(this).usage(System.out);
        return 0;
    }

    public static void main(String[] args) {
        // One line per log record: "INFO dev.muon4j.backend: message".
        System.setProperty("java.util.logging.SimpleFormatter.format", "%4$s %3$s: %5$s%6$s%n");
        CommandLine cli = commandLine();
        // Generated text is UTF-8 whatever the locale says, so that every character the model writes reaches the file or pipe.
        cli.setOut(new java.io.PrintWriter(new java.io.OutputStreamWriter(System.out, java.nio.charset.StandardCharsets.UTF_8), true));
        System.exit(cli.execute(args));
    }

    /** The project's version, as the build wrote it into {@code version.properties}. */
    public static String version() {
        try (InputStream in = Main.class.getResourceAsStream("version.properties")) {
            if (in == null) {
                throw new IllegalStateException("dev/muon4j/cli/version.properties is missing from the class path");
            }
            Properties properties = new Properties();
            properties.load(in);
            String version = properties.getProperty("version");
            if (version == null || version.isBlank() || version.contains("${")) {
                throw new IllegalStateException("dev/muon4j/cli/version.properties holds no built version: " + properties);
            }
            return version;
        } catch (IOException e) {
            throw new IllegalStateException("cannot read dev/muon4j/cli/version.properties: " + e.getMessage(), e);
        }
    }

    /** {@code --version}: "muon4j" and {@link #version()}. */
    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            return new String[] {"muon4j " + version()};
        }
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
        CommandLine.IParameterExceptionHandler usage = cli.getParameterExceptionHandler();
        cli.setParameterExceptionHandler((ex, args) -> {
            CommandLine cmd = ex.getCommandLine();
            if (!(cmd.getCommand() instanceof OneLineParseErrors)) {
                return usage.handleParseException(ex, args);
            }
            String hint = ex instanceof CommandLine.UnmatchedArgumentException u && !u.getSuggestions().isEmpty()
                    ? "; did you mean " + String.join(" or ", u.getSuggestions()) + "?" : "";
            cmd.getErr().println("muon4j: " + ex.getMessage().strip().replace('\n', ' ') + hint + " (muon4j "
                    + cmd.getCommandName() + " --help lists the flags)");
            return 2;
        });
        return cli;
    }
}
