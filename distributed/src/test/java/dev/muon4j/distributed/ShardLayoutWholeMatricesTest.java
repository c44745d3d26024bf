package dev.muon4j.distributed;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.optim.ParamRole;
import dev.muon4j.optim.Parameter;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The whole-matrix layout: flagged parameters owned whole, greedily balanced, the rest filling the shards. */
class ShardLayoutWholeMatricesTest {

    private static List<Parameter> params(int... sizes) {
        List<Parameter> list = new ArrayList<>();
        for (int i = 0; i < sizes.length; i++) {
            list.add(Parameter.zeros("p" + i, ParamRole.SCALAR, sizes[i]));
        }
        return list;
    }

    /**
     * Units: p1 is a stack of 6 units of 10 (experts), p2 one unit of 25, p0 (30) fills. Largest
     * first to the least-loaded rank: p2 → 0; p1's units → 1, 1, 1, 0, 1, 0 (loads 45 / 40). Rank 0's
     * two units of p1 become p1's first two, rank 1's four the rest: one piece each, split at a unit
     * boundary. Shards of max(⌈115/2⌉, 45) = 58; p0 fills rank 0's last 13 and 17 of rank 1.
     */
    @Test
    void aStackIsSplitOnlyAtUnitBoundariesOnePiecePerRank() {
        ShardLayout layout = ShardLayout.wholeMatrices(params(30, 60, 25), 2, new int[] {0, 6, 1});
        assertEquals(58, layout.shardSize());
        assertEquals(List.of(new ShardLayout.Piece(2, 0, 0, 25), new ShardLayout.Piece(1, 0, 25, 20),
                new ShardLayout.Piece(0, 0, 45, 13)), layout.pieces(0));
        assertEquals(List.of(new ShardLayout.Piece(1, 20, 0, 40), new ShardLayout.Piece(0, 13, 40, 17)), layout.pieces(1));
        assertArrayEquals(new long[] {20, 40}, layout.counts(1));
        assertEquals(-1, layout.wholeOwner(1), "the stack is split between the ranks");
        assertEquals(0, layout.wholeOwner(2));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ShardLayout.wholeMatrices(params(30, 60, 25), 2, new int[] {0, 7, 1}));
        assertTrue(e.getMessage().contains("p1") && e.getMessage().contains("60") && e.getMessage().contains("7"), e.getMessage());
    }

    /**
     * Sizes 100, 30, 60, 50, 7, 40 with 100, 60, 50, 40 flagged on 2 ranks: largest first to the
     * least-loaded rank gives 100 → 0, 60 → 1, 50 → 1, 40 → 0, loads 140 / 110; 287 elements make
     * shards of max(⌈287/2⌉, 140) = 144; p1 (30) fills rank 0's last 4 and 26 of rank 1, p4 (7) the rest.
     */
    @Test
    void greedyLargestFirstThenFill() {
        ShardLayout layout = ShardLayout.wholeMatrices(params(100, 30, 60, 50, 7, 40), 2,
                new boolean[] {true, false, true, true, false, true});
        assertEquals(287, layout.total());
        assertEquals(144, layout.shardSize());
        assertEquals(List.of(new ShardLayout.Piece(0, 0, 0, 100), new ShardLayout.Piece(5, 0, 100, 40),
                new ShardLayout.Piece(1, 0, 140, 4)), layout.pieces(0));
        assertEquals(List.of(new ShardLayout.Piece(2, 0, 0, 60), new ShardLayout.Piece(3, 0, 60, 50),
                new ShardLayout.Piece(1, 4, 110, 26), new ShardLayout.Piece(4, 0, 136, 7)), layout.pieces(1));
        assertEquals(0, layout.wholeOwner(0));
        assertEquals(1, layout.wholeOwner(2));
        assertEquals(1, layout.wholeOwner(3));
        assertEquals(0, layout.wholeOwner(5));
        assertEquals(-1, layout.wholeOwner(1), "p1 is split");
        assertEquals(1, layout.wholeOwner(4), "p4 happens to fit in rank 1");
        assertArrayEquals(new long[] {4, 26}, layout.counts(1));
        assertEquals(144, layout.owned(0));
        assertEquals(143, layout.owned(1));
    }

    /** A flagged parameter larger than an even share sets the shard size; ties go to the lower rank. */
    @Test
    void aLargeMatrixSetsTheShardSizeAndTiesGoToTheLowerRank() {
        ShardLayout layout = ShardLayout.wholeMatrices(params(10, 100, 10, 10), 3, new boolean[] {true, true, true, false});
        // 100 → rank 0; 10 (p0) → rank 1 (ranks 1 and 2 tie at 0); 10 (p2) → rank 2.
        assertEquals(100, layout.shardSize());
        assertEquals(0, layout.wholeOwner(1));
        assertEquals(1, layout.wholeOwner(0));
        assertEquals(2, layout.wholeOwner(2));
        // p3 fills after rank 0's full shard: rank 1.
        assertEquals(1, layout.wholeOwner(3));
        assertEquals(new ShardLayout.Piece(3, 0, 10, 10), layout.pieces(1).get(1));
    }

    /**
     * Random sizes, flags and rank counts: every flagged parameter is one piece (offset 0, its whole
     * size) of one rank, and wholeOwner names that rank; every element of every parameter is owned
     * exactly once and pieces never overlap or leave the shard; the shard size is exactly
     * max(⌈total/ranks⌉, largest greedy load) (so ≥ both bounds); the flagged placement is the
     * greedy one; split parameters have wholeOwner −1 and counts agree with the pieces.
     */
    @Test
    void randomLayoutsKeepEveryInvariant() {
        SplittableRandom random = new SplittableRandom(42);
        for (int trial = 0; trial < 300; trial++) {
            int n = 1 + random.nextInt(9);
            int ranks = 1 + random.nextInt(6);
            int[] sizes = new int[n];
            boolean[] whole = new boolean[n];
            long total = 0;
            for (int i = 0; i < n; i++) {
                sizes[i] = 1 + random.nextInt(random.nextBoolean() ? 8 : 120);
                whole[i] = random.nextInt(3) > 0;
                total += sizes[i];
            }
            String what = "trial " + trial + ": sizes " + java.util.Arrays.toString(sizes) + " whole "
                    + java.util.Arrays.toString(whole) + " ranks " + ranks;
            ShardLayout layout = ShardLayout.wholeMatrices(params(sizes), ranks, whole);

            // The greedy placement, recomputed independently.
            long[] load = new long[ranks];
            int[] expectedOwner = new int[n];
            java.util.Arrays.fill(expectedOwner, -1);
            List<Integer> order = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                if (whole[i]) {
                    order.add(i);
                }
            }
            order.sort((a, b) -> sizes[a] != sizes[b] ? Integer.compare(sizes[b], sizes[a]) : Integer.compare(a, b));
            long largestWhole = 0;
            for (int i : order) {
                int best = 0;
                for (int r = 1; r < ranks; r++) {
                    if (load[r] < load[best]) {
                        best = r;
                    }
                }
                expectedOwner[i] = best;
                load[best] += sizes[i];
                largestWhole = Math.max(largestWhole, sizes[i]);
            }
            long even = (total + ranks - 1) / ranks;
            long maxLoad = java.util.Arrays.stream(load).max().orElse(0);
            assertEquals(Math.max(even, maxLoad), layout.shardSize(), what);
            assertTrue(layout.shardSize() >= even && layout.shardSize() >= largestWhole, what);

            int[][] seen = new int[n][];
            for (int i = 0; i < n; i++) {
                seen[i] = new int[sizes[i]];
            }
            long[][] counts = new long[n][ranks];
            int[] wholePieces = new int[n];
            for (int r = 0; r < ranks; r++) {
                boolean[] used = new boolean[layout.shardSize()];
                for (ShardLayout.Piece piece : layout.pieces(r)) {
                    assertTrue(piece.length() >= 1, what);
                    counts[piece.parameter()][r] += piece.length();
                    if (whole[piece.parameter()]) {
                        wholePieces[piece.parameter()]++;
                        assertEquals(0, piece.offset(), what);
                        assertEquals(sizes[piece.parameter()], piece.length(), what);
                        assertEquals(expectedOwner[piece.parameter()], r, what + ": owner of p" + piece.parameter());
                    }
                    for (int e = 0; e < piece.length(); e++) {
                        seen[piece.parameter()][piece.offset() + e]++;
                        int at = piece.shardStart() + e;
                        assertTrue(at < layout.shardSize(), what);
                        assertTrue(!used[at], what + ": overlapping pieces on rank " + r);
                        used[at] = true;
                    }
                }
            }
            for (int i = 0; i < n; i++) {
                for (int c : seen[i]) {
                    assertEquals(1, c, what + ": p" + i);
                }
                assertArrayEquals(counts[i], layout.counts(i), what + ": counts of p" + i);
                int holders = 0;
                int holder = -1;
                for (int r = 0; r < ranks; r++) {
                    if (counts[i][r] > 0) {
                        holders++;
                        holder = r;
                    }
                }
                if (whole[i]) {
                    assertEquals(1, wholePieces[i], what + ": p" + i + " pieces");
                    assertEquals(expectedOwner[i], layout.wholeOwner(i), what);
                } else {
                    assertEquals(holders == 1 ? holder : -1, layout.wholeOwner(i), what + ": wholeOwner of p" + i);
                }
            }
        }
    }

    @Test
    void flagsMustMatchTheParameters() {
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> ShardLayout.wholeMatrices(params(3, 4), 2, new boolean[] {true})).getMessage().contains("1 for 2"));
    }
}
