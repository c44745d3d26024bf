package dev.muon4j.distributed;

import dev.muon4j.optim.Parameter;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.List;

/**
 * How ZeRO-1 splits optimizer state over data-parallel ranks. Every rank owns a shard of
 * {@code shardSize} elements; the shards laid end to end, rank by rank, form the flat buffer of
 * {@link #paddedTotal()} elements that reduce-scatter and all-gather work on. A shard holds
 * {@link Piece}s: runs of consecutive elements of one parameter. Every element of every parameter
 * is in exactly one piece; a shard may end in padding.
 *
 * <p>Two layouts:
 * <ul>
 *   <li>{@link #ShardLayout(List, int) element-wise} (ZeRO-1 as usual, and Moonlight's Distributed
 *       Muon): the parameters, in order, end to end, cut into {@code ⌈total / ranks⌉}-element
 *       shards; a parameter may straddle ranks, and {@link #counts(int)} gives how much of it each
 *       rank owns (what an uneven all-gather of its pieces needs);</li>
 *   <li>{@link #wholeMatrices(List, int, int[]) whole-matrix}: the chosen parameters (Muon's
 *       matrices) are cut into units (a plain matrix is one unit; a stack of experts one unit per
 *       expert), each unit owned whole by one rank, balanced greedily by size; the rest are cut
 *       element-wise into the space left, so shards stay about equal. A rank's units of one stack
 *       are consecutive (one piece), so a stack may be split over ranks only at matrix boundaries.</li>
 * </ul>
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
    private final long total;
    private final int shardSize;
    private final List<List<Piece>> pieces;
    private final long[][] counts; // [parameter][rank]

    /** The element-wise layout: parameters end to end, cut into equal shards. */
    public ShardLayout(List<Parameter> parameters, int ranks) {
        this(parameters, ranks, new int[parameters.size()]);
    }

    /**
     * The whole-matrix layout with every chosen parameter one unit: each parameter with
     * {@code whole[i]} set is owned entirely by one rank; see {@link #wholeMatrices(List, int, int[])}.
     */
    public static ShardLayout wholeMatrices(List<Parameter> parameters, int ranks, boolean[] whole) {
        if (whole.length != parameters.size()) {
            throw new IllegalArgumentException("whole-matrix flags: " + whole.length + " for " + parameters.size() + " parameters");
        }
        int[] units = new int[whole.length];
        for (int i = 0; i < whole.length; i++) {
            units[i] = whole[i] ? 1 : 0;
        }
        return new ShardLayout(parameters, ranks, units);
    }

    /**
     * The whole-matrix layout: parameter {@code i} with {@code units[i] > 0} is cut into that many
     * equal runs of consecutive elements (its matrices: 1 for a plain matrix, the expert count for a
     * stack), each owned whole by one rank: all units of all such parameters, largest first (then by
     * parameter and position), each to the least-loaded rank, ties to the lower rank. The units one
     * rank gets of a parameter are then renumbered so that they are consecutive, rank by rank in rank
     * order (units of one parameter are equal, so no rank's load changes): a rank holds at most one
     * piece of each parameter. Parameters with {@code units[i] == 0} fill the remaining space of the
     * shards, in order, element-wise.
     */
    public static ShardLayout wholeMatrices(List<Parameter> parameters, int ranks, int[] units) {
        if (units.length != parameters.size()) {
            throw new IllegalArgumentException("whole-matrix units: " + units.length + " for " + parameters.size() + " parameters");
        }
        for (int i = 0; i < units.length; i++) {
            if (units[i] < 0 || (units[i] > 0 && parameters.get(i).size() % units[i] != 0)) {
                throw new IllegalArgumentException("parameter " + parameters.get(i).name() + " (" + parameters.get(i).size()
                        + " elements) cannot be cut into " + units[i] + " equal units");
            }
        }
        return new ShardLayout(parameters, ranks, units.clone());
    }

    private ShardLayout(List<Parameter> parameters, int ranks, int[] units) {
        if (ranks < 1) {
            throw new IllegalArgumentException("a shard layout needs at least 1 rank, got " + ranks);
        }
        if (parameters.isEmpty()) {
            throw new IllegalArgumentException("a shard layout needs at least one parameter");
        }
        this.parameters = List.copyOf(parameters);
        this.ranks = ranks;
        long sum = 0;
        for (Parameter p : parameters) {
            sum += p.size();
        }
        this.total = sum;

        long[] load = new long[ranks];
        List<List<Piece>> lists = new ArrayList<>();
        for (int r = 0; r < ranks; r++) {
            lists.add(new ArrayList<>());
        }
        // Greedy over every unit: (parameter, unit size), largest first, then by parameter; units of one parameter are equal.
        List<int[]> wholeUnits = new ArrayList<>();
        for (int i = 0; i < units.length; i++) {
            for (int u = 0; u < units[i]; u++) {
                wholeUnits.add(new int[] {i, parameters.get(i).size() / units[i]});
            }
        }
        wholeUnits.sort(Comparator.comparingInt((int[] u) -> -u[1]).thenComparingInt(u -> u[0]));
        int[][] given = new int[units.length][ranks];     // units of each parameter each rank got
        List<List<Integer>> received = new ArrayList<>(); // per rank: parameters in the order it first got one of their units
        for (int r = 0; r < ranks; r++) {
            received.add(new ArrayList<>());
        }
        for (int[] unit : wholeUnits) {
            int best = 0;
            for (int r = 1; r < ranks; r++) {
                if (load[r] < load[best]) {
                    best = r;
                }
            }
            if (given[unit[0]][best]++ == 0) {
                received.get(best).add(unit[0]);
            }
            load[best] += unit[1];
        }
        for (int r = 0; r < ranks; r++) {
            int at = 0;
            for (int i : received.get(r)) {
                int unitSize = parameters.get(i).size() / units[i];
                int first = 0;
                for (int q = 0; q < r; q++) {
                    first += given[i][q];
                }
                int length = given[i][r] * unitSize;
                lists.get(r).add(new Piece(i, first * unitSize, at, length));
                at += length;
            }
        }
        long shard = (total + ranks - 1) / ranks;
        for (long l : load) {
            shard = Math.max(shard, l);
        }
        if (shard > Integer.MAX_VALUE - 16) {
            throw new IllegalArgumentException(total + " elements over " + ranks + " ranks make shards of " + shard
                    + " floats, more than one Java array holds; use more ranks");
        }
        this.shardSize = (int) Math.max(1, shard);
        int rank = 0;
        for (int i = 0; i < parameters.size(); i++) {
            if (units[i] > 0) {
                continue;
            }
            int size = parameters.get(i).size();
            int done = 0;
            while (done < size) {
                while (load[rank] == shardSize) {
                    rank++;
                }
                int n = (int) Math.min(size - done, shardSize - load[rank]);
                lists.get(rank).add(new Piece(i, done, (int) load[rank], n));
                load[rank] += n;
                done += n;
            }
        }
        this.counts = new long[parameters.size()][ranks];
        List<List<Piece>> all = new ArrayList<>();
        for (int r = 0; r < ranks; r++) {
            List<Piece> list = lists.get(r);
            list.sort(Comparator.comparingInt(Piece::shardStart));
            for (Piece piece : list) {
                counts[piece.parameter()][r] += piece.length();
            }
            all.add(Collections.unmodifiableList(list));
        }
        this.pieces = Collections.unmodifiableList(all);
    }

    /** The parameters, in the order given. */
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

    /** Elements of each rank's shard (owned elements plus padding). */
    public int shardSize() {
        return shardSize;
    }

    /** {@code ranks · shardSize}: the length of a flat buffer that reduce-scatter and all-gather work on. */
    public long paddedTotal() {
        return (long) ranks * shardSize;
    }

    /** Where a piece of rank {@code rank} sits in the flat buffer. */
    public long flatPosition(int rank, Piece piece) {
        return (long) rank * shardSize + piece.shardStart();
    }

    /** The pieces that rank {@code rank} owns, in shard order. */
    public List<Piece> pieces(int rank) {
        if (rank < 0 || rank >= ranks) {
            throw new IllegalArgumentException("rank " + rank + " outside 0.." + (ranks - 1));
        }
        return pieces.get(rank);
    }

    /** Elements owned by rank {@code rank}, padding excluded. */
    public long owned(int rank) {
        long n = 0;
        for (Piece p : pieces(rank)) {
            n += p.length();
        }
        return n;
    }

    /**
     * Elements of parameter {@code index} owned by each rank, in rank order; they add up to its
     * size. In the element-wise layout a rank's part is one contiguous run of the parameter, and
     * ranks hold its runs in rank order.
     */
    public long[] counts(int index) {
        return counts[index].clone();
    }

    /** The single rank that owns all of parameter {@code index}, or -1 when it is split. */
    public int wholeOwner(int index) {
        int owner = -1;
        for (int r = 0; r < ranks; r++) {
            if (counts[index][r] > 0) {
                if (owner >= 0) {
                    return -1;
                }
                owner = r;
            }
        }
        return owner;
    }

    /** The rank that owns element {@code element} of parameter {@code index}. */
    public int owner(int index, int element) {
        if (element < 0 || element >= parameters.get(index).size()) {
            throw new IllegalArgumentException("element " + element + " outside parameter " + parameters.get(index).name()
                    + " of " + parameters.get(index).size());
        }
        for (int r = 0; r < ranks; r++) {
            for (Piece p : pieces.get(r)) {
                if (p.parameter() == index && element >= p.offset() && element < p.offset() + p.length()) {
                    return r;
                }
            }
        }
        throw new IllegalStateException("no owner for element " + element + " of parameter " + index);
    }
}
