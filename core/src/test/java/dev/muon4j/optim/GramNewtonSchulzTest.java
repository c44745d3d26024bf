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
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Checks {@link NewtonSchulzConfig.Method#GRAM} (Gram Newton–Schulz) against the standard iteration:
 * a float64 Gram iteration written here equals {@link NewtonSchulzTest#reference} (the standard one in
 * float64) to 1e-12, so the two methods are the same function; muon4j's float32 Gram result is then
 * held to that float64 reference and to the float32 standard result, on square, wide, tall and
 * nearly square shapes and every kind of coefficient schedule, on both backends; its singular-value
 * band (from the eigenvalues of O·Oᵀ in float64) is held to the standard one's. Also: square inputs
 * run the standard iteration bit for bit, the workspace is reusable across methods, and bad settings
 * are refused naming the value.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class GramNewtonSchulzTest {
    /**
     * Relative Frobenius error allowed against the float64 reference and between the two float32
     * methods. The standard float32 iteration stays within {@code NewtonSchulzTest}'s 1e-5 (at most 2e-6
     * in the cases here). The Gram iteration works on R = X·Xᵀ, whose condition number is X's squared,
     * and carries R from step to step between restarts, so float32 rounding reaches the directions of
     * the smallest singular values harder. Measured against float64 (printed per case): Keller Jordan
     * at most 9e-6 (standard 1.5e-6); Polar Express 3.7e-5 on the nearly square 64×63 (standard 2e-6),
     * 8.2e-5 there with eight steps (six after the one restart); the custom list 6.8e-5 on 96×200,
     * where the standard method's own error is 6.3e-5. All far below bfloat16's 8e-2.
     */
    private static final double F32_TOLERANCE = 1e-4;
    /**
     * How far an end of the singular-value band may move from the standard method's and from the float64
     * reference's (absolute). Measured: under 1e-5 at both ends.
     */
    private static final double BAND_TOLERANCE = 1e-4;

    private Backend openBlas;
    private Backend vector;

    @BeforeAll
    void openBackends() {
        openBlas = Backends.openBundled(2);
        vector = new VectorBackend(2);
    }

    @AfterAll
    void closeBackends() {
        if (openBlas != null) {
            openBlas.close();
        }
        if (vector != null) {
            vector.close();
        }
    }

    private static NewtonSchulzConfig gram(NewtonSchulzConfig config) {
        return config.withMethod(NewtonSchulzConfig.Method.GRAM);
    }

    // ---------------------------------------------------------------- float64 Gram reference

    /**
     * Gram Newton–Schulz in float64 with plain loops, from Dao-AILab/gram-newton-schulz
     * {@code GramNewtonSchulz._gram_newton_schulz}: transpose when rows &gt; cols, X = G / (s·‖G‖_F + eps),
     * R = X·Xᵀ, Q = I; at step t, if t is in {@code restarts} (t &gt; 0): X = Q·X, R = X·Xᵀ, Q = I; then
     * Z = b·R + c·R·R, Q = Q·(Z + aI), R = (Z + aI)·R·(Z + aI); finally X = Q·X, transpose back. Unlike
     * the code under test it runs square matrices through the Gram iteration too, and updates R at every
     * step.
     */
    static double[] gramReference(float[] g, int rows, int cols, CoefficientSchedule schedule, int steps, double eps,
                                  List<Integer> restarts) {
        boolean transposed = rows > cols;
        int m = Math.min(rows, cols);
        int n = Math.max(rows, cols);
        double[] x = new double[m * n];
        double sumSq = 0;
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                double v = g[r * cols + c];
                x[transposed ? c * n + r : r * n + c] = v;
                sumSq += v * v;
            }
        }
        double factor = 1.0 / (schedule.normScale() * Math.sqrt(sumSq) + eps);
        for (int i = 0; i < x.length; i++) {
            x[i] *= factor;
        }
        double[] r = NewtonSchulzTest.multiplyByTranspose(x, m, n);
        double[] q = identity(m);
        for (int step = 0; step < steps; step++) {
            if (step > 0 && restarts.contains(step)) {
                x = NewtonSchulzTest.multiply(q, m, m, x, n);
                r = NewtonSchulzTest.multiplyByTranspose(x, m, n);
                q = identity(m);
            }
            Coefficients k = schedule.at(step);
            double[] rr = NewtonSchulzTest.multiply(r, m, m, r, m);
            double[] w = new double[m * m];
            for (int i = 0; i < w.length; i++) {
                w[i] = k.b() * r[i] + k.c() * rr[i];
            }
            for (int i = 0; i < m; i++) {
                w[i * m + i] += k.a();
            }
            q = NewtonSchulzTest.multiply(q, m, m, w, m);
            r = NewtonSchulzTest.multiply(w, m, m, NewtonSchulzTest.multiply(r, m, m, w, m), m);
        }
        x = NewtonSchulzTest.multiply(q, m, m, x, n);
        double[] out = new double[rows * cols];
        for (int row = 0; row < rows; row++) {
            for (int c = 0; c < cols; c++) {
                out[row * cols + c] = transposed ? x[c * n + row] : x[row * n + c];
            }
        }
        return out;
    }

    private static double[] identity(int m) {
        double[] id = new double[m * m];
        for (int i = 0; i < m; i++) {
            id[i * m + i] = 1;
        }
        return id;
    }

    private static double relative(double[] got, double[] want) {
        double diff = 0;
        double norm = 0;
        for (int i = 0; i < want.length; i++) {
            diff += (got[i] - want[i]) * (got[i] - want[i]);
            norm += want[i] * want[i];
        }
        return Math.sqrt(diff / norm);
    }

    private static double relative(float[] got, float[] want) {
        double[] w = new double[want.length];
        for (int i = 0; i < w.length; i++) {
            w[i] = want[i];
        }
        return NewtonSchulzTest.relativeError(got, w);
    }

    // ---------------------------------------------------------------- cases

    /** Shapes: square, wide, tall, nearly square, a single row or column, and a Muon-like 1:4 aspect. */
    private static final int[][] SHAPES = {{32, 32}, {17, 33}, {33, 17}, {63, 64}, {64, 63}, {96, 200}, {200, 96},
        {1, 5}, {5, 1}, {48, 192}};

    /**
     * Every kind of schedule: Keller Jordan's constant triple, Polar Express's per-step list (5 steps, and
     * 8 to reach its tail), a convergent constant polynomial run long, and a user's list (Polar Express's
     * first three safety-scaled triples, then Keller Jordan's).
     */
    private static final List<String> SCHEDULES = List.of("keller-jordan", "polar-express", "polar-express-8",
            "convergent-12", "custom");

    static Stream<Arguments> cases() {
        List<Arguments> out = new ArrayList<>();
        for (String backend : List.of("openblas", "vector")) {
            for (String schedule : SCHEDULES) {
                for (int[] shape : SHAPES) {
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
            default -> throw new IllegalArgumentException(name);
        };
    }

    /** The standard-method config of a named schedule, with its step count. */
    static NewtonSchulzConfig config(String name) {
        NewtonSchulzConfig base = NewtonSchulzConfig.defaults();
        return switch (name) {
            case "keller-jordan" -> base;
            case "polar-express" -> base.withSchedule(CoefficientSchedule.polarExpress());
            // Eight steps: the seven per-step triples and the tail, one restart at step 2 only.
            case "polar-express-8" -> base.withSchedule(CoefficientSchedule.polarExpress()).withSteps(8);
            // NewtonSchulzTest's convergent quintic (2, -1.5, 0.5): p(1) = 1, p'(1) = 0.
            case "convergent-12" -> base.withSchedule(CoefficientSchedule.constant(new Coefficients(2, -1.5, 0.5))).withSteps(12);
            case "custom" -> {
                CoefficientSchedule polar = CoefficientSchedule.polarExpress();
                yield base.withSchedule(CoefficientSchedule.of(List.of(polar.at(0), polar.at(1), polar.at(2),
                        CoefficientSchedule.KELLER_JORDAN)));
            }
            default -> throw new IllegalArgumentException(name);
        };
    }

    @Test
    void float64GramIterationEqualsTheStandardOne() {
        for (String name : SCHEDULES) {
            NewtonSchulzConfig c = config(name);
            for (int[] shape : SHAPES) {
                float[] g = NewtonSchulzTest.gaussian(shape[0] * shape[1], 5L * shape[0] + shape[1]);
                double[] standard = NewtonSchulzTest.reference(g, shape[0], shape[1], c.schedule(), c.steps(), c.eps());
                for (List<Integer> restarts : List.of(List.<Integer>of(), NewtonSchulzConfig.GRAM_RESTARTS, List.of(1, 3))) {
                    double[] gram = gramReference(g, shape[0], shape[1], c.schedule(), c.steps(), c.eps(), restarts);
                    double error = relative(gram, standard);
                    assertTrue(error < 1e-12, name + " " + shape[0] + "×" + shape[1] + " restarts " + restarts + ": " + error);
                }
            }
        }
    }

    @ParameterizedTest(name = "{0} {1} {2}×{3}")
    @MethodSource("cases")
    void gramMatchesTheStandardMethodAndTheFloat64Reference(String backendName, String scheduleName, int rows, int cols) {
        Backend backend = backend(backendName);
        NewtonSchulzConfig standard = config(scheduleName);
        float[] g = NewtonSchulzTest.gaussian(rows * cols, 41L * rows + cols);
        float[] viaGram = NewtonSchulz.orthogonalize(backend, gram(standard), g, rows, cols);
        float[] viaStandard = NewtonSchulz.orthogonalize(backend, standard, g, rows, cols);
        double[] want = gramReference(g, rows, cols, standard.schedule(), standard.steps(), standard.eps(),
                NewtonSchulzConfig.GRAM_RESTARTS);
        double gramError = NewtonSchulzTest.relativeError(viaGram, want);
        double standardError = NewtonSchulzTest.relativeError(viaStandard, want);
        double between = relative(viaGram, viaStandard);
        System.out.printf("gram %s %s %d×%d: vs float64 %.3e (standard %.3e), vs standard f32 %.3e%n",
                backendName, scheduleName, rows, cols, gramError, standardError, between);
        assertTrue(gramError <= F32_TOLERANCE, "Gram vs float64: relative error " + gramError + " > " + F32_TOLERANCE);
        assertTrue(between <= F32_TOLERANCE, "Gram vs standard float32: relative difference " + between);
        if (rows == cols) {
            assertArrayEquals(viaStandard, viaGram, "a square matrix runs the standard iteration");
        }
    }

    /**
     * The singular-value band [min, max] of the output, from the eigenvalues of O·Oᵀ in float64: the
     * Gram method's band is the standard one's within {@link #BAND_TOLERANCE} at both ends, on a 1:4
     * Gaussian (the aspect of a 1024×4096 weight) and on a matrix whose singular values spread over
     * four decades (σ_i = 10^(−4i/(m−1)), random orthogonal-ish factors from Gaussians), where the
     * Gram method's squared condition number would show first.
     */
    @Test
    void singularValueBandIsTheStandardOne() {
        for (String name : List.of("keller-jordan", "polar-express")) {
            NewtonSchulzConfig standard = config(name);
            for (String input : List.of("gaussian", "graded")) {
                int rows = 64;
                int cols = 256;
                float[] g = input.equals("gaussian") ? NewtonSchulzTest.gaussian(rows * cols, 77) : graded(rows, cols, 79);
                double[] svStandard = NewtonSchulzTest.singularValues(NewtonSchulz.orthogonalize(openBlas, standard, g, rows, cols),
                        rows, cols);
                double[] svGram = NewtonSchulzTest.singularValues(NewtonSchulz.orthogonalize(openBlas, gram(standard), g, rows, cols),
                        rows, cols);
                double[] svFloat64 = NewtonSchulzTest.singularValues(
                        NewtonSchulzTest.reference(g, rows, cols, standard.schedule(), standard.steps(), standard.eps()), rows, cols);
                System.out.printf("%s %s 64×256: band float64 [%.5f, %.5f], standard [%.5f, %.5f], gram [%.5f, %.5f]%n",
                        name, input, svFloat64[0], svFloat64[rows - 1], svStandard[0], svStandard[rows - 1], svGram[0], svGram[rows - 1]);
                assertEquals(svStandard[0], svGram[0], BAND_TOLERANCE, name + " " + input + ": smallest singular value");
                assertEquals(svStandard[rows - 1], svGram[rows - 1], BAND_TOLERANCE, name + " " + input + ": largest singular value");
                assertEquals(svFloat64[0], svGram[0], BAND_TOLERANCE, name + " " + input + ": smallest vs float64");
                assertEquals(svFloat64[rows - 1], svGram[rows - 1], BAND_TOLERANCE, name + " " + input + ": largest vs float64");
            }
        }
    }

    /** U·diag(σ)·V with U (rows×rows) and V (rows×cols) Gaussian with orthonormalised rows, σ_i = 10^(−4i/(rows−1)). */
    private static float[] graded(int rows, int cols, long seed) {
        double[] u = orthonormalRows(NewtonSchulzTest.gaussian(rows * rows, seed), rows, rows);
        double[] v = orthonormalRows(NewtonSchulzTest.gaussian(rows * cols, seed + 1), rows, cols);
        for (int i = 0; i < rows; i++) {
            double sigma = Math.pow(10, -4.0 * i / (rows - 1));
            for (int j = 0; j < cols; j++) {
                v[i * cols + j] *= sigma;
            }
        }
        double[] g = NewtonSchulzTest.multiply(u, rows, rows, v, cols);
        float[] out = new float[g.length];
        for (int i = 0; i < g.length; i++) {
            out[i] = (float) g[i];
        }
        return out;
    }

    /** Gram–Schmidt on the rows (modified, twice for accuracy). */
    private static double[] orthonormalRows(float[] x, int rows, int cols) {
        double[] q = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            q[i] = x[i];
        }
        for (int pass = 0; pass < 2; pass++) {
            for (int i = 0; i < rows; i++) {
                for (int j = 0; j < i; j++) {
                    double dot = 0;
                    for (int k = 0; k < cols; k++) {
                        dot += q[i * cols + k] * q[j * cols + k];
                    }
                    for (int k = 0; k < cols; k++) {
                        q[i * cols + k] -= dot * q[j * cols + k];
                    }
                }
                double norm = 0;
                for (int k = 0; k < cols; k++) {
                    norm += q[i * cols + k] * q[i * cols + k];
                }
                norm = Math.sqrt(norm);
                for (int k = 0; k < cols; k++) {
                    q[i * cols + k] /= norm;
                }
            }
        }
        return q;
    }

    // ---------------------------------------------------------------- workspace, batches, edge cases

    @Test
    void oneWorkspaceServesBothMethodsAndAnyShapeOrder() {
        NewtonSchulzConfig standard = NewtonSchulzConfig.defaults();
        NewtonSchulz.Workspace ws = new NewtonSchulz.Workspace();
        int[][] shapes = {{40, 100}, {8, 30}, {100, 40}, {40, 100}};
        for (int[] s : shapes) {
            float[] g = NewtonSchulzTest.gaussian(s[0] * s[1], s[0] + 7L * s[1]);
            for (NewtonSchulzConfig c : List.of(standard, gram(standard))) {
                float[] fresh = NewtonSchulz.orthogonalize(openBlas, c, g, s[0], s[1]);
                float[] reused = new float[g.length];
                NewtonSchulz.orthogonalize(openBlas, c, g, 0, s[0], s[1], reused, 0, ws);
                assertArrayEquals(fresh, reused, c.method() + " " + s[0] + "×" + s[1] + " with a used workspace");
            }
        }
        // In place, and batched: each slice as alone, bit for bit.
        float[] g = NewtonSchulzTest.gaussian(3 * 12 * 30, 91);
        float[] batched = new float[g.length];
        NewtonSchulz.orthogonalizeBatch(openBlas, gram(standard), g, 0, 3, 12, 30, batched, 0, ws);
        float[] inPlace = g.clone();
        NewtonSchulz.orthogonalizeBatch(openBlas, gram(standard), inPlace, 0, 3, 12, 30, inPlace, 0, ws);
        assertArrayEquals(batched, inPlace);
        for (int i = 0; i < 3; i++) {
            float[] slice = java.util.Arrays.copyOfRange(g, i * 360, (i + 1) * 360);
            assertArrayEquals(NewtonSchulz.orthogonalize(openBlas, gram(standard), slice, 12, 30),
                    java.util.Arrays.copyOfRange(batched, i * 360, (i + 1) * 360), "slice " + i);
        }
    }

    @Test
    void zeroInputGivesZeroAndOneStepWorks() {
        NewtonSchulzConfig c = gram(NewtonSchulzConfig.defaults());
        assertArrayEquals(new float[20], NewtonSchulz.orthogonalize(openBlas, c, new float[20], 4, 5));
        assertArrayEquals(new float[20], NewtonSchulz.orthogonalize(openBlas, c.withEps(0), new float[20], 4, 5));
        for (int steps : new int[] {1, 2, 3}) {
            float[] g = NewtonSchulzTest.gaussian(10 * 30, steps);
            NewtonSchulzConfig s = NewtonSchulzConfig.defaults().withSteps(steps);
            double[] want = NewtonSchulzTest.reference(g, 10, 30, s.schedule(), steps, s.eps());
            double error = NewtonSchulzTest.relativeError(NewtonSchulz.orthogonalize(openBlas, gram(s), g, 10, 30), want);
            assertTrue(error <= F32_TOLERANCE, steps + " steps: " + error);
        }
    }

    // ---------------------------------------------------------------- settings

    @Test
    void configKeepsTheMethodAndRefusesBfloat16() {
        NewtonSchulzConfig c = gram(NewtonSchulzConfig.defaults());
        assertEquals(NewtonSchulzConfig.Method.STANDARD, NewtonSchulzConfig.defaults().method());
        assertEquals(NewtonSchulzConfig.Method.STANDARD, NewtonSchulzConfig.torchBf16().method());
        assertEquals(NewtonSchulzConfig.Method.STANDARD,
                new NewtonSchulzConfig(CoefficientSchedule.kellerJordan(), 5, 1e-7, DType.F32).method());
        assertEquals(NewtonSchulzConfig.Method.STANDARD, new NewtonSchulzConfig(CoefficientSchedule.kellerJordan(), 5, 1e-7,
                DType.BF16, NewtonSchulzConfig.Normalization.TORCH_BF16).method());
        assertEquals(NewtonSchulzConfig.Method.GRAM, c.withSteps(7).withEps(0).withSchedule(CoefficientSchedule.polarExpress())
                .withPrecision(DType.F32).method());
        IllegalArgumentException bf16 = assertThrows(IllegalArgumentException.class, () -> c.withPrecision(DType.BF16));
        assertTrue(bf16.getMessage().contains("float32 only") && bf16.getMessage().contains("BF16"), bf16.getMessage());
        IllegalArgumentException torch = assertThrows(IllegalArgumentException.class,
                () -> NewtonSchulzConfig.torchBf16().withMethod(NewtonSchulzConfig.Method.GRAM));
        assertTrue(torch.getMessage().contains("torch"), torch.getMessage());
        assertThrows(NullPointerException.class, () -> c.withMethod(null));
        assertEquals(List.of(2), NewtonSchulzConfig.GRAM_RESTARTS);
    }
}
