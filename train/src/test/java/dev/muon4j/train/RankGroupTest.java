package dev.muon4j.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.distributed.LocalRanks;
import dev.muon4j.distributed.PeerFailureException;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The trainer's agreements between ranks: rank 0's file work may take longer than the collective
 * timeout (its heartbeats keep the others waiting), its result reaches every rank, its failure
 * stops every rank, and sums and maxima over ranks are the same bits everywhere.
 */
class RankGroupTest {

    @Test
    void rootWorkLongerThanTheTimeoutIsKeptAliveByHeartbeats() throws Exception {
        // Each collective may wait 1.5 s; rank 0 works for 4 s.
        List<Long> results = LocalRanks.run(3, Duration.ofMillis(1500), comm -> {
            try (Arena arena = Arena.ofShared()) {
                Trainer.Group g = new Trainer.Group(comm, arena);
                return g.onRoot(() -> {
                    try {
                        Thread.sleep(4000);
                    } catch (InterruptedException e) {
                        throw new IOException(e);
                    }
                    return 42;
                }, "rank 0 failed");
            }
        });
        assertEquals(List.of(42L, 42L, 42L), results);
    }

    @Test
    void withoutHeartbeatsTheSameWaitTimesOut() {
        // The control: a plain wait as long as the work above does fail at the timeout.
        LocalRanks.RankFailedException e = assertThrows(LocalRanks.RankFailedException.class, () ->
                LocalRanks.run(2, Duration.ofMillis(1500), comm -> {
                    if (comm.rank() == 0) {
                        Thread.sleep(4000);
                    }
                    comm.barrier();
                    return null;
                }));
        assertTrue(e.getMessage().contains("timed out"), e.getMessage());
    }

    @Test
    void aFailureOfTheRootStopsEveryRank() throws Exception {
        List<Object> seen = new java.util.concurrent.CopyOnWriteArrayList<>();
        LocalRanks.RankFailedException e = assertThrows(LocalRanks.RankFailedException.class, () ->
                LocalRanks.run(3, Duration.ofSeconds(30), comm -> {
                    try (Arena arena = Arena.ofShared()) {
                        Trainer.Group g = new Trainer.Group(comm, arena);
                        return g.onRoot(() -> {
                            throw new IOException("disk full");
                        }, "rank 0 could not write");
                    } catch (Exception ex) {
                        seen.add(ex);
                        throw ex;
                    }
                }));
        assertEquals(0, e.rank());
        assertTrue(e.getMessage().contains("disk full"), e.getMessage());
        assertEquals(3, seen.size());
        assertEquals(2, seen.stream().filter(x -> x instanceof PeerFailureException p && p.getMessage().contains("rank 0 could not write")).count());
        assertInstanceOf(IOException.class, seen.stream().filter(x -> !(x instanceof PeerFailureException)).findFirst().orElseThrow());
    }

    @Test
    void sumsAreExactAndIdenticalOnEveryRank() throws Exception {
        // 1 + 2^-30 + ... : a float all-reduce would lose the small terms.
        List<Double> sums = LocalRanks.run(4, Duration.ofSeconds(30), comm -> {
            try (Arena arena = Arena.ofShared()) {
                Trainer.Group g = new Trainer.Group(comm, arena);
                return g.sum(comm.rank() == 0 ? 1.0 : Math.scalb(1.0, -30 - comm.rank()));
            }
        });
        double want = 1.0 + Math.scalb(1.0, -31) + Math.scalb(1.0, -32) + Math.scalb(1.0, -33);
        for (double s : sums) {
            assertEquals(Double.doubleToRawLongBits(want), Double.doubleToRawLongBits(s));
        }
    }

    @Test
    void maximaTakeEveryRanksValuesAndAreIdenticalOnEveryRank() throws Exception {
        // Entry i's largest value sits on rank i; rank 3 saw nothing (−∞), as a rank with an empty share of the batch.
        List<double[]> maxima = LocalRanks.run(4, Duration.ofSeconds(30), comm -> {
            try (Arena arena = Arena.ofShared()) {
                Trainer.Group g = new Trainer.Group(comm, arena);
                float[] mine = new float[3];
                for (int i = 0; i < mine.length; i++) {
                    mine[i] = comm.rank() == 3 ? Float.NEGATIVE_INFINITY : comm.rank() == i ? 10f + i : -1f - comm.rank();
                }
                double[] first = g.max(mine);
                double[] again = g.max(mine);  // the buffers are reused
                assertEquals(java.util.Arrays.toString(first), java.util.Arrays.toString(again));
                return first;
            }
        });
        for (double[] m : maxima) {
            assertEquals("[10.0, 11.0, 12.0]", java.util.Arrays.toString(m));
        }
        try (Arena arena = Arena.ofShared()) {
            assertEquals("[0.5, -Infinity]", java.util.Arrays.toString(new Trainer.Group(null, arena).max(new float[] {0.5f,
                    Float.NEGATIVE_INFINITY})), "one process: its own values");
        }
    }
}
