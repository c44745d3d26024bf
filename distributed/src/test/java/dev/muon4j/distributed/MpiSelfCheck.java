package dev.muon4j.distributed;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.VectorBackend;
import dev.muon4j.optim.AdamWConfig;
import dev.muon4j.optim.ConformanceCase;
import dev.muon4j.optim.HybridOptimizer;
import dev.muon4j.optim.LearningRateSchedule;
import dev.muon4j.optim.MuonConfig;
import dev.muon4j.optim.OptimizerState;
import dev.muon4j.optim.Parameter;
import dev.muon4j.optim.Route;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;

/**
 * Run under mpirun: runs every collective of {@link MpiCollectives}, checks the results, prints
 * what failed and exits 0 (all good) or 1. Then runs {@link ShardedOptimizer} over MPI for pure
 * Muon, the hybrid and pure AdamW, in both modes, against a {@link HybridOptimizer} each rank runs
 * alone on the ranks' mean gradient, and checks that a state saved over MPI and loaded from rank 0
 * comes back bit for bit. With argument {@code --conformance} it runs every case of the optimizer
 * conformance suite ({@link ConformanceCase}) in both modes, bit for bit against one process on the
 * ranks' mean gradient. With argument {@code --bench N} it also times
 * all-reduce, reduce-scatter and all-gather of N floats and prints the times from rank 0.
 */
public final class MpiSelfCheck {

    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT;

    static float value(int rank, long i) {
        return rank * 1000 + i % 997 + 0.5f;
    }

    public static void main(String[] args) {
        List<String> failures = new ArrayList<>();
        int rank = -1;
        try (MpiCollectives c = new MpiCollectives(); Arena a = Arena.ofConfined()) {
            rank = c.rank();
            int n = c.size();
            String who = "rank " + rank + "/" + n + ": ";
            long count = 1001;
            // all-reduce
            MemorySegment buf = fill(a, rank, count);
            c.allReduceSum(buf, count);
            for (long i = 0; i < count; i++) {
                float want = 0;
                for (int r = 0; r < n; r++) want += value(r, i);
                if (buf.getAtIndex(F, i) != want) { failures.add(who + "allReduceSum[" + i + "] = " + buf.getAtIndex(F, i) + ", want " + want); break; }
            }
            // reduce-scatter
            long per = 257;
            MemorySegment send = fill(a, rank, n * per);
            MemorySegment recv = a.allocate(F, per);
            c.reduceScatterSum(send, recv, per);
            for (long i = 0; i < per; i++) {
                float want = 0;
                for (int r = 0; r < n; r++) want += value(r, rank * per + i);
                if (recv.getAtIndex(F, i) != want) { failures.add(who + "reduceScatterSum[" + i + "] = " + recv.getAtIndex(F, i) + ", want " + want); break; }
            }
            // all-gather
            MemorySegment gs = fill(a, rank, count);
            MemorySegment gr = a.allocate(F, n * count);
            c.allGather(gs, count, gr);
            outer:
            for (int r = 0; r < n; r++) {
                for (long i = 0; i < count; i++) {
                    if (gr.getAtIndex(F, r * count + i) != value(r, i)) { failures.add(who + "allGather from rank " + r + " at " + i); break outer; }
                }
            }
            // all-gather-v, uneven with zeros
            long[] counts = new long[n];
            long total = 0;
            for (int r = 0; r < n; r++) { counts[r] = (r * 7 + 3) % 5; total += counts[r]; }
            MemorySegment vs = fill(a, rank, counts[rank]);
            MemorySegment vr = a.allocate(F, Math.max(total, 1));
            c.allGatherV(vs, counts[rank], vr, counts);
            long off = 0;
            outer2:
            for (int r = 0; r < n; r++) {
                for (long i = 0; i < counts[r]; i++) {
                    if (vr.getAtIndex(F, off + i) != value(r, i)) { failures.add(who + "allGatherV from rank " + r + " at " + i); break outer2; }
                }
                off += counts[r];
            }
            // gather to each root
            for (int root = 0; root < n; root++) {
                MemorySegment gsend = fill(a, rank, 50);
                MemorySegment grecv = a.allocate(F, n * 50L);
                c.gather(gsend, 50, rank == root ? grecv : null, root);
                if (rank == root) {
                    outer3:
                    for (int r = 0; r < n; r++) {
                        for (long i = 0; i < 50; i++) {
                            if (grecv.getAtIndex(F, r * 50L + i) != value(r, i)) { failures.add(who + "gather to " + root + " from rank " + r + " at " + i); break outer3; }
                        }
                    }
                }
            }
            // uneven gather to each root, scattered back
            for (int root = 0; root < n; root++) {
                MemorySegment gvs = fill(a, rank, counts[rank]);
                MemorySegment gvr = a.allocate(F, Math.max(total, 1));
                c.gatherV(gvs, counts[rank], rank == root ? gvr : null, counts, root);
                if (rank == root) {
                    long at = 0;
                    outer4:
                    for (int r = 0; r < n; r++) {
                        for (long i = 0; i < counts[r]; i++) {
                            if (gvr.getAtIndex(F, at + i) != value(r, i)) { failures.add(who + "gatherV to " + root + " from rank " + r + " at " + i); break outer4; }
                        }
                        at += counts[r];
                    }
                }
                MemorySegment back = a.allocate(F, Math.max(counts[rank], 1));
                c.scatterV(rank == root ? gvr : null, counts, back, counts[rank], root);
                for (long i = 0; i < counts[rank]; i++) {
                    if (back.getAtIndex(F, i) != value(rank, i)) { failures.add(who + "scatterV from " + root + " at " + i); break; }
                }
            }
            // broadcast from each root
            for (int root = 0; root < n; root++) {
                MemorySegment b = fill(a, rank, 100);
                c.broadcast(b, 100, root);
                for (long i = 0; i < 100; i++) {
                    if (b.getAtIndex(F, i) != value(root, i)) { failures.add(who + "broadcast from root " + root + " at " + i); break; }
                }
            }
            // argument checks
            try {
                c.broadcast(buf, 1, n);
                failures.add(who + "broadcast with root out of range did not throw");
            } catch (IllegalArgumentException expected) {
                // good
            }
            try {
                c.allReduceSum(buf, (long) Integer.MAX_VALUE + 1);
                failures.add(who + "allReduceSum with a too-large count did not throw");
            } catch (IllegalArgumentException expected) {
                // good
            }
            c.barrier();
            shardedOptimizer(c, who, failures);
            List<String> options = List.of(args);
            if (options.contains("--conformance")) {
                conformance(c, who, failures);
            }
            int bench = options.indexOf("--bench");
            if (bench >= 0) {
                bench(c, a, Long.parseLong(options.get(bench + 1)));
            }
        } catch (Throwable t) {
            failures.add("rank " + rank + ": " + t);
            t.printStackTrace();
        }
        if (failures.isEmpty()) {
            System.out.println("rank " + rank + ": OK");
            System.exit(0);
        }
        failures.forEach(f -> System.out.println("FAILED " + f));
        System.exit(1);
    }

    private static final int STEPS = 4;

    private static List<Parameter> matricesOnly() {
        return List.of(Parameter.matrix("attn.wq", 12, 20), Parameter.matrix("mlp.down", 20, 12),
                Parameter.stackedMatrices("moe.experts", 3, 6, 4, new float[72], new float[72]));
    }

    private static HybridOptimizer.Builder settings(Backend b, String kind) {
        HybridOptimizer.Builder builder = HybridOptimizer.builder(b).muon(MuonConfig.moonlight().learningRate(0.02).weightDecay(0.1).build())
                .adamw(AdamWConfig.builder().learningRate(0.01).weightDecay(0.1).build())
                .schedule(LearningRateSchedule.warmupCosine(1, STEPS, 0.1)).clipGradientNorm(5);
        return switch (kind) {
            case "muon" -> builder.routeAll(Route.MUON);
            case "adamw" -> builder.routeAll(Route.ADAMW);
            default -> builder;
        };
    }

    private static void shardedOptimizer(MpiCollectives c, String who, List<String> failures) {
        for (String kind : List.of("muon", "hybrid", "adamw")) {
            for (ShardedOptimizer.Mode mode : ShardedOptimizer.Mode.values()) {
                String what = who + kind + " " + mode + ": ";
                try (Backend backend = new VectorBackend(1)) {
                    List<Parameter> single = kind.equals("muon") ? matricesOnly() : ShardTestSupport.model();
                    ShardTestSupport.init(single);
                    HybridOptimizer reference = settings(backend, kind).build(single);
                    double[] norms = new double[STEPS];
                    for (int s = 0; s < STEPS; s++) {
                        ShardTestSupport.fillGradients(single, s, 0, 1);
                        norms[s] = reference.step().gradientNorm();
                    }
                    List<Parameter> params = kind.equals("muon") ? matricesOnly() : ShardTestSupport.model();
                    ShardTestSupport.init(params);
                    OptimizerState saved;
                    try (ShardedOptimizer opt = new ShardedOptimizer(c, settings(backend, kind), params, mode)) {
                        for (int s = 0; s < STEPS; s++) {
                            ShardTestSupport.fillGradients(params, s, c.rank(), c.size());
                            // Muon, Adam and clipping hide a gradient's scale; the agreed norm shows it.
                            double norm = opt.step().gradientNorm();
                            if (!(Math.abs(norm - norms[s]) <= 1e-5 * norms[s])) {
                                failures.add(what + "gradient norm at step " + s + " is " + norm + ", one process " + norms[s]);
                            }
                        }
                        saved = opt.saveState();
                        // Gathered on the last rank only: the same state there, nothing elsewhere.
                        OptimizerState onLast = opt.saveStateOn(c.size() - 1);
                        if (c.rank() == c.size() - 1) {
                            for (String name : saved.entries().keySet()) {
                                for (var e : saved.entries().get(name).buffers().entrySet()) {
                                    if (!java.util.Arrays.equals(e.getValue(), onLast.entries().get(name).buffers().get(e.getKey()))) {
                                        failures.add(what + "saveStateOn differs from saveState at " + name + "/" + e.getKey());
                                    }
                                }
                            }
                        } else if (onLast != null) {
                            failures.add(what + "saveStateOn gave a state to a rank other than the root");
                        }
                    }
                    for (int i = 0; i < params.size(); i++) {
                        double err = ShardTestSupport.relativeError(params.get(i).value(), single.get(i).value());
                        if (!(err <= 1e-5)) {
                            failures.add(what + params.get(i).name() + " relative error " + err + " against one process");
                        }
                    }
                    OptimizerState want = reference.saveState();
                    for (String name : want.entries().keySet()) {
                        for (var e : want.entries().get(name).buffers().entrySet()) {
                            double err = ShardTestSupport.relativeError(saved.entries().get(name).buffers().get(e.getKey()), e.getValue());
                            if (!(err <= 1e-5)) {
                                failures.add(what + "state " + name + "/" + e.getKey() + " relative error " + err);
                            }
                        }
                    }
                    // The state saved over MPI, loaded from rank 0 alone, saves back bit for bit.
                    try (ShardedOptimizer again = new ShardedOptimizer(c, settings(backend, kind), params, mode)) {
                        again.loadStateFrom(0, c.rank() == 0 ? saved : null);
                        OptimizerState back = again.saveState();
                        for (String name : saved.entries().keySet()) {
                            for (var e : saved.entries().get(name).buffers().entrySet()) {
                                if (!java.util.Arrays.equals(e.getValue(), back.entries().get(name).buffers().get(e.getKey()))) {
                                    failures.add(what + "state " + name + "/" + e.getKey() + " changed through loadStateFrom");
                                }
                            }
                        }
                        if (back.step() != STEPS) {
                            failures.add(what + "step after loadStateFrom is " + back.step());
                        }
                    }
                } catch (RuntimeException e) {
                    failures.add(what + e);
                }
            }
        }
    }

    /**
     * Every case of {@link OptimizerConformanceTest} over MPI in both modes: parameters and gathered state bit
     * for bit as one process on the ranks' mean gradient (the cases' gradients sum exactly in any order).
     */
    private static void conformance(MpiCollectives c, String who, List<String> failures) {
        int before = failures.size();
        for (ConformanceCase conformance : ConformanceCase.values()) {
            for (ShardedOptimizer.Mode mode : ShardedOptimizer.Mode.values()) {
                String what = who + "conformance " + conformance + " " + mode + ": ";
                try (Backend backend = new VectorBackend(1)) {
                    OptimizerConformanceTest.Run one = OptimizerConformanceTest.oneProcess(conformance, backend, STEPS, c.size());
                    List<Parameter> params = ConformanceCase.parameters();
                    OptimizerState state;
                    try (ShardedOptimizer opt = new ShardedOptimizer(c, conformance.settings(backend), params, mode)) {
                        for (int s = 0; s < STEPS; s++) {
                            ConformanceCase.fillGradients(params, s, c.rank(), c.size());
                            opt.step();
                        }
                        state = opt.saveState();
                    }
                    OptimizerConformanceTest.assertBitIdentical(one.params(), params, "parameters");
                    OptimizerConformanceTest.assertStateBitIdentical(one.state(), state, "state");
                } catch (RuntimeException | AssertionError e) {
                    failures.add(what + e.getMessage());
                }
            }
        }
        if (c.rank() == 0) {
            System.out.println(who + "conformance: " + ConformanceCase.values().length + " cases in " + ShardedOptimizer.Mode.values().length
                    + " modes, " + (failures.size() - before) + " failed");
        }
    }

    private static void bench(MpiCollectives c, Arena a, long n) {
        int size = c.size();
        long per = n / size;
        MemorySegment buf = a.allocate(F, n);
        MemorySegment part = a.allocate(F, per);
        buf.fill((byte) 0);
        part.fill((byte) 0);
        for (int rep = 0; rep < 4; rep++) {
            c.barrier();
            long t0 = System.nanoTime();
            c.allReduceSum(buf, n);
            long t1 = System.nanoTime();
            c.reduceScatterSum(buf, part, per);
            long t2 = System.nanoTime();
            c.allGather(part, per, buf);
            long t3 = System.nanoTime();
            if (c.rank() == 0) {
                System.out.printf("bench ranks=%d floats=%d rep=%d allReduce %.3f s, reduceScatter %.3f s, allGather %.3f s%n",
                        size, n, rep, (t1 - t0) / 1e9, (t2 - t1) / 1e9, (t3 - t2) / 1e9);
            }
        }
    }

    private static MemorySegment fill(Arena a, int rank, long n) {
        MemorySegment s = a.allocate(F, Math.max(n, 1));
        for (long i = 0; i < n; i++) s.setAtIndex(F, i, value(rank, i));
        return s;
    }
}
