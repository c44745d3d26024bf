package dev.muon4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.muon4j.distributed.MpiCollectives;
import dev.muon4j.io.SafeTensors;
import dev.muon4j.train.CheckpointStore;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * {@code muon4j train} as real Open MPI jobs: {@code mpirun -np 2} and {@code -np 4} end where one
 * process ends for the hybrid (Muon) and AdamW, for the dense and the Mixture-of-Experts model; a run paused by 2 ranks resumes on 4; a rank killed
 * with SIGKILL or stopped with SIGSTOP ends the job with a non-zero exit in bounded time, and the
 * run resumes from its last complete checkpoint.
 */
class MpiTrainTest {
    /** Steps of the runs that get a rank killed or stopped: far more than the test lets them reach. */
    static final int LONG_RUN = 100_000;

    @TempDir
    Path tmp;

    static boolean mpiUsable() {
        return MpiLaunch.findMpirun().isPresent() && MpiCollectives.available();
    }

    static List<String> trainArgs(String optimizer, int steps, Path runDir, String... extra) {
        List<String> args = new ArrayList<>(List.of("train", "--optimizer", optimizer, "--layers", "2", "--width", "32",
                "--heads", "2", "--mlp-width", "64", "--context", "16", "--init-std", "0.1", "--batch", "8", "--steps",
                Integer.toString(steps), "--warmup", "1", "--eval-every", "2", "--eval-batches", "2", "--checkpoint-every", "2",
                "--seed", "3", "--run-dir", runDir.toString(), "--backend", "VECTOR", "--threads", "1"));
        args.addAll(List.of(extra));
        return args;
    }

    static List<String> java(List<String> args) {
        String java = ProcessHandle.current().info().command().orElse(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        List<String> cmd = new ArrayList<>(List.of(java, "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
                "-Xmx400m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", System.getProperty("java.class.path"),
                "dev.muon4j.cli.Main"));
        cmd.addAll(args);
        return cmd;
    }

    static List<String> mpirun(int np, List<String> args) {
        List<String> cmd = new ArrayList<>(List.of("mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none",
                "-np", Integer.toString(np)));
        cmd.addAll(java(args));
        return cmd;
    }

    record Run(int exit, String output, double seconds) {
    }

    static Run run(List<String> cmd, Path log, long timeoutSeconds) throws Exception {
        long t0 = System.nanoTime();
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        boolean done = p.waitFor(timeoutSeconds, TimeUnit.SECONDS);
        if (!done) {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
            p.waitFor();
        }
        String out = Files.readString(log, StandardCharsets.UTF_8);
        assertTrue(done, "did not finish in " + timeoutSeconds + " s: " + cmd + "\n" + out);
        return new Run(p.exitValue(), out, (System.nanoTime() - t0) / 1e9);
    }

    static Map<String, float[]> weights(Path runDir) throws IOException {
        CheckpointStore.Checkpoint cp = new CheckpointStore(runDir, 3, s -> { }).latest().orElseThrow();
        Map<String, float[]> out = new TreeMap<>();
        SafeTensors.read(cp.dir().resolve(CheckpointStore.MODEL_FILE)).tensors().forEach((k, v) -> out.put(k, v.data()));
        return out;
    }

    static long latestStep(Path runDir) throws IOException {
        return new CheckpointStore(runDir, 3, s -> { }).latest().map(CheckpointStore.Checkpoint::step).orElse(0L);
    }

    static void assertClose(Map<String, float[]> want, Map<String, float[]> got, String what) {
        assertEquals(want.keySet(), got.keySet());
        for (String name : want.keySet()) {
            float[] a = want.get(name);
            float[] b = got.get(name);
            double diff = 0;
            double norm = 0;
            for (int i = 0; i < a.length; i++) {
                diff += Math.pow(a[i] - b[i], 2);
                norm += Math.pow(a[i], 2);
            }
            double rel = Math.sqrt(diff / norm);
            assertTrue(rel <= 2e-5, what + ": " + name + " relative difference " + rel);
        }
    }

    @ParameterizedTest
    @CsvSource({"muon, 2, DISTRIBUTED_MUON", "muon, 4, WHOLE_MATRIX", "adamw, 2, DISTRIBUTED_MUON", "adamw, 4, DISTRIBUTED_MUON"})
    void mpiRanksEndWhereOneProcessEnds(String optimizer, int np, String sharding) throws Exception {
        assumeTrue(mpiUsable(), "mpirun or libmpi missing (apt-get install openmpi-bin libopenmpi-dev)");
        Run one = run(java(trainArgs(optimizer, 4, tmp.resolve("one"))), tmp.resolve("one.log"), 120);
        assertEquals(0, one.exit(), one.output());
        Run many = run(mpirun(np, trainArgs(optimizer, 4, tmp.resolve("many"), "--ranks", Integer.toString(np), "--sharding", sharding)),
                tmp.resolve("many.log"), 180);
        assertEquals(0, many.exit(), many.output());
        assertTrue(many.output().contains("data parallel: " + np + " ranks"), many.output());
        assertClose(weights(tmp.resolve("one")), weights(tmp.resolve("many")), np + " MPI ranks, " + optimizer);
        // Only rank 0 prints: one "done" line.
        assertEquals(1, many.output().lines().filter(l -> l.startsWith("done:")).count(), many.output());
    }

    /**
     * The Mixture-of-Experts model (latent attention, 4 experts of which 2 active plus 1 shared, the
     * routers balanced at a fast rate so that their biases move): 2 ranks end where one process ends,
     * the biases included, with Muon (each expert's matrices orthogonalized on one rank) and with AdamW.
     */
    @ParameterizedTest
    @CsvSource({"muon", "adamw"})
    void mpiRanksTrainTheMoeModelAsOneProcessDoes(String optimizer) throws Exception {
        assumeTrue(mpiUsable(), "mpirun or libmpi missing (apt-get install openmpi-bin libopenmpi-dev)");
        String[] moe = {"--model", "deepseek", "--experts", "4", "--active-experts", "2", "--expert-width", "16",
                "--shared-experts", "1", "--router-bias-rate", "0.01"};
        Run one = run(java(trainArgs(optimizer, 4, tmp.resolve("one"), moe)), tmp.resolve("one.log"), 120);
        assertEquals(0, one.exit(), one.output());
        List<String> many = new ArrayList<>(List.of(moe));
        many.addAll(List.of("--ranks", "2"));
        Run two = run(mpirun(2, trainArgs(optimizer, 4, tmp.resolve("many"), many.toArray(String[]::new))), tmp.resolve("many.log"), 180);
        assertEquals(0, two.exit(), two.output());
        assertTrue(two.output().contains("data parallel: 2 ranks"), two.output());
        Map<String, float[]> want = weights(tmp.resolve("one"));
        assertTrue(want.keySet().stream().anyMatch(n -> n.contains("mlp.experts.3."))
                && want.containsKey("model.layers.1.mlp.gate.e_score_correction_bias"), want.keySet().toString());
        float[] bias = want.get("model.layers.1.mlp.gate.e_score_correction_bias");
        assertTrue(java.util.stream.IntStream.range(0, bias.length).anyMatch(i -> bias[i] != 0), "the routers' biases moved");
        assertClose(want, weights(tmp.resolve("many")), "2 MPI ranks, MoE, " + optimizer);
        assertEquals(1, two.output().lines().filter(l -> l.startsWith("done:")).count(), two.output());
    }

    /**
     * The form used across machines: a hostfile and TCP between the ranks (shared memory turned
     * off), here with every slot on localhost.
     */
    @Test
    void aHostfileOverTcpEndsWhereOneProcessEnds() throws Exception {
        assumeTrue(mpiUsable(), "mpirun or libmpi missing");
        Path hosts = Files.writeString(tmp.resolve("hosts"), "localhost slots=4\n");
        Run one = run(java(trainArgs("muon", 4, tmp.resolve("one"))), tmp.resolve("one.log"), 120);
        assertEquals(0, one.exit(), one.output());
        List<String> cmd = new ArrayList<>(List.of("mpirun", "--allow-run-as-root", "--hostfile", hosts.toString(),
                "--mca", "btl", "tcp,self", "--bind-to", "none", "-np", "4"));
        cmd.addAll(java(trainArgs("muon", 4, tmp.resolve("tcp"))));
        Run tcp = run(cmd, tmp.resolve("tcp.log"), 180);
        assertEquals(0, tcp.exit(), tcp.output());
        assertTrue(tcp.output().contains("data parallel: 4 ranks"), tcp.output());
        assertClose(weights(tmp.resolve("one")), weights(tmp.resolve("tcp")), "4 ranks over TCP");
    }

    @Test
    void aRunPausedByTwoRanksResumesOnFour() throws Exception {
        assumeTrue(mpiUsable(), "mpirun or libmpi missing");
        Run one = run(java(trainArgs("muon", 6, tmp.resolve("one"))), tmp.resolve("one.log"), 120);
        assertEquals(0, one.exit(), one.output());
        Path dir = tmp.resolve("resumed");
        Run first = run(mpirun(2, trainArgs("muon", 6, dir, "--stop-after", "3")), tmp.resolve("first.log"), 180);
        assertEquals(0, first.exit(), first.output());
        assertEquals(3, latestStep(dir));
        Run rest = run(mpirun(4, trainArgs("muon", 6, dir, "--resume", "--sharding", "WHOLE_MATRIX")), tmp.resolve("rest.log"), 180);
        assertEquals(0, rest.exit(), rest.output());
        assertTrue(rest.output().contains("resumed from") && rest.output().contains("at step 3 on 4 ranks"), rest.output());
        assertClose(weights(tmp.resolve("one")), weights(dir), "2 MPI ranks to step 3, then 4");
    }

    /** The pid of MPI rank {@code rank} of the job training into {@code runDir}, found in /proc. */
    static Optional<Long> rankPid(Path runDir, int rank) throws IOException {
        try (Stream<Path> procs = Files.list(Path.of("/proc"))) {
            for (Path p : procs.filter(p -> p.getFileName().toString().matches("\\d+")).toList()) {
                try {
                    String cmdline = new String(Files.readAllBytes(p.resolve("cmdline")), StandardCharsets.UTF_8);
                    if (!cmdline.contains("dev.muon4j.cli.Main") || !cmdline.contains(runDir.toString()) || cmdline.startsWith("mpirun")) {
                        continue;
                    }
                    String env = new String(Files.readAllBytes(p.resolve("environ")), StandardCharsets.UTF_8);
                    if (env.contains("\0OMPI_COMM_WORLD_RANK=" + rank + "\0") || env.startsWith("OMPI_COMM_WORLD_RANK=" + rank + "\0")) {
                        return Optional.of(Long.parseLong(p.getFileName().toString()));
                    }
                } catch (IOException e) {
                    // the process ended while we looked
                }
            }
        }
        return Optional.empty();
    }

    /** Starts a long 2-rank job, waits for its first checkpoint, then signals rank 1; returns mpirun's outcome. */
    private Run signalRankOne(Path dir, String signal, String... extra) throws Exception {
        List<String> args = trainArgs("muon", LONG_RUN, dir, extra);
        Path log = tmp.resolve(dir.getFileName() + ".log");
        long t0 = System.nanoTime();
        Process p = new ProcessBuilder(mpirun(2, args)).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        try {
            long deadline = System.nanoTime() + 120_000_000_000L;
            while (latestStep(dir) < 2) {
                assertTrue(p.isAlive(), "the job ended early:\n" + Files.readString(log));
                assertTrue(System.nanoTime() < deadline, "no checkpoint after 120 s:\n" + Files.readString(log));
                Thread.sleep(100);
            }
            long pid = rankPid(dir, 1).orElseThrow(() -> new AssertionError("rank 1's process not found"));
            long signalled = System.nanoTime();
            assertEquals(0, new ProcessBuilder("kill", "-" + signal, Long.toString(pid)).start().waitFor());
            boolean done = p.waitFor(90, TimeUnit.SECONDS);
            String out = Files.readString(log, StandardCharsets.UTF_8);
            assertTrue(done, "mpirun still running 90 s after SIG" + signal + " to rank 1:\n" + out);
            return new Run(p.exitValue(), out, (System.nanoTime() - signalled) / 1e9);
        } finally {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
            p.waitFor();
            System.out.printf("job ran %.1f s in all%n", (System.nanoTime() - t0) / 1e9);
        }
    }

    @Test
    void aKilledRankEndsTheJobAndTheRunResumesFromItsLastCheckpoint() throws Exception {
        assumeTrue(mpiUsable(), "mpirun or libmpi missing");
        Path dir = tmp.resolve("killed");
        Run killed = signalRankOne(dir, "KILL");
        assertNotEquals(0, killed.exit(), killed.output());
        assertTrue(killed.seconds() < 60, "the job took " + killed.seconds() + " s to end after the kill");
        assertTrue(killed.output().contains("rank 1") || killed.output().contains("signal 9"), killed.output());
        long at = latestStep(dir);
        assertTrue(at >= 2 && at < LONG_RUN, "last complete checkpoint at step " + at);
        // Resume on 2 ranks for two more steps; equal to one process that ran straight to there.
        long target = at + 2;
        Run resumed = run(mpirun(2, trainArgs("muon", LONG_RUN, dir, "--resume", "--stop-after", Long.toString(target))),
                tmp.resolve("resumed.log"), 180);
        assertEquals(0, resumed.exit(), resumed.output());
        Run one = run(java(trainArgs("muon", LONG_RUN, tmp.resolve("one"), "--stop-after", Long.toString(target))), tmp.resolve("one.log"), 180);
        assertEquals(0, one.exit(), one.output());
        assertEquals(target, latestStep(dir));
        assertClose(weights(tmp.resolve("one")), weights(dir), "killed at step > " + at + ", resumed to " + target);
    }

    @Test
    void aHungRankEndsTheJobAfterTheRankTimeout() throws Exception {
        assumeTrue(mpiUsable(), "mpirun or libmpi missing");
        Run hung = signalRankOne(tmp.resolve("hung"), "STOP", "--rank-timeout", "5");
        assertNotEquals(0, hung.exit(), hung.output());
        assertTrue(hung.output().contains("rank 0 of 2 waited") && hung.output().contains("aborting the job"), hung.output());
        assertTrue(hung.seconds() < 60, "the job took " + hung.seconds() + " s to end after rank 1 stopped");
    }
}
