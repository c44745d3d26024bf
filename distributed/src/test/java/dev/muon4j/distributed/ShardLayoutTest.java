package dev.muon4j.distributed;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.optim.ParamRole;
import dev.muon4j.optim.Parameter;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** ZeRO-1's flat partition: every element owned exactly once, pieces and counts consistent. */
class ShardLayoutTest {

    private static List<Parameter> params(int... sizes) {
        List<Parameter> list = new ArrayList<>();
        for (int i = 0; i < sizes.length; i++) {
            list.add(Parameter.zeros("p" + i, ParamRole.SCALAR, sizes[i]));
        }
        return list;
    }

    @Test
    void everyElementIsOwnedExactlyOnceInFlatOrder() {
        int[] sizes = {7, 1, 30, 5, 12};
        for (int ranks = 1; ranks <= 9; ranks++) {
            ShardLayout layout = new ShardLayout(params(sizes), ranks);
            assertEquals(55, layout.total());
            assertEquals((55 + ranks - 1) / ranks, layout.shardSize());
            assertEquals(0, layout.paddedTotal() % ranks);
            int[] seen = new int[55];
            int[] start = {0, 7, 8, 38, 43};
            for (int r = 0; r < ranks; r++) {
                int shardPosition = 0;
                for (ShardLayout.Piece piece : layout.pieces(r)) {
                    assertTrue(piece.length() >= 1);
                    assertEquals(shardPosition, piece.shardStart(), "pieces are contiguous inside a shard");
                    shardPosition += piece.length();
                    for (int e = 0; e < piece.length(); e++) {
                        assertEquals(r, layout.owner(piece.parameter(), piece.offset() + e));
                        long flat = layout.flatPosition(r, piece) + e;
                        assertEquals(start[piece.parameter()] + piece.offset() + e, flat, "element-wise layout keeps flat order");
                        seen[(int) flat]++;
                    }
                }
                assertTrue(shardPosition <= layout.shardSize());
            }
            for (int count : seen) {
                assertEquals(1, count, "ranks " + ranks);
            }
        }
    }

    @Test
    void countsMatchPiecesAndAddUpToTheParameter() {
        ShardLayout layout = new ShardLayout(params(7, 1, 30, 5, 12), 4);
        for (int p = 0; p < 5; p++) {
            long[] counts = layout.counts(p);
            long[] fromPieces = new long[4];
            for (int r = 0; r < 4; r++) {
                for (ShardLayout.Piece piece : layout.pieces(r)) {
                    if (piece.parameter() == p) {
                        fromPieces[r] += piece.length();
                    }
                }
            }
            assertArrayEquals(fromPieces, counts);
            assertEquals(layout.parameters().get(p).size(), java.util.Arrays.stream(counts).sum());
        }
        // 55 elements over 4 ranks: shards of 14; p2 = flat [8, 38) spans ranks 0, 1 and 2.
        assertArrayEquals(new long[] {6, 14, 10, 0}, layout.counts(2));
    }

    @Test
    void moreRanksThanElementsLeavesSomeShardsEmpty() {
        ShardLayout layout = new ShardLayout(params(2, 1), 5);
        assertEquals(1, layout.shardSize());
        assertEquals(1, layout.pieces(0).size());
        assertTrue(layout.pieces(3).isEmpty());
        assertTrue(layout.pieces(4).isEmpty());
    }

    @Test
    void badArgumentsAreClearErrors() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new ShardLayout(params(3), 0))
                .getMessage().contains("at least 1 rank"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new ShardLayout(List.of(), 2))
                .getMessage().contains("at least one parameter"));
        ShardLayout layout = new ShardLayout(params(3), 2);
        assertTrue(assertThrows(IllegalArgumentException.class, () -> layout.pieces(2)).getMessage().contains("rank 2"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> layout.owner(0, 3)).getMessage().contains("element 3"));
    }
}
