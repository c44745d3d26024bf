package dev.muon4j.distributed;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.BrokenBarrierException;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * {@link Collectives} for N ranks that are threads of one JVM: {@link #create(int)} returns one
 * instance per rank, all sharing one group. Each rank must be driven by its own thread.
 *
 * <p>Every collective is two rendezvous on shared {@link CyclicBarrier}s: each rank publishes its
 * buffers and arguments, waits for all (the arguments are checked to match across ranks), reads
 * the other ranks' buffers directly, and waits again before anyone may modify a buffer or start
 * the next collective. Sums add the ranks' values in order 0, 1, ..., N−1 in float arithmetic, so
 * every rank gets identical bits whatever the thread timing.
 *
 * <p>Ranks read each other's buffers, so buffers must be accessible from every rank's thread:
 * allocate them from {@code Arena.ofShared()}, {@code Arena.ofAuto()} or {@code Arena.global()}
 * (a confined segment is reported as an {@link IllegalStateException} on every rank).
 *
 * <p>Every wait has a timeout ({@link #DEFAULT_TIMEOUT} unless given): a rank that waits longer
 * throws an {@link IllegalStateException} naming itself, the collective and the ranks that did
 * not arrive; the barrier is then broken, the other waiting ranks throw too, and the group cannot
 * be used again. A rank that throws inside a collective's argument checks (before the first
 * rendezvous) leaves the group intact but the other ranks will time out in that collective.
 */
public final class InProcessCollectives implements Collectives {

    /** Default time a rank waits for the others in one rendezvous. */
    public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(60);

    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;

    /** State shared by all ranks of one group. */
    private static final class Group {
        final int size;
        final long timeoutNanos;
        final CyclicBarrier entry;
        final CyclicBarrier exit;
        // Published per rank before the entry barrier.
        final String[] op;
        final long[] count;
        final int[] root;
        final long[][] counts;
        final MemorySegment[] a;
        final MemorySegment[] b;
        final long[] entered;
        final Thread[] thread; // collectives each rank has entered, for timeout messages
        // Written by the entry barrier action, read by all ranks after it.
        volatile String mismatch;
        volatile boolean aborted;
        MemorySegment scratch = MemorySegment.NULL;

        Group(int size, Duration timeout) {
            this.size = size;
            this.timeoutNanos = timeout.toNanos();
            this.op = new String[size];
            this.count = new long[size];
            this.root = new int[size];
            this.counts = new long[size][];
            this.a = new MemorySegment[size];
            this.b = new MemorySegment[size];
            this.entered = new long[size];
            this.thread = new Thread[size];
            this.entry = new CyclicBarrier(size, this::onAllEntered);
            this.exit = new CyclicBarrier(size);
        }

        /** Runs in the last arriving thread, before any rank is released: validate and prepare. */
        private void onAllEntered() {
            mismatch = null;
            for (int r = 1; r < size; r++) {
                if (!op[r].equals(op[0])) {
                    mismatch = "rank 0 called " + op[0] + " but rank " + r + " called " + op[r];
                    return;
                }
                if (count[r] != count[0] && !op[0].endsWith("V")) {
                    mismatch = op[0] + ": rank 0 passed count " + count[0] + " but rank " + r + " passed " + count[r];
                    return;
                }
                if (root[r] != root[0]) {
                    mismatch = op[0] + ": rank 0 passed root " + root[0] + " but rank " + r + " passed " + root[r];
                    return;
                }
                if (!Arrays.equals(counts[r], counts[0])) {
                    mismatch = op[0] + ": rank 0 passed counts " + Arrays.toString(counts[0])
                            + " but rank " + r + " passed " + Arrays.toString(counts[r]);
                    return;
                }
            }
            for (int r = 0; r < size; r++) {
                for (MemorySegment seg : new MemorySegment[] {a[r], b[r]}) {
                    if (seg == null) {
                        continue;
                    }
                    for (int t = 0; t < size; t++) {
                        if (!seg.isAccessibleBy(thread[t])) {
                            mismatch = op[0] + ": a segment of rank " + r + " cannot be accessed by rank " + t
                                    + "'s thread (confined arena?); in-process ranks read each other's buffers, "
                                    + "so allocate them with Arena.ofShared(), Arena.ofAuto() or Arena.global()";
                            return;
                        }
                    }
                }
            }
            if (op[0].equals("allReduceSum")) {
                long bytes = count[0] * FLOAT_BYTES;
                if (scratch.byteSize() < bytes) {
                    scratch = Arena.ofAuto().allocate(bytes, 64);
                }
            }
        }

        synchronized String missing(int me) {
            long mine = entered[me];
            List<Integer> out = new ArrayList<>();
            for (int r = 0; r < size; r++) {
                if (entered[r] < mine) {
                    out.add(r);
                }
            }
            return out.isEmpty() ? "none still outside the collective (a rank is slow to leave it or failed)"
                    : out.toString();
        }

        synchronized void enter(int r) {
            entered[r]++;
        }
    }

    private final Group g;
    private final int rank;
    private volatile boolean closed;

    private InProcessCollectives(Group g, int rank) {
        this.g = g;
        this.rank = rank;
    }

    /** One instance per rank of a new group of {@code ranks} ranks, with {@link #DEFAULT_TIMEOUT}. */
    public static List<Collectives> create(int ranks) {
        return create(ranks, DEFAULT_TIMEOUT);
    }

    /** One instance per rank of a new group; {@code timeout} bounds each wait for the other ranks. */
    public static List<Collectives> create(int ranks, Duration timeout) {
        if (ranks < 1) {
            throw new IllegalArgumentException("ranks must be >= 1, got " + ranks);
        }
        Objects.requireNonNull(timeout, "timeout");
        if (timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("timeout must be positive, got " + timeout);
        }
        Group g = new Group(ranks, timeout);
        List<Collectives> out = new ArrayList<>(ranks);
        for (int r = 0; r < ranks; r++) {
            out.add(new InProcessCollectives(g, r));
        }
        return List.copyOf(out);
    }

    @Override public int rank() { return rank; }

    @Override public int size() { return g.size; }

    // ---- rendezvous ----

    private void publish(String op, long count, int root, long[] counts, MemorySegment a, MemorySegment b) {
        if (closed) {
            throw new IllegalStateException("rank " + rank + ": " + op + " on a closed InProcessCollectives");
        }
        if (g.aborted) {
            throw new PeerFailureException("rank " + rank + ": " + op + " refused: the group was aborted because another rank failed");
        }
        g.op[rank] = op;
        g.count[rank] = count;
        g.root[rank] = root;
        g.counts[rank] = counts;
        g.a[rank] = a;
        g.b[rank] = b;
        g.thread[rank] = Thread.currentThread();
        g.enter(rank);
        await(g.entry, op, "entry");
        String m = g.mismatch;
        if (m != null) {
            // Every rank sees the same mismatch; wait so no rank republishes while others read it.
            await(g.exit, op, "exit");
            throw new IllegalStateException("rank " + rank + ": mismatched collective: " + m);
        }
    }

    private void await(CyclicBarrier barrier, String op, String phase) {
        try {
            barrier.await(g.timeoutNanos, TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
            throw new IllegalStateException("rank " + rank + ": " + op + " timed out after "
                    + Duration.ofNanos(g.timeoutNanos) + " waiting for the other ranks (" + phase
                    + "); ranks that did not arrive: " + g.missing(rank) + ". The group is now broken.", e);
        } catch (BrokenBarrierException e) {
            throw new PeerFailureException("rank " + rank + ": " + op + " aborted (" + phase
                    + "): another rank timed out, was interrupted or failed; the group is broken", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("rank " + rank + ": interrupted in " + op + " (" + phase + ")", e);
        }
    }

    // ---- collectives ----

    @Override
    public void allReduceSum(MemorySegment buf, long count) {
        String op = "allReduceSum";
        Collectives.checkSegment(op, "buf", buf, count);
        publish(op, count, 0, null, buf, null);
        int n = g.size;
        long lo = count * rank / n;
        long hi = count * (rank + 1) / n;
        MemorySegment scratch = g.scratch;
        sumInto(scratch, lo, hi, r -> g.a[r], 0);
        await(g.exit, op, "exit");
        MemorySegment.copy(scratch, 0, buf, 0, count * FLOAT_BYTES);
        // The next collective's entry barrier keeps scratch alive until every rank copied it out.
    }

    @Override
    public void reduceScatterSum(MemorySegment send, MemorySegment recv, long countPerRank) {
        String op = "reduceScatterSum";
        Collectives.checkSegment(op, "send", send, Collectives.mulCount(op, g.size, countPerRank));
        Collectives.checkSegment(op, "recv", recv, countPerRank);
        publish(op, countPerRank, 0, null, send, null);
        // recv[i] = sum_r send_r[rank * countPerRank + i]
        long base = rank * countPerRank;
        sumInto(recv, 0, countPerRank, r -> g.a[r].asSlice(base * FLOAT_BYTES), 0);
        await(g.exit, op, "exit");
    }

    @Override
    public void allGather(MemorySegment send, long count, MemorySegment recv) {
        String op = "allGather";
        Collectives.checkSegment(op, "send", send, count);
        Collectives.checkSegment(op, "recv", recv, Collectives.mulCount(op, g.size, count));
        publish(op, count, 0, null, send, null);
        long bytes = count * FLOAT_BYTES;
        for (int r = 0; r < g.size; r++) {
            MemorySegment.copy(g.a[r], 0, recv, r * bytes, bytes);
        }
        await(g.exit, op, "exit");
    }

    @Override
    public void allGatherV(MemorySegment send, long count, MemorySegment recv, long[] counts) {
        String op = "allGatherV";
        long total = Collectives.checkCounts(op, counts, g.size, rank, count);
        Collectives.checkSegment(op, "send", send, count);
        Collectives.checkSegment(op, "recv", recv, total);
        publish(op, count, 0, counts.clone(), send, null);
        concatenate(counts, recv);
        await(g.exit, op, "exit");
    }

    /** Every rank's published segment, {@code counts[r]} floats of rank r, one after another into {@code recv}. */
    private void concatenate(long[] counts, MemorySegment recv) {
        long off = 0;
        for (int r = 0; r < g.size; r++) {
            long bytes = counts[r] * FLOAT_BYTES;
            MemorySegment.copy(g.a[r], 0, recv, off, bytes);
            off += bytes;
        }
    }

    @Override
    public void gather(MemorySegment send, long count, MemorySegment recv, int root) {
        String op = "gather";
        Collectives.checkRoot(op, root, g.size);
        Collectives.checkSegment(op, "send", send, count);
        if (rank == root) {
            Collectives.checkSegment(op, "recv", recv, Collectives.mulCount(op, g.size, count));
        }
        publish(op, count, root, null, send, null);
        if (rank == root) {
            long bytes = count * FLOAT_BYTES;
            for (int r = 0; r < g.size; r++) {
                MemorySegment.copy(g.a[r], 0, recv, r * bytes, bytes);
            }
        }
        await(g.exit, op, "exit");
    }

    @Override
    public void gatherV(MemorySegment send, long count, MemorySegment recv, long[] counts, int root) {
        String op = "gatherV";
        Collectives.checkRoot(op, root, g.size);
        long total = Collectives.checkCounts(op, counts, g.size, rank, count);
        Collectives.checkSegment(op, "send", send, count);
        if (rank == root) {
            Collectives.checkSegment(op, "recv", recv, total);
        }
        publish(op, count, root, counts.clone(), send, null);
        if (rank == root) {
            concatenate(counts, recv);
        }
        await(g.exit, op, "exit");
    }

    @Override
    public void scatterV(MemorySegment send, long[] counts, MemorySegment recv, long count, int root) {
        String op = "scatterV";
        Collectives.checkRoot(op, root, g.size);
        long total = Collectives.checkCounts(op, counts, g.size, rank, count);
        Collectives.checkSegment(op, "recv", recv, count);
        if (rank == root) {
            Collectives.checkSegment(op, "send", send, total);
        }
        publish(op, count, root, counts.clone(), rank == root ? send : null, null);
        long off = 0;
        for (int r = 0; r < rank; r++) {
            off += counts[r];
        }
        MemorySegment.copy(g.a[root], off * FLOAT_BYTES, recv, 0, count * FLOAT_BYTES);
        await(g.exit, op, "exit");
    }

    @Override
    public void broadcast(MemorySegment buf, long count, int root) {
        String op = "broadcast";
        Collectives.checkRoot(op, root, g.size);
        Collectives.checkSegment(op, "buf", buf, count);
        publish(op, count, root, null, buf, null);
        if (rank != root) {
            MemorySegment.copy(g.a[root], 0, buf, 0, count * FLOAT_BYTES);
        }
        await(g.exit, op, "exit");
    }

    @Override
    public void barrier() {
        publish("barrier", 0, 0, null, null, null);
        await(g.exit, "barrier", "exit");
    }

    /**
     * Breaks the group: ranks waiting in a collective, and any that enter one later, throw at once
     * instead of waiting out the timeout. For a launcher whose rank failed outside a collective.
     */
    public void abort() {
        g.aborted = true;
        g.entry.reset();
        g.exit.reset();
    }

    @Override
    public void close() {
        closed = true;
    }

    // ---- summation ----

    private interface Source {
        MemorySegment of(int rank);
    }

    /**
     * {@code out[outBase + i] = src(0)[i] + src(1)[i] + ... + src(n-1)[i]} for i in [lo, hi),
     * added left to right in float arithmetic. {@code out} is indexed like the sources.
     */
    private void sumInto(MemorySegment out, long lo, long hi, Source src, long outBase) {
        if (hi <= lo) {
            return;
        }
        long bytes = (hi - lo) * FLOAT_BYTES;
        MemorySegment.copy(src.of(0), lo * FLOAT_BYTES, out, (outBase + lo) * FLOAT_BYTES, bytes);
        for (int r = 1; r < g.size; r++) {
            MemorySegment s = src.of(r);
            for (long i = lo; i < hi; i++) {
                long o = (outBase + i) * FLOAT_BYTES;
                out.set(F, o, out.get(F, o) + s.get(F, i * FLOAT_BYTES));
            }
        }
    }
}
