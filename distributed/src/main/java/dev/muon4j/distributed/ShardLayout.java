package dev.muon4j.distributed;

import dev.muon4j.optim.Parameter;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * How ZeRO-1 splits optimizer state over data-parallel ranks: the parameters, in the order given,
 * are laid end to end in one flat index space of {@code total} elements, padded to
 * {@code ranks · shardSize} with {@code shardSize = ⌈total / ranks⌉}; rank r owns the flat range
 * {@code [r·shardSize, (r+1)·shardSize)}. A parameter may straddle ranks; {@link #counts(int)}
 * gives how much of it each rank owns, which is what an uneven all-gather of that parameter's
 * pieces needs (Distributed Muon gathers each matrix's momentum this way before Newton–Schulz).
 */
public final class ShardLayout {
    /**
     * The part of one parameter inside one rank's shard.
     *
     * @param parameter  index of the parameter in the layout's list
     * @param offset     first element of the parameter in this piece
     * @param shardStart where the piece starts inside the rank's shard
     * @param length     elements in the piece (≥ 1)
     */
    public record Piece(int parameter, int offset, int shardStart, int length) {
    }

    private final List<Parameter> parameters;
    private final int ranks;
    private final long[] flatOffsets;
    private final long total;
    private final int shardSize;
    private final List<List<Piece>> pieces;

    public ShardLayout(List<Parameter> parameters, int ranks) {
        if (ranks < 1) {
            throw new IllegalArgumentException("a shard layout needs at least 1 rank, got " + ranks);
        }
        if (parameters.isEmpty()) {
            throw new IllegalArgumentException("a shard layout needs at least one parameter");
        }
        this.parameters = List.copyOf(parameters);
        this.ranks = ranks;
        this.flatOffsets = new long[parameters.size()];
        long offset = 0;
        for (int i = 0; i < parameters.size(); i++) {
            flatOffsets[i] = offset;
            offset += parameters.get(i).size();
        }
        this.total = offset;
        long shard = (total + ranks - 1) / ranks;
        if (shard > Integer.MAX_VALUE - 16) {
            throw new IllegalArgumentException(total + " elements over " + ranks + " ranks make shards of " + shard
                    + " floats, more than one Java array holds; use more ranks");
        }
        this.shardSize = (int) shard;
        List<List<Piece>> all = new ArrayList<>();
        for (int r = 0; r < ranks; r++) {
            all.add(Collections.unmodifiableList(piecesOf(r)));
        }
        this.pieces = Collections.unmodifiableList(all);
    }

    private List<Piece> piecesOf(int rank) {
        long start = (long) rank * shardSize;
        long end = Math.min(total, start + shardSize);
        List<Piece> list = new ArrayList<>();
        for (int i = 0; i < parameters.size(); i++) {
            long from = Math.max(start, flatOffsets[i]);
            long to = Math.min(end, flatOffsets[i] + parameters.get(i).size());
            if (from < to) {
                list.add(new Piece(i, (int) (from - flatOffsets[i]), (int) (from - start), (int) (to - from)));
            }
        }
        return list;
    }

    /** The parameters, in flat order. */
    public List<Parameter> parameters() {
        return parameters;
    }

    public int ranks() {
        return ranks;
    }

    /** Elements of all parameters together. */
    public long total() {
        return total;
    }

    /** Elements each rank owns (the last rank's shard may end in padding). */
    public int shardSize() {
        return shardSize;
    }

    /** {@code ranks · shardSize}: the length of a flat buffer that reduce-scatter and all-gather work on. */
    public long paddedTotal() {
        return (long) ranks * shardSize;
    }

    /** Where parameter {@code index} starts in the flat index space. */
    public long flatOffset(int index) {
        return flatOffsets[index];
    }

    /** The pieces of parameters that rank {@code rank} owns, in flat order. */
    public List<Piece> pieces(int rank) {
        if (rank < 0 || rank >= ranks) {
            throw new IllegalArgumentException("rank " + rank + " outside 0.." + (ranks - 1));
        }
        return pieces.get(rank);
    }

    /** Elements of parameter {@code index} owned by each rank, in rank order; they add up to its size. */
    public long[] counts(int index) {
        long[] counts = new long[ranks];
        long from = flatOffsets[index];
        long to = from + parameters.get(index).size();
        for (int r = 0; r < ranks; r++) {
            long start = (long) r * shardSize;
            long end = start + shardSize;
            counts[r] = Math.max(0, Math.min(end, to) - Math.max(start, from));
        }
        return counts;
    }

    /** The rank that owns flat element {@code flatIndex}. */
    public int owner(long flatIndex) {
        if (flatIndex < 0 || flatIndex >= total) {
            throw new IllegalArgumentException("flat index " + flatIndex + " outside 0.." + (total - 1));
        }
        return (int) (flatIndex / shardSize);
    }
}
