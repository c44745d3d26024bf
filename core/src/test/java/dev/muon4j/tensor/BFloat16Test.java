package dev.muon4j.tensor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Checks {@link BFloat16}: round-half-to-even on hand-picked values (bfloat16 keeps 8 significant
 * bits, so between 1 and 2 its spacing is 2^-7 and 1 + 2^-8 is an exact tie), signs, subnormals,
 * overflow, infinities and NaN, the {@code toBits}/{@code fromBits} round trip over all 65536
 * patterns, and {@code roundInPlace}.
 */
class BFloat16Test {
    private static final float ULP_AT_ONE = 0x1p-7f;

    @Test
    void tiesGoToEven() {
        // 1 + 2^-8 is halfway between 1 (even last bit) and 1 + 2^-7 (odd): down to 1.
        assertEquals(1f, BFloat16.round(1f + 0x1p-8f));
        // 1 + 3·2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): up.
        assertEquals(1f + 0x1p-6f, BFloat16.round(1f + 3 * 0x1p-8f));
        // 1 + 5·2^-8: between 1 + 2·2^-7 (even) and 1 + 3·2^-7: down.
        assertEquals(1f + 2 * ULP_AT_ONE, BFloat16.round(1f + 5 * 0x1p-8f));
        // Same on the negative side.
        assertEquals(-1f, BFloat16.round(-(1f + 0x1p-8f)));
        assertEquals(-(1f + 0x1p-6f), BFloat16.round(-(1f + 3 * 0x1p-8f)));
        // A tie at another exponent: 256 + 1 lies halfway between 256 and 258.
        assertEquals(256f, BFloat16.round(257f));
        assertEquals(260f, BFloat16.round(259f));
        // The largest float below 2 rounds up to 2 (carry into the exponent).
        assertEquals(2f, BFloat16.round(Math.nextDown(2f)));
    }

    @Test
    void nonTiesGoToNearest() {
        // Just above and just below a tie.
        assertEquals(1f + ULP_AT_ONE, BFloat16.round(Math.nextUp(1f + 0x1p-8f)));
        assertEquals(1f, BFloat16.round(Math.nextDown(1f + 0x1p-8f)));
        assertEquals(1f + ULP_AT_ONE, BFloat16.round(Math.nextDown(1f + 3 * 0x1p-8f)));
        // Exactly representable values do not move.
        for (float v : new float[] {0f, -0f, 1f, -1f, 0.5f, 3f, 1f + ULP_AT_ONE, 65536f, 0x1p-126f, 0x1p-133f}) {
            assertEquals(Float.floatToRawIntBits(v), Float.floatToRawIntBits(BFloat16.round(v)), "value " + v);
        }
        // 0.1f is 0x3dcccccd: its low 16 bits 0xcccd are above half, so it rounds up to 0x3dcd0000.
        assertEquals(Float.intBitsToFloat(0x3dcd0000), BFloat16.round(0.1f));
        // π ≈ 0x40490fdb: low bits 0x0fdb below half: down to 0x40490000 = 3.140625.
        assertEquals(3.140625f, BFloat16.round((float) Math.PI));
    }

    @Test
    void subnormalsInfinitiesAndNaN() {
        // Subnormals round on the same grid of the upper 16 bits.
        assertEquals(0f, BFloat16.round(Float.MIN_VALUE));
        assertEquals(Float.intBitsToFloat(0x00010000), BFloat16.round(Float.intBitsToFloat(0x00008001)),
                "0x00008001 rounds up to 0x00010000");
        assertEquals(0f, BFloat16.round(Float.intBitsToFloat(0x00008000)), "tie to even zero");
        assertEquals(Float.intBitsToFloat(0x00020000), BFloat16.round(Float.intBitsToFloat(0x00018000)), "tie to even 2");
        assertEquals(Float.MIN_NORMAL, BFloat16.round(Float.intBitsToFloat(0x007f8000)), "largest subnormals round up to MIN_NORMAL");
        assertEquals(Float.floatToRawIntBits(-0f), Float.floatToRawIntBits(BFloat16.round(-Float.MIN_VALUE)), "sign kept");
        // Overflow: past the largest bfloat16 (0x7f7f0000) by half a step or more gives infinity.
        assertEquals(Float.POSITIVE_INFINITY, BFloat16.round(Float.MAX_VALUE));
        assertEquals(Float.NEGATIVE_INFINITY, BFloat16.round(-Float.MAX_VALUE));
        assertEquals(Float.intBitsToFloat(0x7f7f0000), BFloat16.round(Float.intBitsToFloat(0x7f7f7fff)));
        assertEquals(Float.POSITIVE_INFINITY, BFloat16.round(Float.intBitsToFloat(0x7f7f8000)));
        assertEquals(Float.POSITIVE_INFINITY, BFloat16.round(Float.POSITIVE_INFINITY));
        assertEquals(Float.NEGATIVE_INFINITY, BFloat16.round(Float.NEGATIVE_INFINITY));
        // A NaN whose payload is only in the low 16 bits must not become infinity.
        for (int bits : new int[] {0x7f800001, 0xff800001, 0x7fc00000, 0x7fffffff, 0x7f80ffff}) {
            assertTrue(Float.isNaN(BFloat16.round(Float.intBitsToFloat(bits))), "NaN 0x" + Integer.toHexString(bits));
            assertTrue(Float.isNaN(BFloat16.fromBits(BFloat16.toBits(Float.intBitsToFloat(bits)))));
        }
    }

    @Test
    void toBitsAndFromBitsRoundTrip() {
        for (int pattern = 0; pattern < 0x10000; pattern++) {
            short bits = (short) pattern;
            float value = BFloat16.fromBits(bits);
            assertEquals(pattern << 16, Float.floatToRawIntBits(value), "fromBits puts the pattern in the upper half");
            if (Float.isNaN(value)) {
                assertTrue(Float.isNaN(BFloat16.fromBits(BFloat16.toBits(value))));
            } else {
                assertEquals(bits, BFloat16.toBits(value), "pattern 0x" + Integer.toHexString(pattern));
                assertEquals(value, BFloat16.round(value), "bfloat16 values are fixed points of round");
            }
        }
        assertEquals((short) 0x3f80, BFloat16.toBits(1f));
        assertEquals((short) 0x3f80, BFloat16.toBits(1f + 0x1p-8f));
        assertEquals((short) 0x3f82, BFloat16.toBits(1f + 3 * 0x1p-8f));
        assertEquals((short) 0xbf80, BFloat16.toBits(-1f));
    }

    @Test
    void roundIsNearestOnRandomFloats() {
        Random random = new Random(99);
        for (int i = 0; i < 200_000; i++) {
            float x = Float.intBitsToFloat(random.nextInt());
            if (!Float.isFinite(x)) {
                continue;
            }
            float r = BFloat16.round(x);
            int bits = Float.floatToRawIntBits(x);
            float down = Float.intBitsToFloat(bits & 0xffff0000);
            float up = Float.intBitsToFloat((bits & 0xffff0000) + 0x10000);
            assertTrue(r == down || r == up, "rounds to a neighbour: " + x);
            if (Float.isFinite(up)) {
                double error = Math.abs((double) r - x);
                double other = Math.abs((double) (r == down ? up : down) - x);
                assertTrue(error <= other, "nearest: " + x);
            }
        }
    }

    @Test
    void roundInPlaceTouchesOnlyTheRange() {
        float[] x = {1f + 0x1p-8f, 1f + 3 * 0x1p-8f, 0.1f, 1f + 0x1p-8f};
        BFloat16.roundInPlace(x, 1, 2);
        assertEquals(1f + 0x1p-8f, x[0]);
        assertEquals(1f + 0x1p-6f, x[1]);
        assertEquals(Float.intBitsToFloat(0x3dcd0000), x[2]);
        assertEquals(1f + 0x1p-8f, x[3]);
    }
}
