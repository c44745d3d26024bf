package dev.muon4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.backend.VectorBackend;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The optimizer benchmark's own arithmetic on small inputs: the singular-value band of known matrices,
 * and a Newton–Schulz row with both methods, their accuracy against float64 and the printed table.
 */
class OptimizerBenchmarkTest {
    @Test
    void bandOfKnownMatrices() {
        // [[3, 0, 0], [0, 0, -4]] has singular values 4 and 3; its transpose too.
        double[] x = {3, 0, 0, 0, 0, -4};
        assertBand(3, 4, OptimizerBenchmark.band(x, 2, 3));
        assertBand(3, 4, OptimizerBenchmark.band(new double[] {3, 0, 0, 0, 0, -4}, 3, 2));
        // diag(1, 2, 5) rotated by a 2×2 rotation in its first two rows: singular values 1, 2, 5.
        double c = 0.6;
        double s = 0.8;
        double[] rotated = {c * 1, -s * 2, 0, s * 1, c * 2, 0, 0, 0, 5};
        assertBand(1, 5, OptimizerBenchmark.band(rotated, 3, 3));
        // Repeated singular values (an invariant subspace for Lanczos): the identity's are all 1.
        double[] identity = new double[16];
        for (int i = 0; i < 4; i++) {
            identity[i * 4 + i] = 1;
        }
        assertBand(1, 1, OptimizerBenchmark.band(identity, 4, 4));
    }

    private static void assertBand(double min, double max, double[] band) {
        assertEquals(min, band[0], 1e-9, "smallest singular value");
        assertEquals(max, band[1], 1e-9, "largest singular value");
    }

    @Test
    void newtonSchulzRowHasBothMethodsAndTheirAccuracy() {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (VectorBackend backend = new VectorBackend(1)) {
            OptimizerBenchmark bench = new OptimizerBenchmark(backend, new PrintStream(bytes, true, StandardCharsets.UTF_8), 1);
            List<OptimizerBenchmark.NsResult> results = bench.runNewtonSchulz(new int[][] {{32, 128}, {96, 24}});
            for (OptimizerBenchmark.NsResult r : results) {
                assertTrue(r.nsSeconds() > 0 && r.gramSeconds() > 0 && r.gemmGflops() > 0, r.toString());
                for (OptimizerBenchmark.Accuracy a : List.of(r.standardAccuracy(), r.gramAccuracy())) {
                    assertNotNull(a);
                    assertTrue(a.relativeError() < 1e-4 && a.maxAbsError() < 1e-4, a.toString());
                    assertEquals(a.referenceMinSingular(), a.minSingular(), 1e-4, a.toString());
                    assertEquals(a.referenceMaxSingular(), a.maxSingular(), 1e-4, a.toString());
                    // Keller Jordan's five steps: singular values near [0.68, 1.13] (DESIGN.md).
                    assertTrue(a.referenceMinSingular() > 0.6 && a.referenceMaxSingular() < 1.21, a.toString());
                }
            }
        }
        String table = bytes.toString(StandardCharsets.UTF_8);
        assertTrue(table.contains("32x128") && table.contains("96x24") && table.contains("Gram s"), table);
    }

    /**
     * The bfloat16 rows: on oneDNN (bfloat16 products where the processor has them) and on the Vector API
     * backend (float32 products rounded), each result within the bfloat16 band of float64, and the bfloat16
     * GEMM rate measured where the backend has bfloat16 products and absent where not.
     */
    @Test
    void bfloat16RowsAndTheBfloat16GemmRate() {
        try (dev.muon4j.backend.Backend oneDnn = dev.muon4j.backend.Backends.openOneDnn(2); VectorBackend vector = new VectorBackend(1)) {
            for (dev.muon4j.backend.Backend backend : List.of(oneDnn, vector)) {
                ByteArrayOutputStream bytes = new ByteArrayOutputStream();
                OptimizerBenchmark bench = new OptimizerBenchmark(backend, new PrintStream(bytes, true, StandardCharsets.UTF_8), 1);
                for (OptimizerBenchmark.Bf16NsResult r : bench.runNewtonSchulzBf16(new int[][] {{32, 128}, {96, 24}})) {
                    assertTrue(r.f32Seconds() > 0 && r.bf16Seconds() > 0, r.toString());
                    assertNotNull(r.bf16Accuracy());
                    assertTrue(r.bf16Accuracy().relativeError() < 8e-2 && r.bf16Accuracy().relativeError() > 1e-4,
                            "bfloat16, so neither worse than its band nor as close as float32: " + r);
                }
                String table = bytes.toString(StandardCharsets.UTF_8);
                assertTrue(table.contains("32x128") && table.contains("bf16 s"), table);
                assertEquals(backend.bf16Matmul().isPresent(), bench.bf16GemmGflops(64, 64, 64).isPresent(), backend.description());
                bench.bf16GemmGflops(64, 64, 64).ifPresent(g -> assertTrue(g > 0, "GFLOP/s " + g));
            }
        }
    }
}
