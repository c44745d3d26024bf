package dev.muon4j.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/** Finding out whether this process is an mpirun rank, and starting this same command under mpirun. */
final class MpiLaunch {
    private MpiLaunch() {
    }

    /** The mpirun world size when this process was started by Open MPI's mpirun, else 0. */
    static int worldSize() {
        return intEnv("OMPI_COMM_WORLD_SIZE");
    }

    /** Ranks of this job on this machine (at least 1). */
    static int localSize() {
        return Math.max(1, intEnv("OMPI_COMM_WORLD_LOCAL_SIZE"));
    }

    private static int intEnv(String name) {
        String v = System.getenv(name);
        if (v == null || v.isBlank()) {
            return 0;
        }
        try {
            return Integer.parseInt(v.trim());
        } catch (NumberFormatException e) {
            throw new IllegalStateException("environment variable " + name + " is '" + v + "', not a number");
        }
    }

    /** mpirun on the PATH, if any. */
    static Optional<Path> findMpirun() {
        String path = System.getenv("PATH");
        if (path == null) {
            return Optional.empty();
        }
        for (String dir : path.split(java.io.File.pathSeparator)) {
            if (dir.isEmpty()) {
                continue;
            }
            Path p = Path.of(dir, "mpirun");
            if (Files.isExecutable(p)) {
                return Optional.of(p);
            }
        }
        return Optional.empty();
    }

    /**
     * Runs this JVM's command again as {@code n} ranks under mpirun on this machine, with
     * {@code --run-dir} set so that every rank names the same run, and returns mpirun's exit code.
     */
    static int relaunch(Path mpirun, int n, Path runDir, List<String> originalArgs, PrintWriter out)
            throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>();
        cmd.add(mpirun.toString());
        if ("root".equals(System.getProperty("user.name"))) {
            cmd.add("--allow-run-as-root");
        }
        cmd.addAll(List.of("--oversubscribe", "--bind-to", "none", "-np", Integer.toString(n)));
        cmd.add(ProcessHandle.current().info().command().orElseThrow(
                () -> new IllegalStateException("cannot tell which java runs this process, to start the ranks with it")));
        cmd.addAll(ManagementFactory.getRuntimeMXBean().getInputArguments());
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(Main.class.getName());
        List<String> args = new ArrayList<>(originalArgs);
        if (!args.contains("--run-dir") && args.stream().noneMatch(a -> a.startsWith("--run-dir="))) {
            args.add("--run-dir");
            args.add(runDir.toString());
        }
        cmd.addAll(args);
        out.println("ranks: " + n + " processes under " + mpirun + " (run directory " + runDir + ")");
        out.flush();
        Process p = new ProcessBuilder(cmd).inheritIO().start();
        int code = p.waitFor();
        if (code != 0) {
            out.println("mpirun exited with code " + code + "; the ranks' errors are above");
            out.flush();
        }
        return code;
    }
}
