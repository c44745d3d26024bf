package dev.muon4j.distributed;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.File;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class MpiCollectivesTest {

    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT;

    static boolean mpirunExists() {
        String path = System.getenv("PATH");
        if (path == null) return false;
        for (String dir : path.split(File.pathSeparator)) {
            if (Files.isExecutable(Path.of(dir, "mpirun"))) return true;
        }
        return false;
    }

    @ParameterizedTest
    @ValueSource(ints = {2, 4})
    void selfCheckUnderMpirun(int np) throws Exception {
        assumeTrue(mpirunExists(), "mpirun not on PATH (apt-get install openmpi-bin libopenmpi-dev)");
        assumeTrue(MpiCollectives.available(), () -> "libmpi not loadable: " + MpiCollectives.unavailableReason());
        String java = ProcessHandle.current().info().command().orElse(
                Path.of(System.getProperty("java.home"), "bin", "java").toString());
        List<String> cmd = new ArrayList<>(List.of("mpirun", "--allow-run-as-root", "--oversubscribe", "-np", String.valueOf(np),
                java, "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-Xmx512m",
                "-XX:TieredStopAtLevel=1", "-Xshare:auto",
                "-cp", System.getProperty("java.class.path"), MpiSelfCheck.class.getName()));
        if (np == 2) {
            // The optimizer conformance suite's cases over MPI (OptimizerConformanceTest runs them over 1-4 in-process ranks).
            cmd.add("--conformance");
        }
        String bench = System.getProperty("muon4j.mpi.bench");
        if (bench != null) {
            cmd.addAll(List.of("--bench", bench));
        }
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        Process p = pb.start();
        StringBuilder out = new StringBuilder();
        Thread reader = Thread.ofVirtual().start(() -> {
            try {
                out.append(new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8));
            } catch (Exception ignored) {
                // process killed
            }
        });
        boolean done = p.waitFor(120, TimeUnit.SECONDS);
        if (!done) {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
        }
        reader.join(5000);
        System.out.println("mpirun -np " + np + " output:\n" + out);
        assertTrue(done, "mpirun -np " + np + " did not finish in 120 s; output:\n" + out);
        assertEquals(0, p.exitValue(), "mpirun -np " + np + " failed; output:\n" + out);
        for (int r = 0; r < np; r++) {
            assertTrue(out.toString().contains("rank " + r + ": OK"), "no OK from rank " + r + ":\n" + out);
        }
    }

    /** Without mpirun this JVM is an MPI singleton: size 1, collectives are copies. MPI can be initialized once per process. */
    @Test
    void singletonWorld() {
        assumeTrue(MpiCollectives.available(), () -> "libmpi not loadable: " + MpiCollectives.unavailableReason());
        assumeTrue(System.getenv("OMPI_COMM_WORLD_SIZE") == null, "running under mpirun");
        try (MpiCollectives c = new MpiCollectives(); Arena a = Arena.ofConfined()) {
            assertEquals(0, c.rank());
            assertEquals(1, c.size());
            MemorySegment buf = a.allocate(F, 8);
            MemorySegment out = a.allocate(F, 8);
            for (int i = 0; i < 8; i++) buf.setAtIndex(F, i, i + 0.25f);
            c.allReduceSum(buf, 8);
            c.reduceScatterSum(buf, out, 8);
            for (int i = 0; i < 8; i++) assertEquals(i + 0.25f, out.getAtIndex(F, i));
            out.fill((byte) 0);
            c.allGather(buf, 8, out);
            for (int i = 0; i < 8; i++) assertEquals(i + 0.25f, out.getAtIndex(F, i));
            out.fill((byte) 0);
            c.allGatherV(buf, 5, out, new long[] {5});
            for (int i = 0; i < 5; i++) assertEquals(i + 0.25f, out.getAtIndex(F, i));
            assertEquals(0f, out.getAtIndex(F, 5));
            c.broadcast(buf, 8, 0);
            for (int i = 0; i < 8; i++) assertEquals(i + 0.25f, buf.getAtIndex(F, i));
            c.barrier();
            var e = assertThrows(IllegalArgumentException.class, () -> c.broadcast(buf, 8, 1));
            assertTrue(e.getMessage().contains("root 1"), e.getMessage());
            var big = assertThrows(IllegalArgumentException.class,
                    () -> c.allReduceSum(MemorySegment.ofAddress(buf.address()).reinterpret(1L << 34), 1L << 32));
            assertTrue(big.getMessage().contains("Integer.MAX_VALUE"), big.getMessage());
            var heap = assertThrows(IllegalArgumentException.class, () -> c.allReduceSum(MemorySegment.ofArray(new float[4]), 4));
            assertTrue(heap.getMessage().contains("native"), heap.getMessage());
        }
    }
}
