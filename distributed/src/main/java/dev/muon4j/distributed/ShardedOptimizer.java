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
import dev.muon4j.optim.StepContext;
import dev.muon4j.optim.StepResult;
import dev.muon4j.optim.UpdateRule;
import dev.muon4j.optim.UpdateTransform;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;

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
 *   <li>Muon matrices: momentum is updated on the owned elements; then the matrix stages
 *       (Newton–Schulz, NorMuon's row normalisation) run once per matrix, on one rank, its
 *       <em>runner</em>: the rank owning the most of the matrix (ties to the lower rank). A matrix
 *       one rank owns whole is run there with no communication; a matrix split between ranks (only
 *       in {@link Mode#DISTRIBUTED_MUON}, at most one per boundary between two ranks' shards) has
 *       its update input U gathered from its owners to the runner (uneven gather), orthogonalized
 *       there, and each owner's slice of the result sent back (uneven scatter); every owner then
 *       applies the stages after them to its own slice. Split matrices go first, so no rank waits
 *       in their collectives for another to finish its own matrices;</li>
 *   <li>the owned parameter values are all-gathered so every rank holds the new parameters.</li>
 * </ol>
 * A rank whose share of the batch is empty passes zero gradients and takes part as usual.
 * Timings, traffic and the matrices orthogonalized in the last step are in {@link #lastStep()}.
 *
 * <p>The unit of matrix work is one matrix: a parameter stacking several
 * ({@link dev.muon4j.optim.MatrixLayout#count()} &gt; 1, a Mixture-of-Experts layer's experts) is
 * gathered, owned and orthogonalized expert by expert, as one process runs it matrix by matrix.
 * Its matrix stages' state is indexed across the whole parameter (NorMuon keeps one float per row
 * of every expert); a buffer whose length is a multiple of the expert count is taken to hold one
 * equal part per expert (the rows of expert e), and each part is kept by the runner of its
 * expert. A stage keeping state of another length couples the experts, and then the whole stack
 * is one unit, run on one rank. So across all ranks each matrix is orthogonalized exactly once per
 * step, in either mode, as in one process; Moonlight's Algorithm 1, where every owner of a split
 * matrix orthogonalizes the gathered whole, would run a split matrix on each of its owners, and
 * gathering a stack whole would have every rank owning a piece of it orthogonalize all its experts.
 *
 * <p>State of elementwise stages (momentum, Adam's moments) is split like the parameters: a rank
 * holds it for the elements it owns. State of matrix stages (any length, e.g. one float per row)
 * is allocated whole by every rank owning part of the parameter, indexed as in one process, and
 * holds the parts of the units that rank runs; the other parts stay zero there. Saving takes each
 * part from the rank that runs its unit; loading gives each part to that rank only.
 */
public final class ShardedOptimizer implements Optimizer, AutoCloseable {
    /** How Muon's matrices are split over ranks. */
    public enum Mode {
        /**
         * Moonlight's Distributed Muon: the flat element-wise ZeRO-1 partition. A matrix (one
         * expert of a stack) split between ranks is gathered on the rank owning the most of it,
         * which alone runs Newton–Schulz and scatters each owner its slice of the result. Equal
         * shards; extra traffic of one gather and one scatter of each split matrix's parts (at
         * most one split matrix per boundary between ranks), none for the others.
         */
        DISTRIBUTED_MUON,
        /**
         * Each Muon matrix, and each expert of a stack, is owned whole by one rank (greedy balance
         * by size over all of them), which alone runs its Newton–Schulz; a stack may so be split
         * over ranks at expert boundaries. AdamW parameters fill the rest element-wise. No extra
         * traffic; shards (and Newton–Schulz work) are only as balanced as the matrix sizes allow.
         */
        WHOLE_MATRIX
    }

    /**
     * One step's numbers on this rank.
     *
     * @param nanos              wall time of the whole optimizer step
     * @param communicationNanos time inside collectives
     * @param newtonSchulzNanos  time in Newton–Schulz
     * @param newtonSchulzMatrices matrices (or row blocks) this rank orthogonalized
     * @param bytesSent          bytes this rank sent (bandwidth-optimal volumes, see {@link MeteredCollectives})
     * @param bytesReceived      bytes this rank received
     */
    public record StepStats(long nanos, long communicationNanos, long newtonSchulzNanos, long newtonSchulzMatrices, long bytesSent,
                            long bytesReceived) {
    }

    /**
     * One unit of matrix work: whole consecutive matrices of a parameter (one matrix, or the whole
     * stack when a matrix stage's state couples its matrices), run on one rank.
     *
     * @param parameter the parameter's index
     * @param index     the unit's index within the parameter
     * @param from      its first element in the parameter
     * @param length    its elements (whole matrices)
     * @param counts    its elements each rank owns, in rank order (ranks own consecutive runs of it in rank order)
     * @param runner    the rank that runs its matrix stages: the one owning the most of it, ties to the lower rank
     */
    private record MatrixUnit(int parameter, int index, int from, int length, long[] counts, int runner) {
        boolean split() {
            return counts[runner] != length;
        }
    }

    /**
     * Where one unit's part of a matrix-stage buffer travels when the state is saved or loaded.
     *
     * @param parameter the parameter's index
     * @param name      the buffer's name
     * @param from      the part's first index in the buffer
     * @param length    the part's length (the whole buffer's, for a parameter run as one unit)
     * @param source    the rank that keeps the part, sends it when the state is saved and takes it when loaded: its unit's runner
     * @param sent      its offset in the source's section of the gathered matrix-stage state
     * @param packed    its offset in the matrix-stage state broadcast by {@link #loadStateFrom}
     */
    private record MatrixBuffer(int parameter, String name, int from, int length, int source, long sent, long packed) {
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
    private final List<String> slicedNames;          // every element-sized buffer name any rule keeps, in first-seen order
    private final List<Set<String>> sliced;          // per parameter: its buffers that are split like its elements
    private final List<MatrixUnit> units;            // every unit of matrix work: the split ones, then the others; each in parameter and matrix order
    private final List<MatrixBuffer> matrixBuffers;  // every unit's part of every matrix-stage buffer, in parameter, rule and unit order
    private final long matrixSection;                // floats each rank sends when matrix-stage state is saved
    private final long matrixTotal;                  // floats of all matrix-stage buffers together
    private final int[] slotOf;                      // per parameter: index into slots of this rank's piece, -1 for none
    private final StepContext context;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment flat;       // paddedTotal floats: gradients in, parameters out
    private final MemorySegment shard;      // shardSize floats
    private final MemorySegment agree;      // small buffer for agreements
    private final MemorySegment header;     // step counts sent with a state
    private final MemorySegment matrixSend; // matrixSection floats: this rank's part of the saved matrix-stage state
    private final MemorySegment matrixAll;  // ranks · matrixSection floats: all matrix-stage state, as gathered or broadcast
    private final RankOrderedSum norms;     // the global gradient norm, exactly the same on every rank
    private final float[] gradient;         // owned gradient (shardSize)
    private final float[] update;           // owned part of the update U (shardSize)
    private final float[] matrix;           // one unit's U, gathered, then through the matrix stages
    private long step;
    private long skipped;
    private StepStats last = new StepStats(0, 0, 0, 0, 0, 0);

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
        List<Set<String>> slicedBuffers = new ArrayList<>();
        List<Map<String, Integer>> matrixState = new ArrayList<>();
        int[] unitCount = new int[parameters.size()]; // units of matrix work per parameter; 0 for elementwise rules
        for (int i = 0; i < unitCount.length; i++) {
            Parameter p = parameters.get(i);
            UpdateRule rule = assignments.get(i).rule();
            Set<String> split = new LinkedHashSet<>();
            Map<String, Integer> kept = new LinkedHashMap<>();
            for (UpdateTransform t : rule.transforms()) {
                for (Map.Entry<String, Integer> b : t.state(p).entrySet()) {
                    if (t.scope() == UpdateTransform.Scope.MATRIX) {
                        kept.put(b.getKey(), b.getValue());
                    } else if (b.getValue() == p.size()) {
                        split.add(b.getKey());
                        if (!names.contains(b.getKey())) {
                            names.add(b.getKey());
                        }
                    } else {
                        throw new IllegalArgumentException("elementwise stage " + t.name() + " of rule " + rule.name() + " keeps buffer "
                                + b.getKey() + " of " + b.getValue() + " elements for " + p.name() + " (" + p.size()
                                + " elements): elementwise stages keep one float per element; state of another length"
                                + " belongs to a matrix stage");
                    }
                }
            }
            slicedBuffers.add(Collections.unmodifiableSet(split));
            matrixState.add(kept);
            r.add(rule);
            if (rule.needsMatrices()) {
                int count = p.layout().count();
                // Matrix-stage state of a multiple of the matrix count holds one part per matrix; other state couples them.
                unitCount[i] = kept.values().stream().allMatch(length -> length % count == 0) ? count : 1;
            }
        }
        this.rules = List.copyOf(r);
        this.slicedNames = List.copyOf(names);
        this.sliced = List.copyOf(slicedBuffers);
        this.layout = mode == Mode.WHOLE_MATRIX ? ShardLayout.wholeMatrices(parameters, this.comm.size(), unitCount)
                : new ShardLayout(parameters, this.comm.size());
        List<ParamState> pieceSlots = new ArrayList<>();
        this.slotOf = new int[parameters.size()];
        Arrays.fill(slotOf, -1);
        for (ShardLayout.Piece piece : layout.pieces(this.comm.rank())) {
            slotOf[piece.parameter()] = pieceSlots.size();
            pieceSlots.add(new ParamState(assignments.get(piece.parameter()), piece.offset(), piece.length()));
        }
        this.slots = List.copyOf(pieceSlots);
        List<MatrixUnit> work = new ArrayList<>();
        int largestUnit = 0;
        for (int i = 0; i < parameters.size(); i++) {
            int unitLength = unitCount[i] == 0 ? 0 : parameters.get(i).size() / unitCount[i];
            largestUnit = Math.max(largestUnit, unitLength);
            for (int u = 0; u < unitCount[i]; u++) {
                long[] counts = new long[this.comm.size()];
                int runner = 0;
                for (int q = 0; q < counts.length; q++) {
                    for (ShardLayout.Piece piece : layout.pieces(q)) {
                        if (piece.parameter() == i) {
                            counts[q] += Math.max(0, Math.min(piece.offset() + piece.length(), (u + 1) * unitLength)
                                    - Math.max(piece.offset(), u * unitLength));
                        }
                    }
                    runner = counts[q] > counts[runner] ? q : runner;
                }
                work.add(new MatrixUnit(i, u, u * unitLength, unitLength, counts, runner));
            }
        }
        // Split units first: their collectives then wait on no rank's other work (in parameter order, the owner of a
        // boundary's matrix would wait for the other owner to orthogonalize everything before it).
        work.sort(Comparator.comparing((MatrixUnit unit) -> !unit.split()));
        this.units = List.copyOf(work);
        // Each unit's part of each matrix-stage buffer is kept, and sent when saved, by the unit's runner.
        List<MatrixBuffer> travel = new ArrayList<>();
        long[] sent = new long[this.comm.size()];
        long packed = 0;
        for (int i = 0; i < parameters.size(); i++) {
            for (Map.Entry<String, Integer> b : matrixState.get(i).entrySet()) {
                int part = b.getValue() / unitCount[i];
                for (MatrixUnit unit : units) {
                    if (unit.parameter() == i) {
                        travel.add(new MatrixBuffer(i, b.getKey(), unit.index() * part, part, unit.runner(), sent[unit.runner()], packed));
                        sent[unit.runner()] += part;
                        packed += part;
                    }
                }
            }
        }
        this.matrixBuffers = List.copyOf(travel);
        this.matrixSection = Arrays.stream(sent).max().orElse(0);
        this.matrixTotal = packed;
        int s = layout.shardSize();
        flat = arena.allocate(ValueLayout.JAVA_FLOAT, Math.max(1, layout.paddedTotal()));
        shard = arena.allocate(ValueLayout.JAVA_FLOAT, s);
        agree = arena.allocate(ValueLayout.JAVA_FLOAT, Math.max(4, this.comm.size()));
        header = arena.allocate(ValueLayout.JAVA_LONG, 3);
        matrixSend = arena.allocate(ValueLayout.JAVA_FLOAT, Math.max(1, matrixSection));
        // ranks · matrixSection ≥ matrixTotal: it also holds the packed state loadStateFrom broadcasts.
        matrixAll = arena.allocate(ValueLayout.JAVA_FLOAT, Math.max(1, Math.multiplyExact(matrixSection, this.comm.size())));
        norms = new RankOrderedSum(this.comm, arena, 1);
        gradient = new float[s];
        update = new float[s];
        matrix = new float[largestUnit];
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

    /**
     * Bytes of optimizer state this rank holds: its pieces' share of the elementwise stages'
     * buffers, and the matrix stages' buffers, allocated whole, of every matrix parameter it owns
     * part of (holding the parts of the units it runs, zeros elsewhere).
     */
    public long stateBytes() {
        long n = 0;
        for (ParamState slot : slots) {
            for (float[] b : slot.buffers().values()) {
                n += b.length;
            }
        }
        return n * Float.BYTES;
    }

    /**
     * Copies of the state buffers this rank holds for parameter {@code name}: its piece's share of
     * the element-sized buffers, the matrix stages' buffers whole (the parts of the units it runs,
     * zeros elsewhere); empty where this rank owns none of the parameter.
     */
    Map<String, float[]> heldState(String name) {
        Map<String, float[]> held = new LinkedHashMap<>();
        for (ParamState slot : slots) {
            if (slot.parameter().name().equals(name)) {
                slot.buffers().forEach((buffer, values) -> held.put(buffer, values.clone()));
            }
        }
        return held;
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
                last = new StepStats(System.nanoTime() - t0, comm.nanos(), 0, 0, comm.bytesSent(), comm.bytesReceived());
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
        for (MatrixUnit unit : units) {
            runMatrixUnit(unit);
        }
        nsNanos = context.newtonSchulzNanos();

        for (ShardLayout.Piece piece : mine) {
            MemorySegment.copy(params.get(piece.parameter()).value(), piece.offset(), shard, ValueLayout.JAVA_FLOAT,
                    (long) piece.shardStart() * Float.BYTES, piece.length());
        }
        comm.allGather(shard, s, flat);
        unflattenInto(true);
        step = t;
        last = new StepStats(System.nanoTime() - t0, comm.nanos(), nsNanos, context.newtonSchulzMatrices(), comm.bytesSent(),
                comm.bytesReceived());
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
     * The matrix stages (Newton–Schulz) of one unit on its runner, then the stages after them on
     * every owner's slice. A unit its runner owns whole needs no collective (and other ranks skip
     * it); a split one (every rank takes part, in the same order) is gathered on the runner and its
     * result scattered back to the owners.
     */
    private void runMatrixUnit(MatrixUnit unit) {
        int rank = comm.rank();
        boolean split = unit.split();
        if (!split && unit.runner() != rank) {
            return;
        }
        int mineCount = (int) unit.counts()[rank];
        int slot = slotOf[unit.parameter()];
        int first = 0; // this rank's first element of the unit, and where it sits in the shard
        int at = 0;
        if (mineCount > 0) {
            ShardLayout.Piece mine = layout.pieces(rank).get(slot);
            first = Math.max(mine.offset(), unit.from());
            at = mine.shardStart() + first - mine.offset();
        }
        UpdateRule rule = rules.get(unit.parameter());
        if (!split) {
            System.arraycopy(update, at, matrix, 0, unit.length());
            applyMatrices(rule, slot, unit);
            rule.applyAfter(context, slots.get(slot), unit.from(), matrix, 0, unit.length());
            return;
        }
        MemorySegment part = shard.asSlice(0, Math.max(1, mineCount) * Float.BYTES);
        MemorySegment whole = flat.asSlice(0, (long) unit.length() * Float.BYTES);
        MemorySegment.copy(update, at, part, ValueLayout.JAVA_FLOAT, 0, mineCount);
        comm.gatherV(part, mineCount, whole, unit.counts(), unit.runner());
        if (rank == unit.runner()) {
            MemorySegment.copy(whole, ValueLayout.JAVA_FLOAT, 0, matrix, 0, unit.length());
            applyMatrices(rule, slot, unit);
            MemorySegment.copy(matrix, 0, whole, ValueLayout.JAVA_FLOAT, 0, unit.length());
        }
        comm.scatterV(whole, unit.counts(), part, mineCount, unit.runner());
        if (mineCount > 0) {
            MemorySegment.copy(part, ValueLayout.JAVA_FLOAT, 0, update, at, mineCount);
            rule.applyAfter(context, slots.get(slot), first, update, at, mineCount);
        }
    }

    /** The matrix stages of {@code unit}, whose U is in {@code matrix}, matrix by matrix as one process runs them. */
    private void applyMatrices(UpdateRule rule, int slot, MatrixUnit unit) {
        int size = layout.parameters().get(unit.parameter()).layout().matrixSize();
        for (int k = 0; k < unit.length(); k += size) {
            rule.applyMatrix(context, slots.get(slot), unit.from() + k, matrix, k, size);
        }
    }

    /**
     * The whole optimizer state, gathered from every rank, in the single-process format of
     * {@link HybridOptimizer#saveState()} (keyed by parameter name; matrix stages' buffers whole):
     * any rank count, either mode, or one process can load it. Every rank must call it; every rank
     * gets the same state (and holds all of it for a while: {@link #saveStateOn} gathers it on one
     * rank only).
     */
    @Override
    public OptimizerState saveState() {
        return saveStateOn(-1);
    }

    /**
     * Like {@link #saveState()}, but the state is gathered on rank {@code root} only (the one that
     * writes checkpoints): the other ranks never hold more than their own part, and get null.
     * Every rank must call it ({@code root} −1: every rank gets the whole state).
     *
     * <p>Collectives, the same on every rank and in this order: for each element-sized buffer name,
     * one all-gather (root −1) or gather of every rank's shard of it; then, if any rule has a
     * stateful matrix stage, one all-gather or gather of the matrix stages' buffers, each unit's part
     * sent by the rank that runs the unit (a rank sending less pads its section).
     */
    public OptimizerState saveStateOn(int root) {
        Map<String, float[]> gathered = new LinkedHashMap<>();
        for (String name : slicedNames) {
            gathered.put(name, gatherOwned(shardArray(name), root));
        }
        float[] matrixState = gatherMatrixState(root);
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
                for (String name : sliced.get(piece.parameter())) {
                    System.arraycopy(gathered.get(name), from, buffers.get(piece.parameter()).get(name), piece.offset(), piece.length());
                }
            }
        }
        for (MatrixBuffer m : matrixBuffers) {
            System.arraycopy(matrixState, Math.toIntExact(m.source() * matrixSection + m.sent()), buffers.get(m.parameter()).get(m.name()),
                    m.from(), m.length());
        }
        return OptimizerState.of(step, skipped, assignments, buffers);
    }

    /** This rank's values of element-sized buffer {@code name} laid out like its shard (zeros where a piece's rule has no such buffer). */
    private float[] shardArray(String name) {
        List<ShardLayout.Piece> mine = layout.pieces(comm.rank());
        float[] out = new float[layout.shardSize()];
        for (int k = 0; k < mine.size(); k++) {
            if (sliced.get(mine.get(k).parameter()).contains(name)) {
                System.arraycopy(slots.get(k).buffer(name), 0, out, mine.get(k).shardStart(), mine.get(k).length());
            }
        }
        return out;
    }

    /**
     * Every matrix-stage buffer, gathered from the rank that sends it (at
     * {@code source · matrixSection + sent}), on every rank (root −1) or on root only (null
     * elsewhere); no collective, and an empty array, when no rule has a stateful matrix stage.
     */
    private float[] gatherMatrixState(int root) {
        if (matrixSection == 0) {
            return new float[0];
        }
        matrixSend.fill((byte) 0);
        for (MatrixBuffer m : matrixBuffers) {
            if (m.source() == comm.rank()) {
                MemorySegment.copy(slots.get(slotOf[m.parameter()]).buffer(m.name()), m.from(), matrixSend, ValueLayout.JAVA_FLOAT,
                        m.sent() * Float.BYTES, m.length());
            }
        }
        if (root < 0) {
            comm.allGather(matrixSend, matrixSection, matrixAll);
        } else {
            comm.gather(matrixSend, matrixSection, matrixAll, root);
            if (comm.rank() != root) {
                return null;
            }
        }
        float[] all = new float[Math.toIntExact(matrixSection * comm.size())];
        MemorySegment.copy(matrixAll, ValueLayout.JAVA_FLOAT, 0, all, 0, all.length);
        return all;
    }

    /**
     * The first non-finite value of the state this rank holds (its pieces' share of the
     * element-sized buffers, the parts of the matrix-stage buffers of the units it runs), named
     * as one process names it: a matrix-stage buffer's index is its own, not an element's.
     */
    @Override
    public Optional<String> findNonFiniteState() {
        List<ShardLayout.Piece> mine = layout.pieces(comm.rank());
        for (int k = 0; k < mine.size(); k++) {
            ParamState slot = slots.get(k);
            Set<String> split = sliced.get(mine.get(k).parameter());
            for (Map.Entry<String, float[]> b : slot.buffers().entrySet()) {
                float[] v = b.getValue();
                int bad = Kernels.firstNonFinite(v, 0, v.length);
                if (bad >= 0) {
                    long at = split.contains(b.getKey()) ? (long) slot.base() + bad : bad;
                    return Optional.of(HybridOptimizer.describeNonFinite(b.getKey(), slot.parameter().name(), at, v[bad]));
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
     * reads the state itself; see {@link #loadStateFrom} for a state only one rank has. A rank takes
     * the parts of the matrix stages' buffers of the units it runs.
     */
    @Override
    public void loadState(OptimizerState state) {
        check(Objects.requireNonNull(state, "state"));
        List<ShardLayout.Piece> mine = layout.pieces(comm.rank());
        for (int k = 0; k < mine.size(); k++) {
            ShardLayout.Piece piece = mine.get(k);
            Map<String, float[]> saved = state.entries().get(layout.parameters().get(piece.parameter()).name()).buffers();
            for (String name : sliced.get(piece.parameter())) {
                System.arraycopy(saved.get(name), piece.offset(), slots.get(k).buffer(name), 0, piece.length());
            }
        }
        clearMatrixState();
        for (MatrixBuffer m : matrixBuffers) {
            if (m.source() == comm.rank()) {
                float[] saved = state.entries().get(layout.parameters().get(m.parameter()).name()).buffers().get(m.name());
                System.arraycopy(saved, m.from(), slots.get(slotOf[m.parameter()]).buffer(m.name()), m.from(), m.length());
            }
        }
        step = state.step();
        skipped = state.skippedSteps();
    }

    /**
     * Loads a state that only rank {@code root} holds (read from its disk), sending each rank its
     * part. Every rank must call it; {@code state} is ignored on other ranks. If the state does not
     * fit, every rank throws with the root's reason and nothing changes.
     *
     * <p>Collectives, the same on every rank and in this order: a broadcast of a header (whether the
     * state fits, and its step counts, or the length of the reason it does not); if it does not,
     * a broadcast of the reason, and every rank throws; otherwise, for each element-sized buffer
     * name, a broadcast of every rank's shard of it; then, if any rule has a stateful matrix stage,
     * one broadcast of all matrix stages' buffers, of which each rank takes the parts of the units it runs.
     */
    public void loadStateFrom(int root, OptimizerState state) {
        String problem = null;
        if (comm.rank() == root) {
            try {
                check(Objects.requireNonNull(state, "state on the root rank"));
            } catch (IllegalArgumentException | NullPointerException e) {
                problem = e.getMessage() != null ? e.getMessage() : e.toString();
            }
        }
        MemorySegment header = this.header;
        byte[] reason = problem == null ? new byte[0] : problem.getBytes(StandardCharsets.UTF_8);
        if (comm.rank() == root) {
            header.setAtIndex(ValueLayout.JAVA_LONG, 0, problem == null ? 1 : 0);
            header.setAtIndex(ValueLayout.JAVA_LONG, 1, problem == null ? state.step() : Math.min(reason.length, flat.byteSize()));
            header.setAtIndex(ValueLayout.JAVA_LONG, 2, problem == null ? state.skippedSteps() : 0);
        }
        comm.broadcast(header, 6, root);
        if (header.getAtIndex(ValueLayout.JAVA_LONG, 0) != 1) {
            int bytes = (int) header.getAtIndex(ValueLayout.JAVA_LONG, 1);
            if (comm.rank() == root) {
                MemorySegment.copy(reason, 0, flat, ValueLayout.JAVA_BYTE, 0, bytes);
            }
            comm.broadcast(flat, (bytes + Float.BYTES - 1) / Float.BYTES, root);
            if (problem != null) {
                throw new IllegalArgumentException(problem);
            }
            byte[] received = new byte[bytes];
            MemorySegment.copy(flat, ValueLayout.JAVA_BYTE, 0, received, 0, bytes);
            throw new IllegalArgumentException("rank " + root + " could not load the optimizer state: "
                    + new String(received, StandardCharsets.UTF_8));
        }
        for (String name : slicedNames) {
            if (comm.rank() == root) {
                flat.fill((byte) 0);
                for (int r = 0; r < comm.size(); r++) {
                    for (ShardLayout.Piece piece : layout.pieces(r)) {
                        if (sliced.get(piece.parameter()).contains(name)) {
                            float[] src = state.entries().get(layout.parameters().get(piece.parameter()).name()).buffers().get(name);
                            MemorySegment.copy(src, piece.offset(), flat, ValueLayout.JAVA_FLOAT,
                                    layout.flatPosition(r, piece) * Float.BYTES, piece.length());
                        }
                    }
                }
            }
            comm.broadcast(flat, layout.paddedTotal(), root);
            List<ShardLayout.Piece> mine = layout.pieces(comm.rank());
            for (int k = 0; k < mine.size(); k++) {
                if (sliced.get(mine.get(k).parameter()).contains(name)) {
                    float[] b = slots.get(k).buffer(name);
                    MemorySegment.copy(flat, ValueLayout.JAVA_FLOAT, layout.flatPosition(comm.rank(), mine.get(k)) * Float.BYTES,
                            b, 0, b.length);
                }
            }
        }
        if (matrixTotal > 0) {
            if (comm.rank() == root) {
                for (MatrixBuffer m : matrixBuffers) {
                    float[] src = state.entries().get(layout.parameters().get(m.parameter()).name()).buffers().get(m.name());
                    MemorySegment.copy(src, m.from(), matrixAll, ValueLayout.JAVA_FLOAT, m.packed() * Float.BYTES, m.length());
                }
            }
            comm.broadcast(matrixAll, matrixTotal, root);
            clearMatrixState();
            for (MatrixBuffer m : matrixBuffers) {
                if (m.source() == comm.rank()) {
                    MemorySegment.copy(matrixAll, ValueLayout.JAVA_FLOAT, m.packed() * Float.BYTES,
                            slots.get(slotOf[m.parameter()]).buffer(m.name()), m.from(), m.length());
                }
            }
        }
        step = header.getAtIndex(ValueLayout.JAVA_LONG, 1);
        skipped = header.getAtIndex(ValueLayout.JAVA_LONG, 2);
    }

    /** Zeros this rank's matrix-stage buffers: parts of units other ranks run stay zero here. */
    private void clearMatrixState() {
        List<ShardLayout.Piece> mine = layout.pieces(comm.rank());
        for (int k = 0; k < mine.size(); k++) {
            Set<String> split = sliced.get(mine.get(k).parameter());
            slots.get(k).buffers().forEach((name, b) -> {
                if (!split.contains(name)) {
                    Arrays.fill(b, 0f);
                }
            });
        }
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

    /**
     * Checks {@code state} against the parameters and their rules: every parameter present with its
     * route and shape, exactly the buffers its rule's stages declare, each of its declared length
     * (the parameter's size for elementwise stages, any length a matrix stage declares); the
     * message names the parameter and, for a wrong length, the buffer.
     */
    private void check(OptimizerState state) {
        HybridOptimizer.checkState(assignments, state);
    }

    @Override
    public void close() {
        arena.close();
    }
}
