package dev.muon4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeFalse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Stopping {@code muon4j train} from outside, with real processes and signals: the first SIGINT
 * or SIGTERM finishes the step, saves a checkpoint and exits with 130, and {@code --resume} then
 * ends where an uninterrupted run ends; a second SIGINT exits at once; the launcher of an mpirun
 * job takes its ranks and mpirun with it however it ends, SIGKILL included.
 */
class JobControlTest {
    private static final Pattern STOPPED_AT = Pattern.compile("stopped on request after step (\\d+)");

    @TempDir
    Path tmp;

    /** The tiny run of the MPI tests, with checkpoints and validation only at the end or on a stop request. */
    private static List<String> args(int steps, Path runDir, String... extra) {
        List<String> args = new ArrayList<>(MpiTrainTest.trainArgs("muon", steps, runDir, extra));
        args.set(args.indexOf("--eval-every") + 1, "1000");
        args.set(args.indexOf("--checkpoint-every") + 1, "1000");
        return args;
    }

    /** Whether signal number {@code signal} is ignored in this JVM, and so in the processes it starts. */
    private static boolean ignoredHere(int signal) throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("SigIgn:")) {
                return (Long.parseUnsignedLong(line.substring(7).trim(), 16) & (1L << (signal - 1))) != 0;
            }
        }
        return false;
    }

    private static void assumeSigintReachesChildren() throws IOException {
        assumeFalse(ignoredHere(StopSignals.number("INT")), "SIGINT is ignored by this test JVM (started in the background "
                + "without job control), so by the processes it starts");
    }

    private static Process start(List<String> cmd, Path log) throws IOException {
        return new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
    }

    /** Waits until metrics.jsonl records {@code steps} training steps. */
    private static void awaitSteps(Path runDir, int steps, Process p, Path log) throws Exception {
        Path metrics = runDir.resolve("metrics.jsonl");
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (true) {
            if (Files.exists(metrics)) {
                long done = Files.readAllLines(metrics).stream().filter(l -> l.startsWith("{\"step\":")).count();
                if (done >= steps) {
                    return;
                }
            }
            assertTrue(p.isAlive(), () -> "the run ended before step " + steps + ":\n" + read(log));
            assertTrue(System.nanoTime() < deadline, () -> "no step " + steps + " after 120 s:\n" + read(log));
            Thread.sleep(50);
        }
    }

    private static void signal(long pid, String signal) throws Exception {
        assertEquals(0, new ProcessBuilder("kill", "-" + signal, Long.toString(pid)).start().waitFor(), "kill -" + signal + " " + pid);
    }

    private static String read(Path log) {
        try {
            return Files.readString(log, StandardCharsets.UTF_8);
        } catch (IOException e) {
            return "(" + e + ")";
        }
    }

    /** Waits up to {@code seconds} for {@code p} to end; returns the seconds it took. */
    private static double awaitExit(Process p, long seconds, Path log, String what) throws Exception {
        long t0 = System.nanoTime();
        boolean done = p.waitFor(seconds, TimeUnit.SECONDS);
        double took = (System.nanoTime() - t0) / 1e9;
        if (!done) {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
            p.waitFor();
            fail(what + ": still running " + seconds + " s later:\n" + read(log));
        }
        return took;
    }

    private static long stoppedAt(String output) {
        Matcher m = STOPPED_AT.matcher(output);
        assertTrue(m.find(), "no 'stopped on request after step N' in the output:\n" + output);
        return Long.parseLong(m.group(1));
    }

    private static void assertBitForBit(Map<String, float[]> want, Map<String, float[]> got, String what) {
        assertEquals(want.keySet(), got.keySet(), what);
        for (String name : want.keySet()) {
            float[] a = want.get(name);
            float[] b = got.get(name);
            assertEquals(a.length, b.length, what + ": " + name);
            for (int i = 0; i < a.length; i++) {
                if (Float.floatToRawIntBits(a[i]) != Float.floatToRawIntBits(b[i])) {
                    fail(what + ": " + name + "[" + i + "] is " + b[i] + ", uninterrupted " + a[i]);
                }
            }
        }
    }

    /**
     * One process and two thread ranks: SIGINT after the first step stops the run after the step in
     * progress with exit code 130 and a checkpoint of that step, the step the output names; the same
     * command with --resume then ends bit for bit where an uninterrupted run ends.
     */
    @ParameterizedTest
    @ValueSource(strings = {"process", "threads"})
    void sigintStopsAfterTheStepWithACheckpointAndResumeEndsLikeAnUninterruptedRun(String how) throws Exception {
        assumeSigintReachesChildren();
        int steps = 12;
        String[] ranks = how.equals("threads") ? new String[] {"--ranks", "2", "--launcher", "threads"} : new String[0];
        Path reference = tmp.resolve("reference");
        MpiTrainTest.Run straight = MpiTrainTest.run(MpiTrainTest.java(args(steps, reference, ranks)), tmp.resolve("reference.log"), 180);
        assertEquals(0, straight.exit(), straight.output());

        Path dir = tmp.resolve("stopped");
        Path log = tmp.resolve("stopped.log");
        Process p = start(MpiTrainTest.java(args(steps, dir, ranks)), log);
        awaitSteps(dir, 1, p, log);
        signal(p.pid(), "INT");
        double took = awaitExit(p, 60, log, "after SIGINT");
        String out = read(log);
        assertEquals(JobControl.STOPPED_EXIT_CODE, p.exitValue(), out);
        assertTrue(out.contains("SIGINT: stopping after the current step"), out);
        long at = stoppedAt(out);
        assertTrue(at >= 1 && at < steps, "stopped at step " + at + " of " + steps);
        assertEquals(at, MpiTrainTest.latestStep(dir), "the latest checkpoint is the step the output names\n" + out);
        assertTrue(out.contains("continue with: muon4j train") && out.contains("--resume"), out);
        System.out.printf("%s: SIGINT after step 1 stopped at step %d, %.1f s after the signal%n", how, at, took);

        List<String> resume = args(steps, dir, ranks);
        resume.add("--resume");
        MpiTrainTest.Run rest = MpiTrainTest.run(MpiTrainTest.java(resume), tmp.resolve("rest.log"), 180);
        assertEquals(0, rest.exit(), rest.output());
        assertEquals(steps, MpiTrainTest.latestStep(dir));
        assertBitForBit(MpiTrainTest.weights(reference), MpiTrainTest.weights(dir), how + ": stopped at step " + at + ", resumed");
    }

    /**
     * A second SIGINT while the first is still being handled (it has been taken as a stop request,
     * and the step in progress, slow here, is not done) ends the process at once with 130, without
     * the stop's checkpoint.
     */
    @ParameterizedTest
    @ValueSource(strings = {"process", "threads"})
    void aSecondSigintExitsAtOnce(String how) throws Exception {
        assumeSigintReachesChildren();
        Path dir = tmp.resolve("run");
        Path log = tmp.resolve("run.log");
        List<String> args = args(MpiTrainTest.LONG_RUN, dir, "--accumulate", "16");
        if (how.equals("threads")) {
            args.addAll(List.of("--ranks", "2", "--launcher", "threads"));
        }
        Process p = start(MpiTrainTest.java(args), log);
        awaitSteps(dir, 1, p, log);
        signal(p.pid(), "INT");
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (!read(log).contains("SIGINT: stopping after the current step")) {
            assertTrue(p.isAlive() && System.nanoTime() < deadline, () -> "the first SIGINT was not taken as a stop request:\n" + read(log));
            Thread.sleep(10);
        }
        assertFalse(STOPPED_AT.matcher(read(log)).find(), "the step in progress ended before the second SIGINT could be sent");
        long t0 = System.nanoTime();
        signal(p.pid(), "INT");
        awaitExit(p, 30, log, "after the second SIGINT");
        double took = (System.nanoTime() - t0) / 1e9;
        String out = read(log);
        assertEquals(JobControl.STOPPED_EXIT_CODE, p.exitValue(), out);
        assertTrue(out.contains("SIGINT: stopping after the current step") && out.contains("SIGINT again: stopping at once"), out);
        assertFalse(STOPPED_AT.matcher(out).find(), "the first SIGINT's stop finished before the second came:\n" + out);
        assertEquals(0, MpiTrainTest.latestStep(dir), "no checkpoint was written");
        assertTrue(took < 5, "the process took " + took + " s to end after the second SIGINT");
        System.out.printf("%s: a second SIGINT ended the process %.2f s later%n", how, took);
    }

    /** The processes other than {@code launcher} whose command line names {@code runDir}: mpirun and the ranks. */
    private static List<Long> jobProcesses(Path runDir, long launcher) throws IOException {
        List<Long> pids = new ArrayList<>();
        try (Stream<Path> procs = Files.list(Path.of("/proc"))) {
            for (Path p : procs.filter(p -> p.getFileName().toString().matches("\\d+")).toList()) {
                long pid = Long.parseLong(p.getFileName().toString());
                if (pid == launcher) {
                    continue;
                }
                try {
                    String cmdline = new String(Files.readAllBytes(p.resolve("cmdline")), StandardCharsets.UTF_8);
                    if (cmdline.contains("\0" + runDir + "\0")) {
                        pids.add(pid);
                    }
                } catch (IOException e) {
                    // the process ended while we looked
                }
            }
        }
        return pids;
    }

    /** Starts {@code muon4j train --ranks 2} under mpirun as a launcher process; returns it once both ranks train. */
    private Process launchTwoRanks(Path dir, Path log, String... extra) throws Exception {
        List<String> args = args(MpiTrainTest.LONG_RUN, dir, "--ranks", "2");
        args.addAll(List.of(extra));
        Process launcher = start(MpiTrainTest.java(args), log);
        awaitSteps(dir, 1, launcher, log);
        List<Long> job = jobProcesses(dir, launcher.pid());
        assertEquals(3, job.size(), "mpirun and two ranks, found " + job.stream().map(pid -> ProcessHandle.of(pid)
                .flatMap(h -> h.info().command()).orElse("?")).toList() + "\n" + read(log));
        return launcher;
    }

    /** Waits until none of {@code pids} runs; returns the seconds that took, at most {@code seconds}. */
    private static double awaitGone(List<Long> pids, long seconds, Path log) throws Exception {
        long t0 = System.nanoTime();
        while (pids.stream().anyMatch(pid -> JobControl.isRunning(pid, Optional.empty()))) {
            if (System.nanoTime() - t0 > TimeUnit.SECONDS.toNanos(seconds)) {
                List<Long> left = pids.stream().filter(pid -> JobControl.isRunning(pid, Optional.empty())).toList();
                left.forEach(pid -> ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly));
                fail("still running " + seconds + " s later: " + left + "\n" + read(log));
            }
            Thread.sleep(50);
        }
        return (System.nanoTime() - t0) / 1e9;
    }

    /** SIGKILL of the launcher: mpirun and both ranks are gone within seconds, and say why. */
    @Test
    void killingTheLauncherEndsMpirunAndEveryRank() throws Exception {
        assumeTrue(MpiTrainTest.mpiUsable(), "mpirun or libmpi missing");
        Path dir = tmp.resolve("run");
        Path log = tmp.resolve("launcher.log");
        Process launcher = launchTwoRanks(dir, log);
        List<Long> job = jobProcesses(dir, launcher.pid());
        try {
            signal(launcher.pid(), "KILL");
            double took = awaitGone(job, 30, log);
            assertTrue(took < 10, "mpirun and the ranks took " + took + " s to end after the launcher was killed");
            assertTrue(read(log).contains("the launcher of this job (process " + launcher.pid() + ") has ended"), read(log));
            System.out.printf("launcher killed: mpirun and the ranks gone %.1f s later%n", took);
        } finally {
            job.forEach(pid -> ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly));
            launcher.destroyForcibly();
        }
    }

    /**
     * SIGTERM or SIGINT to the launcher: every rank stops after the same step with a checkpoint of it,
     * mpirun and the ranks are gone within seconds, the launcher exits with 130, and --resume continues.
     */
    @ParameterizedTest
    @ValueSource(strings = {"TERM", "INT"})
    void aStopSignalToTheLauncherStopsEveryRankWithACheckpoint(String signal) throws Exception {
        assumeTrue(MpiTrainTest.mpiUsable(), "mpirun or libmpi missing");
        if (signal.equals("INT")) {
            assumeSigintReachesChildren();
        }
        Path dir = tmp.resolve("run");
        Path log = tmp.resolve("launcher.log");
        Process launcher = launchTwoRanks(dir, log);
        List<Long> job = jobProcesses(dir, launcher.pid());
        try {
            signal(launcher.pid(), signal);
            double took = awaitExit(launcher, 60, log, "the launcher after SIG" + signal);
            double gone = awaitGone(job, 10, log);
            String out = read(log);
            assertEquals(JobControl.STOPPED_EXIT_CODE, launcher.exitValue(), out);
            assertTrue(took < 30, "the job took " + took + " s to stop after SIG" + signal);
            long at = stoppedAt(out);
            assertEquals(at, MpiTrainTest.latestStep(dir), "the latest checkpoint is the step the output names\n" + out);
            assertTrue(out.contains("continue with: muon4j train") && out.contains("--resume"), out);
            System.out.printf("SIG%s to the launcher: stopped at step %d, %.1f s after the signal (+%.1f s until all were gone)%n",
                    signal, at, took, gone);

            List<String> resume = args(MpiTrainTest.LONG_RUN, dir, "--ranks", "2", "--resume", "--stop-after", Long.toString(at + 2));
            MpiTrainTest.Run rest = MpiTrainTest.run(MpiTrainTest.java(resume), tmp.resolve("rest.log"), 180);
            assertEquals(0, rest.exit(), rest.output());
            assertTrue(rest.output().contains("resumed from"), rest.output());
            assertEquals(at + 2, MpiTrainTest.latestStep(dir));
        } finally {
            job.forEach(pid -> ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly));
            launcher.destroyForcibly();
        }
    }

    /** Under mpirun started by hand, SIGUSR1 to mpirun (which forwards it) stops every rank with a checkpoint; mpirun exits with 130. */
    @Test
    void sigusr1ToMpirunStopsEveryRankWithACheckpoint() throws Exception {
        assumeTrue(MpiTrainTest.mpiUsable(), "mpirun or libmpi missing");
        Path dir = tmp.resolve("run");
        Path log = tmp.resolve("mpirun.log");
        Process mpirun = start(MpiTrainTest.mpirun(2, args(MpiTrainTest.LONG_RUN, dir)), log);
        try {
            awaitSteps(dir, 1, mpirun, log);
            signal(mpirun.pid(), "USR1");
            double took = awaitExit(mpirun, 60, log, "mpirun after SIGUSR1");
            String out = read(log);
            assertEquals(JobControl.STOPPED_EXIT_CODE, mpirun.exitValue(), out);
            assertEquals(stoppedAt(out), MpiTrainTest.latestStep(dir), out);
            System.out.printf("SIGUSR1 to mpirun: the job stopped %.1f s later%n", took);
        } finally {
            mpirun.descendants().forEach(ProcessHandle::destroyForcibly);
            mpirun.destroyForcibly();
        }
    }
}
