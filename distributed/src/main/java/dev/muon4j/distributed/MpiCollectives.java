package dev.muon4j.distributed;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.time.Duration;
import java.util.Objects;

/**
 * {@link Collectives} over Open MPI's {@code MPI_COMM_WORLD}, calling {@code libmpi.so.40}
 * through {@code java.lang.foreign} (Debian ships no MPI Java bindings).
 *
 * <p>Start the ranks with {@code mpirun -np N java --enable-native-access=ALL-UNNAMED ...}
 * (as root add {@code --allow-run-as-root --oversubscribe}); a JVM started without mpirun is an
 * MPI singleton, a world of size 1. The constructor calls {@code MPI_Init} unless MPI is already
 * initialized; {@link #close()} then calls {@code MPI_Finalize}. MPI can be initialized only once
 * per process, so create at most one instance per process.
 *
 * <p>Open MPI specifics: the library is first opened with {@code dlopen(RTLD_NOW | RTLD_GLOBAL)}
 * so its plugins can resolve symbols from it; the predefined handles ({@code MPI_COMM_WORLD},
 * {@code MPI_FLOAT}, {@code MPI_SUM}) are addresses of Open MPI's global objects; MPI_IN_PLACE is
 * address 1. The world communicator's error handler is set to {@code MPI_ERRORS_RETURN} so that
 * failures come back as return codes, which are all checked.
 *
 * <p>A dead rank ends the job through mpirun, which kills the other ranks when one exits
 * abnormally. A hung rank would leave the others blocked in a collective for ever, so a watchdog
 * thread bounds every collective: one that has waited longer than the timeout prints which rank
 * and collective waited, and aborts the whole job ({@code MPI_Abort}, exit code 3; if that does
 * not end the process within 10 s, it halts).
 *
 * <p>Buffers must be native (off-heap) segments. MPI counts are C {@code int}s: counts (and, for
 * {@link #allGatherV}, the total) above {@link Integer#MAX_VALUE} are rejected.
 */
public final class MpiCollectives implements Collectives {

    /** The Open MPI shared library (Open MPI 4.x ABI). */
    public static final String LIBRARY = "libmpi.so.40";

    private static final int RTLD_NOW_GLOBAL = 0x102; // RTLD_NOW | RTLD_GLOBAL on Linux
    private static final ValueLayout ADDR = ValueLayout.ADDRESS;
    private static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT;
    private static final MemorySegment IN_PLACE = MemorySegment.ofAddress(1);

    /** Lazily loaded bindings; holder idiom so that {@link #available()} never throws. */
    private static final class Lib {
        static final Throwable FAILURE;
        static final MethodHandle initialized, finalized, init, finalize_, commRank, commSize,
                setErrhandler, allreduce, reduceScatterBlock, allgather, allgatherv, bcast, barrier,
                errorString, abort, gather, gatherv, scatterv;
        static final MemorySegment commWorld, floatType, opSum, errorsReturn;

        static {
            Throwable failure = null;
            MethodHandle[] h = new MethodHandle[18];
            MemorySegment[] s = new MemorySegment[4];
            try {
                Linker linker = Linker.nativeLinker();
                MethodHandle dlopen = linker.downcallHandle(
                        linker.defaultLookup().find("dlopen").orElseThrow(() -> new UnsatisfiedLinkError("no dlopen in libc")),
                        FunctionDescriptor.of(ADDR, ADDR, INT));
                try (Arena a = Arena.ofConfined()) {
                    MemorySegment handle = (MemorySegment) dlopen.invokeExact(a.allocateFrom(LIBRARY), RTLD_NOW_GLOBAL);
                    if (handle.address() == 0) {
                        throw new UnsatisfiedLinkError("dlopen(\"" + LIBRARY + "\") failed; install Open MPI "
                                + "(Debian: apt-get install openmpi-bin libopenmpi-dev)");
                    }
                }
                SymbolLookup lib = SymbolLookup.libraryLookup(LIBRARY, Arena.global());
                h[0] = fn(linker, lib, "MPI_Initialized", ADDR);
                h[1] = fn(linker, lib, "MPI_Finalized", ADDR);
                h[2] = fn(linker, lib, "MPI_Init", ADDR, ADDR);
                h[3] = fn(linker, lib, "MPI_Finalize");
                h[4] = fn(linker, lib, "MPI_Comm_rank", ADDR, ADDR);
                h[5] = fn(linker, lib, "MPI_Comm_size", ADDR, ADDR);
                h[6] = fn(linker, lib, "MPI_Comm_set_errhandler", ADDR, ADDR);
                h[7] = fn(linker, lib, "MPI_Allreduce", ADDR, ADDR, INT, ADDR, ADDR, ADDR);
                h[8] = fn(linker, lib, "MPI_Reduce_scatter_block", ADDR, ADDR, INT, ADDR, ADDR, ADDR);
                h[9] = fn(linker, lib, "MPI_Allgather", ADDR, INT, ADDR, ADDR, INT, ADDR, ADDR);
                h[10] = fn(linker, lib, "MPI_Allgatherv", ADDR, INT, ADDR, ADDR, ADDR, ADDR, ADDR, ADDR);
                h[11] = fn(linker, lib, "MPI_Bcast", ADDR, INT, ADDR, INT, ADDR);
                h[12] = fn(linker, lib, "MPI_Barrier", ADDR);
                h[13] = fn(linker, lib, "MPI_Error_string", INT, ADDR, ADDR);
                h[14] = fn(linker, lib, "MPI_Abort", ADDR, INT);
                h[15] = fn(linker, lib, "MPI_Gather", ADDR, INT, ADDR, ADDR, INT, ADDR, INT, ADDR);
                h[16] = fn(linker, lib, "MPI_Gatherv", ADDR, INT, ADDR, ADDR, ADDR, ADDR, ADDR, INT, ADDR);
                h[17] = fn(linker, lib, "MPI_Scatterv", ADDR, ADDR, ADDR, ADDR, ADDR, INT, ADDR, INT, ADDR);
                s[0] = sym(lib, "ompi_mpi_comm_world");
                s[1] = sym(lib, "ompi_mpi_float");
                s[2] = sym(lib, "ompi_mpi_op_sum");
                s[3] = sym(lib, "ompi_mpi_errors_return");
            } catch (Throwable t) {
                failure = t;
            }
            FAILURE = failure;
            initialized = h[0]; finalized = h[1]; init = h[2]; finalize_ = h[3]; commRank = h[4];
            commSize = h[5]; setErrhandler = h[6]; allreduce = h[7]; reduceScatterBlock = h[8];
            allgather = h[9]; allgatherv = h[10]; bcast = h[11]; barrier = h[12]; errorString = h[13]; abort = h[14]; gather = h[15];
            gatherv = h[16]; scatterv = h[17];
            commWorld = s[0]; floatType = s[1]; opSum = s[2]; errorsReturn = s[3];
        }

        private static MethodHandle fn(Linker linker, SymbolLookup lib, String name, ValueLayout... args) {
            MemorySegment addr = lib.find(name).orElseThrow(() -> new UnsatisfiedLinkError(name + " not found in " + LIBRARY));
            return linker.downcallHandle(addr, FunctionDescriptor.of(INT, args));
        }

        private static MemorySegment sym(SymbolLookup lib, String name) {
            return lib.find(name).orElseThrow(() -> new UnsatisfiedLinkError(name + " not found in " + LIBRARY
                    + " (MpiCollectives needs Open MPI)"));
        }
    }

    /** Whether Open MPI's library can be loaded and bound (does not initialize MPI). */
    public static boolean available() {
        try {
            return Lib.FAILURE == null;
        } catch (Throwable t) {
            return false;
        }
    }

    /** Why {@link #available()} is false, or null. */
    public static Throwable unavailableReason() {
        return Lib.FAILURE;
    }

    /** Default bound on the time one collective may wait for the other ranks. */
    public static final Duration DEFAULT_TIMEOUT = Duration.ofMinutes(5);

    /** Exit code of a job aborted because a collective timed out. */
    public static final int TIMEOUT_EXIT_CODE = 3;

    private final int rank;
    private final int size;
    private final boolean ownsInit;
    private final long timeoutNanos;
    private volatile long enteredAt;        // System.nanoTime() at entry into a collective, 0 outside
    private volatile String current = "";
    private volatile boolean closed;

    /** Initializes MPI if needed and binds to {@code MPI_COMM_WORLD}, with the default collective timeout. */
    public MpiCollectives() {
        this(DEFAULT_TIMEOUT);
    }

    /**
     * Initializes MPI if needed and binds to {@code MPI_COMM_WORLD}.
     *
     * @param timeout how long one collective may wait before the job is aborted
     */
    public MpiCollectives(Duration timeout) {
        Objects.requireNonNull(timeout, "timeout");
        if (timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("collective timeout must be positive, got " + timeout);
        }
        this.timeoutNanos = timeout.toNanos();
        if (Lib.FAILURE != null) {
            throw new IllegalStateException("Open MPI is not available: " + Lib.FAILURE, Lib.FAILURE);
        }
        try (Arena a = Arena.ofConfined()) {
            MemorySegment flag = a.allocate(INT);
            check("MPI_Finalized", (int) Lib.finalized.invokeExact(flag));
            if (flag.get(INT, 0) != 0) {
                throw new IllegalStateException("MPI was already finalized in this process; it cannot be initialized again");
            }
            check("MPI_Initialized", (int) Lib.initialized.invokeExact(flag));
            boolean already = flag.get(INT, 0) != 0;
            if (!already) {
                check("MPI_Init", (int) Lib.init.invokeExact(MemorySegment.NULL, MemorySegment.NULL));
            }
            ownsInit = !already;
            check("MPI_Comm_set_errhandler", (int) Lib.setErrhandler.invokeExact(Lib.commWorld, Lib.errorsReturn));
            MemorySegment v = a.allocate(INT);
            check("MPI_Comm_rank", (int) Lib.commRank.invokeExact(Lib.commWorld, v));
            rank = v.get(INT, 0);
            check("MPI_Comm_size", (int) Lib.commSize.invokeExact(Lib.commWorld, v));
            size = v.get(INT, 0);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("MPI initialization failed", t);
        }
        if (size > 1) {
            Thread w = new Thread(this::watch, "mpi-watchdog-rank-" + rank);
            w.setDaemon(true);
            w.start();
        }
    }

    /** The collective timeout. */
    public Duration timeout() {
        return Duration.ofNanos(timeoutNanos);
    }

    private void watch() {
        long tick = Math.max(10_000_000L, Math.min(1_000_000_000L, timeoutNanos / 10));
        while (!closed) {
            try {
                Thread.sleep(Duration.ofNanos(tick));
            } catch (InterruptedException e) {
                return;
            }
            long since = enteredAt;
            if (since != 0 && !closed && System.nanoTime() - since > timeoutNanos) {
                System.out.flush();
                System.err.printf("muon4j: rank %d of %d waited %.0f s in %s for the other ranks (timeout %d s): "
                                + "a rank died, hung or fell far behind; aborting the job%n",
                        rank, size, (System.nanoTime() - since) / 1e9, current, timeoutNanos / 1_000_000_000L);
                System.err.flush();
                try {
                    int ignored = (int) Lib.abort.invokeExact(Lib.commWorld, TIMEOUT_EXIT_CODE);
                } catch (Throwable t) {
                    // fall through to halt
                }
                try {
                    Thread.sleep(10_000);
                } catch (InterruptedException e) {
                    // halt now
                }
                Runtime.getRuntime().halt(TIMEOUT_EXIT_CODE);
            }
        }
    }

    private void enter(String op) {
        current = op;
        long now = System.nanoTime();
        enteredAt = now == 0 ? 1 : now;
    }

    private void leave() {
        enteredAt = 0;
    }

    /**
     * Ends the whole job now ({@code MPI_Abort} on the world; mpirun then stops every rank and
     * exits non-zero). For a rank that failed on its own, so the others do not wait for it. Does
     * not return; if MPI_Abort does not end the process within 10 s, it halts.
     */
    public void abort(int exitCode) {
        System.out.flush();
        System.err.flush();
        try {
            int ignored = (int) Lib.abort.invokeExact(Lib.commWorld, exitCode);
        } catch (Throwable t) {
            // fall through to halt
        }
        try {
            Thread.sleep(10_000);
        } catch (InterruptedException e) {
            // halt now
        }
        Runtime.getRuntime().halt(exitCode);
    }

    @Override public int rank() { return rank; }

    @Override public int size() { return size; }

    @Override
    public void allReduceSum(MemorySegment buf, long count) {
        String op = "allReduceSum";
        open(op);
        Collectives.checkSegment(op, "buf", buf, count);
        int n = intCount(op, "count", count);
        nativeSeg(op, "buf", buf);
        try {
            enter("allReduceSum");
            try {
                check("MPI_Allreduce", (int) Lib.allreduce.invokeExact(IN_PLACE, buf, n, Lib.floatType, Lib.opSum, Lib.commWorld));
            } finally {
                leave();
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    @Override
    public void reduceScatterSum(MemorySegment send, MemorySegment recv, long countPerRank) {
        String op = "reduceScatterSum";
        open(op);
        Collectives.checkSegment(op, "send", send, Collectives.mulCount(op, size, countPerRank));
        Collectives.checkSegment(op, "recv", recv, countPerRank);
        int n = intCount(op, "countPerRank", countPerRank);
        nativeSeg(op, "send", send);
        nativeSeg(op, "recv", recv);
        try {
            enter("reduceScatterSum");
            try {
                check("MPI_Reduce_scatter_block",
                        (int) Lib.reduceScatterBlock.invokeExact(send, recv, n, Lib.floatType, Lib.opSum, Lib.commWorld));
            } finally {
                leave();
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    @Override
    public void allGather(MemorySegment send, long count, MemorySegment recv) {
        String op = "allGather";
        open(op);
        Collectives.checkSegment(op, "send", send, count);
        Collectives.checkSegment(op, "recv", recv, Collectives.mulCount(op, size, count));
        int n = intCount(op, "count", count);
        nativeSeg(op, "send", send);
        nativeSeg(op, "recv", recv);
        try {
            enter("allGather");
            try {
                check("MPI_Allgather", (int) Lib.allgather.invokeExact(send, n, Lib.floatType, recv, n, Lib.floatType, Lib.commWorld));
            } finally {
                leave();
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    @Override
    public void allGatherV(MemorySegment send, long count, MemorySegment recv, long[] counts) {
        String op = "allGatherV";
        open(op);
        long total = Collectives.checkCounts(op, counts, size, rank, count);
        Collectives.checkSegment(op, "send", send, count);
        Collectives.checkSegment(op, "recv", recv, total);
        intCount(op, "sum of counts (MPI displacements are ints)", total);
        nativeSeg(op, "send", send);
        nativeSeg(op, "recv", recv);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment c = a.allocate(INT, size);
            MemorySegment d = a.allocate(INT, size);
            int off = 0;
            for (int r = 0; r < size; r++) {
                c.setAtIndex(INT, r, (int) counts[r]);
                d.setAtIndex(INT, r, off);
                off += (int) counts[r];
            }
            enter("allGatherV");
            try {
                check("MPI_Allgatherv",
                        (int) Lib.allgatherv.invokeExact(send, (int) count, Lib.floatType, recv, c, d, Lib.floatType, Lib.commWorld));
            } finally {
                leave();
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    @Override
    public void gather(MemorySegment send, long count, MemorySegment recv, int root) {
        String op = "gather";
        open(op);
        Collectives.checkRoot(op, root, size);
        Collectives.checkSegment(op, "send", send, count);
        int n = intCount(op, "count", count);
        nativeSeg(op, "send", send);
        if (rank == root) {
            Collectives.checkSegment(op, "recv", recv, Collectives.mulCount(op, size, count));
            nativeSeg(op, "recv", recv);
        }
        MemorySegment target = rank == root ? recv : MemorySegment.NULL;
        try {
            enter("gather");
            try {
                check("MPI_Gather", (int) Lib.gather.invokeExact(send, n, Lib.floatType, target, n, Lib.floatType, root, Lib.commWorld));
            } finally {
                leave();
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    @Override
    public void gatherV(MemorySegment send, long count, MemorySegment recv, long[] counts, int root) {
        String op = "gatherV";
        open(op);
        Collectives.checkRoot(op, root, size);
        long total = Collectives.checkCounts(op, counts, size, rank, count);
        Collectives.checkSegment(op, "send", send, count);
        intCount(op, "sum of counts (MPI displacements are ints)", total);
        nativeSeg(op, "send", send);
        if (rank == root) {
            Collectives.checkSegment(op, "recv", recv, total);
            nativeSeg(op, "recv", recv);
        }
        MemorySegment target = rank == root ? recv : MemorySegment.NULL;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment c = a.allocate(INT, size);
            MemorySegment d = a.allocate(INT, size);
            fillCounts(counts, c, d);
            enter("gatherV");
            try {
                check("MPI_Gatherv",
                        (int) Lib.gatherv.invokeExact(send, (int) count, Lib.floatType, target, c, d, Lib.floatType, root, Lib.commWorld));
            } finally {
                leave();
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    @Override
    public void scatterV(MemorySegment send, long[] counts, MemorySegment recv, long count, int root) {
        String op = "scatterV";
        open(op);
        Collectives.checkRoot(op, root, size);
        long total = Collectives.checkCounts(op, counts, size, rank, count);
        Collectives.checkSegment(op, "recv", recv, count);
        intCount(op, "sum of counts (MPI displacements are ints)", total);
        nativeSeg(op, "recv", recv);
        if (rank == root) {
            Collectives.checkSegment(op, "send", send, total);
            nativeSeg(op, "send", send);
        }
        MemorySegment source = rank == root ? send : MemorySegment.NULL;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment c = a.allocate(INT, size);
            MemorySegment d = a.allocate(INT, size);
            fillCounts(counts, c, d);
            enter("scatterV");
            try {
                check("MPI_Scatterv",
                        (int) Lib.scatterv.invokeExact(source, c, d, Lib.floatType, recv, (int) count, Lib.floatType, root, Lib.commWorld));
            } finally {
                leave();
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** MPI's int counts and displacements (rank order, packed) of {@code counts}, already checked to fit. */
    private void fillCounts(long[] counts, MemorySegment c, MemorySegment d) {
        int off = 0;
        for (int r = 0; r < size; r++) {
            c.setAtIndex(INT, r, (int) counts[r]);
            d.setAtIndex(INT, r, off);
            off += (int) counts[r];
        }
    }

    @Override
    public void broadcast(MemorySegment buf, long count, int root) {
        String op = "broadcast";
        open(op);
        Collectives.checkRoot(op, root, size);
        Collectives.checkSegment(op, "buf", buf, count);
        int n = intCount(op, "count", count);
        nativeSeg(op, "buf", buf);
        try {
            enter("broadcast");
            try {
                check("MPI_Bcast", (int) Lib.bcast.invokeExact(buf, n, Lib.floatType, root, Lib.commWorld));
            } finally {
                leave();
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    @Override
    public void barrier() {
        open("barrier");
        try {
            enter("barrier");
            try {
                check("MPI_Barrier", (int) Lib.barrier.invokeExact(Lib.commWorld));
            } finally {
                leave();
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Calls {@code MPI_Finalize} if this instance initialized MPI. Idempotent. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        try {
            if (ownsInit) {
                enter("MPI_Finalize");
                check("MPI_Finalize", (int) Lib.finalize_.invokeExact());
            }
        } catch (Throwable t) {
            throw rethrow(t);
        } finally {
            leave();
            closed = true;
        }
    }

    // ---- helpers ----

    private void open(String op) {
        if (closed) {
            throw new IllegalStateException("rank " + rank + ": " + op + " on a closed MpiCollectives");
        }
    }

    private static int intCount(String op, String what, long count) {
        if (count > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(op + ": " + what + " = " + count
                    + " exceeds Integer.MAX_VALUE, the largest count MPI accepts; split the call");
        }
        return (int) count;
    }

    private static void nativeSeg(String op, String name, MemorySegment seg) {
        if (!seg.isNative()) {
            throw new IllegalArgumentException(op + ": " + name + " must be a native (off-heap) segment for MPI");
        }
    }

    private void check(String function, int code) {
        if (code != 0) {
            throw new IllegalStateException(function + " failed with code " + code + " (" + errorString(code)
                    + ")" + (size > 0 ? " on rank " + rank + " of " + size : ""));
        }
    }

    private static String errorString(int code) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(256); // MPI_MAX_ERROR_STRING is 256 in Open MPI
            MemorySegment len = a.allocate(INT);
            int rc = (int) Lib.errorString.invokeExact(code, s, len);
            return rc == 0 ? s.getString(0) : "unknown error";
        } catch (Throwable t) {
            return "unknown error";
        }
    }

    private static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) {
            return r;
        }
        if (t instanceof Error e) {
            throw e;
        }
        return new IllegalStateException(t);
    }
}
