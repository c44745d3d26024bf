package dev.muon4j.distributed;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

class InProcessCollectivesTest {

    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT;

    interface RankBody {
        void run(Collectives c, Arena arena) throws Exception;
    }

    /** Runs body on every rank in its own thread; returns each rank's failure (or null). */
    static List<Throwable> runRanks(List<Collectives> group, RankBody body) throws Exception {
        ExecutorService ex = Executors.newFixedThreadPool(group.size());
        try {
            List<Future<Throwable>> fs = new ArrayList<>();
            for (Collectives c : group) {
                fs.add(ex.submit(() -> {
                    try (Arena arena = Arena.ofShared()) {
                        body.run(c, arena);
                        return null;
                    } catch (Throwable t) {
                        return t;
                    }
                }));
            }
            List<Throwable> out = new ArrayList<>();
            for (Future<Throwable> f : fs) {
                out.add(f.get(60, TimeUnit.SECONDS));
            }
            return out;
        } finally {
            ex.shutdownNow();
        }
    }

    static void runAll(int ranks, RankBody body) throws Exception {
        List<Throwable> errs = runRanks(InProcessCollectives.create(ranks), body);
        for (int r = 0; r < errs.size(); r++) {
            if (errs.get(r) != null) {
                throw new AssertionError("rank " + r + " failed", errs.get(r));
            }
        }
    }

    static float value(int rank, long i) {
        return rank * 1000 + i % 997 + 0.5f;
    }

    static MemorySegment filled(Arena a, int rank, long n) {
        MemorySegment s = a.allocate(F, Math.max(n, 1));
        for (long i = 0; i < n; i++) {
            s.setAtIndex(F, i, value(rank, i));
        }
        return s;
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 3, 4})
    void allReduceSum(int n) throws Exception {
        long count = 1001;
        runAll(n, (c, a) -> {
            MemorySegment buf = filled(a, c.rank(), count);
            c.allReduceSum(buf, count);
            for (long i = 0; i < count; i++) {
                float want = 0;
                for (int r = 0; r < n; r++) want += value(r, i);
                assertEquals(want, buf.getAtIndex(F, i), "rank " + c.rank() + " i " + i);
            }
            // twice in a row, with a different count, reuses the scratch
            MemorySegment small = filled(a, c.rank(), 3);
            c.allReduceSum(small, 3);
            float w0 = 0;
            for (int r = 0; r < n; r++) w0 += value(r, 0);
            assertEquals(w0, small.getAtIndex(F, 0));
        });
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 3, 4})
    void reduceScatterSum(int n) throws Exception {
        long per = 257;
        runAll(n, (c, a) -> {
            MemorySegment send = filled(a, c.rank(), n * per);
            MemorySegment recv = a.allocate(F, per);
            c.reduceScatterSum(send, recv, per);
            for (long i = 0; i < per; i++) {
                float want = 0;
                for (int r = 0; r < n; r++) want += value(r, c.rank() * per + i);
                assertEquals(want, recv.getAtIndex(F, i));
            }
            // send untouched
            assertEquals(value(c.rank(), 5), send.getAtIndex(F, 5));
        });
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 3, 4})
    void allGather(int n) throws Exception {
        long count = 129;
        runAll(n, (c, a) -> {
            MemorySegment send = filled(a, c.rank(), count);
            MemorySegment recv = a.allocate(F, n * count);
            c.allGather(send, count, recv);
            for (int r = 0; r < n; r++) {
                for (long i = 0; i < count; i++) {
                    assertEquals(value(r, i), recv.getAtIndex(F, r * count + i));
                }
            }
        });
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 3, 4})
    void gatherFillsTheRootOnly(int n) throws Exception {
        long count = 77;
        for (int root = 0; root < n; root++) {
            int theRoot = root;
            runAll(n, (c, a) -> {
                MemorySegment send = filled(a, c.rank(), count);
                MemorySegment recv = a.allocate(F, n * count);
                recv.fill((byte) 0);
                c.gather(send, count, c.rank() == theRoot ? recv : null, theRoot);
                for (int r = 0; r < n; r++) {
                    for (long i = 0; i < count; i++) {
                        assertEquals(c.rank() == theRoot ? value(r, i) : 0f, recv.getAtIndex(F, r * count + i));
                    }
                }
            });
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 3, 4})
    void allGatherVUneven(int n) throws Exception {
        long[] counts = new long[n];
        for (int r = 0; r < n; r++) counts[r] = (r * 7 + 3) % 5; // includes zeros: 3,0,2,4
        long total = 0;
        for (long x : counts) total += x;
        long t = total;
        runAll(n, (c, a) -> {
            MemorySegment send = filled(a, c.rank(), counts[c.rank()]);
            MemorySegment recv = a.allocate(F, Math.max(t, 1));
            c.allGatherV(send, counts[c.rank()], recv, counts);
            long off = 0;
            for (int r = 0; r < n; r++) {
                for (long i = 0; i < counts[r]; i++) {
                    assertEquals(value(r, i), recv.getAtIndex(F, off + i), "from rank " + r);
                }
                off += counts[r];
            }
        });
    }

    /** Uneven gather to each root, then the gathered floats scattered back: every rank gets its own part again. */
    @ParameterizedTest
    @ValueSource(ints = {1, 2, 3, 4})
    void gatherVAndScatterVUnevenToEachRoot(int n) throws Exception {
        long[] counts = new long[n];
        for (int r = 0; r < n; r++) counts[r] = (r * 7 + 3) % 5; // includes zeros: 3,0,2,4
        long total = 0;
        for (long x : counts) total += x;
        long t = total;
        runAll(n, (c, a) -> {
            for (int root = 0; root < n; root++) {
                MemorySegment send = filled(a, c.rank(), counts[c.rank()]);
                MemorySegment recv = a.allocate(F, Math.max(t, 1));
                c.gatherV(send, counts[c.rank()], c.rank() == root ? recv : null, counts, root);
                long off = 0;
                for (int r = 0; r < n; r++) {
                    for (long i = 0; i < counts[r]; i++) {
                        assertEquals(c.rank() == root ? value(r, i) : 0f, recv.getAtIndex(F, off + i), "from rank " + r + " to " + root);
                    }
                    off += counts[r];
                }
                MemorySegment back = a.allocate(F, Math.max(counts[c.rank()], 1));
                c.scatterV(c.rank() == root ? recv : null, counts, back, counts[c.rank()], root);
                for (long i = 0; i < counts[c.rank()]; i++) {
                    assertEquals(value(c.rank(), i), back.getAtIndex(F, i), "scattered from " + root + " to rank " + c.rank());
                }
            }
        });
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 3, 4})
    void broadcastFromEachRoot(int n) throws Exception {
        long count = 100;
        runAll(n, (c, a) -> {
            for (int root = 0; root < n; root++) {
                MemorySegment buf = filled(a, c.rank(), count);
                c.broadcast(buf, count, root);
                for (long i = 0; i < count; i++) {
                    assertEquals(value(root, i), buf.getAtIndex(F, i), "root " + root);
                }
            }
            c.barrier();
        });
    }

    @Test
    void sumsAreIdenticalOnEveryRankAndDeterministic() throws Exception {
        int n = 4;
        long count = 4096;
        float[][] results = new float[n][];
        for (int rep = 0; rep < 3; rep++) {
            runAll(n, (c, a) -> {
                MemorySegment buf = a.allocate(F, count);
                for (long i = 0; i < count; i++) {
                    buf.setAtIndex(F, i, (float) Math.sin(i * 0.37 + c.rank()) * 1e-3f * (c.rank() + 1) + 1e4f * (i % 3));
                }
                c.allReduceSum(buf, count);
                float[] got = buf.toArray(F);
                synchronized (results) {
                    if (results[c.rank()] == null) {
                        results[c.rank()] = got;
                    } else {
                        assertTrue(java.util.Arrays.equals(results[c.rank()], got), "not deterministic");
                    }
                }
            });
        }
        for (int r = 1; r < n; r++) {
            assertTrue(java.util.Arrays.equals(results[0], results[r]), "rank " + r + " differs from rank 0");
        }
    }

    @Test
    void missingRankTimesOutOthers() throws Exception {
        List<Collectives> group = InProcessCollectives.create(3, Duration.ofMillis(300));
        long start = System.nanoTime();
        List<Throwable> errs = runRanks(group, (c, a) -> {
            if (c.rank() == 2) {
                return; // never arrives
            }
            MemorySegment buf = filled(a, c.rank(), 10);
            c.allReduceSum(buf, 10);
        });
        double secs = (System.nanoTime() - start) / 1e9;
        assertTrue(secs < 10, "took " + secs + " s");
        assertEquals(null, errs.get(2));
        boolean sawTimeout = false;
        for (int r = 0; r < 2; r++) {
            Throwable t = errs.get(r);
            if (!(t instanceof IllegalStateException)) {
                fail("rank " + r + " should throw IllegalStateException, got " + t);
            }
            String m = t.getMessage();
            assertTrue(m.contains("rank " + r) && m.contains("allReduceSum"), m);
            if (m.contains("timed out after")) {
                sawTimeout = true;
                assertTrue(m.contains("[2]"), m);
            }
        }
        assertTrue(sawTimeout, "no rank reported a timeout: " + errs);
    }

    @Test
    void mismatchedCollectivesAreReported() throws Exception {
        List<Throwable> errs = runRanks(InProcessCollectives.create(2, Duration.ofSeconds(10)), (c, a) -> {
            MemorySegment buf = filled(a, c.rank(), 4);
            if (c.rank() == 0) c.allReduceSum(buf, 4); else c.broadcast(buf, 4, 0);
        });
        for (Throwable t : errs) {
            assertTrue(t instanceof IllegalStateException && t.getMessage().contains("mismatched"), String.valueOf(t));
        }
    }

    @Test
    void confinedSegmentIsReportedClearly() throws Exception {
        List<Throwable> errs = runRanks(InProcessCollectives.create(2, Duration.ofSeconds(10)), (c, a) -> {
            try (Arena confined = Arena.ofConfined()) {
                MemorySegment buf = confined.allocate(F, 4);
                c.allReduceSum(buf, 4);
            }
        });
        for (Throwable t : errs) {
            assertTrue(t instanceof IllegalStateException && t.getMessage().contains("Arena.ofShared"), String.valueOf(t));
        }
    }

    @Test
    void argumentChecks() {
        Collectives c = InProcessCollectives.create(2).get(0);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(F, 4);
            var e1 = assertThrows(IllegalArgumentException.class, () -> c.allReduceSum(s, 5));
            assertTrue(e1.getMessage().contains("holds 4 floats"), e1.getMessage());
            var e2 = assertThrows(IllegalArgumentException.class, () -> c.reduceScatterSum(s, s, 3));
            assertTrue(e2.getMessage().contains("send"), e2.getMessage());
            var e3 = assertThrows(IllegalArgumentException.class, () -> c.allGather(s, 3, s));
            assertTrue(e3.getMessage().contains("recv"), e3.getMessage());
            var e4 = assertThrows(IllegalArgumentException.class, () -> c.allGatherV(s, 1, s, new long[] {1, 1, 1}));
            assertTrue(e4.getMessage().contains("length 3"), e4.getMessage());
            var e5 = assertThrows(IllegalArgumentException.class, () -> c.allGatherV(s, 2, s, new long[] {1, 1}));
            assertTrue(e5.getMessage().contains("differs"), e5.getMessage());
            var e6 = assertThrows(IllegalArgumentException.class, () -> c.broadcast(s, 4, 2));
            assertTrue(e6.getMessage().contains("root 2"), e6.getMessage());
            assertThrows(IllegalArgumentException.class, () -> c.broadcast(s, -1, 0));
            assertThrows(IllegalArgumentException.class, () -> InProcessCollectives.create(0));
        }
    }
}
