package dev.muon4j.bench;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Measures the float32 fused multiply-add peak of this machine's widest vector unit the JVM uses
 * (its preferred Vector API species: 16 floats with AVX-512, 8 with AVX2), on a given number of
 * threads: each thread runs {@value #CHAINS} independent FMA chains in registers, enough to hide the
 * FMA latency (4 cycles on current x86 cores, 2 FMA pipes: 8 chains in flight), and the best of
 * several rounds counts. A GEMM's rate divided by this is the fraction of the peak it reaches.
 */
public final class FmaPeak {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    /** Independent accumulators per thread. */
    static final int CHAINS = 12;

    private FmaPeak() {
    }

    /** The vector width the probe measures, in floats. */
    public static int lanes() {
        return S.length();
    }

    /**
     * The measured peak in GFLOP/s (an FMA is 2 flops) on {@code threads} threads: the best of
     * {@code rounds} rounds of about 0.1 s each.
     */
    public static double gflops(int threads, int rounds) {
        if (threads < 1 || rounds < 1) {
            throw new IllegalArgumentException("threads and rounds must be >= 1, got " + threads + " and " + rounds);
        }
        long iterations = 4_000_000;
        ExecutorService pool = Executors.newFixedThreadPool(threads, r -> {
            Thread t = new Thread(r, "muon4j-fma-probe");
            t.setDaemon(true);
            return t;
        });
        try {
            chains(iterations / 10); // compile the loop first
            double best = 0;
            for (int r = 0; r < rounds; r++) {
                List<Callable<Float>> work = new ArrayList<>();
                for (int t = 0; t < threads; t++) {
                    work.add(() -> chains(iterations));
                }
                long start = System.nanoTime();
                float sink = 0;
                for (Future<Float> f : pool.invokeAll(work)) {
                    sink += f.get();
                }
                double seconds = (System.nanoTime() - start) / 1e9;
                if (Float.isNaN(sink)) {
                    throw new IllegalStateException("FMA probe produced NaN");
                }
                best = Math.max(best, 2.0 * CHAINS * S.length() * iterations * threads / seconds / 1e9);
            }
            return best;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("FMA probe interrupted", e);
        } catch (java.util.concurrent.ExecutionException e) {
            throw new IllegalStateException("FMA probe failed", e.getCause());
        } finally {
            pool.shutdownNow();
        }
    }

    /** {@value #CHAINS} chains x ← x·a + b, {@code iterations} steps each; returns a value that depends on all. */
    static float chains(long iterations) {
        FloatVector a = FloatVector.broadcast(S, 0.999_999f);
        FloatVector b = FloatVector.broadcast(S, 1e-7f);
        FloatVector x0 = FloatVector.broadcast(S, 1.0f);
        FloatVector x1 = FloatVector.broadcast(S, 1.1f);
        FloatVector x2 = FloatVector.broadcast(S, 1.2f);
        FloatVector x3 = FloatVector.broadcast(S, 1.3f);
        FloatVector x4 = FloatVector.broadcast(S, 1.4f);
        FloatVector x5 = FloatVector.broadcast(S, 1.5f);
        FloatVector x6 = FloatVector.broadcast(S, 1.6f);
        FloatVector x7 = FloatVector.broadcast(S, 1.7f);
        FloatVector x8 = FloatVector.broadcast(S, 1.8f);
        FloatVector x9 = FloatVector.broadcast(S, 1.9f);
        FloatVector x10 = FloatVector.broadcast(S, 2.0f);
        FloatVector x11 = FloatVector.broadcast(S, 2.1f);
        for (long i = 0; i < iterations; i++) {
            x0 = x0.fma(a, b);
            x1 = x1.fma(a, b);
            x2 = x2.fma(a, b);
            x3 = x3.fma(a, b);
            x4 = x4.fma(a, b);
            x5 = x5.fma(a, b);
            x6 = x6.fma(a, b);
            x7 = x7.fma(a, b);
            x8 = x8.fma(a, b);
            x9 = x9.fma(a, b);
            x10 = x10.fma(a, b);
            x11 = x11.fma(a, b);
        }
        return x0.add(x1).add(x2).add(x3).add(x4).add(x5).add(x6).add(x7).add(x8).add(x9).add(x10).add(x11)
                .reduceLanes(jdk.incubator.vector.VectorOperators.ADD);
    }
}
