package dev.muon4j.backend;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The program {@code NarrowVectorsTest} runs in a child JVM whose vectors are held narrow
 * ({@code -XX:MaxVectorSize}): it prints the preferred float vector's lane count, then the bfloat16
 * patterns {@link Kernels#scaleToBFloat16} writes for {@link #input()} scaled by {@link #SCALE}, and
 * the float bits {@link Kernels#fromBFloat16} reads back from every 16-bit pattern, each as a
 * hexadecimal line. Uses nothing but muon4j-core.
 */
public final class NarrowVectorsMain {
    static final float SCALE = 0.3712f;

    private NarrowVectorsMain() {
    }

    /** Values of every kind, at a length that leaves a tail for any lane count. */
    static float[] input() {
        java.util.SplittableRandom random = new java.util.SplittableRandom(7);
        float[] x = new float[1037];
        for (int i = 0; i < x.length; i++) {
            x[i] = i % 3 == 0 ? Float.intBitsToFloat(random.nextInt()) : (float) random.nextGaussian();
        }
        x[5] = Float.NaN;
        x[6] = Float.POSITIVE_INFINITY;
        x[7] = Float.intBitsToFloat(0x3f808000);
        return x;
    }

    public static void main(String[] args) {
        System.out.println("lanes " + (VectorApi.PRESENT ? VectorKernels.S.length() : 0));
        float[] x = input();
        MemorySegment patterns = Arena.ofAuto().allocate((long) x.length * Short.BYTES);
        Kernels.scaleToBFloat16(x, 0, x.length, SCALE, patterns, 0);
        StringBuilder line = new StringBuilder();
        for (int i = 0; i < x.length; i++) {
            line.append(Integer.toHexString(patterns.getAtIndex(ValueLayout.JAVA_SHORT, i) & 0xffff)).append(' ');
        }
        System.out.println(line.toString().trim());
        MemorySegment all = Arena.ofAuto().allocate(65536L * Short.BYTES);
        for (int i = 0; i < 65536; i++) {
            all.setAtIndex(ValueLayout.JAVA_SHORT, i, (short) i);
        }
        float[] back = new float[65536];
        Kernels.fromBFloat16(all, 0, back, 0, back.length);
        int bad = 0;
        for (int i = 0; i < back.length; i++) {
            if (Float.floatToRawIntBits(back[i]) != i << 16) {
                bad++;
            }
        }
        System.out.println("fromBFloat16 mismatches " + bad);
    }
}
