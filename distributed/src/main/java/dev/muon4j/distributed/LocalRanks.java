package dev.muon4j.distributed;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Runs a data-parallel group inside one process: one thread per rank over
 * {@link InProcessCollectives}. When a rank fails, the group is aborted, so the other ranks stop
 * at their next collective instead of waiting out the timeout, and {@link #run} throws the first
 * failure that is not a {@link PeerFailureException} (the cause, not its echoes), naming its rank.
 */
public final class LocalRanks {
    /** What one rank does. */
    @FunctionalInterface
    public interface Task<T> {
        T run(Collectives comm) throws Exception;
    }

    private LocalRanks() {
    }

    /**
     * Runs {@code task} on {@code ranks} threads and returns each rank's result, in rank order.
     *
     * @param timeout how long a rank waits for the others in one collective before the group fails
     * @throws RankFailedException when any rank fails
     */
    public static <T> List<T> run(int ranks, Duration timeout, Task<T> task) throws InterruptedException {
        Objects.requireNonNull(task, "task");
        List<Collectives> comms = InProcessCollectives.create(ranks, timeout);
        AtomicInteger counter = new AtomicInteger();
        ExecutorService pool = Executors.newFixedThreadPool(ranks, r -> {
            Thread t = new Thread(r, "rank-" + counter.getAndIncrement());
            t.setDaemon(true);
            return t;
        });
        Object lock = new Object();
        List<RankFailedException> failures = new ArrayList<>();
        try {
            List<Future<T>> futures = new ArrayList<>();
            for (Collectives comm : comms) {
                futures.add(pool.submit(() -> {
                    try {
                        return task.run(comm);
                    } catch (Throwable e) {
                        synchronized (lock) {
                            failures.add(new RankFailedException(comm.rank(), e));
                            if (failures.size() == 1) {
                                for (Collectives c : comms) {
                                    ((InProcessCollectives) c).abort();
                                }
                            }
                        }
                        throw e;
                    }
                }));
            }
            List<T> results = new ArrayList<>();
            for (Future<T> f : futures) {
                try {
                    results.add(f.get());
                } catch (ExecutionException e) {
                    results.add(null);
                }
            }
            synchronized (lock) {
                for (RankFailedException f : failures) {
                    if (!(f.getCause() instanceof PeerFailureException)) {
                        throw f;
                    }
                }
                if (!failures.isEmpty()) {
                    throw failures.getFirst();
                }
            }
            return results;
        } finally {
            pool.shutdownNow();
            for (Collectives c : comms) {
                c.close();
            }
        }
    }

    /** A rank of a group failed; the cause is that rank's error. */
    public static final class RankFailedException extends RuntimeException {
        private final int rank;

        RankFailedException(int rank, Throwable cause) {
            super("rank " + rank + " failed: " + cause.getMessage(), cause);
            this.rank = rank;
        }

        /** The rank that failed first. */
        public int rank() {
            return rank;
        }
    }
}
