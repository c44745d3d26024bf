package dev.muon4j.linalg;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * {@link Lapack#singularValues} against matrices whose singular values are known by construction: diagonal
 * ones, U·diag(σ)·Vᵀ with U and V orthogonal built in float64 (Gram–Schmidt on Gaussian matrices), rank one
 * u·vᵀ (σ₁ = |u|·|v|, the rest 0), tall and wide; a matrix inside a larger array; bad input refused.
 *
 * <p>Tolerance: 2e-5 × σ₁. LAPACK's SVD drivers bound each error by a modest multiple of ε·σ₁ (LAPACK
 * Users' Guide §4.9), with float32's ε = 6e-8; rounding the float64 matrix to float32 adds a perturbation
 * of about ε·‖A‖_F, so 2e-5·σ₁ (some 300 ε) leaves room for both at these sizes and still fails for a
 * value off by one part in 50,000.
 */
class LapackTest {
    static final double TOLERANCE = 2e-5;
    static Lapack lapack;

    @BeforeAll
    static void open() {
        lapack = Lapack.openBundled();
    }

    private static void assertSpectrum(double[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what + ": count");
        double largest = expected[0];
        for (int i = 0; i < expected.length; i++) {
            assertEquals(expected[i], actual[i], TOLERANCE * largest, what + ": σ" + (i + 1) + " of " + java.util.Arrays.toString(actual));
        }
    }

    @Test
    void diagonalMatricesGiveTheirDiagonalSortedLargestFirst() {
        // 3 × 3 diag(3, -1, 2): singular values are the absolute values, sorted.
        float[] square = {3, 0, 0, 0, -1, 0, 0, 0, 2};
        assertSpectrum(new double[] {3, 2, 1}, lapack.singularValues(square, 0, 3, 3), "3 × 3");
        // 4 × 2 (tall) and 2 × 4 (wide) with 5 and 0.5 on the diagonal.
        float[] tall = {0.5f, 0, 0, 5, 0, 0, 0, 0};
        assertSpectrum(new double[] {5, 0.5}, lapack.singularValues(tall, 0, 4, 2), "4 × 2");
        float[] wide = {0.5f, 0, 0, 0, 0, 5, 0, 0};
        assertSpectrum(new double[] {5, 0.5}, lapack.singularValues(wide, 0, 2, 4), "2 × 4");
        float[] identity = new float[16 * 16];
        for (int i = 0; i < 16; i++) {
            identity[i * 16 + i] = 1;
        }
        float[] ones = lapack.singularValues(identity, 0, 16, 16);
        for (float s : ones) {
            assertEquals(1.0, s, 1e-6);
        }
        assertEquals(1.0, SvdEntropy.of(ones), 1e-6, "the identity's SVD entropy");
    }

    @Test
    void orthogonalTimesDiagonalTimesOrthogonalGivesTheDiagonal() {
        Random random = new Random(20261130);
        int rows = 40;
        int cols = 25;
        double[] sigma = new double[cols];
        for (int i = 0; i < cols; i++) {
            sigma[i] = 5.0 / (i + 1);  // 5, 2.5, 1.67, … 0.2: a spread of 25
        }
        double[][] u = orthogonal(rows, random);
        double[][] v = orthogonal(cols, random);
        float[] a = product(u, sigma, v, rows, cols);
        float[] before = a.clone();
        assertSpectrum(sigma, lapack.singularValues(a, 0, rows, cols), "40 × 25");
        assertArrayEquals(before, a, "the input is not modified");
        // Its transpose, V·diag(σ)·Uᵀ, is wide.
        assertSpectrum(sigma, lapack.singularValues(product(v, sigma, u, cols, rows), 0, cols, rows), "its 25 × 40 transpose");
        double[] spread = {8, 8, 3, 1e-3};  // a repeated value and one 8,000 times smaller
        assertSpectrum(spread, lapack.singularValues(product(orthogonal(7, random), spread, orthogonal(4, random), 7, 4), 0, 7, 4), "7 × 4");
    }

    @Test
    void rankOneHasOneSingularValue() {
        Random random = new Random(7);
        int rows = 30;
        int cols = 12;
        double[] u = new double[rows];
        double[] v = new double[cols];
        double uu = 0;
        double vv = 0;
        for (int i = 0; i < rows; i++) {
            u[i] = random.nextGaussian();
            uu += u[i] * u[i];
        }
        for (int j = 0; j < cols; j++) {
            v[j] = random.nextGaussian();
            vv += v[j] * v[j];
        }
        float[] a = new float[rows * cols];
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < cols; j++) {
                a[i * cols + j] = (float) (u[i] * v[j]);
            }
        }
        double[] expected = new double[cols];
        expected[0] = Math.sqrt(uu) * Math.sqrt(vv);
        float[] s = lapack.singularValues(a, 0, rows, cols);
        assertSpectrum(expected, s, "u·vᵀ");
        assertEquals(0.0, SvdEntropy.of(s), 1e-6, "a rank-one matrix's SVD entropy");
    }

    @Test
    void theLibrarysThreadCountIsPutBackAfterEachCall() throws Throwable {
        // The count is the library's, shared with an OpenBLAS backend opened from the same file: a call must leave it as it was.
        var lookup = java.lang.foreign.SymbolLookup.libraryLookup(lapack.library(), java.lang.foreign.Arena.global());
        var linker = java.lang.foreign.Linker.nativeLinker();
        var get = linker.downcallHandle(lookup.find("openblas_get_num_threads").orElseThrow(),
                java.lang.foreign.FunctionDescriptor.of(java.lang.foreign.ValueLayout.JAVA_INT));
        var set = linker.downcallHandle(lookup.find("openblas_set_num_threads").orElseThrow(),
                java.lang.foreign.FunctionDescriptor.ofVoid(java.lang.foreign.ValueLayout.JAVA_INT));
        int before = (int) get.invokeExact();
        try {
            set.invokeExact(2);
            assertSpectrum(new double[] {2, 1}, lapack.singularValues(new float[] {0, 2, 1, 0}, 0, 2, 2), "2 × 2");
            assertEquals(2, (int) get.invokeExact(), "the thread count after the call");
        } finally {
            set.invokeExact(before);
        }
    }

    @Test
    void aMatrixInsideALargerArray() {
        // Two 2 × 3 matrices stacked, as the experts of a stack lie in one parameter: the second has σ = (2, 1).
        float[] stack = {9, 9, 9, 9, 9, 9, 1, 0, 0, 0, 2, 0};
        assertSpectrum(new double[] {2, 1}, lapack.singularValues(stack, 6, 2, 3), "the second matrix");
    }

    @Test
    void badInputIsRefusedNamingWhatWasWrong() {
        float[] a = new float[12];
        IllegalArgumentException empty = assertThrows(IllegalArgumentException.class, () -> lapack.singularValues(a, 0, 0, 3));
        assertTrue(empty.getMessage().contains("a 0 × 3 matrix: both sizes must be at least 1"), empty.getMessage());
        IllegalArgumentException outside = assertThrows(IllegalArgumentException.class, () -> lapack.singularValues(a, 4, 3, 3));
        assertTrue(outside.getMessage().contains("a 3 × 3 matrix at offset 4 does not fit in an array of 12 floats"), outside.getMessage());
        assertThrows(IllegalArgumentException.class, () -> lapack.singularValues(a, -1, 2, 2));
        a[7] = Float.NaN;
        IllegalArgumentException nan = assertThrows(IllegalArgumentException.class, () -> lapack.singularValues(a, 0, 3, 4));
        assertTrue(nan.getMessage().contains("entry (1, 3) is NaN, not a finite number"), nan.getMessage());
        IllegalStateException missing = assertThrows(IllegalStateException.class, () -> Lapack.open(Path.of("/nonexistent/libopenblas.so.0")));
        assertTrue(missing.getMessage().contains("cannot load LAPACK from /nonexistent/libopenblas.so.0"), missing.getMessage());
    }

    /** An n × n orthogonal matrix: Gram–Schmidt (twice, for float64 orthogonality) on the columns of a Gaussian matrix. */
    static double[][] orthogonal(int n, Random random) {
        double[][] q = new double[n][n];  // q[column][row]
        for (int c = 0; c < n; c++) {
            for (int r = 0; r < n; r++) {
                q[c][r] = random.nextGaussian();
            }
            for (int pass = 0; pass < 2; pass++) {
                for (int p = 0; p < c; p++) {
                    double dot = 0;
                    for (int r = 0; r < n; r++) {
                        dot += q[c][r] * q[p][r];
                    }
                    for (int r = 0; r < n; r++) {
                        q[c][r] -= dot * q[p][r];
                    }
                }
            }
            double norm = 0;
            for (int r = 0; r < n; r++) {
                norm += q[c][r] * q[c][r];
            }
            norm = Math.sqrt(norm);
            for (int r = 0; r < n; r++) {
                q[c][r] /= norm;
            }
        }
        return q;
    }

    /** U[:, :k]·diag(σ)·V[:, :k]ᵀ in float64, k = σ.length, rounded to a row-major float32 rows × cols matrix. */
    static float[] product(double[][] u, double[] sigma, double[][] v, int rows, int cols) {
        float[] a = new float[rows * cols];
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < cols; j++) {
                double sum = 0;
                for (int k = 0; k < sigma.length; k++) {
                    sum += u[k][i] * sigma[k] * v[k][j];
                }
                a[i * cols + j] = (float) sum;
            }
        }
        return a;
    }
}
