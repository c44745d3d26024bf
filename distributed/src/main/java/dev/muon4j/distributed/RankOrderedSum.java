package dev.muon4j.distributed;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Objects;

/**
 * Exact agreement on doubles across ranks: every rank's values are all-gathered and added in rank
 * order, in double, so every rank gets the same bits (an all-reduce may add in any order, and its
 * float sums differ from rank to rank). Used for gradient norms, losses and agreed flags.
 */
public final class RankOrderedSum {
    private final Collectives comm;
    private final int capacity;
    private final MemorySegment mine;
    private final MemorySegment all;

    /**
     * @param comm     the ranks
     * @param arena    owns the buffers
     * @param capacity the most values one call gathers per rank
     */
    public RankOrderedSum(Collectives comm, Arena arena, int capacity) {
        this.comm = Objects.requireNonNull(comm, "collectives");
        if (capacity < 1) {
            throw new IllegalArgumentException("capacity must be >= 1, got " + capacity);
        }
        this.capacity = capacity;
        this.mine = arena.allocate(ValueLayout.JAVA_DOUBLE, capacity);
        this.all = arena.allocate(ValueLayout.JAVA_DOUBLE, (long) capacity * comm.size());
    }

    /** Every rank's {@code values}, rank after rank ({@code values.length × size} of them), on every rank. */
    public double[] gather(double... values) {
        if (values.length < 1 || values.length > capacity) {
            throw new IllegalArgumentException("between 1 and " + capacity + " values, got " + values.length);
        }
        for (int i = 0; i < values.length; i++) {
            mine.setAtIndex(ValueLayout.JAVA_DOUBLE, i, values[i]);
        }
        comm.allGather(mine, 2L * values.length, all);
        double[] out = new double[values.length * comm.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = all.getAtIndex(ValueLayout.JAVA_DOUBLE, i);
        }
        return out;
    }

    /** The sum over ranks of {@code value}, added in rank order: the same bits on every rank. */
    public double sum(double value) {
        double[] every = gather(value);
        double s = 0;
        for (double v : every) {
            s += v;
        }
        return s;
    }

    /** Bytes each rank sends (and receives) in a gather of {@code count} values per rank, by the ring model. */
    public long bytesPerGather(int count) {
        return 2L * count * (comm.size() - 1) * Float.BYTES;
    }
}
