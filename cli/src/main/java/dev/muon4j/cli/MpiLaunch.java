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

    /** Set in the environment of ranks that {@link #relaunch} starts. */
    static final String RELAUNCHED = "MUON4J_MPI_RELAUNCHED";

    /**
     * The mpirun world size when this process was started by Open MPI's mpirun, else 0.
     *
     * @throws IllegalStateException when another launcher started it (PMI/PMIx variables without
     *                               Open MPI's), or when muon4j's own relaunch did not produce an Open MPI rank
     */
    static int worldSize() {
        int size = intEnv("OMPI_COMM_WORLD_SIZE");
        if (size > 0) {
            return size;
        }
        for (String v : new String[] {RELAUNCHED, "PMI_SIZE", "PMI_RANK", "PMIX_RANK"}) {
            if (System.getenv(v) != null) {
                throw new IllegalStateException("this process was started by an MPI launcher that is not Open MPI's mpirun ("
                        + v + " is set, OMPI_COMM_WORLD_SIZE is not); muon4j's ranks need Open MPI 4 "
                        + "(apt-get install openmpi-bin libopenmpi-dev), or use --launcher threads");
            }
        }
        return 0;
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

    /**
     * Open MPI's mpirun on the PATH when it can start ranks this JVM can join: it says it is Open
     * MPI, and libmpi loads here.
     */
    static Optional<Path> findOpenMpirun() {
        Optional<Path> mpirun = findMpirun();
        if (mpirun.isEmpty() || !dev.muon4j.distributed.MpiCollectives.available()) {
            return Optional.empty();
        }
        try {
            Process p = new ProcessBuilder(mpirun.get().toString(), "--version").redirectErrorStream(true).start();
            byte[] out = p.getInputStream().readNBytes(4096);
            if (!p.waitFor(10, java.util.concurrent.TimeUnit.SECONDS)) {
                p.destroyForcibly();
                return Optional.empty();
            }
            return new String(out, java.nio.charset.StandardCharsets.UTF_8).contains("Open MPI") ? mpirun : Optional.empty();
        } catch (IOException e) {
            return Optional.empty();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return Optional.empty();
        }
    }

    /** mpirun on the PATH, if any. */
    static Optional<Path> findMpirun() {
        return findOnPath("mpirun");
    }

    /** The first executable file called {@code name} in a directory of the PATH, if any. */
    static Optional<Path> findOnPath(String name) {
        String path = System.getenv("PATH");
        if (path == null) {
            return Optional.empty();
        }
        for (String dir : path.split(java.io.File.pathSeparator)) {
            if (dir.isEmpty()) {
                continue;
            }
            Path p = Path.of(dir, name);
            if (Files.isExecutable(p)) {
                return Optional.of(p);
            }
        }
        return Optional.empty();
    }

    /**
     * Runs this JVM's command again as {@code n} ranks under mpirun on this machine, with
     * {@code --run-dir} set so that every rank names the same run, and returns mpirun's exit code.
     * This process owns the job: a stop signal or its end stops the ranks too (see {@link JobControl}).
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
        return JobControl.superviseMpirun(cmd, java.util.Map.of(RELAUNCHED, "1"), out);
    }
}
