package dev.muon4j.distributed;

import dev.muon4j.backend.Kernels;
import dev.muon4j.optim.GradientClipping;
import dev.muon4j.optim.HybridOptimizer;
import dev.muon4j.optim.LearningRateSchedule;
import dev.muon4j.optim.NonFiniteGradientException;
import dev.muon4j.optim.NonFinitePolicy;
import dev.muon4j.optim.Optimizer;
import dev.muon4j.optim.OptimizerState;
import dev.muon4j.optim.ParamState;
import dev.muon4j.optim.Parameter;
import dev.muon4j.optim.Route;
import dev.muon4j.optim.StepContext;
import dev.muon4j.optim.StepResult;
import dev.muon4j.optim.UpdateRule;
import dev.muon4j.optim.UpdateTransform;
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
    private final Mode mode;
    private final LearningRateSchedule schedule;
    private final double maxGradientNorm;
    private final NonFinitePolicy nonFinitePolicy;
    private final ShardLayout layout;
    private final List<HybridOptimizer.Assignment> assignments;
    private final List<UpdateRule> rules;            // per parameter
    private final List<ParamState> slots;            // per piece of this rank: its rule's state for the piece's elements
    private final List<String> bufferNames;          // every state buffer name any rule keeps, in first-seen order
    private final StepContext context;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment flat;       // paddedTotal floats: gradients in, parameters out
    private final MemorySegment shard;      // shardSize floats
    private final MemorySegment agree;      // small buffer for agreements
    private final MemorySegment header;     // step counts sent with a state
    private final RankOrderedSum norms;     // the global gradient norm, exactly the same on every rank
    private final float[] gradient;         // owned gradient (shardSize)
    private final float[] update;           // owned part of the update U (shardSize)
    private final float[] matrix;           // one whole matrix parameter's U, gathered, then through the matrix stages
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
        this.mode = Objects.requireNonNull(mode, "mode");
        this.schedule = settings.schedule();
        this.maxGradientNorm = settings.maxGradientNorm();
        this.nonFinitePolicy = settings.nonFinitePolicy();
        this.context = new StepContext(settings.backend());
        this.assignments = List.copyOf(settings.assign(parameters));
        List<UpdateRule> r = new ArrayList<>();
        List<String> names = new ArrayList<>();
        boolean[] whole = new boolean[parameters.size()];
        int largestMatrix = 0;
        for (int i = 0; i < whole.length; i++) {
            Parameter p = parameters.get(i);
            UpdateRule rule = assignments.get(i).rule();
            for (UpdateTransform t : rule.transforms()) {
                if (t.scope() == UpdateTransform.Scope.MATRIX && !t.state(p).isEmpty()) {
                    throw new UnsupportedOperationException("the sharded optimizer cannot yet split the state of matrix stage "
                            + t.name() + " of " + p.name());
                }
                t.state(p).keySet().stream().filter(n -> !names.contains(n)).forEach(names::add);
            }
            r.add(rule);
            if (rule.needsMatrices()) {
                whole[i] = mode == Mode.WHOLE_MATRIX;
                largestMatrix = Math.max(largestMatrix, p.size());
            }
        }
        this.rules = List.copyOf(r);
        this.bufferNames = List.copyOf(names);
        this.layout = mode == Mode.WHOLE_MATRIX ? ShardLayout.wholeMatrices(parameters, this.comm.size(), whole)
                : new ShardLayout(parameters, this.comm.size());
        List<ParamState> pieceSlots = new ArrayList<>();
        for (ShardLayout.Piece piece : layout.pieces(this.comm.rank())) {
            pieceSlots.add(new ParamState(assignments.get(piece.parameter()), piece.offset(), piece.length()));
        }
        this.slots = List.copyOf(pieceSlots);
        int s = layout.shardSize();
        flat = arena.allocate(ValueLayout.JAVA_FLOAT, Math.max(1, layout.paddedTotal()));
        shard = arena.allocate(ValueLayout.JAVA_FLOAT, s);
        agree = arena.allocate(ValueLayout.JAVA_FLOAT, Math.max(4, this.comm.size()));
        header = arena.allocate(ValueLayout.JAVA_LONG, 3);
        norms = new RankOrderedSum(this.comm, arena, 1);
        gradient = new float[s];
        update = new float[s];
        matrix = new float[largestMatrix];
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

    /** Bytes of optimizer state this rank holds (its pieces' share of every rule's buffers). */
    public long stateBytes() {
        long n = 0;
        for (ParamState slot : slots) {
            for (float[] b : slot.buffers().values()) {
                n += b.length;
            }
        }
        return n * Float.BYTES;
    }

    /** Bytes of optimizer state one process would hold for the same parameters and routes. */
    public long singleProcessStateBytes() {
        long n = 0;
        for (int i = 0; i < assignments.size(); i++) {
            for (UpdateTransform t : rules.get(i).transforms()) {
                for (int size : t.state(assignments.get(i).parameter()).values()) {
                    n += size;
                }
            }
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
        // Each rank's sum of squares, added in rank order: the same norm, to the bit, on every rank.
        double norm = Math.sqrt(norms.sum(Kernels.sumOfSquares(gradient, 0, s)));
        float clipFactor = GradientClipping.factor(norm, maxGradientNorm);
        boolean clipped = clipFactor != 1f;
        if (clipped) {
            Kernels.scale(gradient, 0, s, clipFactor);
        }

        double factor = schedule.factor(step);
        long t = step + 1;
        context.begin(t, factor);
        List<ShardLayout.Piece> mine = layout.pieces(rank);
        for (int k = 0; k < mine.size(); k++) {
            ShardLayout.Piece piece = mine.get(k);
            int at = piece.shardStart();
            System.arraycopy(gradient, at, update, at, piece.length());
            // Elementwise rules run whole here; matrix rules their stages before the matrix ones.
            rules.get(piece.parameter()).applyBefore(context, slots.get(k), piece.offset(), update, at, piece.length());
        }
        for (int i = 0; i < params.size(); i++) {
            if (rules.get(i).needsMatrices()) {
                orthogonalizeAndApply(i);
            }
        }
        nsNanos = context.newtonSchulzNanos();

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

    /**
     * The matrix stages (Newton–Schulz) of matrix parameter {@code index} where the whole matrix is,
     * then the stages after them on this rank's slice: the owner alone ({@link Mode#WHOLE_MATRIX}), or
     * every rank owning part of it after an all-gather of U ({@link Mode#DISTRIBUTED_MUON}).
     */
    private void orthogonalizeAndApply(int index) {
        Parameter p = layout.parameters().get(index);
        int rank = comm.rank();
        int slot = -1;
        List<ShardLayout.Piece> pieces = layout.pieces(rank);
        for (int k = 0; k < pieces.size(); k++) {
            if (pieces.get(k).parameter() == index) {
                slot = k;
            }
        }
        ShardLayout.Piece mine = slot < 0 ? null : pieces.get(slot);
        int owner = layout.wholeOwner(index);
        if (owner >= 0) {
            if (owner != rank) {
                return;
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
                return;
            }
            MemorySegment.copy(full, ValueLayout.JAVA_FLOAT, 0, matrix, 0, p.size());
        }
        UpdateRule rule = rules.get(index);
        rule.applyMatrix(context, slots.get(slot), 0, matrix, 0, p.size());
        rule.applyAfter(context, slots.get(slot), mine.offset(), matrix, mine.offset(), mine.length());
    }

    /**
     * The whole optimizer state, gathered from every rank, in the single-process format of
     * {@link HybridOptimizer#saveState()} (keyed by parameter name): any rank count, either mode,
     * or one process can load it. Every rank must call it; every rank gets the same state (and
     * holds all of it for a while: {@link #saveStateOn} gathers it on one rank only).
     */
    @Override
    public OptimizerState saveState() {
        return saveStateOn(-1);
    }

    /**
     * Like {@link #saveState()}, but the state is gathered on rank {@code root} only (the one that
     * writes checkpoints): the other ranks never hold more than their own part, and get null.
     * Every rank must call it ({@code root} −1: every rank gets the whole state).
     */
    public OptimizerState saveStateOn(int root) {
        Map<String, float[]> gathered = new LinkedHashMap<>();
        for (String name : bufferNames) {
            gathered.put(name, gatherOwned(shardArray(name), root));
        }
        if (root >= 0 && comm.rank() != root) {
            return null;
        }
        List<Parameter> params = layout.parameters();
        List<Map<String, float[]>> buffers = new ArrayList<>();
        for (int i = 0; i < params.size(); i++) {
            Map<String, float[]> b = new LinkedHashMap<>();
            for (UpdateTransform t : rules.get(i).transforms()) {
                t.state(params.get(i)).forEach((name, size) -> b.put(name, new float[size]));
            }
            buffers.add(b);
        }
        for (int r = 0; r < comm.size(); r++) {
            for (ShardLayout.Piece piece : layout.pieces(r)) {
                int from = (int) layout.flatPosition(r, piece);
                buffers.get(piece.parameter()).forEach((name, b) ->
                        System.arraycopy(gathered.get(name), from, b, piece.offset(), piece.length()));
            }
        }
        Map<String, OptimizerState.Entry> entries = new LinkedHashMap<>();
        for (int i = 0; i < params.size(); i++) {
            Parameter p = params.get(i);
            entries.put(p.name(), new OptimizerState.Entry(assignments.get(i).route(), p.shape(), buffers.get(i)));
        }
        return new OptimizerState(step, skipped, entries);
    }

    /** This rank's values of state buffer {@code name} laid out like its shard (zeros where a piece's rule has no such buffer). */
    private float[] shardArray(String name) {
        List<ShardLayout.Piece> mine = layout.pieces(comm.rank());
        float[] out = new float[layout.shardSize()];
        for (int k = 0; k < mine.size(); k++) {
            float[] b = slots.get(k).buffers().get(name);
            if (b != null) {
                System.arraycopy(b, 0, out, mine.get(k).shardStart(), mine.get(k).length());
            }
        }
        return out;
    }

    /** The first non-finite value of the state this rank holds (its pieces' share of every buffer). */
    @Override
    public Optional<String> findNonFiniteState() {
        for (ParamState slot : slots) {
            for (Map.Entry<String, float[]> b : slot.buffers().entrySet()) {
                float[] v = b.getValue();
                int bad = Kernels.firstNonFinite(v, 0, v.length);
                if (bad >= 0) {
                    return Optional.of(HybridOptimizer.describeNonFinite(b.getKey(), slot.parameter().name(),
                            (long) slot.base() + bad, v[bad]));
                }
            }
        }
        return Optional.empty();
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
            Map<String, float[]> saved = state.entries().get(layout.parameters().get(piece.parameter()).name()).buffers();
            slots.get(k).buffers().forEach((name, b) -> System.arraycopy(saved.get(name), piece.offset(), b, 0, piece.length()));
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
        for (String name : bufferNames) {
            if (comm.rank() == root) {
                flat.fill((byte) 0);
                for (int r = 0; r < comm.size(); r++) {
                    for (ShardLayout.Piece piece : layout.pieces(r)) {
                        float[] src = state.entries().get(layout.parameters().get(piece.parameter()).name()).buffers().get(name);
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
                float[] b = slots.get(k).buffers().get(name);
                if (b != null) {
                    MemorySegment.copy(flat, ValueLayout.JAVA_FLOAT, layout.flatPosition(comm.rank(), mine.get(k)) * Float.BYTES,
                            b, 0, b.length);
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
            Map<String, Integer> expected = new LinkedHashMap<>();
            for (UpdateTransform t : rules.get(i).transforms()) {
                expected.putAll(t.state(p));
            }
            if (!e.buffers().keySet().equals(expected.keySet())) {
                throw new IllegalArgumentException("optimizer state of " + p.name() + " has buffers " + e.buffers().keySet()
                        + ", expected " + expected.keySet());
            }
            for (Map.Entry<String, Integer> b : expected.entrySet()) {
                if (e.buffers().get(b.getKey()).length != b.getValue()) {
                    throw new IllegalArgumentException("optimizer state of " + p.name() + " has a buffer of "
                            + e.buffers().get(b.getKey()).length + " elements, the parameter has " + p.size());
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
