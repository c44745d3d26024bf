package dev.muon4j.autograd;

import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * Splits a loop over rows between the calling thread and {@code threads − 1} workers. Used for
 * elementwise and row-wise kernels only, never around backend (BLAS) calls, so the two never
 * compete for the cores.
 */
public final class Parallel implements AutoCloseable {
    /** The body of a loop over rows [from, to). */
    @FunctionalInterface
    public interface RowRange {
        void run(int from, int to);
    }

    private final int threads;
    private final ExecutorService workers;

    public Parallel(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be at least 1, got " + threads);
        }
        this.threads = threads;
        this.workers = threads == 1 ? null : Executors.newFixedThreadPool(threads - 1, r -> {
            Thread t = new Thread(r, "muon4j-rows");
            t.setDaemon(true);
            return t;
        });
    }

    public int threads() {
        return threads;
    }

    /**
     * Runs {@code body} over [0, rows) in contiguous parts, one per thread; {@code minRowsPerPart}
     * keeps small loops on the calling thread. Results must not depend on the split.
     */
    public void forRows(int rows, int minRowsPerPart, RowRange body) {
        int parts = workers == null ? 1 : Math.min(threads, Math.max(1, rows / Math.max(1, minRowsPerPart)));
        if (parts <= 1) {
            body.run(0, rows);
            return;
        }
        @SuppressWarnings("unchecked")
        Future<?>[] futures = new Future<?>[parts - 1];
        for (int p = 1; p < parts; p++) {
            int from = (int) ((long) rows * p / parts);
            int to = (int) ((long) rows * (p + 1) / parts);
            futures[p - 1] = workers.submit(() -> body.run(from, to));
        }
        RuntimeException failure = null;
        try {
            body.run(0, (int) ((long) rows / parts));
        } catch (RuntimeException e) {
            failure = e;
        }
        for (Future<?> f : futures) {
            try {
                f.get();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted in a parallel loop", e);
            } catch (ExecutionException e) {
                if (failure == null) {
                    failure = e.getCause() instanceof RuntimeException r ? r : new IllegalStateException(e.getCause());
                }
            }
        }
        if (failure != null) {
            throw failure;
        }
    }

    @Override
    public void close() {
        if (workers != null) {
            workers.shutdownNow();
        }
    }
}
