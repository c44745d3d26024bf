package dev.muon4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Failures that start on one MPI rank: the job ends promptly with that rank's error (it aborts
 * the job rather than waiting in MPI_Finalize for ranks blocked in a collective), and
 * {@code --ranks N} never relaunches itself under a launcher that is not Open MPI's.
 */
class MpiFaultTest {
    @TempDir
    Path tmp;

    /**
     * Rank 0 alone fails mid-run (metrics.jsonl can no longer be appended to: a full disk, a
     * removed directory...): the job ends within seconds, not after the 60 s rank timeout, and
     * rank 0's own error is printed.
     */
    @Test
    void aFailureOnRankZeroAloneEndsTheJobPromptlyAndSaysWhy() throws Exception {
        assumeTrue(MpiTrainTest.mpiUsable(), "mpirun or libmpi missing");
        Path dir = tmp.resolve("run");
        List<String> args = new java.util.ArrayList<>(MpiTrainTest.trainArgs("muon", 100_000, dir, "--rank-timeout", "60"));
        args.set(args.indexOf("--eval-every") + 1, "100000");
        args.set(args.indexOf("--checkpoint-every") + 1, "0");
        Path log = tmp.resolve("job.log");
        Process p = new ProcessBuilder(MpiTrainTest.mpirun(2, args)).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        try {
            Path metrics = dir.resolve("metrics.jsonl");
            long deadline = System.nanoTime() + 120_000_000_000L;
            while (!Files.exists(metrics) || Files.size(metrics) == 0) {
                assertTrue(p.isAlive() && System.nanoTime() < deadline, Files.readString(log));
                Thread.sleep(100);
            }
            Files.delete(metrics);
            Files.createDirectory(metrics); // rank 0's next append fails; the other rank is unaffected
            long broken = System.nanoTime();
            assertTrue(p.waitFor(120, TimeUnit.SECONDS), "job still running");
            double seconds = (System.nanoTime() - broken) / 1e9;
            String out = Files.readString(log, StandardCharsets.UTF_8);
            assertTrue(out.contains("cannot append"), "rank 0's error is not in the output:\n" + out);
            assertTrue(seconds < 30, "the job took " + seconds + " s (the rank timeout) to end:\n" + out);
        } finally {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
            p.waitFor();
        }
    }

    /**
     * An "mpirun" first on the PATH that is not Open MPI's (it sets PMI_* variables, like MPICH's
     * hydra or a site wrapper) is not used to relaunch: it is asked its version once, and the run
     * falls back to threads. Before, every rank relaunched mpirun again (N^depth processes); the
     * stand-in here would stop at depth 3.
     */
    @Test
    void theMpirunRelaunchDoesNotRecurse() throws Exception {
        Path bin = Files.createDirectories(tmp.resolve("bin"));
        Path calls = tmp.resolve("calls.log");
        Path fake = bin.resolve("mpirun");
        Files.writeString(fake, """
                #!/bin/bash
                depth=${FAKE_MPIRUN_DEPTH:-0}
                echo "depth=$depth" >> %s
                [ "$depth" -ge 3 ] && exit 0
                while [ $# -gt 0 ]; do case "$1" in -np|--bind-to) shift 2;; -*) shift;; *) break;; esac; done
                FAKE_MPIRUN_DEPTH=$((depth+1)) PMI_RANK=0 PMI_SIZE=2 exec "$@"
                """.formatted(calls));
        Files.setPosixFilePermissions(fake, PosixFilePermissions.fromString("rwxr-xr-x"));
        List<String> cmd = MpiTrainTest.java(MpiTrainTest.trainArgs("muon", 2, tmp.resolve("run"), "--ranks", "2"));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(tmp.resolve("out.log").toFile());
        pb.environment().put("PATH", bin + ":" + System.getenv("PATH"));
        pb.environment().keySet().removeIf(k -> k.startsWith("OMPI_") || k.startsWith("PMI"));
        Process p = pb.start();
        assertTrue(p.waitFor(180, TimeUnit.SECONDS));
        List<String> lines = Files.readAllLines(calls);
        assertEquals(1, lines.size(), "mpirun was started " + lines.size() + " times, nested: " + lines + "\n"
                + Files.readString(tmp.resolve("out.log")));
    }
}
