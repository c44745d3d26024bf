package dev.muon4j.autograd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import org.junit.jupiter.api.Test;

/** The JIT-independent exp and lane sum: accuracy against Math.exp, edge cases, vector = scalar bits. */
class ExactBitsTest {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;

    @Test
    void expIsWithinTwoUlpOfMathExpAndVectorEqualsScalar() {
        SplittableRandom random = new SplittableRandom(3);
        float[] x = new float[S.length()];
        float[] y = new float[S.length()];
        double worst = 0;
        for (int round = 0; round < 20_000; round++) {
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) (random.nextDouble(-86, 88.7));
            }
            System.arraycopy(x, 0, y, 0, x.length);
            ExactBits.expShiftInPlace(y, 0, y.length, 0f);
            for (int i = 0; i < x.length; i++) {
                float expected = (float) Math.exp(x[i]);
                double ulps = Math.abs(y[i] - expected) / Math.ulp(expected);
                worst = Math.max(worst, ulps);
                assertEquals(Float.floatToRawIntBits(ExactBits.exp(x[i])), Float.floatToRawIntBits(y[i]), "x = " + x[i]);
            }
        }
        assertTrue(worst <= 2, "worst error " + worst + " ulp");
    }

    @Test
    void expEdgeCases() {
        assertEquals(1f, ExactBits.exp(0f));
        assertEquals(0f, ExactBits.exp(-87f));
        assertEquals(0f, ExactBits.exp(-1000f));
        assertEquals(0f, ExactBits.exp(Float.NEGATIVE_INFINITY));
        assertEquals(Float.POSITIVE_INFINITY, ExactBits.exp(88.8f));
        assertEquals(Float.POSITIVE_INFINITY, ExactBits.exp(Float.POSITIVE_INFINITY));
        assertTrue(Float.isNaN(ExactBits.exp(Float.NaN)));
        float big = ExactBits.exp(88.7f);
        assertTrue(Float.isFinite(big) && Math.abs(big - (float) Math.exp(88.7f)) <= 2 * Math.ulp(big), "e^88.7 = " + big);
        float[] special = new float[S.length()];
        float[] scalar = {0f, -87f, -1000f, Float.NEGATIVE_INFINITY, 88.8f, Float.POSITIVE_INFINITY, Float.NaN, 88.7f};
        for (int i = 0; i < special.length; i++) {
            special[i] = scalar[i % scalar.length];
        }
        float[] out = special.clone();
        ExactBits.expShiftInPlace(out, 0, out.length, 0f);
        for (int i = 0; i < special.length; i++) {
            assertEquals(Float.floatToRawIntBits(ExactBits.exp(special[i])), Float.floatToRawIntBits(out[i]), "x = " + special[i]);
        }
    }

    @Test
    void sumLanesAddsInLaneOrder() {
        float[] lanes = new float[S.length()];
        double expected = 0;
        for (int i = 0; i < lanes.length; i++) {
            lanes[i] = (i % 2 == 0 ? 1e8f : -1e8f) + i * 0.37f;
            expected += lanes[i];
        }
        assertEquals(expected, ExactBits.sumLanes(FloatVector.fromArray(S, lanes, 0)));
    }
}
