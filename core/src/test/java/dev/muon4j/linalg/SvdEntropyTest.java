package dev.muon4j.linalg;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/**
 * {@link SvdEntropy} on spectra whose entropy is known: equal values give 1, one non-zero value 0, two
 * spectra against values worked out by hand (below), the same at any scale; a zero matrix, a single value
 * and impossible values are refused, naming what was wrong.
 */
class SvdEntropyTest {
    @Test
    void equalSingularValuesGiveOne() {
        // The identity's (or any orthogonal matrix's) spectrum: pᵢ = 1/n, −Σ (1/n) log(1/n) = log n.
        for (int n : new int[] {2, 3, 7, 192}) {
            float[] ones = new float[n];
            java.util.Arrays.fill(ones, 1f);
            assertEquals(1.0, SvdEntropy.of(ones), 1e-14, "n = " + n);
        }
    }

    @Test
    void oneNonZeroValueGivesZero() {
        assertEquals(0.0, SvdEntropy.of(new float[] {5f, 0f, 0f}), 0.0);
        assertEquals(0.0, SvdEntropy.of(new float[] {0f, 0f, 3e-30f, 0f}), 0.0, "a tiny scale changes nothing");
    }

    @Test
    void constructedSpectraMatchHandComputedValues() {
        // σ = (2, 1, 1): σ² = (4, 1, 1) sums to 6, p = (2/3, 1/6, 1/6),
        // H = −(2/3·ln(2/3) + 2·1/6·ln(1/6)) / ln 3 = (0.270310072 + 0.597253156) / 1.098612289 = 0.789690082.
        assertEquals(0.7896900821428474, SvdEntropy.of(new float[] {2f, 1f, 1f}), 1e-12);
        // σ = (3, 2, 1, 0): p = (9/14, 4/14, 1/14, 0), the zero term counts as 0 and n is still 4:
        // H = −(9/14·ln(9/14) + 4/14·ln(4/14) + 1/14·ln(1/14)) / ln 4 = 0.599058711.
        assertEquals(0.5990587105652017, SvdEntropy.of(new float[] {1f, 0f, 3f, 2f}), 1e-12, "order does not matter");
        // Scale does not enter: squares of 2e30 overflow float32, of 2e-30 underflow it; the result is the same.
        assertEquals(0.7896900821428474, SvdEntropy.of(new float[] {2e30f, 1e30f, 1e30f}), 1e-6);
        assertEquals(0.7896900821428474, SvdEntropy.of(new float[] {2e-30f, 1e-30f, 1e-30f}), 1e-6);
    }

    @Test
    void undefinedSpectraAreRefusedNamingWhy() {
        IllegalArgumentException zero = assertThrows(IllegalArgumentException.class, () -> SvdEntropy.of(new float[] {0f, 0f, 0f}));
        assertTrue(zero.getMessage().contains("zero matrix (all 3 singular values 0) is undefined"), zero.getMessage());
        IllegalArgumentException one = assertThrows(IllegalArgumentException.class, () -> SvdEntropy.of(new float[] {4f}));
        assertTrue(one.getMessage().contains("SVD entropy of 1 singular value") && one.getMessage().contains("log n"), one.getMessage());
        IllegalArgumentException negative = assertThrows(IllegalArgumentException.class, () -> SvdEntropy.of(new float[] {1f, -2f}));
        assertTrue(negative.getMessage().contains("singular value 1 is -2.0"), negative.getMessage());
        IllegalArgumentException nan = assertThrows(IllegalArgumentException.class, () -> SvdEntropy.of(new float[] {Float.NaN, 1f}));
        assertTrue(nan.getMessage().contains("singular value 0 is NaN"), nan.getMessage());
        assertThrows(IllegalArgumentException.class, () -> SvdEntropy.of(new float[] {1f, Float.POSITIVE_INFINITY}));

        assertFalse(SvdEntropy.defined(new float[] {0f, 0f}));
        assertFalse(SvdEntropy.defined(new float[] {3f}));
        assertFalse(SvdEntropy.defined(new float[] {1f, Float.NaN}));
        assertFalse(SvdEntropy.defined(new float[] {1f, -1f}));
        assertTrue(SvdEntropy.defined(new float[] {0f, 2f}));
    }
}
