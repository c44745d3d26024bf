package dev.muon4j.data;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Draws random training batches for next-token prediction from a token array.
 *
 * <p>Batch {@code step} is a pure function of {@code (seed, step)}: its {@code B} start offsets
 * come from a {@link SplittableRandom} seeded from the seed and the step number only, never from
 * earlier draws. A run resumed at step {@code s} therefore sees exactly the batches the
 * uninterrupted run would have, without replaying the sampler. Each row is a window of
 * {@code T + 1} consecutive tokens; the first {@code T} are the inputs and the last {@code T} the
 * targets. Windows may overlap one another and repeat across steps (sampling with replacement).
 *
 * <p>Data parallelism: {@link #batch(long, int, int)} gives rank {@code r} of {@code R} rows
 * {@code [r·B/R, (r+1)·B/R)} of the same global batch, so the ranks together see exactly the
 * global batch a single process would.
 *
 * <p>Instances are immutable and thread-safe.
 */
public final class BatchSampler {

    private final int[] tokens;
    private final int contextLength;
    private final int batchSize;
    private final long seed;

    /**
     * Creates a sampler.
     *
     * @param trainTokens the tokens to draw from (not copied; do not modify them)
     * @param contextLength {@code T}, positions per row, at least 1
     * @param batchSize {@code B}, rows per global batch, at least 1
     * @param seed the run's seed
     * @throws IllegalArgumentException if a size is not positive or the tokens are fewer than
     *     {@code T + 1}
     */
    public BatchSampler(int[] trainTokens, int contextLength, int batchSize, long seed) {
        if (contextLength < 1) {
            throw new IllegalArgumentException("context length must be at least 1, got " + contextLength);
        }
        if (batchSize < 1) {
            throw new IllegalArgumentException("batch size must be at least 1, got " + batchSize);
        }
        if (trainTokens.length < (long) contextLength + 1) {
            throw new IllegalArgumentException("training split of " + trainTokens.length
                    + " tokens is too short for context " + contextLength + " (needs at least "
                    + (contextLength + 1L) + ")");
        }
        this.tokens = trainTokens;
        this.contextLength = contextLength;
        this.batchSize = batchSize;
        this.seed = seed;
    }

    /** {@code T}, the positions per row. */
    public int contextLength() {
        return contextLength;
    }

    /** {@code B}, the rows of a global batch. */
    public int batchSize() {
        return batchSize;
    }

    /** The seed batches are derived from. */
    public long seed() {
        return seed;
    }

    /**
     * The global batch of a step: {@code B} rows of {@code T} tokens.
     *
     * @param step the optimizer step, any value (0 for the first step)
     * @return the batch, the same for the same {@code (seed, step)} on every machine and run
     */
    public Batch batch(long step) {
        return batch(step, 0, 1);
    }

    /**
     * Rank {@code rank}'s contiguous share of the global batch of a step: rows
     * {@code [⌊rank·B/ranks⌋, ⌊(rank+1)·B/ranks⌋)}. The shares of all ranks, in rank order, are
     * the global batch; when ranks does not divide B they differ by one row, and with more ranks
     * than rows some shares are empty.
     *
     * @param step the optimizer step
     * @param rank this process's rank, in {@code [0, ranks)}
     * @param ranks the number of data-parallel ranks
     * @return the share, possibly of 0 rows
     * @throws IllegalArgumentException if rank is out of range
     */
    public Batch batch(long step, int rank, int ranks) {
        if (ranks < 1) {
            throw new IllegalArgumentException("ranks must be at least 1, got " + ranks);
        }
        if (rank < 0 || rank >= ranks) {
            throw new IllegalArgumentException("rank " + rank + " is outside [0, " + ranks + ")");
        }
        long[] offsets = offsets(step);
        int first = shareStart(rank, ranks);
        int rows = shareStart(rank + 1, ranks) - first;
        int t = contextLength;
        int[] inputs = new int[rows * t];
        int[] targets = new int[rows * t];
        for (int r = 0; r < rows; r++) {
            int start = (int) offsets[first + r];
            System.arraycopy(tokens, start, inputs, r * t, t);
            System.arraycopy(tokens, start + 1, targets, r * t, t);
        }
        return new Batch(inputs, targets, rows, t);
    }

    /** First row of rank {@code rank}'s share: ⌊rank·B/ranks⌋. */
    public int shareStart(int rank, int ranks) {
        return (int) ((long) rank * batchSize / ranks);
    }

    /**
     * The start offsets of the {@code B} windows of a step's global batch, each in
     * {@code [0, n - T - 1]}.
     *
     * @param step the optimizer step
     * @return {@code B} offsets
     */
    public long[] offsets(long step) {
        SplittableRandom rng = new SplittableRandom(mix(seed, step));
        int bound = tokens.length - contextLength; // offsets 0 .. n-T-1 inclusive
        long[] out = new long[batchSize];
        for (int i = 0; i < batchSize; i++) {
            out[i] = rng.nextInt(bound);
        }
        return out;
    }

    /**
     * Fixed, deterministic validation batches: consecutive, non-overlapping windows taken from the
     * start of {@code tokens}. Window {@code w} has inputs {@code tokens[w·T, w·T + T)} and targets
     * one further, so every token is predicted at most once. Windows are grouped {@code B} to a
     * batch; the last batch may hold fewer rows when the tokens run out first.
     *
     * @param tokens the validation tokens
     * @param maxBatches the most batches to return, at least 1
     * @param batchSize {@code B}
     * @param contextLength {@code T}
     * @return at least one batch
     * @throws IllegalArgumentException if a size is not positive or there are fewer than
     *     {@code T + 1} tokens
     */
    public static List<Batch> windows(int[] tokens, int maxBatches, int batchSize, int contextLength) {
        if (maxBatches < 1 || batchSize < 1 || contextLength < 1) {
            throw new IllegalArgumentException("maxBatches " + maxBatches + ", batch size " + batchSize
                    + " and context length " + contextLength + " must all be at least 1");
        }
        if (tokens.length < (long) contextLength + 1) {
            throw new IllegalArgumentException("validation split of " + tokens.length
                    + " tokens is too short for context " + contextLength);
        }
        long available = (tokens.length - 1L) / contextLength;
        long windows = Math.min(available, (long) maxBatches * batchSize);
        List<Batch> out = new ArrayList<>();
        int t = contextLength;
        for (long w0 = 0; w0 < windows; w0 += batchSize) {
            int rows = (int) Math.min(batchSize, windows - w0);
            int[] inputs = new int[rows * t];
            int[] targets = new int[rows * t];
            for (int r = 0; r < rows; r++) {
                int start = (int) ((w0 + r) * t);
                System.arraycopy(tokens, start, inputs, r * t, t);
                System.arraycopy(tokens, start + 1, targets, r * t, t);
            }
            out.add(new Batch(inputs, targets, rows, t));
        }
        return List.copyOf(out);
    }

    /** SplitMix64's finaliser over the seed and the step: distinct (seed, step) pairs scatter well. */
    static long mix(long seed, long step) {
        long z = seed * 0x9E3779B97F4A7C15L + 0x632BE59BD9B4E019L;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        z ^= z >>> 31;
        z += step * 0x9E3779B97F4A7C15L;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }
}
