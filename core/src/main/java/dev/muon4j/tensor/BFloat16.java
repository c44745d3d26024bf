package dev.muon4j.tensor;

/**
 * bfloat16 helpers: bfloat16 is the upper 16 bits of an IEEE float32 (8 exponent bits, 7 mantissa bits).
 * Values are kept in float32 arrays; {@link #round} rounds a float32 to the nearest bfloat16
 * (ties to even), exactly as a float32 → bfloat16 → float32 conversion on a GPU does.
 */
public final class BFloat16 {
    private BFloat16() {
    }

    /** Rounds {@code x} to the nearest bfloat16 value (round half to even); NaN stays NaN, infinities stay. */
    public static float round(float x) {
        int bits = Float.floatToRawIntBits(x);
        if ((bits & 0x7f800000) == 0x7f800000) {
            // Inf or NaN: keep; make sure a NaN does not become Inf by truncation.
            return (bits & 0x007fffff) != 0 ? Float.NaN : x;
        }
        int lsb = (bits >>> 16) & 1;
        bits += 0x7fff + lsb;
        return Float.intBitsToFloat(bits & 0xffff0000);
    }

    /** The 16-bit pattern of {@link #round}{@code (x)}. */
    public static short toBits(float x) {
        return (short) (Float.floatToRawIntBits(round(x)) >>> 16);
    }

    /** The float32 value of a bfloat16 bit pattern. */
    public static float fromBits(short bits) {
        return Float.intBitsToFloat((bits & 0xffff) << 16);
    }

    /** Rounds {@code length} values of {@code x} starting at {@code offset} to bfloat16, in place. */
    public static void roundInPlace(float[] x, int offset, int length) {
        for (int i = offset, end = offset + length; i < end; i++) {
            x[i] = round(x[i]);
        }
    }
}
