package dev.muon4j.distributed;

import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * Counts what another {@link Collectives} moves and how long it takes. Bytes are the
 * bandwidth-optimal volumes of each collective, the ones ring algorithms reach (and what
 * Moonlight's communication analysis counts), per rank, for p ranks and n floats:
 * <ul>
 *   <li>reduce-scatter of n per rank, all-gather of n per rank: send and receive (p−1)·n;</li>
 *   <li>uneven all-gather of counts c: receive Σc − c[rank], send Σc − c[rank+1 mod p] (a ring
 *       forwards every block except the one its successor already has);</li>
 *   <li>all-reduce of n: send and receive ⌈2·(p−1)/p·n⌉ (reduce-scatter, then all-gather);</li>
 *   <li>gather of n per rank to a root: every other rank sends n, the root receives (p−1)·n;</li>
 *   <li>uneven gather of counts c to a root: every other rank sends its c[rank], the root receives
 *       Σc − c[root]; uneven scatter from a root, the reverse: the root sends Σc − c[root], every
 *       other rank receives its c[rank];</li>
 *   <li>broadcast of n: every rank but the root receives n, every rank but the last in the
 *       pipeline (the one before the root) sends n.</li>
 * </ul>
 * With one rank nothing moves. Time is wall time spent inside the wrapped calls.
 */
public final class MeteredCollectives implements Collectives {
    private final Collectives inner;
    private long sent;
    private long received;
    private long nanos;
    private long calls;

    public MeteredCollectives(Collectives inner) {
        this.inner = Objects.requireNonNull(inner, "collectives");
    }

    /** The collectives being metered. */
    public Collectives inner() {
        return inner;
    }

    /** Bytes this rank sent since the last {@link #reset()}. */
    public long bytesSent() {
        return sent;
    }

    /** Bytes this rank received since the last {@link #reset()}. */
    public long bytesReceived() {
        return received;
    }

    /** Nanoseconds spent in collectives since the last {@link #reset()}. */
    public long nanos() {
        return nanos;
    }

    /** Collective calls since the last {@link #reset()}. */
    public long calls() {
        return calls;
    }

    public void reset() {
        sent = 0;
        received = 0;
        nanos = 0;
        calls = 0;
    }

    private void count(long sendFloats, long receiveFloats, long start) {
        nanos += System.nanoTime() - start;
        calls++;
        if (inner.size() > 1) {
            sent += sendFloats * FLOAT_BYTES;
            received += receiveFloats * FLOAT_BYTES;
        }
    }

    @Override
    public int rank() {
        return inner.rank();
    }

    @Override
    public int size() {
        return inner.size();
    }

    @Override
    public void allReduceSum(MemorySegment buf, long count) {
        long t = System.nanoTime();
        inner.allReduceSum(buf, count);
        long v = (2L * (size() - 1) * count + size() - 1) / size(); // rounded up
        count(v, v, t);
    }

    @Override
    public void reduceScatterSum(MemorySegment send, MemorySegment recv, long countPerRank) {
        long t = System.nanoTime();
        inner.reduceScatterSum(send, recv, countPerRank);
        long v = (long) (size() - 1) * countPerRank;
        count(v, v, t);
    }

    @Override
    public void allGather(MemorySegment send, long count, MemorySegment recv) {
        long t = System.nanoTime();
        inner.allGather(send, count, recv);
        long v = (long) (size() - 1) * count;
        count(v, v, t);
    }

    @Override
    public void allGatherV(MemorySegment send, long count, MemorySegment recv, long[] counts) {
        long t = System.nanoTime();
        inner.allGatherV(send, count, recv, counts);
        long total = 0;
        for (long c : counts) {
            total += c;
        }
        count(total - counts[(rank() + 1) % size()], total - counts[rank()], t);
    }

    @Override
    public void gather(MemorySegment send, long count, MemorySegment recv, int root) {
        long t = System.nanoTime();
        inner.gather(send, count, recv, root);
        count(rank() == root ? 0 : count, rank() == root ? (long) (size() - 1) * count : 0, t);
    }

    @Override
    public void gatherV(MemorySegment send, long count, MemorySegment recv, long[] counts, int root) {
        long t = System.nanoTime();
        inner.gatherV(send, count, recv, counts, root);
        count(rank() == root ? 0 : count, rank() == root ? sum(counts) - count : 0, t);
    }

    @Override
    public void scatterV(MemorySegment send, long[] counts, MemorySegment recv, long count, int root) {
        long t = System.nanoTime();
        inner.scatterV(send, counts, recv, count, root);
        count(rank() == root ? sum(counts) - count : 0, rank() == root ? 0 : count, t);
    }

    private static long sum(long[] counts) {
        long total = 0;
        for (long c : counts) {
            total += c;
        }
        return total;
    }

    @Override
    public void broadcast(MemorySegment buf, long count, int root) {
        long t = System.nanoTime();
        inner.broadcast(buf, count, root);
        int last = (root + size() - 1) % size();
        count(rank() == last ? 0 : count, rank() == root ? 0 : count, t);
    }

    @Override
    public void barrier() {
        long t = System.nanoTime();
        inner.barrier();
        count(0, 0, t);
    }

    @Override
    public void close() {
        inner.close();
    }
}
