package dev.muon4j.distributed;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Collective operations over a group of {@link #size()} ranks, on off-heap float buffers.
 *
 * <p>Every rank of the group must call the same collectives in the same order with matching
 * arguments (same counts, same root); a collective returns on a rank once that rank's part is
 * complete. Buffers are {@link MemorySegment}s holding 32-bit floats in native byte order; all
 * counts are numbers of floats, not bytes. Send and receive segments of one call must not
 * overlap unless stated. Sums are over all ranks; implementations should give the same result
 * bits on every rank.
 *
 * <p>Argument errors (a segment too small for the count, a {@code counts} array whose length
 * is not {@link #size()}, a root out of range, a negative count) throw
 * {@link IllegalArgumentException} before any communication. Communication failures throw
 * {@link IllegalStateException}.
 *
 * <p>An instance belongs to one rank and is used by one thread at a time.
 */
public interface Collectives extends AutoCloseable {

    /** This process's (or thread's) rank, in {@code [0, size())}. */
    int rank();

    /** Number of ranks in the group, at least 1. */
    int size();

    /**
     * In-place all-reduce: afterwards, {@code buf[0..count)} on every rank holds the
     * element-wise sum over all ranks of their {@code buf[0..count)}.
     *
     * @param buf   holds at least {@code count} floats; read and overwritten
     * @param count number of floats, {@code >= 0}
     */
    void allReduceSum(MemorySegment buf, long count);

    /**
     * Reduce-scatter: {@code send} holds {@code size() * countPerRank} floats, seen as
     * {@code size()} consecutive blocks of {@code countPerRank}; rank {@code r} receives in
     * {@code recv[0..countPerRank)} the element-wise sum over all ranks of their block {@code r}.
     *
     * @param send         holds at least {@code size() * countPerRank} floats; not modified
     * @param recv         holds at least {@code countPerRank} floats; overwritten
     * @param countPerRank floats per block, {@code >= 0}
     */
    void reduceScatterSum(MemorySegment send, MemorySegment recv, long countPerRank);

    /**
     * All-gather: every rank contributes {@code send[0..count)}; afterwards {@code recv} on every
     * rank holds the contributions concatenated in rank order ({@code size() * count} floats:
     * rank {@code r}'s data at float offset {@code r * count}).
     *
     * @param send  holds at least {@code count} floats; not modified
     * @param count floats per rank, {@code >= 0}
     * @param recv  holds at least {@code size() * count} floats; overwritten
     */
    void allGather(MemorySegment send, long count, MemorySegment recv);

    /**
     * Gather to one rank: every rank contributes {@code send[0..count)}; afterwards {@code recv} on
     * rank {@code root} holds the contributions concatenated in rank order, as {@link #allGather}
     * would. Other ranks' {@code recv} is not touched and may be null.
     *
     * @param send  holds at least {@code count} floats; not modified
     * @param count floats per rank, {@code >= 0}
     * @param recv  on root: holds at least {@code size() * count} floats; overwritten. Elsewhere ignored
     * @param root  the rank that receives, in {@code [0, size())}
     */
    void gather(MemorySegment send, long count, MemorySegment recv, int root);

    /**
     * All-gather with uneven counts: rank {@code r} contributes {@code counts[r]} floats (its
     * {@code count}, which must equal {@code counts[rank()]}); afterwards {@code recv} on every
     * rank holds all contributions concatenated in rank order, rank {@code r}'s data at float
     * offset {@code counts[0] + ... + counts[r-1]}.
     *
     * @param send   holds at least {@code count} floats; not modified
     * @param count  this rank's count, equal to {@code counts[rank()]}
     * @param recv   holds at least {@code sum(counts)} floats; overwritten
     * @param counts per-rank counts, length {@code size()}, each {@code >= 0}, identical on all ranks
     */
    void allGatherV(MemorySegment send, long count, MemorySegment recv, long[] counts);

    /**
     * Gather with uneven counts to one rank: rank {@code r} contributes {@code counts[r]} floats (its
     * {@code count}, which must equal {@code counts[rank()]}); afterwards {@code recv} on rank
     * {@code root} holds all contributions concatenated in rank order, rank {@code r}'s data at float
     * offset {@code counts[0] + ... + counts[r-1]}. Other ranks' {@code recv} is not touched and may be null.
     *
     * @param send   holds at least {@code count} floats; not modified
     * @param count  this rank's count, equal to {@code counts[rank()]}
     * @param recv   on root: holds at least {@code sum(counts)} floats; overwritten. Elsewhere ignored
     * @param counts per-rank counts, length {@code size()}, each {@code >= 0}, identical on all ranks
     * @param root   the rank that receives, in {@code [0, size())}
     */
    void gatherV(MemorySegment send, long count, MemorySegment recv, long[] counts, int root);

    /**
     * Scatter with uneven counts from one rank, the inverse of {@link #gatherV}: {@code send} on rank
     * {@code root} holds {@code sum(counts)} floats; afterwards {@code recv} on rank {@code r} holds
     * the {@code counts[r]} floats at float offset {@code counts[0] + ... + counts[r-1]} of it.
     *
     * @param send   on root: holds at least {@code sum(counts)} floats; not modified. Elsewhere ignored, may be null
     * @param counts per-rank counts, length {@code size()}, each {@code >= 0}, identical on all ranks
     * @param recv   holds at least {@code count} floats; overwritten
     * @param count  this rank's count, equal to {@code counts[rank()]}
     * @param root   the rank that sends, in {@code [0, size())}
     */
    void scatterV(MemorySegment send, long[] counts, MemorySegment recv, long count, int root);

    /**
     * Broadcast: afterwards {@code buf[0..count)} on every rank equals {@code buf[0..count)} of
     * rank {@code root}.
     *
     * @param buf   holds at least {@code count} floats; read on root, overwritten elsewhere
     * @param count number of floats, {@code >= 0}
     * @param root  rank whose data is sent, in {@code [0, size())}
     */
    void broadcast(MemorySegment buf, long count, int root);

    /** Returns on a rank only after every rank of the group has entered {@code barrier()}. */
    void barrier();

    /** Releases this rank's resources. The instance is unusable afterwards. */
    @Override
    void close();

    // ---- argument checks shared by the implementations ----

    /** Bytes per float element. */
    long FLOAT_BYTES = ValueLayout.JAVA_FLOAT.byteSize();

    /** Throws if {@code count} is negative or {@code seg} is smaller than {@code count} floats. */
    static void checkSegment(String op, String name, MemorySegment seg, long count) {
        if (seg == null) {
            throw new IllegalArgumentException(op + ": " + name + " is null");
        }
        if (count < 0) {
            throw new IllegalArgumentException(op + ": negative count " + count + " for " + name);
        }
        if (count > Long.MAX_VALUE / FLOAT_BYTES || seg.byteSize() < count * FLOAT_BYTES) {
            throw new IllegalArgumentException(op + ": " + name + " holds " + seg.byteSize() / FLOAT_BYTES
                    + " floats (" + seg.byteSize() + " bytes) but " + count + " floats are needed");
        }
    }

    /** Throws if {@code root} is not a rank of a group of {@code size}. */
    static void checkRoot(String op, int root, int size) {
        if (root < 0 || root >= size) {
            throw new IllegalArgumentException(op + ": root " + root + " out of range [0, " + size + ")");
        }
    }

    /** {@code a * b}, throwing if it overflows. */
    static long mulCount(String op, long a, long b) {
        try {
            return Math.multiplyExact(a, b);
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException(op + ": count " + a + " * " + b + " overflows");
        }
    }

    /** Checks an allGatherV counts array and returns its sum. */
    static long checkCounts(String op, long[] counts, int size, int rank, long count) {
        if (counts == null) {
            throw new IllegalArgumentException(op + ": counts is null");
        }
        if (counts.length != size) {
            throw new IllegalArgumentException(op + ": counts has length " + counts.length
                    + " but the group has " + size + " ranks");
        }
        long total = 0;
        for (int r = 0; r < size; r++) {
            if (counts[r] < 0) {
                throw new IllegalArgumentException(op + ": counts[" + r + "] = " + counts[r] + " is negative");
            }
            try {
                total = Math.addExact(total, counts[r]);
            } catch (ArithmeticException e) {
                throw new IllegalArgumentException(op + ": sum of counts overflows");
            }
        }
        if (counts[rank] != count) {
            throw new IllegalArgumentException(op + ": count " + count + " on rank " + rank
                    + " differs from counts[" + rank + "] = " + counts[rank]);
        }
        return total;
    }
}
