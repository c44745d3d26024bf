package dev.muon4j.distributed;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.Kernels;
import dev.muon4j.optim.AdamWConfig;
import dev.muon4j.optim.HybridOptimizer;
import dev.muon4j.optim.LearningRateSchedule;
import dev.muon4j.optim.MatrixLayout;
import dev.muon4j.optim.MomentumForm;
import dev.muon4j.optim.MuonConfig;
import dev.muon4j.optim.NewtonSchulz;
import dev.muon4j.optim.NonFiniteGradientException;
import dev.muon4j.optim.NonFinitePolicy;
import dev.muon4j.optim.Optimizer;
import dev.muon4j.optim.OptimizerState;
import dev.muon4j.optim.Parameter;
import dev.muon4j.optim.Route;
import dev.muon4j.optim.StepResult;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;

/**
 * ZeRO-1 data parallelism with Muon: every rank holds all parameters; optimizer state is split by
 * a {@link ShardLayout}. The settings (routes, overrides, learning rates, schedule, clipping,
 * non-finite policy) are a {@link HybridOptimizer.Builder}'s, and so are the update equations: N
 * ranks track one {@link HybridOptimizer} given the same global batch, up to the order of float
 * additions. Each step, on every rank:
 * <ol>
 *   <li>the gradients (of this rank's share of the global batch) are reduce-scattered and divided
 *       by the rank count: each rank gets the global mean gradient of the elements it owns;</li>
 *   <li>non-finite gradients (which parameter) and the global gradient norm are agreed by
 *       all-reduce; clipping scales the owned gradient;</li>
 *   <li>AdamW elements are updated locally (their moments are owned, never communicated);</li>
 *   <li>Muon matrices: momentum is updated on the owned elements; then, by {@link Mode}, either
 *       the matrix's update input U is all-gathered from its owners and every owner runs
 *       Newton–Schulz on the whole and applies its own slice ({@link Mode#DISTRIBUTED_MUON},
 *       Moonlight's Algorithm 1), or the one rank owning the matrix does it alone
 *       ({@link Mode#WHOLE_MATRIX});</li>
 *   <li>the owned parameter values are all-gathered so every rank holds the new parameters.</li>
 * </ol>
 * A rank whose share of the batch is empty passes zero gradients and takes part as usual.
 * Timings and traffic of the last step are in {@link #lastStep()}.
 */
public final class ShardedOptimizer implements Optimizer, AutoCloseable {
    /** How Muon's matrices are split over ranks. */
    public enum Mode {
        /**
         * Moonlight's Distributed Muon: the flat element-wise ZeRO-1 partition; a matrix split
         * between ranks is all-gathered before Newton–Schulz, which every rank owning part of it
         * runs on the whole. Equal shards; extra traffic of one all-gather of each split matrix.
         */
        DISTRIBUTED_MUON,
        /**
         * Each Muon matrix is owned whole by one rank (greedy balance by size), which alone runs
         * its Newton–Schulz; AdamW parameters fill the rest element-wise. No extra traffic; shards
         * (and Newton–Schulz work) are only as balanced as the matrix sizes allow.
         */
        WHOLE_MATRIX
    }

    /**
     * One step's numbers on this rank.
     *
     * @param nanos              wall time of the whole optimizer step
     * @param communicationNanos time inside collectives
     * @param newtonSchulzNanos  time in Newton–Schulz
     * @param bytesSent          bytes this rank sent (bandwidth-optimal volumes, see {@link MeteredCollectives})
     * @param bytesReceived      bytes this rank received
     */
    public record StepStats(long nanos, long communicationNanos, long newtonSchulzNanos, long bytesSent, long bytesReceived) {
    }

    private final MeteredCollectives comm;
    private final Backend backend;
    private final Mode mode;
    private final MuonConfig muon;
    private final AdamWConfig adamw;
    private final LearningRateSchedule schedule;
    private final double maxGradientNorm;
    private final NonFinitePolicy nonFinitePolicy;
    private final ShardLayout layout;
    private final List<HybridOptimizer.Assignment> assignments;
    private final int[] secondStart;        // per piece of this rank: where its AdamW v starts, -1 for Muon
    private final Arena arena = Arena.ofShared();
    private final MemorySegment flat;       // paddedTotal floats: gradients in, parameters out
    private final MemorySegment shard;      // shardSize floats
    private final MemorySegment agree;      // small buffer for agreements
    private final MemorySegment header;     // step counts sent with a state; this rank's sum of squares
    private final MemorySegment squares;    // every rank's sum of squares
    private final float[] gradient;         // owned gradient (shardSize)
    private final float[] first;            // owned Muon momentum or AdamW m (shardSize)
    private final float[] second;           // owned AdamW v, AdamW pieces only, packed
    private final float[] update;           // owned part of Muon's U
    private final float[] matrix;           // one whole Muon parameter, gathered, then orthogonalised
    private final NewtonSchulz.Workspace workspace = new NewtonSchulz.Workspace();
    private long step;
    private long skipped;
    private StepStats last = new StepStats(0, 0, 0, 0, 0);

    /**
     * @param comm       this rank's collectives; every rank passes the same parameters (names, shapes, order)
     * @param settings   the optimizer settings, as for {@link HybridOptimizer.Builder#build}; its backend runs Newton–Schulz
     * @param parameters the parameters, in the same order on every rank
     * @param mode       how Muon's matrices are split
     */
    public ShardedOptimizer(Collectives comm, HybridOptimizer.Builder settings, List<Parameter> parameters, Mode mode) {
        this.comm = comm instanceof MeteredCollectives m ? m : new MeteredCollectives(Objects.requireNonNull(comm, "collectives"));
        this.backend = settings.backend();
        this.mode = Objects.requireNonNull(mode, "mode");
        this.muon = settings.muonConfig();
        this.adamw = settings.adamwConfig();
        this.schedule = settings.schedule();
        this.maxGradientNorm = settings.maxGradientNorm();
        this.nonFinitePolicy = settings.nonFinitePolicy();
        this.assignments = List.copyOf(settings.assign(parameters));
        boolean[] whole = new boolean[parameters.size()];
        int largestMuon = 0;
        for (int i = 0; i < whole.length; i++) {
            if (assignments.get(i).route() == Route.MUON) {
                whole[i] = mode == Mode.WHOLE_MATRIX;
                largestMuon = Math.max(largestMuon, parameters.get(i).size());
            }
        }
        this.layout = mode == Mode.WHOLE_MATRIX ? ShardLayout.wholeMatrices(parameters, this.comm.size(), whole)
                : new ShardLayout(parameters, this.comm.size());
        List<ShardLayout.Piece> mine = layout.pieces(this.comm.rank());
        secondStart = new int[mine.size()];
        int adamElements = 0;
        for (int k = 0; k < mine.size(); k++) {
            ShardLayout.Piece piece = mine.get(k);
            if (assignments.get(piece.parameter()).route() == Route.ADAMW) {
                secondStart[k] = adamElements;
                adamElements += piece.length();
            } else {
                secondStart[k] = -1;
            }
        }
        int s = layout.shardSize();
        flat = arena.allocate(ValueLayout.JAVA_FLOAT, Math.max(1, layout.paddedTotal()));
        shard = arena.allocate(ValueLayout.JAVA_FLOAT, s);
        agree = arena.allocate(ValueLayout.JAVA_FLOAT, Math.max(4, this.comm.size()));
        header = arena.allocate(ValueLayout.JAVA_LONG, 3);
        squares = arena.allocate(ValueLayout.JAVA_DOUBLE, this.comm.size());
        gradient = new float[s];
        first = new float[s];
        second = new float[adamElements];
        update = new float[s];
        matrix = new float[largestMuon];
    }

    /** The partition of parameters over ranks. */
    public ShardLayout layout() {
        return layout;
    }

    public Mode mode() {
        return mode;
    }

    /** This rank's collectives, metered. */
    public MeteredCollectives collectives() {
        return comm;
    }

    /** Timings and traffic of the last {@link #step()} on this rank. */
    public StepStats lastStep() {
        return last;
    }

    /** Bytes of optimizer state this rank holds (momenta and second moments of its own elements). */
    public long stateBytes() {
        return (long) (layout.owned(comm.rank()) + second.length) * Float.BYTES;
    }

    /** Bytes of optimizer state one process would hold for the same parameters and routes. */
    public long singleProcessStateBytes() {
        long n = 0;
        for (HybridOptimizer.Assignment a : assignments) {
            n += (long) a.parameter().size() * (a.route() == Route.ADAMW ? 2 : 1);
        }
        return n * Float.BYTES;
    }

    @Override
    public long stepCount() {
        return step;
    }

    @Override
    public long skippedSteps() {
        return skipped;
    }

    @Override
    public List<Parameter> parameters() {
        return layout.parameters();
    }

    /**
     * One update from each rank's current gradients; every rank must call it. The result (global
     * gradient norm, skip, clip) is the same on every rank.
     */
    @Override
    public StepResult step() {
        long t0 = System.nanoTime();
        comm.reset();
        long nsNanos = 0;
        List<Parameter> params = layout.parameters();
        int rank = comm.rank();
        int ranks = comm.size();
        int s = layout.shardSize();
        for (int r = 0; r < ranks; r++) {
            for (ShardLayout.Piece piece : layout.pieces(r)) {
                MemorySegment.copy(params.get(piece.parameter()).gradient(), piece.offset(), flat, ValueLayout.JAVA_FLOAT,
                        layout.flatPosition(r, piece) * Float.BYTES, piece.length());
            }
            long owned = layout.owned(r);
            flat.asSlice(((long) r * s + owned) * Float.BYTES, (s - owned) * Float.BYTES).fill((byte) 0);
        }
        comm.reduceScatterSum(flat, shard, s);
        MemorySegment.copy(shard, ValueLayout.JAVA_FLOAT, 0, gradient, 0, s);
        Kernels.scale(gradient, 0, s, 1f / ranks);

        int bad = Kernels.firstNonFinite(gradient, 0, s);
        agree.fill((byte) 0);
        int badParameter = bad >= 0 ? parameterAt(rank, bad) : -1;
        agree.setAtIndex(ValueLayout.JAVA_FLOAT, rank, badParameter + 1);
        comm.allReduceSum(agree, ranks);
        for (int r = 0; r < ranks; r++) {
            int found = (int) agree.getAtIndex(ValueLayout.JAVA_FLOAT, r) - 1;
            if (found >= 0) {
                if (nonFinitePolicy == NonFinitePolicy.FAIL) {
                    String name = params.get(found).name();
                    throw new NonFiniteGradientException(r == rank ? name : name + " (found on rank " + r + ")",
                            r == rank ? elementAt(rank, bad) : -1, r == rank ? gradient[bad] : Float.NaN, step + skipped + 1);
                }
                skipped++;
                last = new StepStats(System.nanoTime() - t0, comm.nanos(), 0, comm.bytesSent(), comm.bytesReceived());
                return new StepResult(step, true, Double.NaN, false, schedule.factor(step));
            }
        }
        // Each rank's sum of squares as a double, gathered and added in rank order: same bits on every rank.
        header.setAtIndex(ValueLayout.JAVA_DOUBLE, 0, Kernels.sumOfSquares(gradient, 0, s));
        comm.allGather(header, 2, squares);
        double total = 0;
        for (int r = 0; r < ranks; r++) {
            total += squares.getAtIndex(ValueLayout.JAVA_DOUBLE, r);
        }
        double norm = Math.sqrt(total);
        boolean clipped = maxGradientNorm > 0 && norm > maxGradientNorm;
        if (clipped) {
            Kernels.scale(gradient, 0, s, (float) (maxGradientNorm / (norm + 1e-6)));
        }

        double factor = schedule.factor(step);
        long t = step + 1;
        float bc1 = (float) (1 - Math.pow(adamw.beta1(), t));
        float bc2 = (float) (1 - Math.pow(adamw.beta2(), t));
        boolean ema = muon.momentumForm() == MomentumForm.EMA;
        List<ShardLayout.Piece> mine = layout.pieces(rank);
        for (int k = 0; k < mine.size(); k++) {
            ShardLayout.Piece piece = mine.get(k);
            HybridOptimizer.Assignment a = assignments.get(piece.parameter());
            int at = piece.shardStart();
            if (a.route() == Route.ADAMW) {
                Kernels.adamw(a.parameter().value(), piece.offset(), gradient, at, first, at, second, secondStart[k], piece.length(),
                        (float) adamw.beta1(), (float) adamw.beta2(), (float) (1 - adamw.beta1()), (float) (1 - adamw.beta2()),
                        (float) (factor * a.learningRate()), (float) a.weightDecay(), (float) adamw.eps(), bc1, bc2);
            } else {
                Kernels.muonMomentum(ema, muon.nesterov(), muon.momentum(), gradient, at, first, at, update, at, piece.length());
            }
        }
        for (int i = 0; i < params.size(); i++) {
            if (assignments.get(i).route() == Route.MUON) {
                nsNanos += orthogonalizeAndApply(i, factor);
            }
        }

        for (ShardLayout.Piece piece : mine) {
            MemorySegment.copy(params.get(piece.parameter()).value(), piece.offset(), shard, ValueLayout.JAVA_FLOAT,
                    (long) piece.shardStart() * Float.BYTES, piece.length());
        }
        comm.allGather(shard, s, flat);
        unflattenInto(true);
        step = t;
        last = new StepStats(System.nanoTime() - t0, comm.nanos(), nsNanos, comm.bytesSent(), comm.bytesReceived());
        return new StepResult(step, false, norm, clipped, factor);
    }

    /** Copies every rank's pieces from the flat buffer into the parameters' values (or gradients). */
    private void unflattenInto(boolean values) {
        List<Parameter> params = layout.parameters();
        for (int r = 0; r < comm.size(); r++) {
            for (ShardLayout.Piece piece : layout.pieces(r)) {
                Parameter p = params.get(piece.parameter());
                MemorySegment.copy(flat, ValueLayout.JAVA_FLOAT, layout.flatPosition(r, piece) * Float.BYTES,
                        values ? p.value() : p.gradient(), piece.offset(), piece.length());
            }
        }
    }

    private int parameterAt(int rank, int shardIndex) {
        for (ShardLayout.Piece piece : layout.pieces(rank)) {
            if (shardIndex >= piece.shardStart() && shardIndex < piece.shardStart() + piece.length()) {
                return piece.parameter();
            }
        }
        throw new IllegalStateException("non-finite value in the padding of rank " + rank + "'s shard at " + shardIndex);
    }

    /** The index inside its parameter of element {@code shardIndex} of rank {@code rank}'s shard. */
    private int elementAt(int rank, int shardIndex) {
        for (ShardLayout.Piece piece : layout.pieces(rank)) {
            if (shardIndex >= piece.shardStart() && shardIndex < piece.shardStart() + piece.length()) {
                return piece.offset() + shardIndex - piece.shardStart();
            }
        }
        throw new IllegalStateException("non-finite value in the padding of rank " + rank + "'s shard at " + shardIndex);
    }

    /** Newton–Schulz for Muon matrix {@code index} and this rank's slice of its update; returns NS nanoseconds. */
    private long orthogonalizeAndApply(int index, double factor) {
        Parameter p = layout.parameters().get(index);
        int rank = comm.rank();
        ShardLayout.Piece mine = null;
        for (ShardLayout.Piece piece : layout.pieces(rank)) {
            if (piece.parameter() == index) {
                mine = piece;
            }
        }
        int owner = layout.wholeOwner(index);
        if (owner >= 0) {
            if (owner != rank) {
                return 0;
            }
            System.arraycopy(update, mine.shardStart(), matrix, 0, p.size());
        } else {
            long[] counts = layout.counts(index);
            MemorySegment send = shard.asSlice(0, Math.max(1, counts[rank]) * Float.BYTES);
            if (mine != null) {
                MemorySegment.copy(update, mine.shardStart(), send, ValueLayout.JAVA_FLOAT, 0, mine.length());
            }
            MemorySegment full = flat.asSlice(0, (long) p.size() * Float.BYTES);
            comm.allGatherV(send, counts[rank], full, counts);
            if (mine == null) {
                return 0;
            }
            MemorySegment.copy(full, ValueLayout.JAVA_FLOAT, 0, matrix, 0, p.size());
        }
        long t0 = System.nanoTime();
        MatrixLayout m = p.layout();
        NewtonSchulz.orthogonalizeBatch(backend, muon.newtonSchulz(), matrix, 0, m.count(), m.fanOut(), m.fanIn(), matrix, 0, workspace);
        long ns = System.nanoTime() - t0;
        HybridOptimizer.Assignment a = assignments.get(index);
        double lr = factor * a.learningRate();
        float decay = (float) (1 - lr * a.weightDecay());
        float stepSize = (float) (lr * a.scale());
        Kernels.decayAndSubtract(p.value(), mine.offset(), decay, stepSize, matrix, mine.offset(), mine.length());
        return ns;
    }

    /**
     * The whole optimizer state, gathered from every rank, in the single-process format of
     * {@link HybridOptimizer#saveState()} (keyed by parameter name): any rank count, either mode,
     * or one process can load it. Every rank must call it; every rank gets the same state (and
     * holds all of it for a while: {@link #saveStateOn} gathers it on one rank only).
     */
    @Override
    public OptimizerState saveState() {
        return assemble(gatherOwned(first, -1), gatherOwned(expandedSecond(), -1));
    }

    /**
     * Like {@link #saveState()}, but the state is gathered on rank {@code root} only (the one that
     * writes checkpoints): the other ranks never hold more than their own part, and get null.
     * Every rank must call it.
     */
    public OptimizerState saveStateOn(int root) {
        float[] firstAll = gatherOwned(first, root);
        float[] secondAll = gatherOwned(expandedSecond(), root);
        return comm.rank() == root ? assemble(firstAll, secondAll) : null;
    }

    /** The first non-finite value of the state this rank holds (its pieces' momentum or Adam moments). */
    @Override
    public Optional<String> findNonFiniteState() {
        List<ShardLayout.Piece> mine = layout.pieces(comm.rank());
        for (int k = 0; k < mine.size(); k++) {
            ShardLayout.Piece piece = mine.get(k);
            String name = layout.parameters().get(piece.parameter()).name();
            boolean muonPiece = assignments.get(piece.parameter()).route() == Route.MUON;
            int bad = Kernels.firstNonFinite(first, piece.shardStart(), piece.length());
            if (bad >= 0) {
                return Optional.of(HybridOptimizer.describeNonFinite(muonPiece ? HybridOptimizer.MOMENTUM
                        : HybridOptimizer.EXP_AVG, name, (long) piece.offset() + bad, first[piece.shardStart() + bad]));
            }
            if (secondStart[k] >= 0 && (bad = Kernels.firstNonFinite(second, secondStart[k], piece.length())) >= 0) {
                return Optional.of(HybridOptimizer.describeNonFinite(HybridOptimizer.EXP_AVG_SQ, name,
                        (long) piece.offset() + bad, second[secondStart[k] + bad]));
            }
        }
        return Optional.empty();
    }

    /** This rank's AdamW second moments laid out like its shard (zeros on Muon pieces). */
    private float[] expandedSecond() {
        List<ShardLayout.Piece> mine = layout.pieces(comm.rank());
        float[] expanded = new float[layout.shardSize()];
        for (int k = 0; k < mine.size(); k++) {
            if (secondStart[k] >= 0) {
                System.arraycopy(second, secondStart[k], expanded, mine.get(k).shardStart(), mine.get(k).length());
            }
        }
        return expanded;
    }

    private OptimizerState assemble(float[] firstAll, float[] secondAll) {
        List<Parameter> params = layout.parameters();
        List<Map<String, float[]>> buffers = new ArrayList<>();
        for (HybridOptimizer.Assignment a : assignments) {
            Map<String, float[]> b = new LinkedHashMap<>();
            if (a.route() == Route.MUON) {
                b.put(HybridOptimizer.MOMENTUM, new float[a.parameter().size()]);
            } else {
                b.put(HybridOptimizer.EXP_AVG, new float[a.parameter().size()]);
                b.put(HybridOptimizer.EXP_AVG_SQ, new float[a.parameter().size()]);
            }
            buffers.add(b);
        }
        for (int r = 0; r < comm.size(); r++) {
            for (ShardLayout.Piece piece : layout.pieces(r)) {
                int from = (int) layout.flatPosition(r, piece);
                Map<String, float[]> b = buffers.get(piece.parameter());
                if (assignments.get(piece.parameter()).route() == Route.MUON) {
                    System.arraycopy(firstAll, from, b.get(HybridOptimizer.MOMENTUM), piece.offset(), piece.length());
                } else {
                    System.arraycopy(firstAll, from, b.get(HybridOptimizer.EXP_AVG), piece.offset(), piece.length());
                    System.arraycopy(secondAll, from, b.get(HybridOptimizer.EXP_AVG_SQ), piece.offset(), piece.length());
                }
            }
        }
        Map<String, OptimizerState.Entry> entries = new LinkedHashMap<>();
        for (int i = 0; i < params.size(); i++) {
            Parameter p = params.get(i);
            entries.put(p.name(), new OptimizerState.Entry(assignments.get(i).route(), p.shape(), buffers.get(i)));
        }
        return new OptimizerState(step, skipped, entries);
    }

    /** Every rank's shard-shaped array, concatenated, on every rank (root −1) or on root only (null elsewhere). */
    private float[] gatherOwned(float[] owned, int root) {
        MemorySegment.copy(owned, 0, shard, ValueLayout.JAVA_FLOAT, 0, layout.shardSize());
        if (root < 0) {
            comm.allGather(shard, layout.shardSize(), flat);
        } else {
            comm.gather(shard, layout.shardSize(), flat, root);
            if (comm.rank() != root) {
                return null;
            }
        }
        float[] all = new float[(int) layout.paddedTotal()];
        MemorySegment.copy(flat, ValueLayout.JAVA_FLOAT, 0, all, 0, all.length);
        return all;
    }

    /**
     * Takes this rank's part of a whole state (saved by any rank count or mode, or by one process),
     * after checking names, routes, shapes and buffers; on a mismatch nothing changes. Every rank
     * reads the state itself; see {@link #loadStateFrom} for a state only one rank has.
     */
    @Override
    public void loadState(OptimizerState state) {
        check(state);
        List<ShardLayout.Piece> mine = layout.pieces(comm.rank());
        for (int k = 0; k < mine.size(); k++) {
            ShardLayout.Piece piece = mine.get(k);
            Map<String, float[]> b = state.entries().get(layout.parameters().get(piece.parameter()).name()).buffers();
            if (secondStart[k] < 0) {
                System.arraycopy(b.get(HybridOptimizer.MOMENTUM), piece.offset(), first, piece.shardStart(), piece.length());
            } else {
                System.arraycopy(b.get(HybridOptimizer.EXP_AVG), piece.offset(), first, piece.shardStart(), piece.length());
                System.arraycopy(b.get(HybridOptimizer.EXP_AVG_SQ), piece.offset(), second, secondStart[k], piece.length());
            }
        }
        step = state.step();
        skipped = state.skippedSteps();
    }

    /**
     * Loads a state that only rank {@code root} holds (read from its disk), sending each rank its
     * part. Every rank must call it; {@code state} is ignored on other ranks. If the state does not
     * fit, every rank throws (the root with the reason) and nothing changes.
     */
    public void loadStateFrom(int root, OptimizerState state) {
        String problem = null;
        if (comm.rank() == root) {
            try {
                check(Objects.requireNonNull(state, "state on the root rank"));
            } catch (IllegalArgumentException | NullPointerException e) {
                problem = e.getMessage();
            }
        }
        MemorySegment header = this.header;
        if (comm.rank() == root) {
            header.setAtIndex(ValueLayout.JAVA_LONG, 0, problem == null ? 1 : 0);
            header.setAtIndex(ValueLayout.JAVA_LONG, 1, problem == null ? state.step() : 0);
            header.setAtIndex(ValueLayout.JAVA_LONG, 2, problem == null ? state.skippedSteps() : 0);
        }
        comm.broadcast(header, 6, root);
        if (header.getAtIndex(ValueLayout.JAVA_LONG, 0) != 1) {
            throw new IllegalArgumentException(problem != null ? problem : "rank " + root + " could not load the optimizer state (see its error)");
        }
        for (int buffer = 0; buffer < 2; buffer++) {
            if (comm.rank() == root) {
                flat.fill((byte) 0);
                for (int r = 0; r < comm.size(); r++) {
                    for (ShardLayout.Piece piece : layout.pieces(r)) {
                        Parameter p = layout.parameters().get(piece.parameter());
                        Map<String, float[]> b = state.entries().get(p.name()).buffers();
                        boolean muonRoute = assignments.get(piece.parameter()).route() == Route.MUON;
                        float[] src = buffer == 0 ? b.get(muonRoute ? HybridOptimizer.MOMENTUM : HybridOptimizer.EXP_AVG)
                                : muonRoute ? null : b.get(HybridOptimizer.EXP_AVG_SQ);
                        if (src != null) {
                            MemorySegment.copy(src, piece.offset(), flat, ValueLayout.JAVA_FLOAT,
                                    layout.flatPosition(r, piece) * Float.BYTES, piece.length());
                        }
                    }
                }
            }
            comm.broadcast(flat, layout.paddedTotal(), root);
            List<ShardLayout.Piece> mine = layout.pieces(comm.rank());
            for (int k = 0; k < mine.size(); k++) {
                ShardLayout.Piece piece = mine.get(k);
                long at = layout.flatPosition(comm.rank(), piece) * Float.BYTES;
                if (buffer == 0) {
                    MemorySegment.copy(flat, ValueLayout.JAVA_FLOAT, at, first, piece.shardStart(), piece.length());
                } else if (secondStart[k] >= 0) {
                    MemorySegment.copy(flat, ValueLayout.JAVA_FLOAT, at, second, secondStart[k], piece.length());
                }
            }
        }
        step = header.getAtIndex(ValueLayout.JAVA_LONG, 1);
        skipped = header.getAtIndex(ValueLayout.JAVA_LONG, 2);
    }

    /** Makes every rank's parameter values those of rank {@code root}. Every rank must call it. */
    public void broadcastParameters(int root) {
        for (int r = 0; r < comm.size(); r++) {
            for (ShardLayout.Piece piece : layout.pieces(r)) {
                MemorySegment.copy(layout.parameters().get(piece.parameter()).value(), piece.offset(), flat, ValueLayout.JAVA_FLOAT,
                        layout.flatPosition(r, piece) * Float.BYTES, piece.length());
            }
        }
        comm.broadcast(flat, layout.paddedTotal(), root);
        unflattenInto(true);
    }

    private void check(OptimizerState state) {
        List<Parameter> params = layout.parameters();
        Map<String, OptimizerState.Entry> entries = state.entries();
        for (int i = 0; i < params.size(); i++) {
            Parameter p = params.get(i);
            Route route = assignments.get(i).route();
            OptimizerState.Entry e = entries.get(p.name());
            if (e == null) {
                throw new IllegalArgumentException("optimizer state lacks parameter " + p.name());
            }
            if (e.route() != route || !Arrays.equals(e.shape(), p.shape())) {
                throw new IllegalArgumentException("optimizer state of " + p.name() + " is " + e.route() + " " + Arrays.toString(e.shape())
                        + ", the parameter is " + route + " " + Arrays.toString(p.shape()));
            }
            List<String> expected = route == Route.MUON ? List.of(HybridOptimizer.MOMENTUM)
                    : List.of(HybridOptimizer.EXP_AVG, HybridOptimizer.EXP_AVG_SQ);
            if (!e.buffers().keySet().containsAll(expected) || e.buffers().size() != expected.size()) {
                throw new IllegalArgumentException("optimizer state of " + p.name() + " has buffers " + e.buffers().keySet()
                        + ", expected " + expected);
            }
            for (float[] buffer : e.buffers().values()) {
                if (buffer.length != p.size()) {
                    throw new IllegalArgumentException("optimizer state of " + p.name() + " has a buffer of " + buffer.length
                            + " elements, the parameter has " + p.size());
                }
            }
        }
        if (entries.size() != params.size()) {
            throw new IllegalArgumentException("optimizer state has " + entries.size() + " parameters, the optimizer " + params.size());
        }
    }

    @Override
    public void close() {
        arena.close();
    }
}
