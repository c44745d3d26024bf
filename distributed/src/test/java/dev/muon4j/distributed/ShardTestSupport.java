package dev.muon4j.distributed;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.VectorBackend;
import dev.muon4j.optim.OptimizerState;
import dev.muon4j.optim.ParamRole;
import dev.muon4j.optim.Parameter;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Shared pieces of the sharded-optimizer tests: the small model of {@link ShardedOptimizerTest},
 * its gradients, and a runner that drives N in-process ranks on their own threads (each with its
 * own backend) and never waits forever.
 */
final class ShardTestSupport {
    /** How long a rank waits inside one collective before the group breaks. */
    static final Duration COLLECTIVE_TIMEOUT = Duration.ofSeconds(10);
    /** How long the test waits for one rank's whole task. */
    static final long RANK_TIMEOUT_SECONDS = 30;

    private ShardTestSupport() {
    }

    /**
     * Embedding, two hidden matrices, a norm, a stack of three expert matrices and a head: 812
     * elements (Muon: attn.wq 240, mlp.down 240, moe.experts 72; AdamW: embed 120, norm 20, head 120).
     */
    static List<Parameter> model() {
        return List.of(
                Parameter.zeros("embed", ParamRole.EMBEDDING, 10, 12),
                Parameter.matrix("attn.wq", 12, 20),
                Parameter.zeros("norm", ParamRole.NORM, 20),
                Parameter.matrix("mlp.down", 20, 12),
                Parameter.stackedMatrices("moe.experts", 3, 6, 4, new float[72], new float[72]),
                Parameter.zeros("head", ParamRole.HEAD, 10, 12));
    }

    static void init(List<Parameter> params) {
        init(params, 5);
    }

    static void init(List<Parameter> params, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        for (Parameter p : params) {
            for (int i = 0; i < p.size(); i++) {
                p.value()[i] = (float) (0.1 * r.nextGaussian());
            }
        }
    }

    static int index(List<Parameter> params, String name) {
        for (int i = 0; i < params.size(); i++) {
            if (params.get(i).name().equals(name)) {
                return i;
            }
        }
        throw new IllegalArgumentException(name);
    }

    /**
     * Rank {@code rank}'s gradient at step {@code step}: G + c·D with c = rank − (ranks−1)/2, so
     * the c add up to 0 and the ranks' mean is G ({@code ranks = 1}: G itself).
     */
    static void fillGradients(List<Parameter> params, int step, int rank, int ranks) {
        SplittableRandom base = new SplittableRandom(1000 + step);
        SplittableRandom spread = new SplittableRandom(2000 + step);
        float c = rank - (ranks - 1) / 2f;
        for (Parameter p : params) {
            for (int i = 0; i < p.size(); i++) {
                float g = (float) base.nextGaussian();
                float d = (float) spread.nextGaussian();
                p.gradient()[i] = ranks == 1 ? g : g + c * d;
            }
        }
    }

    /** Elements of {@code [from, from + length)} of parameter {@code index} each rank owns, in rank order. */
    static long[] ownedCounts(ShardLayout layout, int index, long from, long length) {
        long[] counts = new long[layout.ranks()];
        for (int r = 0; r < counts.length; r++) {
            for (ShardLayout.Piece piece : layout.pieces(r)) {
                if (piece.parameter() == index) {
                    counts[r] += Math.max(0, Math.min(piece.offset() + piece.length(), from + length) - Math.max(piece.offset(), from));
                }
            }
        }
        return counts;
    }

    /**
     * The rank that runs the matrix stages of matrix {@code matrix} of parameter {@code index} (a
     * stack's expert; 0 for a plain matrix), as the sharded optimizer documents it: the rank owning
     * the most of that matrix, ties to the lower rank.
     */
    static int runner(ShardLayout layout, int index, int matrix) {
        int size = layout.parameters().get(index).layout().matrixSize();
        long[] counts = ownedCounts(layout, index, (long) matrix * size, size);
        int runner = 0;
        for (int r = 1; r < counts.length; r++) {
            runner = counts[r] > counts[runner] ? r : runner;
        }
        return runner;
    }

    static List<Parameter> copyValues(List<Parameter> from) {
        List<Parameter> to = model();
        for (int i = 0; i < to.size(); i++) {
            System.arraycopy(from.get(i).value(), 0, to.get(i).value(), 0, to.get(i).size());
        }
        return to;
    }

    /** One rank's work. */
    interface RankTask<T> {
        T run(Collectives comm, Backend backend) throws Exception;
    }

    /** What one rank's task ended with: a value or the exception it threw. */
    record Outcome<T>(int rank, T value, Throwable error) {
        T get() {
            if (error != null) {
                throw new AssertionError("rank " + rank + " failed: " + error, error);
            }
            return value;
        }
    }

    /**
     * Runs {@code task} on {@code ranks} in-process ranks, each on its own thread with its own
     * {@code VectorBackend(1)}; collectives time out after {@link #COLLECTIVE_TIMEOUT}. Fails the
     * test if a rank has not finished after {@link #RANK_TIMEOUT_SECONDS} (a hang).
     */
    static <T> List<Outcome<T>> runRanks(int ranks, RankTask<T> task) throws InterruptedException {
        List<Collectives> comms = InProcessCollectives.create(ranks, COLLECTIVE_TIMEOUT);
        ExecutorService pool = Executors.newFixedThreadPool(ranks);
        try {
            List<Future<T>> futures = new ArrayList<>();
            for (int r = 0; r < ranks; r++) {
                Collectives comm = comms.get(r);
                futures.add(pool.submit(() -> {
                    try (Backend backend = new VectorBackend(1)) {
                        return task.run(comm, backend);
                    }
                }));
            }
            List<Outcome<T>> out = new ArrayList<>();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(RANK_TIMEOUT_SECONDS);
            for (int r = 0; r < ranks; r++) {
                try {
                    out.add(new Outcome<>(r, futures.get(r).get(Math.max(1, deadline - System.nanoTime()), TimeUnit.NANOSECONDS), null));
                } catch (ExecutionException e) {
                    out.add(new Outcome<>(r, null, e.getCause()));
                } catch (TimeoutException e) {
                    fail("rank " + r + " of " + ranks + " did not finish within " + RANK_TIMEOUT_SECONDS + " s (hung)");
                }
            }
            return out;
        } finally {
            pool.shutdownNow();
            for (Collectives c : comms) {
                c.close();
            }
        }
    }

    /** Runs and returns each rank's value, failing the test if any rank threw. */
    static <T> List<T> runRanksOk(int ranks, RankTask<T> task) throws InterruptedException {
        List<T> values = new ArrayList<>();
        for (Outcome<T> o : runRanks(ranks, task)) {
            values.add(o.get());
        }
        return values;
    }

    static double relativeError(float[] got, float[] want) {
        double diff = 0;
        double norm = 0;
        for (int j = 0; j < want.length; j++) {
            diff += Math.pow((double) got[j] - want[j], 2);
            norm += Math.pow(want[j], 2);
        }
        return norm == 0 ? Math.sqrt(diff) : Math.sqrt(diff / norm);
    }

    /** Every parameter of {@code got} within {@code tolerance} (relative L2) of {@code want}. */
    static void assertClose(List<Parameter> want, List<Parameter> got, double tolerance, String what) {
        assertEquals(want.size(), got.size());
        for (int i = 0; i < want.size(); i++) {
            double rel = relativeError(got.get(i).value(), want.get(i).value());
            assertTrue(rel <= tolerance, what + ": " + want.get(i).name() + " relative error " + rel);
        }
    }

    static void assertBitIdentical(List<Parameter> want, List<Parameter> got, String what) {
        for (int i = 0; i < want.size(); i++) {
            float[] a = want.get(i).value();
            float[] b = got.get(i).value();
            for (int j = 0; j < a.length; j++) {
                if (Float.floatToRawIntBits(a[j]) != Float.floatToRawIntBits(b[j])) {
                    fail(what + ": " + want.get(i).name() + "[" + j + "] is " + b[j] + ", expected " + a[j]);
                }
            }
        }
    }

    /** Every buffer of every entry of {@code got} within {@code tolerance} of {@code want}; counts equal. */
    static void assertStateClose(OptimizerState want, OptimizerState got, double tolerance, String what) {
        assertEquals(want.step(), got.step(), what + ": step");
        assertEquals(want.skippedSteps(), got.skippedSteps(), what + ": skipped steps");
        assertEquals(want.entries().keySet(), got.entries().keySet(), what + ": parameters");
        for (Map.Entry<String, OptimizerState.Entry> e : want.entries().entrySet()) {
            OptimizerState.Entry g = got.entries().get(e.getKey());
            assertEquals(e.getValue().route(), g.route(), what + ": route of " + e.getKey());
            assertEquals(e.getValue().buffers().keySet(), g.buffers().keySet(), what + ": buffers of " + e.getKey());
            for (Map.Entry<String, float[]> b : e.getValue().buffers().entrySet()) {
                double rel = relativeError(g.buffers().get(b.getKey()), b.getValue());
                assertTrue(rel <= tolerance, what + ": " + e.getKey() + "/" + b.getKey() + " relative error " + rel);
            }
        }
    }
}
