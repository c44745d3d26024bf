package dev.muon4j.optim;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Future;
import java.util.concurrent.SynchronousQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.function.IntConsumer;

/**
 * Runs the parts of one piece of work side by side, one Java thread each, for a backend's
 * {@link dev.muon4j.backend.Backend#concurrentWorkers() concurrent workers}: part 0 on the calling
 * thread, the others on daemon threads named {@code muon4j-newton-schulz} (idle ones end after a
 * minute).
 */
final class SideBySide {
    private SideBySide() {
    }

    private static final ExecutorService THREADS = new ThreadPoolExecutor(0, Integer.MAX_VALUE, 60, TimeUnit.SECONDS,
            new SynchronousQueue<>(), r -> {
                Thread t = new Thread(r, "muon4j-newton-schulz");
                t.setDaemon(true);
                return t;
            });

    /**
     * Runs {@code part.accept(i)} for every i in [0, parts) at the same time and returns when all have
     * ended. A failure is rethrown after every part has ended (the first one, the others suppressed
     * into it); an interrupt of the calling thread does not cut the work short and is kept for the
     * caller.
     */
    static void run(int parts, IntConsumer part) {
        List<Future<?>> running = new ArrayList<>();
        for (int p = 1; p < parts; p++) {
            int index = p;
            running.add(THREADS.submit(() -> part.accept(index)));
        }
        RuntimeException failure = null;
        try {
            part.accept(0);
        } catch (RuntimeException e) {
            failure = e;
        }
        boolean interrupted = false;
        for (Future<?> f : running) {
            while (true) {
                try {
                    f.get();
                    break;
                } catch (InterruptedException e) {
                    interrupted = true; // finish the step's arithmetic; the interrupt is kept for the caller
                } catch (ExecutionException e) {
                    RuntimeException cause = e.getCause() instanceof RuntimeException r ? r
                            : new IllegalStateException("Newton–Schulz worker failed", e.getCause());
                    if (failure == null) {
                        failure = cause;
                    } else {
                        failure.addSuppressed(cause);
                    }
                    break;
                }
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        if (failure != null) {
            throw failure;
        }
    }
}
