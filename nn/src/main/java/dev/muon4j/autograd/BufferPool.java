package dev.muon4j.autograd;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Recycles float arrays by exact length between training steps, so that a steady training loop
 * allocates nothing after its first step. Arrays come back all at once at the end of a step
 * ({@link #releaseAll()}) or one by one as soon as they are dead ({@link #giveBack}). Not thread-safe.
 */
final class BufferPool {
    private final Map<Integer, ArrayDeque<float[]>> free = new HashMap<>();
    private final List<float[]> lent = new ArrayList<>();
    private long lentFloats;
    private long peakFloats;

    /** An array of exactly {@code length} floats with unspecified contents. */
    float[] take(int length) {
        ArrayDeque<float[]> queue = free.get(length);
        float[] array = queue == null ? null : queue.poll();
        if (array == null) {
            array = new float[length];
        }
        lent.add(array);
        lentFloats += length;
        peakFloats = Math.max(peakFloats, lentFloats);
        return array;
    }

    /** An array of exactly {@code length} zeros. */
    float[] takeZeroed(int length) {
        float[] array = take(length);
        java.util.Arrays.fill(array, 0f);
        return array;
    }

    /**
     * Returns one lent array to the pool before {@link #releaseAll()}, so that a later
     * {@link #take} of the same length reuses it within the same step. The caller must not touch
     * the array afterwards. Searches from the most recently lent, where an array given back early
     * (a gradient in backward, a backward step's scratch) usually is.
     *
     * @throws IllegalArgumentException when the array is not lent by this pool
     */
    void giveBack(float[] array) {
        for (int i = lent.size() - 1; i >= 0; i--) {
            if (lent.get(i) == array) {
                lent.remove(i);
                lentFloats -= array.length;
                free.computeIfAbsent(array.length, k -> new ArrayDeque<>()).push(array);
                return;
            }
        }
        throw new IllegalArgumentException("an array of " + array.length + " floats that this pool did not lend (or got back already)");
    }

    /** Returns every lent array to the pool. */
    void releaseAll() {
        for (float[] array : lent) {
            free.computeIfAbsent(array.length, k -> new ArrayDeque<>()).push(array);
        }
        lent.clear();
        lentFloats = 0;
    }

    /** Most floats lent at once since creation. */
    long peakFloats() {
        return peakFloats;
    }
}
