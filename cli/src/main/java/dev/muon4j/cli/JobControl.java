package dev.muon4j.cli;

import dev.muon4j.distributed.MpiCollectives;
import dev.muon4j.train.Trainer;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.BooleanSupplier;
import java.util.stream.Collectors;

/**
 * How a {@code muon4j train} job is stopped from outside: by signals, or because the process that
 * launched it is gone; and the exit code it then ends with.
 *
 * <h2>One process, or ranks as threads of one process</h2>
 * The first SIGINT (Ctrl-C) or SIGTERM is a stop request: a line on standard error says so, every
 * rank finishes the step it is in, a checkpoint of that step is written, the command to continue
 * the run ({@code --resume}) is printed and the process exits with {@link #STOPPED_EXIT_CODE}. A
 * second SIGINT or SIGTERM halts the process at once, with the same exit code; the step in progress
 * is lost, the last checkpoint is intact.
 *
 * <h2>The launcher: {@code muon4j train --ranks N} under mpirun</h2>
 * The launcher starts mpirun in a session of its own ({@code setsid}), so that a terminal's Ctrl-C
 * reaches the launcher alone, and tells the ranks who it is ({@value #LAUNCHER_PID},
 * {@value #LAUNCHER_START}, {@value #STOP_REPORT}, forwarded with mpirun's {@code -x}); see
 * {@link #superviseMpirun}. Its first SIGINT or SIGTERM sends SIGUSR1 to mpirun, which Open MPI's
 * mpirun forwards to every rank: a stop request. When the ranks have stopped, rank 0 reports the
 * step through the file named by {@value #STOP_REPORT} and the launcher exits with
 * {@link #STOPPED_EXIT_CODE}. A second SIGINT or SIGTERM ends mpirun (SIGTERM, then SIGKILL after
 * {@link #MPIRUN_GRACE}), and with it every rank, and the launcher exits with
 * {@link #STOPPED_EXIT_CODE}. Should the launcher itself be killed (SIGKILL included), every rank
 * notices within a second that its process is gone and ends the whole job
 * ({@code MPI_Abort} with {@link #LAUNCHER_GONE_EXIT_CODE}).
 *
 * <h2>mpirun ranks</h2>
 * SIGUSR1 is a stop request (send it to mpirun: {@code kill -USR1 <mpirun's pid>}); any rank's
 * request stops every rank after the same step, with a checkpoint. Ranks that mpirun started
 * without the launcher also take SIGINT and SIGTERM as a stop request; mind that mpirun itself
 * answers Ctrl-C or SIGTERM by killing the ranks within about two seconds, so stop such a job with
 * SIGUSR1. A second stop signal to a rank ends the whole job at once ({@code MPI_Abort} with
 * {@link #STOPPED_EXIT_CODE}). A rank stopped on request exits with {@link #STOPPED_EXIT_CODE},
 * which mpirun reports as a non-zero status of the job and returns; under the launcher the ranks
 * exit with 0 instead, and the launcher returns {@link #STOPPED_EXIT_CODE}. A rank sets up its
 * SIGUSR1 handler as soon as its command line is read, before MPI starts; a SIGUSR1 that comes
 * earlier still (within about a second of the rank's start) ends that rank, and mpirun then ends the
 * job with an error.
 *
 * <p>A signal that was ignored when the process started (SIGINT of a command started with
 * {@code &} from a script) stays ignored; SIGTERM then still asks for the stop.
 */
final class JobControl implements AutoCloseable {
    /** Exit code of a run that stopped on request (Ctrl-C, SIGTERM, SIGUSR1): 128 + SIGINT, as shells report Ctrl-C. */
    static final int STOPPED_EXIT_CODE = 130;

    /** Exit code with which the ranks end the job when the launcher that started them is gone. */
    static final int LAUNCHER_GONE_EXIT_CODE = 4;

    /** Environment variable of the ranks: the launcher's process id. */
    static final String LAUNCHER_PID = "MUON4J_LAUNCHER_PID";

    /** Environment variable of the ranks: the launcher's start time, milliseconds since the epoch (tells a reused pid apart). */
    static final String LAUNCHER_START = "MUON4J_LAUNCHER_START";

    /** Environment variable of the ranks: the file in which rank 0 reports the step at which it stopped on request. */
    static final String STOP_REPORT = "MUON4J_STOP_REPORT";

    /** How long the launcher's second stop signal gives mpirun to end the ranks before it is killed. */
    static final Duration MPIRUN_GRACE = Duration.ofSeconds(5);

    /** How often a rank looks whether its launcher is still there. */
    static final Duration LAUNCHER_POLL = Duration.ofMillis(500);

    /** Start times of one process, seen from two JVMs, may differ by this much (boot time is read in whole seconds). */
    private static final long START_TOLERANCE_MILLIS = 1000;

    private final List<String> args;
    private final StopSignals signals;
    private volatile boolean stopRequested;
    private volatile MpiCollectives comm;
    private volatile boolean closed;
    private volatile Trainer.Result result;

    private JobControl(List<String> args, List<String> stopSignals) {
        this.args = List.copyOf(args);
        this.signals = StopSignals.install(stopSignals, this::requestStop, this::stopNow);
        noteRefused(signals);
    }

    /** Says on standard error which stop signals keep their default action (the JVM runs with {@code -Xrs}). */
    private static void noteRefused(StopSignals signals) {
        if (!signals.refused().isEmpty()) {
            System.err.println("muon4j: note: this JVM does not hand out " + String.join(", ", signals.refused())
                    + " (it runs with -Xrs?): such a signal ends the run at once, without a checkpoint of the step in progress");
        }
    }

    /**
     * Stop handling for a run in this process alone, or with its ranks as threads of this process:
     * SIGINT and SIGTERM.
     *
     * @param args the command line's arguments, for the command that continues a stopped run
     */
    static JobControl forProcess(List<String> args) {
        return new JobControl(args, List.of("INT", "TERM"));
    }

    /**
     * Stop handling for an mpirun rank: SIGUSR1, and SIGINT and SIGTERM unless the launcher started
     * this rank; when it did, this starts watching it. Call before MPI is initialized (a SIGUSR1 that
     * comes before any handler ends the process), then {@link #attach} once it is.
     *
     * @param args the command line's arguments, for the command that continues a stopped run
     * @throws IllegalStateException when {@value #LAUNCHER_PID} or {@value #LAUNCHER_START} is not a number
     */
    static JobControl forMpiRank(List<String> args) {
        Optional<Long> launcher = longEnv(LAUNCHER_PID);
        JobControl job = new JobControl(args, launcher.isPresent() ? List.of("USR1") : List.of("USR1", "INT", "TERM"));
        launcher.ifPresent(pid -> {
            Optional<Long> start = longEnv(LAUNCHER_START);
            Thread t = new Thread(() -> job.watchLauncher(pid, start), "launcher-watch");
            t.setDaemon(true);
            t.start();
        });
        return job;
    }

    /** The MPI world of this rank: a second stop signal, or the launcher's end, aborts it. */
    void attach(MpiCollectives comm) {
        this.comm = comm;
    }

    /** What {@link dev.muon4j.train.RunOptions#stopRequested()} polls: whether a stop was asked for. */
    BooleanSupplier stopRequested() {
        return () -> stopRequested;
    }

    /** Records how the run ended (with ranks as threads, any rank's result: they stop after the same step). */
    void finished(Trainer.Result r) {
        result = r;
    }

    /**
     * Ends the job's bookkeeping and returns the process's exit code: {@link #STOPPED_EXIT_CODE}
     * when the run stopped on request, after printing (on rank 0) how to continue it; else 0.
     * Under the launcher a rank that stopped returns 0 and rank 0 reports the step to the launcher.
     *
     * @throws IOException when the stop report for the launcher cannot be written
     */
    int exitCode(PrintWriter out) throws IOException {
        close();
        Trainer.Result r = result;
        if (r == null || !r.stoppedOnRequest()) {
            return 0;
        }
        long step = r.steps().isEmpty() ? r.startStep() : r.steps().getLast().step();
        MpiCollectives c = comm;
        boolean root = c == null || c.rank() == 0;
        if (root) {
            out.println("stopped on request; continue with: " + resumeCommand(args));
            out.flush();
        }
        String report = System.getenv(STOP_REPORT);
        if (c != null && report != null && System.getenv(LAUNCHER_PID) != null) {
            if (root) {
                Files.writeString(Path.of(report), Long.toString(step) + "\n", StandardCharsets.UTF_8);
            }
            return 0;
        }
        return STOPPED_EXIT_CODE;
    }

    /** Stops handling signals and watching the launcher. */
    @Override
    public void close() {
        closed = true;
        signals.close();
    }

    private void requestStop(String signal) {
        stopRequested = true;
        MpiCollectives c = comm;
        if (c != null && c.rank() != 0) {
            return; // rank 0 says it for the job
        }
        System.out.flush();
        System.err.println(lineStart() + "muon4j: " + signal + ": stopping after the current step, with a checkpoint; "
                + (signal.equals("SIGUSR1") ? "a second SIGUSR1" : "Ctrl-C again") + " stops at once");
        System.err.flush();
    }

    private void stopNow(String signal) {
        MpiCollectives c = comm;
        System.out.flush();
        System.err.println(lineStart() + "muon4j: " + signal + " again" + (c == null ? "" : " on rank " + c.rank())
                + ": stopping at once, without saving the current step");
        System.err.flush();
        if (c != null) {
            c.abort(STOPPED_EXIT_CODE);
        }
        Runtime.getRuntime().halt(STOPPED_EXIT_CODE);
    }

    /** A newline first when standard error is a terminal, where a progress line may be open. */
    private static String lineStart() {
        return System.console() != null && System.console().isTerminal() ? "\n" : "";
    }

    private void watchLauncher(long pid, Optional<Long> start) {
        while (!closed) {
            try {
                Thread.sleep(LAUNCHER_POLL);
            } catch (InterruptedException e) {
                return;
            }
            if (closed || isRunning(pid, start)) {
                continue;
            }
            MpiCollectives c = comm;
            System.out.flush();
            System.err.println("muon4j: " + (c == null ? "a rank" : "rank " + c.rank()) + ": the launcher of this job (process "
                    + pid + ") has ended; ending the job (exit code " + LAUNCHER_GONE_EXIT_CODE + ")");
            System.err.flush();
            if (c != null) {
                c.abort(LAUNCHER_GONE_EXIT_CODE);
            }
            Runtime.getRuntime().halt(LAUNCHER_GONE_EXIT_CODE);
        }
    }

    /**
     * Whether process {@code pid} is running and is the one that started at {@code startMillis}
     * (when given): not gone, not a zombie waiting for its parent, not a new process with a reused pid.
     */
    static boolean isRunning(long pid, Optional<Long> startMillis) {
        Optional<ProcessHandle> handle = ProcessHandle.of(pid);
        if (handle.isEmpty() || !handle.get().isAlive()) {
            return false;
        }
        if (startMillis.isPresent()) {
            Optional<Instant> started = handle.get().info().startInstant();
            if (started.isPresent() && Math.abs(started.get().toEpochMilli() - startMillis.get()) > START_TOLERANCE_MILLIS) {
                return false;
            }
        }
        try {
            String stat = Files.readString(Path.of("/proc", Long.toString(pid), "stat"), StandardCharsets.US_ASCII);
            int end = stat.lastIndexOf(')');
            return end < 0 || end + 2 >= stat.length() || stat.charAt(end + 2) != 'Z';
        } catch (NoSuchFileException e) {
            return false;
        } catch (IOException e) {
            return true; // no /proc: trust ProcessHandle
        }
    }

    /** The command that continues the run: these arguments, with {@code --resume} unless they continue one already. */
    static String resumeCommand(List<String> args) {
        List<String> words = new ArrayList<>(List.of("muon4j"));
        words.addAll(args);
        if (!args.contains("--resume") && !args.contains("--resume-or-start")) {
            words.add("--resume");
        }
        return words.stream().map(JobControl::shellQuote).collect(Collectors.joining(" "));
    }

    private static String shellQuote(String word) {
        return word.matches("[A-Za-z0-9_./:=,+@%-]+") ? word : "'" + word.replace("'", "'\\''") + "'";
    }

    private static Optional<Long> longEnv(String name) {
        String v = System.getenv(name);
        if (v == null || v.isBlank()) {
            return Optional.empty();
        }
        try {
            return Optional.of(Long.parseLong(v.trim()));
        } catch (NumberFormatException e) {
            throw new IllegalStateException("environment variable " + name + " is '" + v + "', not a number");
        }
    }

    /**
     * The launcher's side: runs {@code mpirun} (its command line, ending in the ranks' command) in a
     * session of its own, tells the ranks who launched them, and waits for it, answering SIGINT and
     * SIGTERM as the class description says.
     *
     * @param mpirunCommand mpirun and its arguments; this inserts {@code -x} for the variables above
     *                      after the first word
     * @param environment   further variables for the ranks (added to this process's environment and
     *                      forwarded with {@code -x})
     * @return mpirun's exit code, or {@link #STOPPED_EXIT_CODE} when the job stopped on request or was
     *         ended by a second stop signal
     */
    static int superviseMpirun(List<String> mpirunCommand, Map<String, String> environment, PrintWriter out)
            throws IOException, InterruptedException {
        ProcessHandle self = ProcessHandle.current();
        Path report = Path.of(System.getProperty("java.io.tmpdir"), "muon4j-stop-" + self.pid() + "-" + System.nanoTime());
        Files.deleteIfExists(report);
        Map<String, String> env = new java.util.LinkedHashMap<>(environment);
        env.put(LAUNCHER_PID, Long.toString(self.pid()));
        self.info().startInstant().ifPresent(t -> env.put(LAUNCHER_START, Long.toString(t.toEpochMilli())));
        env.put(STOP_REPORT, report.toString());
        List<String> cmd = new ArrayList<>();
        Optional<Path> setsid = MpiLaunch.findOnPath("setsid");
        setsid.ifPresent(p -> cmd.add(p.toString()));
        cmd.add(mpirunCommand.getFirst());
        for (String name : env.keySet()) {
            cmd.add("-x");
            cmd.add(name);
        }
        cmd.addAll(mpirunCommand.subList(1, mpirunCommand.size()));
        if (setsid.isEmpty()) {
            out.println("note: setsid (util-linux) is not on the PATH, so mpirun shares this terminal: Ctrl-C ends the ranks "
                    + "at once instead of after the current step");
            out.flush();
        }
        ProcessBuilder pb = new ProcessBuilder(cmd).inheritIO();
        pb.environment().putAll(env);
        Process mpirun = pb.start();
        var ended = new java.util.concurrent.atomic.AtomicBoolean();
        int code;
        StopSignals signals = StopSignals.install(List.of("INT", "TERM"), signal -> {
            System.err.println(lineStart() + "muon4j: " + signal + ": asking the ranks to stop after the current step, with a "
                    + "checkpoint; Ctrl-C again stops at once");
            System.err.flush();
            StopSignals.send(mpirun.pid(), "USR1");
        }, signal -> {
            System.err.println(lineStart() + "muon4j: " + signal + " again: ending mpirun and the ranks now");
            System.err.flush();
            ended.set(true);
            endNow(mpirun);
        });
        noteRefused(signals);
        try {
            code = mpirun.waitFor();
        } finally {
            signals.close();
            if (mpirun.isAlive()) {
                endNow(mpirun); // this thread was interrupted: leave nothing running
            }
        }
        boolean stopped;
        try {
            stopped = !Files.readString(report, StandardCharsets.UTF_8).isBlank();
            Files.deleteIfExists(report);
        } catch (NoSuchFileException e) {
            stopped = false;
        }
        if (stopped || ended.get()) {
            return STOPPED_EXIT_CODE;
        }
        if (code != 0) {
            out.println("mpirun exited with code " + code + "; the ranks' errors are above");
            out.flush();
        }
        return code;
    }

    /** SIGTERM to mpirun (it ends its ranks), SIGKILL after {@link #MPIRUN_GRACE}. */
    private static void endNow(Process mpirun) {
        mpirun.destroy();
        try {
            if (!mpirun.waitFor(MPIRUN_GRACE.toMillis(), java.util.concurrent.TimeUnit.MILLISECONDS)) {
                mpirun.destroyForcibly();
            }
        } catch (InterruptedException e) {
            mpirun.destroyForcibly();
            Thread.currentThread().interrupt();
        }
    }
}
