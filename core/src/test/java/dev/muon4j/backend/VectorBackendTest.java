package dev.muon4j.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Checks gemm, syrk and symm of the Vector API backend (1 and 2 threads), of its plain-loop form
 * that runs without {@code jdk.incubator.vector} (1 and 2 threads), of the bundled OpenBLAS
 * backend and of oneDNN (1 and 2 threads; its SYRK and SYMM are built from GEMM) against a plain
 * triple loop accumulating in double.
 *
 * <p>Tolerance: every element must be within {@value #RELATIVE_TOLERANCE} × (|alpha|·Σ|a·b| +
 * |beta·c|) of the reference, the bound of float rounding for these depths with room to spare.
 * Every matrix sits at an offset inside a larger array, with a leading dimension above its column
 * count, surrounded by a sentinel: a read outside an input spoils the result, and a write outside
 * the output is caught because the sentinel must survive.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class VectorBackendTest {
    private static final double RELATIVE_TOLERANCE = 1e-5;
    private static final int[] SIZES = {1, 3, 7, 17, 33, 67, 130, 257};
    private static final float[] BETAS = {0f, 1f, 0.5f};
    private static final float OUTSIDE = -777.25f;

    private final Map<String, Backend> backends = new LinkedHashMap<>();

    @BeforeAll
    void openBackends() {
        backends.put("vector-1", new VectorBackend(1));
        backends.put("vector-2", new VectorBackend(2));
        backends.put("plain-1", new VectorBackend(1, false));
        backends.put("plain-2", new VectorBackend(2, false));
        backends.put("openblas-2", Backends.openBundled(2));
        backends.put("onednn-1", Backends.openOneDnn(1));
        backends.put("onednn-2", Backends.openOneDnn(2));
    }

    @AfterAll
    void closeBackends() {
        backends.values().forEach(Backend::close);
    }

    Stream<String> backendNames() {
        return backends.keySet().stream();
    }

    Stream<Arguments> backendsAndTransposes() {
        return backendNames().flatMap(name -> Stream.of(
                Arguments.of(name, false, false), Arguments.of(name, false, true),
                Arguments.of(name, true, false), Arguments.of(name, true, true)));
    }

    // ---------------------------------------------------------------- gemm

    @ParameterizedTest(name = "{0} transA={1} transB={2}")
    @MethodSource("backendsAndTransposes")
    void gemmMatchesReferenceOverOddShapes(String name, boolean transA, boolean transB) {
        Backend backend = backends.get(name);
        Random random = new Random(11 + (transA ? 2 : 0) + (transB ? 1 : 0));
        int index = 0;
        for (int[] shape : gemmShapes()) {
            float beta = BETAS[index % BETAS.length];
            float alpha = index % 2 == 0 ? 1.5f : -0.75f;
            checkGemm(backend, random, transA, transB, shape[0], shape[1], shape[2], alpha, beta, 1 + index % 5, index % 7);
            index++;
        }
    }

    /** Cubes of every size plus mixed shapes pairing small and large dimensions. */
    private static List<int[]> gemmShapes() {
        List<int[]> shapes = new ArrayList<>();
        int count = SIZES.length;
        for (int i = 0; i < count; i++) {
            shapes.add(new int[]{SIZES[i], SIZES[i], SIZES[i]});
            shapes.add(new int[]{SIZES[i], SIZES[(i + 3) % count], SIZES[(i + 5) % count]});
            shapes.add(new int[]{SIZES[(i + 6) % count], SIZES[i], SIZES[(i + 2) % count]});
        }
        return shapes;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backendNames")
    void gemmWithEveryBetaAndAlpha(String name) {
        Backend backend = backends.get(name);
        Random random = new Random(5);
        for (float beta : BETAS) {
            for (float alpha : new float[]{1f, 2.5f, -0.3f}) {
                checkGemm(backend, random, false, true, 37, 45, 29, alpha, beta, 3, 6);
                checkGemm(backend, random, true, false, 130, 67, 257, alpha, beta, 0, 1);
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backendNames")
    void gemmWithBetaZeroIgnoresNaNInC(String name) {
        Backend backend = backends.get(name);
        Random random = new Random(6);
        for (boolean transA : new boolean[]{false, true}) {
            Matrix a = Matrix.random(random, transA ? 19 : 23, transA ? 23 : 19, 2, 3);
            Matrix b = Matrix.random(random, 19, 41, 1, 0);
            Matrix c = Matrix.filled(23, 41, 4, 5, Float.NaN);
            double[][] expected = referenceGemm(transA, false, 23, 41, 19, 1.25f, a, b, 0f, c);
            backend.gemm(transA, false, 23, 41, 19, 1.25f, a.data, a.offset, a.ld, b.data, b.offset, b.ld,
                    0f, c.data, c.offset, c.ld);
            assertNoNaN(c);
            assertClose("beta 0 over NaN, transA=" + transA, expected, c, false);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backendNames")
    void gemmWithEmptyInnerDimensionOnlyScalesC(String name) {
        Backend backend = backends.get(name);
        Random random = new Random(7);
        for (float beta : BETAS) {
            Matrix a = Matrix.random(random, 9, 1, 0, 0);
            Matrix b = Matrix.random(random, 1, 13, 0, 0);
            Matrix c = Matrix.random(random, 9, 13, 2, 3);
            if (beta == 0f) {
                c.fillInside(Float.NaN);
            }
            double[][] expected = referenceGemm(false, false, 9, 13, 0, 2f, a, b, beta, c);
            backend.gemm(false, false, 9, 13, 0, 2f, a.data, a.offset, a.ld, b.data, b.offset, b.ld,
                    beta, c.data, c.offset, c.ld);
            assertNoNaN(c);
            assertClose("k == 0, beta " + beta, expected, c, false);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backendNames")
    void gemmAcrossSeveralColumnPanels(String name) {
        Backend backend = backends.get(name);
        Random random = new Random(8);
        int n = VectorBackend.NC + 3 * VectorBackend.NR + 5;
        checkGemm(backend, random, false, false, 11, n, 6, 1f, 0.5f, 2, 1);
        checkGemm(backend, random, true, true, 7, n, 9, -1f, 0f, 0, 2);
        checkGemm(backend, random, false, true, n / 4, 300, 40, 1f, 1f, 1, 0);
    }

    @Test
    void gemmGivesTheSameResultOnOneAndTwoThreads() {
        Random random = new Random(9);
        int[][] shapes = {{257, 130, 67}, {67, 257, 130}, {300, 300, 300}, {5, 700, 33}, {700, 5, 33}};
        for (int[] shape : shapes) {
            for (int combo = 0; combo < 4; combo++) {
                boolean transA = (combo & 2) != 0;
                boolean transB = (combo & 1) != 0;
                int m = shape[0];
                int n = shape[1];
                int k = shape[2];
                Matrix a = Matrix.random(random, transA ? k : m, transA ? m : k, 1, 2);
                Matrix b = Matrix.random(random, transB ? n : k, transB ? k : n, 0, 3);
                Matrix c1 = Matrix.random(random, m, n, 2, 1);
                Matrix c2 = c1.copy();
                backends.get("vector-1").gemm(transA, transB, m, n, k, 0.7f, a.data, a.offset, a.ld,
                        b.data, b.offset, b.ld, 0.5f, c1.data, c1.offset, c1.ld);
                backends.get("vector-2").gemm(transA, transB, m, n, k, 0.7f, a.data, a.offset, a.ld,
                        b.data, b.offset, b.ld, 0.5f, c2.data, c2.offset, c2.ld);
                String context = Arrays.toString(shape) + " transA=" + transA + " transB=" + transB;
                double scale = 0.7 * k * 0.25 + 0.5;
                for (int i = 0; i < c1.data.length; i++) {
                    assertEquals(c1.data[i], c2.data[i], RELATIVE_TOLERANCE * scale, context + " at index " + i);
                }
            }
        }
    }

    /**
     * The plain micro-kernel computes the Vector API one's fused multiply-adds in the same order, so
     * every product, of every shape, transposition, alpha and beta, and syrk's, is the same bits.
     */
    @Test
    void plainLoopsGiveTheVectorApiBits() {
        assertTrue(backends.get("plain-1").description().contains("plain loops"), backends.get("plain-1").description());
        Random random = new Random(10);
        int[][] shapes = {{257, 130, 67}, {5, 700, 300}, {37, 29, 41}, {1, 1, 1}};
        for (int[] shape : shapes) {
            for (int combo = 0; combo < 4; combo++) {
                boolean transA = (combo & 2) != 0;
                boolean transB = (combo & 1) != 0;
                int m = shape[0];
                int n = shape[1];
                int k = shape[2];
                Matrix a = Matrix.random(random, transA ? k : m, transA ? m : k, 1, 2);
                Matrix b = Matrix.random(random, transB ? n : k, transB ? k : n, 0, 3);
                for (float beta : new float[] {0f, 1f, 0.5f}) {
                    Matrix vector = Matrix.random(random, m, n, 2, 1);
                    Matrix plain = vector.copy();
                    backends.get("vector-2").gemm(transA, transB, m, n, k, 0.7f, a.data, a.offset, a.ld,
                            b.data, b.offset, b.ld, beta, vector.data, vector.offset, vector.ld);
                    backends.get("plain-2").gemm(transA, transB, m, n, k, 0.7f, a.data, a.offset, a.ld,
                            b.data, b.offset, b.ld, beta, plain.data, plain.offset, plain.ld);
                    assertSameBits(vector, plain, "gemm " + Arrays.toString(shape) + " transA=" + transA
                            + " transB=" + transB + " beta=" + beta);
                }
            }
            Matrix a = Matrix.random(random, shape[0], shape[2], 1, 2);
            Matrix vector = Matrix.random(random, shape[0], shape[0], 0, 1);
            Matrix plain = vector.copy();
            backends.get("vector-1").syrk(false, shape[0], shape[2], 1.5f, a.data, a.offset, a.ld, 0.5f,
                    vector.data, vector.offset, vector.ld);
            backends.get("plain-1").syrk(false, shape[0], shape[2], 1.5f, a.data, a.offset, a.ld, 0.5f,
                    plain.data, plain.offset, plain.ld);
            assertSameBits(vector, plain, "syrk " + Arrays.toString(shape));
        }
    }

    private static void assertSameBits(Matrix want, Matrix got, String context) {
        for (int i = 0; i < want.data.length; i++) {
            if (Float.floatToRawIntBits(want.data[i]) != Float.floatToRawIntBits(got.data[i])) {
                fail(context + ": index " + i + " Vector API " + want.data[i] + ", plain loops " + got.data[i]);
            }
        }
    }

    @Test
    void gemmRejectsArraysTooSmallForTheirMatrices() {
        Backend backend = backends.get("vector-1");
        float[] a = new float[6];
        float[] b = new float[6];
        float[] c = new float[3];
        assertThrows(IllegalArgumentException.class,
                () -> backend.gemm(false, false, 2, 2, 3, 1f, a, 0, 3, b, 0, 2, 0f, c, 0, 2));
        assertThrows(IllegalArgumentException.class,
                () -> backend.gemm(false, false, 2, 2, 3, 1f, a, 1, 3, b, 0, 2, 0f, new float[4], 0, 2));
    }

    // ---------------------------------------------------------------- syrk

    @ParameterizedTest(name = "{0} trans={1}")
    @MethodSource("backendsAndTrans")
    void syrkMatchesReferenceAndLeavesLowerTriangleAlone(String name, boolean trans) {
        Backend backend = backends.get(name);
        Random random = new Random(trans ? 21 : 22);
        int index = 0;
        for (int n : SIZES) {
            for (int k : new int[]{1, 17, 130, 257}) {
                float beta = BETAS[index % BETAS.length];
                float alpha = index % 2 == 0 ? 1f : -1.75f;
                checkSyrk(backend, random, trans, n, k, alpha, beta, index % 4, 1 + index % 3);
                index++;
            }
        }
    }

    Stream<Arguments> backendsAndTrans() {
        return backendNames().flatMap(name -> Stream.of(Arguments.of(name, false), Arguments.of(name, true)));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backendNames")
    void syrkLargerThanOnePanel(String name) {
        Backend backend = backends.get(name);
        Random random = new Random(23);
        int n = VectorBackend.NC + VectorBackend.NR + 3;
        checkSyrk(backend, random, false, n, 3, 1f, 0f, 1, 2);
        checkSyrk(backend, random, true, 301, 45, 0.5f, 0.5f, 0, 0);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backendNames")
    void syrkWithBetaZeroIgnoresNaNAndWithEmptyInnerDimensionOnlyScales(String name) {
        Backend backend = backends.get(name);
        Random random = new Random(24);
        for (int k : new int[]{0, 31}) {
            Matrix a = Matrix.random(random, 70, Math.max(k, 1), 1, 1);
            Matrix c = Matrix.filled(70, 70, 2, 3, Float.NaN);
            fillLowerTriangle(c, OUTSIDE);
            double[][] expected = referenceSyrk(false, 70, k, 2f, a, 0f, c);
            backend.syrk(false, 70, k, 2f, a.data, a.offset, a.ld, 0f, c.data, c.offset, c.ld);
            assertClose("syrk beta 0 over NaN, k=" + k, expected, c, true);
            assertLowerTriangleIs(c, OUTSIDE, "syrk k=" + k);
        }
    }

    @Test
    void syrkGivesTheSameResultOnOneAndTwoThreads() {
        Random random = new Random(25);
        for (boolean trans : new boolean[]{false, true}) {
            int n = 333;
            int k = 95;
            Matrix a = Matrix.random(random, trans ? k : n, trans ? n : k, 3, 2);
            Matrix c1 = Matrix.random(random, n, n, 1, 4);
            Matrix c2 = c1.copy();
            backends.get("vector-1").syrk(trans, n, k, 1f, a.data, a.offset, a.ld, 1f, c1.data, c1.offset, c1.ld);
            backends.get("vector-2").syrk(trans, n, k, 1f, a.data, a.offset, a.ld, 1f, c2.data, c2.offset, c2.ld);
            for (int i = 0; i < c1.data.length; i++) {
                assertEquals(c1.data[i], c2.data[i], RELATIVE_TOLERANCE * (k * 0.25 + 1), "trans=" + trans + " at " + i);
            }
        }
    }

    // ---------------------------------------------------------------- symm

    @ParameterizedTest(name = "{0}")
    @MethodSource("backendNames")
    void symmReadsOnlyTheUpperTriangleOfS(String name) {
        Backend backend = backends.get(name);
        Random random = new Random(31);
        int index = 0;
        for (int m : SIZES) {
            for (int n : new int[]{1, 16, 67}) {
                float beta = BETAS[index % BETAS.length];
                float alpha = index % 2 == 0 ? 1f : 0.6f;
                checkSymm(backend, random, m, n, alpha, beta, index % 3, 1 + index % 4);
                index++;
            }
        }
    }

    // ---------------------------------------------------------------- work split

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 3, 5, 8})
    void workSplitsCoverEveryColumnOnceInOrder(int parts) {
        for (int extent : new int[]{1, 15, 16, 17, 100, 1000, 4099}) {
            assertCover(VectorBackend.evenBounds(extent, parts, VectorBackend.NR), extent, parts);
            assertCover(VectorBackend.evenBounds(extent, parts, VectorBackend.MR), extent, parts);
            assertCover(VectorBackend.triangleBounds(extent, parts), extent, parts);
        }
    }

    private static void assertCover(int[] bounds, int extent, int parts) {
        assertEquals(parts + 1, bounds.length);
        assertEquals(0, bounds[0]);
        assertEquals(extent, bounds[parts]);
        for (int t = 0; t < parts; t++) {
            assertTrue(bounds[t] <= bounds[t + 1], () -> "bounds not ordered: " + Arrays.toString(bounds));
        }
    }

    // ---------------------------------------------------------------- checks

    private static void checkGemm(Backend backend, Random random, boolean transA, boolean transB,
                                  int m, int n, int k, float alpha, float beta, int offset, int extraLd) {
        Matrix a = Matrix.random(random, transA ? k : m, transA ? m : k, offset, extraLd);
        Matrix b = Matrix.random(random, transB ? n : k, transB ? k : n, offset + 1, extraLd + 2);
        Matrix c = Matrix.random(random, m, n, offset + 2, extraLd + 1);
        if (beta == 0f) {
            c.fillInside(Float.NaN);
        }
        double[][] expected = referenceGemm(transA, transB, m, n, k, alpha, a, b, beta, c);
        backend.gemm(transA, transB, m, n, k, alpha, a.data, a.offset, a.ld, b.data, b.offset, b.ld,
                beta, c.data, c.offset, c.ld);
        String context = String.format("gemm %s transA=%s transB=%s m=%d n=%d k=%d alpha=%s beta=%s",
                backend.description(), transA, transB, m, n, k, alpha, beta);
        assertClose(context, expected, c, false);
    }

    private static void checkSyrk(Backend backend, Random random, boolean trans, int n, int k,
                                  float alpha, float beta, int offset, int extraLd) {
        Matrix a = Matrix.random(random, trans ? k : n, trans ? n : k, offset, extraLd);
        Matrix c = Matrix.random(random, n, n, offset + 1, extraLd + 2);
        if (beta == 0f) {
            c.fillInside(Float.NaN);
        }
        fillLowerTriangle(c, OUTSIDE);
        double[][] expected = referenceSyrk(trans, n, k, alpha, a, beta, c);
        backend.syrk(trans, n, k, alpha, a.data, a.offset, a.ld, beta, c.data, c.offset, c.ld);
        String context = String.format("syrk %s trans=%s n=%d k=%d alpha=%s beta=%s",
                backend.description(), trans, n, k, alpha, beta);
        assertClose(context, expected, c, true);
        assertLowerTriangleIs(c, OUTSIDE, context);
    }

    private static void checkSymm(Backend backend, Random random, int m, int n, float alpha, float beta,
                                  int offset, int extraLd) {
        Matrix s = Matrix.random(random, m, m, offset, extraLd);
        Matrix b = Matrix.random(random, m, n, offset + 2, extraLd);
        Matrix c = Matrix.random(random, m, n, offset + 1, extraLd + 1);
        if (beta == 0f) {
            c.fillInside(Float.NaN);
        }
        double[][] expected = referenceSymm(m, n, alpha, s, b, beta, c);
        fillLowerTriangle(s, Float.NaN);
        backend.symm(m, n, alpha, s.data, s.offset, s.ld, b.data, b.offset, b.ld, beta, c.data, c.offset, c.ld);
        String context = String.format("symm %s m=%d n=%d alpha=%s beta=%s", backend.description(), m, n, alpha, beta);
        assertClose(context, expected, c, false);
    }

    /**
     * Asserts that C's elements are within tolerance of {@code expected[0]} (tolerance scaled by
     * {@code expected[1]}), only on and above the diagonal when {@code upperOnly}, and that
     * everything outside the matrix still holds the sentinel.
     */
    private static void assertClose(String context, double[][] expected, Matrix c, boolean upperOnly) {
        double[] value = expected[0];
        double[] bound = expected[1];
        for (int i = 0; i < c.rows; i++) {
            for (int j = upperOnly ? i : 0; j < c.cols; j++) {
                float actual = c.get(i, j);
                double want = value[i * c.cols + j];
                double tolerance = RELATIVE_TOLERANCE * bound[i * c.cols + j] + 1e-30;
                if (!(Math.abs(actual - want) <= tolerance)) {
                    fail(context + ": C[" + i + "][" + j + "] = " + actual + ", expected " + want + " ± " + tolerance);
                }
            }
        }
        c.assertOutsideUntouched(context);
    }

    private static void assertNoNaN(Matrix c) {
        for (int i = 0; i < c.rows; i++) {
            for (int j = 0; j < c.cols; j++) {
                assertFalse(Float.isNaN(c.get(i, j)), "NaN at C[" + i + "][" + j + "]");
            }
        }
    }

    private static void fillLowerTriangle(Matrix c, float value) {
        for (int i = 0; i < c.rows; i++) {
            for (int j = 0; j < i; j++) {
                c.set(i, j, value);
            }
        }
    }

    private static void assertLowerTriangleIs(Matrix c, float value, String context) {
        for (int i = 0; i < c.rows; i++) {
            for (int j = 0; j < i; j++) {
                if (Float.compare(c.get(i, j), value) != 0) {
                    fail(context + ": strictly lower C[" + i + "][" + j + "] changed to " + c.get(i, j));
                }
            }
        }
    }

    // ---------------------------------------------------------------- scalar references in double

    private static float op(Matrix x, boolean trans, int row, int col) {
        return trans ? x.get(col, row) : x.get(row, col);
    }

    /** {values, bounds}: alpha·op(A)·op(B) + beta·C, and |alpha|·Σ|a·b| + |beta·c| (beta 0: C not read). */
    private static double[][] referenceGemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
                                            Matrix a, Matrix b, float beta, Matrix c) {
        double[] value = new double[m * n];
        double[] bound = new double[m * n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double sum = 0;
                double abs = 0;
                for (int p = 0; p < k; p++) {
                    double product = (double) op(a, transA, i, p) * op(b, transB, p, j);
                    sum += product;
                    abs += Math.abs(product);
                }
                double old = beta == 0f ? 0 : (double) beta * c.get(i, j);
                value[i * n + j] = alpha * sum + old;
                bound[i * n + j] = Math.abs(alpha) * abs + Math.abs(old);
            }
        }
        return new double[][]{value, bound};
    }

    private static double[][] referenceSyrk(boolean trans, int n, int k, float alpha, Matrix a, float beta, Matrix c) {
        return referenceGemm(trans, !trans, n, n, k, alpha, a, a, beta, c);
    }

    private static double[][] referenceSymm(int m, int n, float alpha, Matrix s, Matrix b, float beta, Matrix c) {
        Matrix full = Matrix.filled(m, m, 0, 0, 0f);
        for (int i = 0; i < m; i++) {
            for (int j = i; j < m; j++) {
                full.set(i, j, s.get(i, j));
                full.set(j, i, s.get(i, j));
            }
        }
        return referenceGemm(false, false, m, n, m, alpha, full, b, beta, c);
    }

    /**
     * A rows×cols row-major matrix at {@code offset} in a larger array with leading dimension
     * {@code cols + extraLd}; every float of the array outside the matrix holds {@link #OUTSIDE}.
     */
    private static final class Matrix {
        final float[] data;
        final int offset;
        final int rows;
        final int cols;
        final int ld;

        private Matrix(float[] data, int offset, int rows, int cols, int ld) {
            this.data = data;
            this.offset = offset;
            this.rows = rows;
            this.cols = cols;
            this.ld = ld;
        }

        static Matrix filled(int rows, int cols, int offset, int extraLd, float value) {
            int ld = Math.max(1, cols + extraLd);
            float[] data = new float[offset + rows * ld + 3];
            Arrays.fill(data, OUTSIDE);
            Matrix matrix = new Matrix(data, offset, rows, cols, ld);
            matrix.fillInside(value);
            return matrix;
        }

        static Matrix random(Random random, int rows, int cols, int offset, int extraLd) {
            Matrix matrix = filled(rows, cols, offset, extraLd, 0f);
            for (int i = 0; i < rows; i++) {
                for (int j = 0; j < cols; j++) {
                    matrix.set(i, j, random.nextFloat() * 2f - 1f);
                }
            }
            return matrix;
        }

        Matrix copy() {
            return new Matrix(data.clone(), offset, rows, cols, ld);
        }

        float get(int i, int j) {
            return data[offset + i * ld + j];
        }

        void set(int i, int j, float value) {
            data[offset + i * ld + j] = value;
        }

        void fillInside(float value) {
            for (int i = 0; i < rows; i++) {
                Arrays.fill(data, offset + i * ld, offset + i * ld + cols, value);
            }
        }

        boolean inside(int index) {
            int relative = index - offset;
            return relative >= 0 && relative / ld < rows && relative % ld < cols;
        }

        void assertOutsideUntouched(String context) {
            for (int index = 0; index < data.length; index++) {
                if (!inside(index) && Float.compare(data[index], OUTSIDE) != 0) {
                    fail(context + ": float " + index + " outside the matrix changed to " + data[index]);
                }
            }
        }
    }
}
