package dev.muon4j.distributed;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.Kernels;
import dev.muon4j.optim.AdamWConfig;
import dev.muon4j.optim.LearningRateSchedule;
import dev.muon4j.optim.MatrixLayout;
import dev.muon4j.optim.MomentumForm;
import dev.muon4j.optim.MuonConfig;
import dev.muon4j.optim.NewtonSchulz;
import dev.muon4j.optim.HybridOptimizer;
import dev.muon4j.optim.NonFiniteGradientException;
import dev.muon4j.optim.OptimizerState;
import dev.muon4j.optim.Parameter;
import dev.muon4j.optim.Route;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * ZeRO-1 data parallelism with Distributed Muon (Moonlight, Algorithm 1). Every rank holds all
 * parameters; optimizer state is split by a {@link ShardLayout}. Each step, on every rank:
 * <ol>
 *   <li>the gradients (of this rank's share of the global batch) are reduce-scattered and divided
 *       by the rank count: each rank gets the global mean gradient of the elements it owns;</li>
 *   <li>non-finite gradients and the global gradient norm are agreed by all-reduce; clipping
 *       scales the owned gradient;</li>
 *   <li>AdamW elements are updated locally (moments are owned, never communicated);</li>
 *   <li>Muon matrices: momentum is updated on the owned elements, the matrix's update input U is
 *       all-gathered (uneven: {@link ShardLayout#counts}) into the full matrix, every rank that owns
 *       part of it runs Newton–Schulz on the whole and applies its own slice;</li>
 *   <li>the owned parameter values are all-gathered so every rank holds the new parameters.</li>
 * </ol>
 * Routing is by role ({@link dev.muon4j.optim.ParamRole#defaultRoute()}); the update equations
 * are {@link dev.muon4j.optim.HybridOptimizer}'s, so N ranks track one process given the same
 * global batch, up to the order of float additions.
 */
public final class ShardedOptimizer implements AutoCloseable {
    private final Collectives comm;
    private final Backend backend;
    private final MuonConfig muon;
    private final AdamWConfig adamw;
    private final LearningRateSchedule schedule;
    private final double maxGradientNorm;
    private final ShardLayout layout;
    private final Route[] routes;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment flat;       // paddedTotal floats: gradients in, parameters out
    private final MemorySegment shard;      // shardSize floats
    private final MemorySegment scalar;     // 1 float for agreements
    private final float[] gradient;         // owned gradient (shardSize)
    private final float[] first;            // owned Muon momentum or AdamW m
    private final float[] second;           // owned AdamW v
    private final float[] update;           // owned part of Muon's U
    private final float[] matrix;           // one whole Muon parameter, gathered, then orthogonalised
    private final NewtonSchulz.Workspace workspace = new NewtonSchulz.Workspace();
    private long step;

    public ShardedOptimizer(Collectives comm, Backend backend, List<Parameter> parameters, MuonConfig muon,
                            AdamWConfig adamw, LearningRateSchedule schedule, double maxGradientNorm) {
        this.comm = Objects.requireNonNull(comm, "collectives");
        this.backend = Objects.requireNonNull(backend, "backend");
        this.muon = Objects.requireNonNull(muon, "muon config");
        this.adamw = Objects.requireNonNull(adamw, "adamw config");
        this.schedule = Objects.requireNonNull(schedule, "schedule");
        if (!(maxGradientNorm >= 0)) {
            throw new IllegalArgumentException("gradient clipping norm must be >= 0, got " + maxGradientNorm);
        }
        this.maxGradientNorm = maxGradientNorm;
        this.layout = new ShardLayout(parameters, comm.size());
        this.routes = new Route[parameters.size()];
        for (int i = 0; i < routes.length; i++) {
            Parameter p = parameters.get(i);
            routes[i] = p.role().defaultRoute();
            if (routes[i] == Route.MUON && p.layout() == null) {
                throw new IllegalArgumentException("parameter " + p.name() + " has role " + p.role() + " but no matrix layout");
            }
        }
        int s = layout.shardSize();
        flat = arena.allocate(ValueLayout.JAVA_FLOAT, Math.max(1, layout.paddedTotal()));
        shard = arena.allocate(ValueLayout.JAVA_FLOAT, Math.max(1, s));
        scalar = arena.allocate(ValueLayout.JAVA_FLOAT, 1);
        gradient = new float[s];
        first = new float[s];
        second = new float[s];
        update = new float[s];
        int largestMuon = 0;
        for (int i = 0; i < routes.length; i++) {
            if (routes[i] == Route.MUON) {
                largestMuon = Math.max(largestMuon, parameters.get(i).size());
            }
        }
        matrix = new float[largestMuon];
    }

    /** The partition of parameters over ranks. */
    public ShardLayout layout() {
        return layout;
    }

    /** Applied steps so far. */
    public long stepCount() {
        return step;
    }

    /** One update from each rank's current gradients; every rank must call it. Returns the global gradient norm. */
    public double step() {
        List<Parameter> params = layout.parameters();
        int rank = comm.rank();
        int s = layout.shardSize();
        for (int i = 0; i < params.size(); i++) {
            Parameter p = params.get(i);
            MemorySegment.copy(p.gradient(), 0, flat, ValueLayout.JAVA_FLOAT, layout.flatOffset(i) * Float.BYTES, p.size());
        }
        flat.asSlice(layout.total() * Float.BYTES).fill((byte) 0);
        comm.reduceScatterSum(flat, shard, s);
        MemorySegment.copy(shard, ValueLayout.JAVA_FLOAT, 0, gradient, 0, s);
        Kernels.scale(gradient, 0, s, 1f / comm.size());

        int bad = Kernels.firstNonFinite(gradient, 0, s);
        scalar.set(ValueLayout.JAVA_FLOAT, 0, bad >= 0 ? 1f : 0f);
        comm.allReduceSum(scalar, 1);
        if (scalar.get(ValueLayout.JAVA_FLOAT, 0) > 0) {
            String where = bad >= 0 ? describe(rank, bad) : "another rank's shard";
            throw new NonFiniteGradientException(where, bad, bad >= 0 ? gradient[bad] : Float.NaN, step);
        }
        scalar.set(ValueLayout.JAVA_FLOAT, 0, (float) Kernels.sumOfSquares(gradient, 0, s));
        comm.allReduceSum(scalar, 1);
        double norm = Math.sqrt(scalar.get(ValueLayout.JAVA_FLOAT, 0));
        if (maxGradientNorm > 0 && norm > maxGradientNorm) {
            Kernels.scale(gradient, 0, s, (float) (maxGradientNorm / (norm + 1e-6)));
        }

        double factor = schedule.factor(step);
        long t = step + 1;
        float bc1 = (float) (1 - Math.pow(adamw.beta1(), t));
        float bc2 = (float) (1 - Math.pow(adamw.beta2(), t));
        boolean ema = muon.momentumForm() == MomentumForm.EMA;
        for (ShardLayout.Piece piece : layout.pieces(rank)) {
            Parameter p = params.get(piece.parameter());
            int at = piece.shardStart();
            if (routes[piece.parameter()] == Route.ADAMW) {
                float lr = (float) (factor * adamw.learningRate());
                Kernels.adamw(p.value(), piece.offset(), gradient, at, first, at, second, at, piece.length(),
                        (float) adamw.beta1(), (float) adamw.beta2(), (float) (1 - adamw.beta1()), (float) (1 - adamw.beta2()),
                        lr, (float) adamw.weightDecay(), (float) adamw.eps(), bc1, bc2);
            } else {
                Kernels.muonMomentum(ema, muon.nesterov(), muon.momentum(), gradient, at, first, at, update, at, piece.length());
            }
        }
        for (int i = 0; i < params.size(); i++) {
            if (routes[i] == Route.MUON) {
                orthogonalizeAndApply(i, factor);
            }
        }

        for (ShardLayout.Piece piece : layout.pieces(rank)) {
            Parameter p = params.get(piece.parameter());
            MemorySegment.copy(p.value(), piece.offset(), shard, ValueLayout.JAVA_FLOAT,
                    (long) piece.shardStart() * Float.BYTES, piece.length());
        }
        comm.allGather(shard, s, flat);
        for (int i = 0; i < params.size(); i++) {
            Parameter p = params.get(i);
            MemorySegment.copy(flat, ValueLayout.JAVA_FLOAT, layout.flatOffset(i) * Float.BYTES, p.value(), 0, p.size());
        }
        step = t;
        return norm;
    }

    /** Gathers matrix i's U from its owners, runs Newton–Schulz on the whole, applies this rank's slice. */
    private void orthogonalizeAndApply(int index, double factor) {
        Parameter p = layout.parameters().get(index);
        long[] counts = layout.counts(index);
        int rank = comm.rank();
        ShardLayout.Piece mine = null;
        for (ShardLayout.Piece piece : layout.pieces(rank)) {
            if (piece.parameter() == index) {
                mine = piece;
            }
        }
        MemorySegment send = shard.asSlice(0, Math.max(1, counts[rank]) * Float.BYTES);
        if (mine != null) {
            MemorySegment.copy(update, mine.shardStart(), send, ValueLayout.JAVA_FLOAT, 0, mine.length());
        }
        MemorySegment full = flat.asSlice(0, (long) p.size() * Float.BYTES);
        comm.allGatherV(send, counts[rank], full, counts);
        if (mine == null) {
            return;
        }
        float[] o = matrix;
        MemorySegment.copy(full, ValueLayout.JAVA_FLOAT, 0, o, 0, p.size());
        MatrixLayout m = p.layout();
        NewtonSchulz.orthogonalizeBatch(backend, muon.newtonSchulz(), o, 0, m.count(), m.fanOut(), m.fanIn(), o, 0, workspace);
        double lr = factor * muon.learningRate();
        float decay = (float) (1 - lr * muon.weightDecay());
        float stepSize = (float) (lr * muon.scale(m.fanOut(), m.fanIn()));
        Kernels.decayAndSubtract(p.value(), mine.offset(), decay, stepSize, o, mine.offset(), mine.length());
    }

    /**
     * The whole optimizer state, gathered from every rank, in the single-process format of
     * {@link HybridOptimizer#saveState()} (keyed by parameter name): any rank count, or one
     * process, can load it. Every rank must call it; every rank gets the same state.
     */
    public OptimizerState saveState() {
        float[] firstAll = gatherOwned(first);
        float[] secondAll = gatherOwned(second);
        Map<String, OptimizerState.Entry> entries = new LinkedHashMap<>();
        List<Parameter> params = layout.parameters();
        for (int i = 0; i < params.size(); i++) {
            Parameter p = params.get(i);
            int from = (int) layout.flatOffset(i);
            Map<String, float[]> buffers = new LinkedHashMap<>();
            if (routes[i] == Route.MUON) {
                buffers.put(HybridOptimizer.MOMENTUM, Arrays.copyOfRange(firstAll, from, from + p.size()));
            } else {
                buffers.put(HybridOptimizer.EXP_AVG, Arrays.copyOfRange(firstAll, from, from + p.size()));
                buffers.put(HybridOptimizer.EXP_AVG_SQ, Arrays.copyOfRange(secondAll, from, from + p.size()));
            }
            entries.put(p.name(), new OptimizerState.Entry(routes[i], p.shape(), buffers));
        }
        return new OptimizerState(step, 0, entries);
    }

    private float[] gatherOwned(float[] owned) {
        MemorySegment.copy(owned, 0, shard, ValueLayout.JAVA_FLOAT, 0, layout.shardSize());
        comm.allGather(shard, layout.shardSize(), flat);
        float[] all = new float[(int) layout.paddedTotal()];
        MemorySegment.copy(flat, ValueLayout.JAVA_FLOAT, 0, all, 0, all.length);
        return all;
    }

    /**
     * Takes this rank's part of a whole state (saved by any rank count, or by one process), after
     * checking names, routes, shapes and buffer sizes; on a mismatch nothing changes.
     */
    public void loadState(OptimizerState state) {
        List<Parameter> params = layout.parameters();
        Map<String, OptimizerState.Entry> entries = state.entries();
        for (int i = 0; i < params.size(); i++) {
            Parameter p = params.get(i);
            OptimizerState.Entry e = entries.get(p.name());
            if (e == null) {
                throw new IllegalArgumentException("optimizer state lacks parameter " + p.name());
            }
            if (e.route() != routes[i] || !Arrays.equals(e.shape(), p.shape())) {
                throw new IllegalArgumentException("optimizer state of " + p.name() + " is " + e.route() + " " + Arrays.toString(e.shape())
                        + ", the parameter is " + routes[i] + " " + Arrays.toString(p.shape()));
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
        for (ShardLayout.Piece piece : layout.pieces(comm.rank())) {
            Parameter p = params.get(piece.parameter());
            Map<String, float[]> b = entries.get(p.name()).buffers();
            if (routes[piece.parameter()] == Route.MUON) {
                System.arraycopy(b.get(HybridOptimizer.MOMENTUM), piece.offset(), first, piece.shardStart(), piece.length());
            } else {
                System.arraycopy(b.get(HybridOptimizer.EXP_AVG), piece.offset(), first, piece.shardStart(), piece.length());
                System.arraycopy(b.get(HybridOptimizer.EXP_AVG_SQ), piece.offset(), second, piece.shardStart(), piece.length());
            }
        }
        step = state.step();
    }

    private String describe(int rank, int shardIndex) {
        for (ShardLayout.Piece piece : layout.pieces(rank)) {
            if (shardIndex >= piece.shardStart() && shardIndex < piece.shardStart() + piece.length()) {
                return layout.parameters().get(piece.parameter()).name();
            }
        }
        return "padding";
    }

    @Override
    public void close() {
        arena.close();
    }
}
