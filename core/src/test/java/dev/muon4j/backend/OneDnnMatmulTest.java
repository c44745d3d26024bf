package dev.muon4j.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.muon4j.tensor.BFloat16;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * oneDNN's bfloat16 matmul ({@link OneDnnBackend#bf16Matmul()}) against a float64 product of the same
 * bfloat16 inputs written here: every element within half a bfloat16 ulp of the float32 sum plus
 * that sum's own rounding error, over transposes, leading dimensions wider than the matrix, alpha and
 * beta. Runs only where the processor multiplies bfloat16 pairs (AVX512_BF16 or AMX); the test that
 * the backend offers it exactly there runs everywhere.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class OneDnnMatmulTest {
    private OneDnnBackend oneDnn;

    @BeforeAll
    void open() {
        oneDnn = Backends.openOneDnn(2);
    }

    @AfterAll
    void close() {
        oneDnn.close();
    }

    @Test
    void offeredExactlyWhereTheProcessorHasBfloat16Products() {
        boolean bf16Isa = oneDnn.isa().contains("BF16") || oneDnn.isa().contains("AMX")
                || oneDnn.isa().startsWith("AVX-512 (isa"); // the ISAs above AVX512_BF16 are printed by their bits
        assertEquals(bf16Isa, oneDnn.bf16Matmul().isPresent(), oneDnn.isa());
        if (bf16Isa) {
            assertSame(oneDnn.bf16Matmul().get(), oneDnn.bf16Matmul().get(), "one instance per backend");
            var workers = oneDnn.concurrentWorkers();
            assertNotSame(workers.get(0).bf16Matmul().get(), workers.get(1).bf16Matmul().get(), "each worker has its own");
        }
    }

    private Bf16Matmul matmul() {
        assumeTrue(oneDnn.bf16Matmul().isPresent(), "no bfloat16 products on this processor (" + oneDnn.isa() + ")");
        return oneDnn.bf16Matmul().get();
    }

    /** A rows×cols bfloat16 matrix with leading dimension ld, values in [-1, 1), and its float values (row-major, ld). */
    private static MemorySegment random(Arena arena, int rows, int cols, int ld, long seed, float[] values) {
        MemorySegment s = arena.allocate(Bf16Matmul.bytes(rows, cols, ld) + 64, 64);
        SplittableRandom r = new SplittableRandom(seed);
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < ld; j++) {
                long at = (long) i * ld + j;
                if (at * 2 >= s.byteSize()) {
                    break;
                }
                float v = BFloat16.round((float) (r.nextDouble() * 2 - 1));
                s.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, at, BFloat16.toBits(v));
                if (j < cols) {
                    values[i * cols + j] = v;
                }
            }
        }
        return s;
    }

    private static float get(MemorySegment s, long index) {
        return BFloat16.fromBits(s.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, index));
    }

    @ParameterizedTest(name = "{0}{1} {2}×{3}×{4} pad {5} alpha {6} beta {7}")
    @CsvSource({
            "N, N, 37, 29, 53, 0, 1, 0",
            "N, T, 64, 64, 300, 0, 1, 0",
            "N, N, 96, 160, 96, 0, 2.0315, -4.775",
            "N, N, 96, 200, 96, 0, 1, 3.4445",
            "T, N, 45, 70, 33, 5, 0.5, 0.25",
            "T, T, 17, 23, 129, 3, -1, 1",
            "N, T, 1, 1, 1, 0, 1, 0",
    })
    void matchesAFloat64ProductOfTheSameInputs(String ta, String tb, int m, int n, int k, int pad,
                                               float alpha, float beta) {
        Bf16Matmul mm = matmul();
        boolean transA = ta.equals("T");
        boolean transB = tb.equals("T");
        int aRows = transA ? k : m;
        int aCols = transA ? m : k;
        int bRows = transB ? n : k;
        int bCols = transB ? k : n;
        int lda = aCols + pad;
        int ldb = bCols + pad;
        int ldc = n + pad;
        try (Arena arena = Arena.ofConfined()) {
            float[] av = new float[aRows * aCols];
            float[] bv = new float[bRows * bCols];
            float[] cv = new float[m * n];
            MemorySegment a = random(arena, aRows, aCols, lda, 1, av);
            MemorySegment b = random(arena, bRows, bCols, ldb, 2, bv);
            MemorySegment c = random(arena, m, n, ldc, 3, cv);
            // a padding element of C past each row's end must be left alone
            short sentinel = BFloat16.toBits(123f);
            if (pad > 0) {
                for (int i = 0; i < m - 1; i++) {
                    c.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, (long) i * ldc + n, sentinel);
                }
            }
            mm.gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
            double worst = 0;
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n; j++) {
                    double sum = 0;
                    double abs = 0;
                    for (int p = 0; p < k; p++) {
                        double x = transA ? av[p * aCols + i] : av[i * aCols + p];
                        double y = transB ? bv[j * bCols + p] : bv[p * bCols + j];
                        sum += x * y;
                        abs += Math.abs(x * y);
                    }
                    double want = alpha * sum + beta * cv[i * n + j];
                    double sumError = (k + 2) * Math.ulp(1f) * (Math.abs(alpha) * abs + Math.abs(beta * cv[i * n + j]));
                    // half a bfloat16 ulp of |want| is |want|·2^-8 at most; the float32 sum adds its own error
                    double bound = Math.abs(want) * 0x1p-8 + 2 * sumError + 1e-30;
                    double got = get(c, (long) i * ldc + j);
                    worst = Math.max(worst, Math.abs(got - want) / bound);
                    assertTrue(Math.abs(got - want) <= bound, "C[" + i + "][" + j + "] = " + got + ", float64 " + want + ", bound " + bound);
                }
                if (pad > 0 && i < m - 1) {
                    assertEquals(sentinel, c.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, (long) i * ldc + n), "padding of row " + i);
                }
            }
            System.out.printf("bf16 matmul %s%s %d×%d×%d: worst error %.2f of its bound%n", ta, tb, m, n, k, worst);
        }
    }

    @Test
    void anEmptySumScalesC() {
        Bf16Matmul mm = matmul();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment c = arena.allocate(2L * 6);
            for (int i = 0; i < 6; i++) {
                c.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, BFloat16.toBits(i + 1));
            }
            MemorySegment empty = arena.allocate(2);
            mm.gemm(false, false, 2, 3, 0, 1f, empty, 1, empty, 3, 0.5f, c, 3);
            for (int i = 0; i < 6; i++) {
                assertEquals(0.5f * (i + 1), get(c, i));
            }
            mm.gemm(false, false, 2, 3, 0, 1f, empty, 1, empty, 3, 0f, c, 3);
            for (int i = 0; i < 6; i++) {
                assertEquals(0f, get(c, i));
            }
        }
    }

    @Test
    void rejectsHeapAndShortSegmentsNamingTheArgument() {
        Bf16Matmul mm = matmul();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ok = arena.allocate(2L * 16);
            MemorySegment heap = MemorySegment.ofArray(new short[16]);
            var e = assertThrows(IllegalArgumentException.class, () -> mm.gemm(false, false, 4, 4, 4, 1f, heap, 4, ok, 4, 0f, ok, 4));
            assertTrue(e.getMessage().startsWith("A: ") && e.getMessage().contains("native"), e.getMessage());
            MemorySegment small = arena.allocate(2L * 15);
            e = assertThrows(IllegalArgumentException.class, () -> mm.gemm(false, false, 4, 4, 4, 1f, ok, 4, small, 4, 0f, ok, 4));
            assertTrue(e.getMessage().startsWith("B: ") && e.getMessage().contains("30"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> mm.gemm(false, false, 4, 4, 4, 1f, ok, 4, ok, 4, 0f, ok, 3));
            assertTrue(e.getMessage().startsWith("C: leading dimension 3"), e.getMessage());
        }
    }

    @Test
    void keepsABoundedNumberOfPrimitives() {
        assumeTrue(oneDnn.bf16Matmul().isPresent(), "no bfloat16 products on this processor");
        try (OneDnnBackend one = Backends.openOneDnn(1); Arena arena = Arena.ofConfined()) {
            OneDnnMatmul mm = (OneDnnMatmul) one.bf16Matmul().get();
            MemorySegment s = arena.allocate(2L * 16 * 16);
            for (int i = 1; i <= OneDnnMatmul.CACHED + 5; i++) {
                mm.gemm(false, false, 4, 4, 4, i, s, 4, s.asSlice(64), 4, 0f, s.asSlice(256), 4);
            }
            assertEquals(OneDnnMatmul.CACHED, mm.cached());
            assertTrue(mm.description().contains("1 thread"), mm.description());
        }
    }
}
