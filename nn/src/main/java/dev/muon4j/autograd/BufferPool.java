package dev.muon4j.autograd;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Recycles float arrays by exact length between training steps, so that a steady training loop
 * allocates nothing after its first step. Not thread-safe.
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
