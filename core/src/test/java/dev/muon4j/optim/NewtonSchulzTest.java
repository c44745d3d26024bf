package dev.muon4j.optim;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.Backends;
import dev.muon4j.backend.VectorBackend;
import dev.muon4j.tensor.DType;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Checks {@link NewtonSchulz} against an independent float64 implementation of the same iteration
 * written here (float32 within 1e-5 relative Frobenius error, bfloat16 mode within 8e-2), the
 * singular values of its output (computed in float64 with a Jacobi eigenvalue routine), the Polar
 * Express constants, the batched and in-place forms (bit for bit), scale and transpose invariance,
 * and the rejection of bad arguments. Runs on the bundled OpenBLAS backend, and on the Vector API
 * and oneDNN backends where that is cheap.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class NewtonSchulzTest {
    private static final double F32_TOLERANCE = 1e-5;
    private static final double BF16_TOLERANCE = 8e-2;

    private Backend openBlas;
    private Backend vector;
    private Backend oneDnn;

    @BeforeAll
    void openBackends() {
        openBlas = Backends.openBundled(2);
        vector = new VectorBackend(2);
        oneDnn = Backends.openOneDnn(2);
    }

    @AfterAll
    void closeBackends() {
        if (openBlas != null) {
            openBlas.close();
        }
        if (vector != null) {
            vector.close();
        }
        if (oneDnn != null) {
            oneDnn.close();
        }
    }

    // ---------------------------------------------------------------- float64 reference

    /**
     * The Newton–Schulz iteration in float64 with plain loops: transpose when rows &gt; cols,
     * X = G / (s·‖G‖_F + eps), then X ← a·X + (b·A + c·A·A)·X with A = X·Xᵀ, transpose back.
     */
    static double[] reference(float[] g, int rows, int cols, CoefficientSchedule schedule, int steps, double eps) {
        boolean transposed = rows > cols;
        int m = Math.min(rows, cols);
        int n = Math.max(rows, cols);
        double[] x = new double[m * n];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                if (transposed) {
                    x[c * n + r] = g[r * cols + c];
                } else {
                    x[r * n + c] = g[r * cols + c];
                }
            }
        }
        double sumSq = 0;
        for (double v : x) {
            sumSq += v * v;
        }
        double factor = 1.0 / (schedule.normScale() * Math.sqrt(sumSq) + eps);
        for (int i = 0; i < x.length; i++) {
            x[i] *= factor;
        }
        for (int step = 0; step < steps; step++) {
            Coefficients k = schedule.at(step);
            double[] a = multiplyByTranspose(x, m, n);
            double[] aa = multiply(a, m, m, a, m);
            double[] b = new double[m * m];
            for (int i = 0; i < b.length; i++) {
                b[i] = k.b() * a[i] + k.c() * aa[i];
            }
            double[] bx = multiply(b, m, m, x, n);
            for (int i = 0; i < x.length; i++) {
                x[i] = k.a() * x[i] + bx[i];
            }
        }
        double[] out = new double[rows * cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                out[r * cols + c] = transposed ? x[c * n + r] : x[r * n + c];
            }
        }
        return out;
    }

    /** P (p×q) · Q (q×s), row major. */
    static double[] multiply(double[] p, int rowsP, int inner, double[] q, int colsQ) {
        double[] out = new double[rowsP * colsQ];
        for (int i = 0; i < rowsP; i++) {
            for (int l = 0; l < inner; l++) {
                double pil = p[i * inner + l];
                if (pil == 0) {
                    continue;
                }
                int qRow = l * colsQ;
                int oRow = i * colsQ;
                for (int j = 0; j < colsQ; j++) {
                    out[oRow + j] += pil * q[qRow + j];
                }
            }
        }
        return out;
    }

    /** X·Xᵀ for X rows×cols, row major. */
    static double[] multiplyByTranspose(double[] x, int rows, int cols) {
        double[] out = new double[rows * rows];
        for (int i = 0; i < rows; i++) {
            for (int j = i; j < rows; j++) {
                double s = 0;
                for (int l = 0; l < cols; l++) {
                    s += x[i * cols + l] * x[j * cols + l];
                }
                out[i * rows + j] = s;
                out[j * rows + i] = s;
            }
        }
        return out;
    }

    static double relativeError(float[] got, double[] want) {
        double diff = 0;
        double norm = 0;
        for (int i = 0; i < want.length; i++) {
            double d = got[i] - want[i];
            diff += d * d;
            norm += want[i] * want[i];
        }
        return Math.sqrt(diff / norm);
    }

    static float[] gaussian(int length, long seed) {
        Random random = new Random(seed);
        float[] out = new float[length];
        for (int i = 0; i < length; i++) {
            out[i] = (float) random.nextGaussian();
        }
        return out;
    }

    /**
     * The mirroring by 4×4 tiles of longs agrees with copying element by element, on the block sizes
     * Newton–Schulz uses and on sizes whose last rows do not fill a tile.
     */
    @Test
    void mirroringByTilesEqualsElementByElement() {
        java.util.Random random = new java.util.Random(5);
        int[][] cases = {{384, 128}, {300, 160}, {261, 160}, {258, 128}, {8, 4}, {9, 4}, {11, 4}, {6, 3}, {64, 32}};
        for (int[] c : cases) {
            int m = c[0];
            int block = c[1];
            java.lang.foreign.MemorySegment s = java.lang.foreign.Arena.ofAuto().allocate((long) m * m * Short.BYTES);
            short[] want = new short[m * m];
            for (int i = 0; i < m * m; i++) {
                want[i] = (short) random.nextInt();
                s.setAtIndex(java.lang.foreign.ValueLayout.JAVA_SHORT, i, want[i]);
            }
            for (int i = block; i < m; i++) {
                for (int j = 0; j < i / block * block; j++) {
                    want[j * m + i] = want[i * m + j];
                }
            }
            NewtonSchulz.mirrorLowerBlocks(s, m, block);
            for (int i = 0; i < m * m; i++) {
                assertEquals(want[i], s.getAtIndex(java.lang.foreign.ValueLayout.JAVA_SHORT, i),
                        m + "×" + m + " by blocks of " + block + ": (" + i / m + ", " + i % m + ")");
            }
        }
    }

    // ---------------------------------------------------------------- singular values

    /** Eigenvalues of a symmetric n×n matrix (cyclic Jacobi rotations), ascending. */
    static double[] symmetricEigenvalues(double[] matrix, int n) {
        double[] a = matrix.clone();
        for (int sweep = 0; sweep < 100; sweep++) {
            double off = 0;
            double total = 0;
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < n; j++) {
                    double v = a[i * n + j] * a[i * n + j];
                    total += v;
                    if (i != j) {
                        off += v;
                    }
                }
            }
            if (off <= 1e-30 * total) {
                break;
            }
            for (int p = 0; p < n - 1; p++) {
                for (int q = p + 1; q < n; q++) {
                    double apq = a[p * n + q];
                    if (apq == 0) {
                        continue;
                    }
                    double app = a[p * n + p];
                    double aqq = a[q * n + q];
                    double theta = (aqq - app) / (2 * apq);
                    double t = Math.signum(theta) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
                    if (theta == 0) {
                        t = 1;
                    }
                    double c = 1 / Math.sqrt(t * t + 1);
                    double s = t * c;
                    // A ← Jᵀ·A·J with J the rotation in the (p, q) plane.
                    for (int k = 0; k < n; k++) {
                        double akp = a[k * n + p];
                        double akq = a[k * n + q];
                        a[k * n + p] = c * akp - s * akq;
                        a[k * n + q] = s * akp + c * akq;
                    }
                    for (int k = 0; k < n; k++) {
                        double apk = a[p * n + k];
                        double aqk = a[q * n + k];
                        a[p * n + k] = c * apk - s * aqk;
                        a[q * n + k] = s * apk + c * aqk;
                    }
                }
            }
        }
        double[] eig = new double[n];
        for (int i = 0; i < n; i++) {
            eig[i] = a[i * n + i];
        }
        Arrays.sort(eig);
        return eig;
    }

    /** Singular values of a rows×cols float32 matrix, computed in float64, ascending (min(rows, cols) of them). */
    static double[] singularValues(float[] matrix, int rows, int cols) {
        double[] wide = new double[matrix.length];
        for (int i = 0; i < matrix.length; i++) {
            wide[i] = matrix[i];
        }
        return singularValues(wide, rows, cols);
    }

    /** Singular values of a rows×cols float64 matrix, ascending (min(rows, cols) of them). */
    static double[] singularValues(double[] matrix, int rows, int cols) {
        int m = Math.min(rows, cols);
        int n = Math.max(rows, cols);
        double[] x = new double[m * n];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                if (rows > cols) {
                    x[c * n + r] = matrix[r * cols + c];
                } else {
                    x[r * n + c] = matrix[r * cols + c];
                }
            }
        }
        double[] eig = symmetricEigenvalues(multiplyByTranspose(x, m, n), m);
        double[] sv = new double[m];
        for (int i = 0; i < m; i++) {
            sv[i] = Math.sqrt(Math.max(0, eig[i]));
        }
        return sv;
    }

    // ---------------------------------------------------------------- against the reference

    static Stream<Arguments> shapesAndSchedules() {
        int[][] shapes = {{8, 8}, {17, 33}, {64, 32}, {96, 200}, {1, 5}, {5, 1}};
        List<Arguments> out = new ArrayList<>();
        for (String backend : List.of("openblas", "vector", "onednn")) {
            for (String schedule : List.of("keller-jordan", "polar-express")) {
                for (int[] shape : shapes) {
                    out.add(Arguments.of(backend, schedule, shape[0], shape[1]));
                }
            }
        }
        return out.stream();
    }

    private Backend backend(String name) {
        return switch (name) {
            case "openblas" -> openBlas;
            case "vector" -> vector;
            case "onednn" -> oneDnn;
            default -> throw new IllegalArgumentException(name);
        };
    }

    private static CoefficientSchedule schedule(String name) {
        return switch (name) {
            case "keller-jordan" -> CoefficientSchedule.kellerJordan();
            case "polar-express" -> CoefficientSchedule.polarExpress();
            default -> throw new IllegalArgumentException(name);
        };
    }

    @Test
    void aStackRunSideBySideOnConcurrentWorkersEqualsEachMatrixOnOneThread() {
        // 7 matrices over the 2 workers of a 2-thread oneDNN backend (runs of 3 and 4), both orientations
        assertEquals(2, oneDnn.concurrentWorkers().size());
        try (Backend single = Backends.openOneDnn(1)) {
            assertTrue(single.concurrentWorkers().isEmpty());
            for (int[] shape : new int[][] {{24, 40}, {40, 24}}) {
                int rows = shape[0];
                int cols = shape[1];
                int count = 7;
                int size = rows * cols;
                float[] stack = gaussian(count * size + 5, 7L * rows);
                float[] out = new float[count * size + 9];
                for (DType precision : List.of(DType.F32, DType.BF16)) {
                    NewtonSchulzConfig config = NewtonSchulzConfig.defaults().withPrecision(precision);
                    java.util.Arrays.fill(out, 0f);
                    NewtonSchulz.orthogonalizeBatch(oneDnn, config, stack, 5, count, rows, cols, out, 9, new NewtonSchulz.Workspace());
                    for (int i = 0; i < count; i++) {
                        float[] alone = new float[size];
                        NewtonSchulz.orthogonalize(single, config, stack, 5 + i * size, rows, cols, alone, 0, new NewtonSchulz.Workspace());
                        assertArrayEquals(alone, java.util.Arrays.copyOfRange(out, 9 + i * size, 9 + (i + 1) * size),
                                rows + "×" + cols + " matrix " + i);
                        double error = relativeError(alone, reference(java.util.Arrays.copyOfRange(stack, 5 + i * size, 5 + (i + 1) * size),
                                rows, cols, config.schedule(), config.steps(), config.eps()));
                        double tolerance = precision == DType.F32 ? F32_TOLERANCE : BF16_TOLERANCE;
                        assertTrue(error <= tolerance, precision + " matrix " + i + ": relative error " + error);
                    }
                    for (int i = 0; i < 9; i++) {
                        assertEquals(0f, out[i], "before the output");
                    }
                }
            }
        }
    }

    @ParameterizedTest(name = "{0} {1} {2}×{3}")
    @MethodSource("shapesAndSchedules")
    void float32MatchesFloat64Reference(String backendName, String scheduleName, int rows, int cols) {
        CoefficientSchedule schedule = schedule(scheduleName);
        NewtonSchulzConfig config = NewtonSchulzConfig.defaults().withSchedule(schedule);
        float[] g = gaussian(rows * cols, 31L * rows + cols);
        float[] got = NewtonSchulz.orthogonalize(backend(backendName), config, g, rows, cols);
        double[] want = reference(g, rows, cols, schedule, config.steps(), config.eps());
        double error = relativeError(got, want);
        System.out.printf("f32 %s %s %d×%d: relative error %.3e%n", backendName, scheduleName, rows, cols, error);
        assertTrue(error <= F32_TOLERANCE, "relative error " + error + " > " + F32_TOLERANCE);
    }

    static Stream<Arguments> bf16Shapes() {
        List<Arguments> out = new ArrayList<>();
        for (String backend : List.of("openblas", "onednn")) {
            for (String schedule : List.of("keller-jordan", "polar-express")) {
                for (int[] shape : new int[][] {{64, 128}, {128, 64}, {256, 512}}) {
                    out.add(Arguments.of(backend, schedule, shape[0], shape[1]));
                }
            }
        }
        return out.stream();
    }

    /**
     * bfloat16 mode within {@value #BF16_TOLERANCE} of float64: on OpenBLAS with float32 products rounded
     * afterwards, on oneDNN with its bfloat16 products where the processor has them.
     */
    @ParameterizedTest(name = "{0} {1} {2}×{3}")
    @MethodSource("bf16Shapes")
    void bfloat16ModeIsCloseToFloat64Reference(String backendName, String scheduleName, int rows, int cols) {
        NewtonSchulzConfig config = NewtonSchulzConfig.defaults().withSchedule(schedule(scheduleName)).withPrecision(DType.BF16);
        float[] g = gaussian(rows * cols, 7L * rows + cols);
        float[] got = NewtonSchulz.orthogonalize(backend(backendName), config, g, rows, cols);
        double[] want = reference(g, rows, cols, config.schedule(), config.steps(), config.eps());
        double error = relativeError(got, want);
        System.out.printf("bf16 %s %s %d×%d%s: relative error %.3e%n", backendName, scheduleName, rows, cols,
                backend(backendName).bf16Matmul().isPresent() ? " (bfloat16 products)" : "", error);
        assertTrue(error <= BF16_TOLERANCE, "relative error " + error + " > " + BF16_TOLERANCE);
        for (float v : got) {
            assertEquals(v, dev.muon4j.tensor.BFloat16.round(v), "bf16 mode output is bfloat16-representable");
        }
    }

    /**
     * oneDNN's bfloat16 products and float32 products rounded afterwards round at the same points and
     * differ only in the order of float32 sums, which flips a rounding here and there: the two results
     * stay within {@value #BF16_PATHS_TOLERANCE} of each other, several times closer than either is to
     * float64 (measured: 3e-3 to 6e-3 against about 1e-2).
     */
    @Test
    void bfloat16ProductsAgreeWithFloat32ProductsRoundedAfterwards() {
        org.junit.jupiter.api.Assumptions.assumeTrue(oneDnn.bf16Matmul().isPresent(), "no bfloat16 products on this processor");
        NewtonSchulzConfig config = NewtonSchulzConfig.defaults().withPrecision(DType.BF16);
        // 300 and 384 rows are cut into blocks for A and A·A (symmetricBlock); the others are not
        for (int[] shape : new int[][] {{96, 200}, {200, 96}, {128, 128}, {300, 520}, {520, 300}, {384, 384}}) {
            float[] g = gaussian(shape[0] * shape[1], 5L * shape[0]);
            float[] products = NewtonSchulz.orthogonalize(oneDnn, config, g, shape[0], shape[1]);
            float[] rounded = NewtonSchulz.orthogonalize(openBlas, config, g, shape[0], shape[1]);
            double[] asDouble = new double[rounded.length];
            for (int i = 0; i < rounded.length; i++) {
                asDouble[i] = rounded[i];
            }
            double difference = relativeError(products, asDouble);
            System.out.printf("bf16 %d×%d: bfloat16 products against float32 products rounded: %.3e%n", shape[0], shape[1], difference);
            assertTrue(difference <= BF16_PATHS_TOLERANCE, shape[0] + "×" + shape[1] + ": " + difference);
        }
    }

    private static final double BF16_PATHS_TOLERANCE = 1.5e-2;

    /**
     * A and A·A computed by blocks on and below the diagonal, the rest mirrored, equal one full
     * product each: the same float32 sums of the same bfloat16 products, so the results agree to the
     * last bit on oneDNN (its sums over k do not depend on how m and n are cut; if a library's did,
     * an element would differ by a rounding of bfloat16, and this test would say so).
     */
    @Test
    void symmetricProductsByBlocksEqualFullProducts() {
        org.junit.jupiter.api.Assumptions.assumeTrue(oneDnn.bf16Matmul().isPresent(), "no bfloat16 products on this processor");
        NewtonSchulzConfig config = NewtonSchulzConfig.defaults().withPrecision(DType.BF16);
        int saved = NewtonSchulz.symmetricMinBlock;
        try {
            for (int[] shape : new int[][] {{300, 520}, {520, 300}, {384, 384}, {260, 260}}) {
                float[] g = gaussian(shape[0] * shape[1], 7L * shape[1]);
                NewtonSchulz.symmetricMinBlock = 128;
                int m = Math.min(shape[0], shape[1]);
                assertTrue(NewtonSchulz.symmetricBlock(m) < m, m + " rows are cut into blocks");
                float[] blocks = NewtonSchulz.orthogonalize(oneDnn, config, g, shape[0], shape[1]);
                NewtonSchulz.symmetricMinBlock = Integer.MAX_VALUE;
                assertEquals(m, NewtonSchulz.symmetricBlock(m));
                float[] full = NewtonSchulz.orthogonalize(oneDnn, config, g, shape[0], shape[1]);
                assertArrayEquals(full, blocks, shape[0] + "×" + shape[1]);
            }
        } finally {
            NewtonSchulz.symmetricMinBlock = saved;
        }
    }

    @Test
    void symmetricBlocksCoverTheMatrixInCacheLineMultiples() {
        assertEquals(100, NewtonSchulz.symmetricBlock(100));
        assertEquals(255, NewtonSchulz.symmetricBlock(255));
        assertEquals(128, NewtonSchulz.symmetricBlock(256));
        assertEquals(128, NewtonSchulz.symmetricBlock(384));
        assertEquals(160, NewtonSchulz.symmetricBlock(300)); // 2 blocks of 150, rounded up to 160: 160 + 140
        assertEquals(128, NewtonSchulz.symmetricBlock(768));
        assertEquals(1024, NewtonSchulz.symmetricBlock(1024)); // above SYMMETRIC_MAX_ROWS: one full product
    }

    @Test
    void mirroringCopiesTheBlocksBelowTheDiagonalAboveIt() {
        int m = 5;
        int block = 2;
        java.lang.foreign.MemorySegment s = java.lang.foreign.Arena.ofAuto().allocate((long) m * m * Short.BYTES);
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < m; j++) {
                s.setAtIndex(java.lang.foreign.ValueLayout.JAVA_SHORT, (long) i * m + j, (short) (i >= j ? 10 * i + j : -1));
            }
        }
        NewtonSchulz.mirrorLowerBlocks(s, m, block);
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < m; j++) {
                short got = s.getAtIndex(java.lang.foreign.ValueLayout.JAVA_SHORT, (long) i * m + j);
                // blocks {0,1}, {2,3}, {4}: above the diagonal blocks, (i, j) holds (j, i); inside a diagonal block nothing moves
                boolean sameBlock = i / block == j / block;
                short want = (short) (i >= j ? 10 * i + j : sameBlock ? -1 : 10 * j + i);
                assertEquals(want, got, "(" + i + ", " + j + ")");
            }
        }
    }

    // ---------------------------------------------------------------- singular values

    @Test
    void kellerJordanSingularValuesOnWideGaussian() {
        for (long seed = 11; seed < 14; seed++) {
            double[] sv = singularValuesAfter(NewtonSchulzConfig.defaults(), 64, 128, seed);
            report("keller-jordan 64×128 seed " + seed, sv);
            assertTrue(sv[0] >= 0.6 && sv[sv.length - 1] <= 1.2, "singular values in [0.6, 1.2]");
        }
    }

    /**
     * On a square Gaussian matrix the band [0.6, 1.2] is out of reach for any exact implementation,
     * at both ends. Below: the smallest singular value of G/‖G‖_F is of order n^-1.5 (here 3.3e-4)
     * and five steps multiply a small singular value by at most a⁵ = 3.4445⁵ ≈ 485, so it ends near
     * 0.16. Above: p(σ) = aσ + bσ³ + cσ⁵ peaks at 1.20237 (σ ≈ 0.555), and an input singular value
     * that meets that peak on the last step comes out above 1.2 (here 1.2007). What holds instead,
     * and is checked: each output singular value is p applied five times to an input singular value
     * of G/‖G‖_F (within 1e-4), the float64 reference agrees (within 1e-4), nothing exceeds
     * max p = 1.20237, and every input singular value ≥ 2e-3·‖G‖_F ends ≥ 0.6 (in theory ≥ 0.6818).
     */
    @Test
    void kellerJordanSingularValuesOnSquareGaussian() {
        int n = 128;
        NewtonSchulzConfig config = NewtonSchulzConfig.defaults();
        float[] g = gaussian(n * n, 12);
        double[] sv = singularValues(NewtonSchulz.orthogonalize(openBlas, config, g, n, n), n, n);
        report("keller-jordan 128×128", sv);

        double[] referenceSv = singularValues(reference(g, n, n, config.schedule(), config.steps(), config.eps()), n, n);
        report("keller-jordan 128×128, float64 reference", referenceSv);
        for (int i = 0; i < n; i++) {
            assertEquals(referenceSv[i], sv[i], 1e-4, "singular value " + i + " vs float64 reference");
        }

        double[] input = singularValues(g, n, n);
        double norm = 0;
        for (double s : input) {
            norm += s * s;
        }
        norm = Math.sqrt(norm);
        Coefficients k = CoefficientSchedule.KELLER_JORDAN;
        double[] predicted = new double[n];
        for (int i = 0; i < n; i++) {
            predicted[i] = predicted(input[i] / (norm + config.eps()), k, config.steps());
        }
        Arrays.sort(predicted);
        System.out.printf("keller-jordan 128×128: smallest normalised input singular value %.3e%n", input[0] / norm);
        for (int i = 0; i < n; i++) {
            assertEquals(predicted[i], sv[i], 1e-4, "singular value " + i + " vs p⁵(σ)");
        }
        double maxP = 1.20237 + 1e-4;
        assertTrue(sv[n - 1] <= maxP, "largest singular value " + sv[n - 1] + " > max p = " + maxP);
        int caughtUp = 0;
        double smallestCaughtUp = Double.POSITIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            if (input[i] / norm >= 2e-3) {
                caughtUp++;
                smallestCaughtUp = Math.min(smallestCaughtUp, predicted(input[i] / norm, k, config.steps()));
            }
        }
        System.out.printf("keller-jordan 128×128: %d of %d input singular values ≥ 2e-3·‖G‖_F; their smallest image %.4f%n",
                caughtUp, n, smallestCaughtUp);
        assertTrue(smallestCaughtUp >= 0.6, "input singular values ≥ 2e-3 end ≥ 0.6, got " + smallestCaughtUp);
        long observedAtLeast = Arrays.stream(sv).filter(s -> s >= 0.6).count();
        assertTrue(observedAtLeast >= caughtUp, observedAtLeast + " output singular values ≥ 0.6, expected " + caughtUp);
        assertTrue(caughtUp >= n - 8, "most singular values are large enough to catch up: " + caughtUp);
    }

    /** The scalar polynomial p(σ) = aσ + bσ³ + cσ⁵ applied {@code steps} times. */
    private static double predicted(double sigma, Coefficients k, int steps) {
        double s = sigma;
        for (int step = 0; step < steps; step++) {
            s = k.a() * s + k.b() * s * s * s + k.c() * s * s * s * s * s;
        }
        return s;
    }

    @Test
    void convergentCoefficientsReachOrthogonality() {
        NewtonSchulzConfig config = NewtonSchulzConfig.defaults()
                .withSchedule(CoefficientSchedule.constant(new Coefficients(2, -1.5, 0.5)))
                .withSteps(30);
        // 32×128 Gaussian: condition number about (√128 + √32)/(√128 − √32) = 3.
        double[] sv = singularValuesAfter(config, 32, 128, 13);
        report("(2, -1.5, 0.5) ×30 32×128", sv);
        for (double s : sv) {
            assertEquals(1.0, s, 1e-3);
        }
    }

    /**
     * Polar Express, 5 steps. In theory (the five safety-scaled polynomials composed, evaluated on a
     * fine grid) inputs of G/(1.01·‖G‖_F) at least 1e-3 end in [0.8401, 1.12356], the top being the
     * peak of the fifth polynomial. Measured on four 64×128 Gaussians: [0.8704, 1.1235]. Asserted:
     * [0.85, 1.124].
     */
    @Test
    void polarExpressSingularValues() {
        NewtonSchulzConfig config = NewtonSchulzConfig.defaults().withSchedule(CoefficientSchedule.polarExpress());
        for (long seed = 14; seed < 18; seed++) {
            double[] sv = singularValuesAfter(config, 64, 128, seed);
            report("polar-express 64×128 seed " + seed, sv);
            assertTrue(sv[0] >= 0.85 && sv[sv.length - 1] <= 1.124, "singular values in [0.85, 1.124]");
        }
    }

    private double[] singularValuesAfter(NewtonSchulzConfig config, int rows, int cols, long seed) {
        float[] g = gaussian(rows * cols, seed);
        float[] o = NewtonSchulz.orthogonalize(openBlas, config, g, rows, cols);
        return singularValues(o, rows, cols);
    }

    private static void report(String what, double[] sv) {
        System.out.printf("%s: singular values in [%.4f, %.4f]%n", what, sv[0], sv[sv.length - 1]);
    }

    // ---------------------------------------------------------------- schedule constants

    @Test
    void polarExpressScheduleAppliesSafetyFactor() {
        CoefficientSchedule schedule = CoefficientSchedule.polarExpress();
        assertEquals(1.01, schedule.normScale());
        assertEquals(7, schedule.perStep().size());
        for (int i = 0; i < 7; i++) {
            Coefficients raw = CoefficientSchedule.POLAR_EXPRESS_RAW.get(i);
            Coefficients got = schedule.at(i);
            assertEquals(raw.a() / 1.01, got.a(), 1e-14 * Math.abs(raw.a()), "a of step " + i);
            assertEquals(raw.b() / Math.pow(1.01, 3), got.b(), 1e-14 * Math.abs(raw.b()), "b of step " + i);
            assertEquals(raw.c() / Math.pow(1.01, 5), got.c(), 1e-14 * Math.abs(raw.c()), "c of step " + i);
        }
        assertEquals(8.28721201814563, CoefficientSchedule.POLAR_EXPRESS_RAW.getFirst().a());
        for (int step : new int[] {7, 8, 100}) {
            assertEquals(new Coefficients(1.875, -1.25, 0.375), schedule.at(step), "step " + step);
        }
    }

    @Test
    void kellerJordanScheduleIsConstant() {
        CoefficientSchedule schedule = CoefficientSchedule.kellerJordan();
        assertEquals(1.0, schedule.normScale());
        for (int step : new int[] {0, 4, 50}) {
            assertEquals(new Coefficients(3.4445, -4.7750, 2.0315), schedule.at(step));
        }
    }

    // ---------------------------------------------------------------- batched and in place

    @ParameterizedTest(name = "{0}")
    @MethodSource("backendNames")
    void batchEqualsPerSliceBitForBit(String backendName) {
        Backend backend = backend(backendName);
        NewtonSchulzConfig config = NewtonSchulzConfig.defaults();
        int count = 4;
        int rows = 24;
        int cols = 40;
        int size = rows * cols;
        float[] stack = gaussian(count * size + 5, 21);
        float[] batched = new float[count * size + 3];
        NewtonSchulz.orthogonalizeBatch(backend, config, stack, 5, count, rows, cols, batched, 3, new NewtonSchulz.Workspace());
        for (int i = 0; i < count; i++) {
            float[] slice = Arrays.copyOfRange(stack, 5 + i * size, 5 + (i + 1) * size);
            float[] single = NewtonSchulz.orthogonalize(backend, config, slice, rows, cols);
            assertArrayEquals(single, Arrays.copyOfRange(batched, 3 + i * size, 3 + (i + 1) * size), "slice " + i);
        }
    }

    static Stream<String> backendNames() {
        return Stream.of("openblas", "vector");
    }

    @Test
    void orthogonalizeAllEqualsPerMatrix() {
        NewtonSchulzConfig config = NewtonSchulzConfig.defaults();
        int rows = 40;
        int cols = 24;
        List<float[]> inputs = new ArrayList<>();
        List<float[]> outputs = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            inputs.add(gaussian(rows * cols, 100 + i));
            outputs.add(new float[rows * cols]);
        }
        NewtonSchulz.orthogonalizeAll(openBlas, config, rows, cols, inputs, outputs, new NewtonSchulz.Workspace());
        for (int i = 0; i < 3; i++) {
            assertArrayEquals(NewtonSchulz.orthogonalize(openBlas, config, inputs.get(i), rows, cols), outputs.get(i), "matrix " + i);
        }
    }

    @Test
    void inPlaceEqualsOutOfPlace() {
        NewtonSchulzConfig config = NewtonSchulzConfig.defaults();
        NewtonSchulz.Workspace workspace = new NewtonSchulz.Workspace();
        for (int[] shape : new int[][] {{24, 40}, {40, 24}}) {
            int rows = shape[0];
            int cols = shape[1];
            float[] g = gaussian(rows * cols + 2, 33);
            float[] outOfPlace = new float[rows * cols];
            NewtonSchulz.orthogonalize(openBlas, config, g, 2, rows, cols, outOfPlace, 0, workspace);
            float[] inPlace = g.clone();
            NewtonSchulz.orthogonalize(openBlas, config, inPlace, 2, rows, cols, inPlace, 2, workspace);
            assertArrayEquals(outOfPlace, Arrays.copyOfRange(inPlace, 2, 2 + rows * cols), rows + "×" + cols);
            assertEquals(g[0], inPlace[0]);
            assertEquals(g[1], inPlace[1]);
        }
    }

    @Test
    void inputIsNotModified() {
        float[] g = gaussian(17 * 33, 5);
        float[] copy = g.clone();
        NewtonSchulz.orthogonalize(openBlas, NewtonSchulzConfig.defaults(), g, 17, 33);
        assertArrayEquals(copy, g);
    }

    // ---------------------------------------------------------------- invariances

    @Test
    void scaleInvariance() {
        int rows = 32;
        int cols = 48;
        float[] g = gaussian(rows * cols, 44);
        // With eps = 0 and a power-of-two factor every rounding is the same: bit for bit.
        NewtonSchulzConfig noEps = NewtonSchulzConfig.defaults().withEps(0);
        float[] base = NewtonSchulz.orthogonalize(openBlas, noEps, g, rows, cols);
        for (float c : new float[] {0.125f, 1024f}) {
            assertArrayEquals(base, NewtonSchulz.orthogonalize(openBlas, noEps, scaled(g, c), rows, cols), "factor " + c);
        }
        // With the default eps and other factors: equal up to the effect of eps and rounding.
        NewtonSchulzConfig config = NewtonSchulzConfig.defaults();
        float[] reference = NewtonSchulz.orthogonalize(openBlas, config, g, rows, cols);
        double[] want = new double[reference.length];
        for (int i = 0; i < want.length; i++) {
            want[i] = reference[i];
        }
        for (float c : new float[] {0.37f, 3.7f, 1e3f}) {
            float[] got = NewtonSchulz.orthogonalize(openBlas, config, scaled(g, c), rows, cols);
            double error = relativeError(got, want);
            assertTrue(error <= F32_TOLERANCE, "factor " + c + ": relative error " + error);
        }
    }

    @Test
    void transposeCommutes() {
        NewtonSchulzConfig config = NewtonSchulzConfig.defaults();
        int rows = 20;
        int cols = 36;
        float[] g = gaussian(rows * cols, 55);
        float[] gt = new float[g.length];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                gt[c * rows + r] = g[r * cols + c];
            }
        }
        float[] o = NewtonSchulz.orthogonalize(openBlas, config, g, rows, cols);
        float[] ot = NewtonSchulz.orthogonalize(openBlas, config, gt, cols, rows);
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                assertEquals(o[r * cols + c], ot[c * rows + r], "element " + r + "," + c);
            }
        }
    }

    @Test
    void zeroMatrixGivesZero() {
        for (double eps : new double[] {NewtonSchulzConfig.DEFAULT_EPS, 0}) {
            NewtonSchulzConfig config = NewtonSchulzConfig.defaults().withEps(eps);
            float[] o = NewtonSchulz.orthogonalize(openBlas, config, new float[12 * 20], 12, 20);
            assertArrayEquals(new float[12 * 20], o, "eps " + eps);
        }
    }

    /**
     * The bfloat16 products' own entry (the input normalised straight into bfloat16): a zero matrix gives zero with
     * either eps, a tiny one with eps = 0 takes the two-step scaling and stays finite, and a matrix scaled by a power of
     * two gives the same bits (its normalised bfloat16 X is the same).
     */
    @Test
    void bfloat16ProductsEdgeCases() {
        org.junit.jupiter.api.Assumptions.assumeTrue(oneDnn.bf16Matmul().isPresent(), "no bfloat16 products on this processor");
        for (double eps : new double[] {NewtonSchulzConfig.DEFAULT_EPS, 0}) {
            NewtonSchulzConfig config = NewtonSchulzConfig.defaults().withPrecision(DType.BF16).withEps(eps);
            assertArrayEquals(new float[12 * 20], NewtonSchulz.orthogonalize(oneDnn, config, new float[12 * 20], 12, 20), "eps " + eps);
        }
        NewtonSchulzConfig zeroEps = NewtonSchulzConfig.defaults().withPrecision(DType.BF16).withEps(0);
        for (int[] shape : new int[][] {{8, 12}, {12, 8}, {1, 5}, {5, 1}}) {
            float[] g = gaussian(shape[0] * shape[1], 67);
            float[] o = NewtonSchulz.orthogonalize(oneDnn, zeroEps, scaled(g, 1e-41f), shape[0], shape[1]);
            for (float v : o) {
                assertTrue(Float.isFinite(v), shape[0] + "×" + shape[1] + ": finite output of a tiny input");
            }
            float[] plain = NewtonSchulz.orthogonalize(oneDnn, zeroEps, g, shape[0], shape[1]);
            assertArrayEquals(plain, NewtonSchulz.orthogonalize(oneDnn, zeroEps, scaled(g, 0x1p-20f), shape[0], shape[1]),
                    shape[0] + "×" + shape[1] + ": scaling by 2^-20 changes nothing");
        }
    }

    @Test
    void tinyInputWithZeroEpsStaysFinite() {
        // With eps = 0, 1/‖G‖_F overflows float32 for ‖G‖_F below about 3e-39: no Inf or NaN may come out.
        NewtonSchulzConfig config = NewtonSchulzConfig.defaults().withEps(0);
        for (int[] shape : new int[][] {{8, 12}, {1, 5}, {5, 1}}) {
            int rows = shape[0];
            int cols = shape[1];
            float[] g = scaled(gaussian(rows * cols, 66), 1e-41f);
            float[] o = NewtonSchulz.orthogonalize(openBlas, config, g, rows, cols);
            for (float v : o) {
                assertTrue(Float.isFinite(v), rows + "×" + cols + ": finite output");
            }
        }
        // A vector's norm is computed exactly in double (shorter than one SIMD vector): G/‖G‖_F is a unit row.
        float[] g = {3e-41f, 4e-41f, 0f};
        float[] o = NewtonSchulz.orthogonalize(openBlas, config, g, 1, 3);
        double[] sv = singularValues(o, 1, 3);
        assertTrue(sv[0] > 0.6 && sv[0] < 1.21, "1×3 output singular value " + sv[0]);
    }

    private static float[] scaled(float[] g, float c) {
        float[] out = new float[g.length];
        for (int i = 0; i < g.length; i++) {
            out[i] = g[i] * c;
        }
        return out;
    }

    // ---------------------------------------------------------------- bad input

    @Test
    void rejectsNonPositiveShape() {
        NewtonSchulzConfig config = NewtonSchulzConfig.defaults();
        float[] g = new float[16];
        for (int[] shape : new int[][] {{0, 4}, {4, 0}, {-1, 4}, {4, -3}}) {
            var e = assertThrows(IllegalArgumentException.class, () -> NewtonSchulz.orthogonalize(openBlas, config,
                    g, 0, shape[0], shape[1], new float[16], 0, new NewtonSchulz.Workspace()));
            assertTrue(e.getMessage().contains("positive size"), e.getMessage());
        }
        var e = assertThrows(IllegalArgumentException.class, () -> NewtonSchulz.orthogonalizeBatch(openBlas, config,
                g, 0, -1, 2, 2, new float[16], 0, new NewtonSchulz.Workspace()));
        assertTrue(e.getMessage().contains("count"), e.getMessage());
    }

    @Test
    void rejectsShortArrays() {
        NewtonSchulzConfig config = NewtonSchulzConfig.defaults();
        var input = assertThrows(IllegalArgumentException.class, () -> NewtonSchulz.orthogonalize(openBlas, config,
                new float[11], 0, 3, 4, new float[12], 0, new NewtonSchulz.Workspace()));
        assertTrue(input.getMessage().contains("input") && input.getMessage().contains("11"), input.getMessage());
        var offset = assertThrows(IllegalArgumentException.class, () -> NewtonSchulz.orthogonalize(openBlas, config,
                new float[12], 1, 3, 4, new float[12], 0, new NewtonSchulz.Workspace()));
        assertTrue(offset.getMessage().contains("input"), offset.getMessage());
        var output = assertThrows(IllegalArgumentException.class, () -> NewtonSchulz.orthogonalize(openBlas, config,
                new float[12], 0, 3, 4, new float[12], 2, new NewtonSchulz.Workspace()));
        assertTrue(output.getMessage().contains("output"), output.getMessage());
        var batch = assertThrows(IllegalArgumentException.class, () -> NewtonSchulz.orthogonalizeBatch(openBlas, config,
                new float[23], 0, 2, 3, 4, new float[24], 0, new NewtonSchulz.Workspace()));
        assertTrue(batch.getMessage().contains("input"), batch.getMessage());
        var lists = assertThrows(IllegalArgumentException.class, () -> NewtonSchulz.orthogonalizeAll(openBlas, config,
                3, 4, List.of(new float[12]), List.of(), new NewtonSchulz.Workspace()));
        assertTrue(lists.getMessage().contains("differ"), lists.getMessage());
    }

    @Test
    void configRejectsBadSettings() {
        NewtonSchulzConfig config = NewtonSchulzConfig.defaults();
        for (int steps : new int[] {0, -1}) {
            var e = assertThrows(IllegalArgumentException.class, () -> config.withSteps(steps));
            assertTrue(e.getMessage().contains("steps"), e.getMessage());
        }
        for (double eps : new double[] {-1e-7, Double.NaN, Double.POSITIVE_INFINITY}) {
            var e = assertThrows(IllegalArgumentException.class, () -> config.withEps(eps));
            assertTrue(e.getMessage().contains("eps"), e.getMessage());
        }
        assertThrows(IllegalArgumentException.class, () -> new Coefficients(Double.NaN, 1, 1));
        assertThrows(IllegalArgumentException.class, () -> CoefficientSchedule.of(List.of()));
        assertThrows(IllegalArgumentException.class, () -> CoefficientSchedule.kellerJordan().at(-1));
    }
}
