package dev.muon4j.backend;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Pure-Java {@link Backend}: on the Vector API where the JVM has {@code jdk.incubator.vector},
 * as plain loops where it does not (see {@link VectorApi}). Always available; slower than OpenBLAS.
 *
 * <p>Matrix products follow the usual GotoBLAS/BLIS structure: op(B) is packed into a
 * {@value #KC}-deep panel of {@link #NR}-column strips, op(A) (scaled by alpha) into a block of
 * {@value #MC} rows in {@value #MR}-row strips, and a register-blocked micro-kernel computes one
 * {@value #MR}×{@link #NR} tile of C at a time with fused multiply-adds: {@code VectorMicroKernel}
 * on the Vector API, {@code PlainMicroKernel} without it, which computes the same fused
 * multiply-adds in the same order and so the same bits. C is split into
 * {@code threads} column (or row) ranges, one per compute thread; the calling thread computes the
 * first range itself, so at most {@code threads} threads compute at once.
 *
 * <p>Each instance keeps its packing buffers between calls, which is one more reason (beyond the
 * {@link Backend} contract) not to call one instance from several Java threads at once.
 */
public final class VectorBackend implements Backend {
    /** Floats a vector: the Vector API micro-kernel's, else the plain one's (the same on AVX2 and AVX-512). */
    private static final int L = VectorApi.PRESENT ? VectorMicroKernel.LANES : PlainMicroKernel.LANES;
    /** Rows of C per micro-tile. */
    static final int MR = 5;
    /** Columns of C per micro-tile: two vectors. */
    static final int NR = 2 * L;
    /** Depth of one packed panel (the k-block). */
    static final int KC = 256;
    /** Rows of op(A) per packed block; a multiple of {@link #MR}. */
    static final int MC = 120;
    /** Columns of op(B) per packed panel; a multiple of {@link #NR}. */
    static final int NC = 2048;
    /** Products with fewer multiply-adds (m·n·k) than this run on the calling thread alone. */
    private static final long MIN_PARALLEL_WORK = 1L << 18;

    private final int threads;
    private final boolean vectorApi;
    private final ExecutorService pool;
    private final Workspace[] workspaces;

    /**
     * Creates a backend computing on {@code threads} threads (the calling thread and
     * {@code threads - 1} daemon workers), on the Vector API if this JVM has it.
     *
     * @throws IllegalArgumentException if {@code threads < 1}
     */
    public VectorBackend(int threads) {
        this(threads, VectorApi.PRESENT);
    }

    /**
     * As {@link #VectorBackend(int)}, with the plain micro-kernel when {@code vectorApi} is false
     * (so that tests can run it in a JVM that has the Vector API).
     */
    VectorBackend(int threads, boolean vectorApi) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be at least 1, got " + threads);
        }
        if (vectorApi && !VectorApi.PRESENT) {
            throw new IllegalArgumentException("the Vector API micro-kernel needs --add-modules " + VectorApi.MODULE);
        }
        this.threads = threads;
        this.vectorApi = vectorApi;
        this.pool = threads == 1 ? null : Executors.newFixedThreadPool(threads - 1, daemonThreads());
        this.workspaces = new Workspace[threads];
        for (int t = 0; t < threads; t++) {
            workspaces[t] = new Workspace(vectorApi);
        }
    }

    private static ThreadFactory daemonThreads() {
        AtomicInteger count = new AtomicInteger();
        return runnable -> {
            Thread thread = new Thread(runnable, "muon4j-vector-" + count.incrementAndGet());
            thread.setDaemon(true);
            return thread;
        };
    }

    @Override
    public String description() {
        String kernel = vectorApi ? "Vector API (" + L + " floats a vector)"
                : "pure Java, plain loops (no " + VectorApi.MODULE + ")";
        return kernel + ", " + threads + " thread" + (threads == 1 ? "" : "s");
    }

    @Override
    public BackendKind kind() {
        return BackendKind.VECTOR;
    }

    @Override
    public int threads() {
        return threads;
    }

    @Override
    public void close() {
        if (pool != null) {
            pool.shutdown();
        }
    }

    @Override
    public void gemm(boolean transA, boolean transB, int m, int n, int k,
                     float alpha, float[] a, int aOffset, int lda,
                     float[] b, int bOffset, int ldb,
                     float beta, float[] c, int cOffset, int ldc) {
        if (!Backend.gemmNeedsProduct(transA, transB, m, n, k, a, aOffset, lda, b, bOffset, ldb, beta, c, cOffset, ldc)) {
            return;
        }
        if (alpha == 0f) {
            Kernels.scaleMatrix(c, cOffset, m, n, ldc, beta);
            return;
        }
        Product product = new Product(transA, transB, k, alpha, a, aOffset, lda, b, bOffset, ldb,
                beta, c, cOffset, ldc, false);
        compute(product, m, n);
    }

    @Override
    public void syrk(boolean trans, int n, int k,
                     float alpha, float[] a, int aOffset, int lda,
                     float beta, float[] c, int cOffset, int ldc) {
        if (!Backend.syrkNeedsProduct(trans, n, k, a, aOffset, lda, beta, c, cOffset, ldc)) {
            return;
        }
        if (alpha == 0f) {
            Kernels.scaleUpperTriangle(c, cOffset, n, ldc, beta);
            return;
        }
        // A·Aᵀ is gemm(A, Aᵀ); Aᵀ·A is gemm(Aᵀ, A); only tiles touching the upper triangle are computed.
        Product product = new Product(trans, !trans, k, alpha, a, aOffset, lda, a, aOffset, lda,
                beta, c, cOffset, ldc, true);
        compute(product, n, n);
    }

    @Override
    public void symm(int m, int n,
                     float alpha, float[] s, int sOffset, int lds,
                     float[] b, int bOffset, int ldb,
                     float beta, float[] c, int cOffset, int ldc) {
        if (!Backend.symmNeedsProduct(m, n, s, sOffset, lds, b, bOffset, ldb, c, cOffset, ldc)) {
            return;
        }
        float[] full = new float[m * m];
        Kernels.expandUpper(s, sOffset, m, lds, full);
        gemm(false, false, m, n, m, alpha, full, 0, m, b, bOffset, ldb, beta, c, cOffset, ldc);
    }

    /**
     * One call's operands: {@code C = alpha·op(A)·op(B) + beta·C} with op(A) m×k and op(B) k×n;
     * with {@code upperOnly}, only elements on or above C's diagonal are computed and written.
     */
    private record Product(boolean transA, boolean transB, int k, float alpha,
                           float[] a, int aOffset, int lda, float[] b, int bOffset, int ldb,
                           float beta, float[] c, int cOffset, int ldc, boolean upperOnly) {
    }

    /** Packing buffers, an edge-tile buffer and the micro-kernel to use, for one compute thread. */
    private static final class Workspace {
        final boolean vectorApi;
        float[] packedA = new float[0];
        float[] packedB = new float[0];
        final float[] tile = new float[MR * NR];
        /** The plain micro-kernel's running sums. */
        final float[] sums = new float[MR * NR];

        Workspace(boolean vectorApi) {
            this.vectorApi = vectorApi;
        }

        void reserve(int aFloats, int bFloats) {
            if (packedA.length < aFloats) {
                packedA = new float[aFloats];
            }
            if (packedB.length < bFloats) {
                packedB = new float[bFloats];
            }
        }
    }

    // ---------------------------------------------------------------- work split over threads

    /** Computes the m×n product, split over up to {@code threads} ranges of C. */
    private void compute(Product p, int m, int n) {
        boolean byColumns = p.upperOnly() || n >= m;
        int tasks = taskCount(p, m, n, byColumns);
        if (tasks == 1) {
            computeBlock(p, 0, m, 0, n, workspaces[0]);
            return;
        }
        int[] bounds = p.upperOnly() ? triangleBounds(n, tasks)
                : evenBounds(byColumns ? n : m, tasks, byColumns ? NR : MR);
        List<Future<?>> futures = new ArrayList<>(tasks - 1);
        for (int t = 1; t < tasks; t++) {
            int from = bounds[t];
            int to = bounds[t + 1];
            Workspace ws = workspaces[t];
            futures.add(pool.submit(() -> computeRange(p, m, n, byColumns, from, to, ws)));
        }
        RuntimeException failure = null;
        try {
            computeRange(p, m, n, byColumns, bounds[0], bounds[1], workspaces[0]);
        } catch (RuntimeException e) {
            failure = e;
        }
        for (Future<?> future : futures) {
            failure = await(future, failure);
        }
        if (failure != null) {
            throw failure;
        }
    }

    private int taskCount(Product p, int m, int n, boolean byColumns) {
        if (threads == 1 || (long) m * n * p.k() < MIN_PARALLEL_WORK) {
            return 1;
        }
        int extent = byColumns ? n : m;
        int unit = byColumns ? NR : MR;
        return Math.max(1, Math.min(threads, extent / unit));
    }

    private static RuntimeException await(Future<?> future, RuntimeException failure) {
        try {
            future.get();
            return failure;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return chain(failure, new IllegalStateException("interrupted during a Vector API product", e));
        } catch (ExecutionException e) {
            return chain(failure, new IllegalStateException("Vector API product failed", e.getCause()));
        }
    }

    private static RuntimeException chain(RuntimeException first, RuntimeException next) {
        if (first == null) {
            return next;
        }
        first.addSuppressed(next);
        return first;
    }

    private void computeRange(Product p, int m, int n, boolean byColumns, int from, int to, Workspace ws) {
        if (from >= to) {
            return;
        }
        if (byColumns) {
            computeBlock(p, 0, m, from, to, ws);
        } else {
            computeBlock(p, from, to, 0, n, ws);
        }
    }

    /** {@code parts + 1} boundaries splitting [0, extent) evenly, each inner one a multiple of {@code unit}. */
    static int[] evenBounds(int extent, int parts, int unit) {
        int[] bounds = new int[parts + 1];
        int units = (extent + unit - 1) / unit;
        for (int t = 1; t < parts; t++) {
            bounds[t] = Math.min(extent, (int) ((long) units * t / parts) * unit);
        }
        bounds[parts] = extent;
        return bounds;
    }

    /**
     * Column boundaries splitting the upper triangle of an n×n matrix into parts of about equal area
     * (column j holds j + 1 elements), each inner one a multiple of {@link #NR}.
     */
    static int[] triangleBounds(int n, int parts) {
        int[] bounds = new int[parts + 1];
        for (int t = 1; t < parts; t++) {
            int cut = (int) Math.round(n * Math.sqrt((double) t / parts) / NR) * NR;
            bounds[t] = Math.clamp(cut, bounds[t - 1], n);
        }
        bounds[parts] = n;
        return bounds;
    }

    // ---------------------------------------------------------------- blocked product on one thread

    /** Computes rows [i0, i1) × columns [j0, j1) of C on the calling thread. */
    private static void computeBlock(Product p, int i0, int i1, int j0, int j1, Workspace ws) {
        int k = p.k();
        ws.reserve(MC * Math.min(KC, k), Math.min(KC, k) * roundUp(Math.min(NC, j1 - j0), NR));
        for (int jc = j0; jc < j1; jc += NC) {
            int nc = Math.min(NC, j1 - jc);
            int rowEnd = p.upperOnly() ? Math.min(i1, jc + nc) : i1;
            float firstBeta = p.beta();
            if (firstBeta != 0f && firstBeta != 1f && i0 < rowEnd) {
                // Apply a general beta up front so the micro-kernel only ever stores or accumulates.
                scaleBlock(p, i0, rowEnd, jc, nc, firstBeta);
                firstBeta = 1f;
            }
            for (int pc = 0; pc < k && i0 < rowEnd; pc += KC) {
                int kc = Math.min(KC, k - pc);
                float beta = pc == 0 ? firstBeta : 1f;
                packB(p, pc, kc, jc, nc, ws.packedB);
                for (int ic = i0; ic < rowEnd; ic += MC) {
                    int mc = Math.min(MC, rowEnd - ic);
                    packA(p, ic, mc, pc, kc, ws.packedA);
                    macroKernel(p, ic, mc, jc, nc, kc, beta, ws);
                }
            }
        }
    }

    /** C[rows, jc..jc+nc) *= beta, restricted to the upper triangle for syrk. */
    private static void scaleBlock(Product p, int rowStart, int rowEnd, int jc, int nc, float beta) {
        for (int r = rowStart; r < rowEnd; r++) {
            int from = p.upperOnly() ? Math.max(jc, r) : jc;
            int to = jc + nc;
            if (from < to) {
                Kernels.scale(p.c(), p.cOffset() + r * p.ldc() + from, to - from, beta);
            }
        }
    }

    private static int roundUp(int value, int unit) {
        return (value + unit - 1) / unit * unit;
    }

    /**
     * Packs alpha·op(A)[ic..ic+mc, pc..pc+kc) as strips of {@link #MR} rows: element (r, q) of the
     * strip starting at row s goes to {@code s·kc + q·MR + r}. Rows past mc are zero.
     */
    private static void packA(Product p, int ic, int mc, int pc, int kc, float[] dst) {
        for (int strip = 0; strip < mc; strip += MR) {
            int rows = Math.min(MR, mc - strip);
            int base = strip * kc;
            if (p.transA()) {
                packStripTransposed(p.a(), p.aOffset() + pc * p.lda() + ic + strip, p.lda(), rows, kc, MR, p.alpha(), dst, base);
            } else {
                packStrip(p.a(), p.aOffset() + (ic + strip) * p.lda() + pc, p.lda(), rows, kc, MR, p.alpha(), dst, base);
            }
        }
    }

    /**
     * Packs op(B)[pc..pc+kc, jc..jc+nc) as strips of {@link #NR} columns: element (q, j) of the
     * strip starting at column s goes to {@code s·kc + q·NR + j}. Columns past nc are zero.
     */
    private static void packB(Product p, int pc, int kc, int jc, int nc, float[] dst) {
        for (int strip = 0; strip < nc; strip += NR) {
            int cols = Math.min(NR, nc - strip);
            int base = strip * kc;
            if (p.transB()) {
                packStrip(p.b(), p.bOffset() + (jc + strip) * p.ldb() + pc, p.ldb(), cols, kc, NR, 1f, dst, base);
            } else if (cols == NR) {
                copyFullRows(p.b(), p.bOffset() + pc * p.ldb() + jc + strip, p.ldb(), kc, dst, base);
            } else {
                packStripTransposed(p.b(), p.bOffset() + pc * p.ldb() + jc + strip, p.ldb(), cols, kc, NR, 1f, dst, base);
            }
        }
    }

    /**
     * Packs {@code lanes} source rows of {@code depth} contiguous floats (row stride ld) so that
     * element (lane, q) lands at {@code base + q·width + lane}, scaled; lanes up to width are zero.
     */
    private static void packStrip(float[] src, int start, int ld, int lanes, int depth, int width,
                                  float scale, float[] dst, int base) {
        for (int lane = 0; lane < lanes; lane++) {
            int from = start + lane * ld;
            for (int q = 0; q < depth; q++) {
                dst[base + q * width + lane] = scale * src[from + q];
            }
        }
        zeroLanes(dst, base, depth, width, lanes);
    }

    /**
     * Packs {@code depth} source rows (row stride ld) of which the first {@code lanes} floats are
     * used, so that element (q, lane) lands at {@code base + q·width + lane}, scaled; lanes up to
     * width are zero.
     */
    private static void packStripTransposed(float[] src, int start, int ld, int lanes, int depth, int width,
                                            float scale, float[] dst, int base) {
        for (int q = 0; q < depth; q++) {
            int from = start + q * ld;
            int to = base + q * width;
            for (int lane = 0; lane < lanes; lane++) {
                dst[to + lane] = scale * src[from + lane];
            }
        }
        zeroLanes(dst, base, depth, width, lanes);
    }

    private static void zeroLanes(float[] dst, int base, int depth, int width, int lanes) {
        if (lanes == width) {
            return;
        }
        for (int q = 0; q < depth; q++) {
            java.util.Arrays.fill(dst, base + q * width + lanes, base + (q + 1) * width, 0f);
        }
    }

    /** Copies {@code depth} rows of {@link #NR} floats (row stride ld) into consecutive rows of dst. */
    private static void copyFullRows(float[] src, int start, int ld, int depth, float[] dst, int base) {
        for (int q = 0; q < depth; q++) {
            int from = start + q * ld;
            System.arraycopy(src, from, dst, base + q * NR, NR);
        }
    }

    /** Multiplies the packed block by the packed panel into C[ic..ic+mc, jc..jc+nc). */
    private static void macroKernel(Product p, int ic, int mc, int jc, int nc, int kc, float beta, Workspace ws) {
        float[] c = p.c();
        int ldc = p.ldc();
        for (int jr = 0; jr < nc; jr += NR) {
            int cols = Math.min(NR, nc - jr);
            int col = jc + jr;
            for (int ir = 0; ir < mc; ir += MR) {
                int rows = Math.min(MR, mc - ir);
                int row = ic + ir;
                if (p.upperOnly() && row > col + cols - 1) {
                    break;
                }
                boolean crossesDiagonal = p.upperOnly() && row + MR - 1 > col;
                int cIndex = p.cOffset() + row * ldc + col;
                if (rows == MR && cols == NR && !crossesDiagonal) {
                    microKernel(kc, ws.packedA, ir * kc, ws.packedB, jr * kc, c, cIndex, ldc, beta != 0f, ws);
                } else {
                    microKernel(kc, ws.packedA, ir * kc, ws.packedB, jr * kc, ws.tile, 0, NR, false, ws);
                    int firstColumn = crossesDiagonal ? row - col : Integer.MIN_VALUE;
                    mergeTile(ws.tile, rows, cols, firstColumn, c, cIndex, ldc, beta);
                }
            }
        }
    }

    /**
     * Adds the rows×cols corner of an edge tile into C (as {@code C = tile + beta·C}), skipping in
     * row r the columns before {@code firstColumn + r} (the part below C's diagonal).
     */
    private static void mergeTile(float[] tile, int rows, int cols, int firstColumn, float[] c, int cIndex, int ldc, float beta) {
        for (int r = 0; r < rows; r++) {
            int from = Math.max(0, firstColumn + r);
            int rowIndex = cIndex + r * ldc;
            for (int j = from; j < cols; j++) {
                float value = tile[r * NR + j];
                c[rowIndex + j] = beta == 0f ? value : Math.fma(beta, c[rowIndex + j], value);
            }
        }
    }

    /**
     * An {@link #MR}×{@link #NR} tile {@code T = Σ_q A[·, q]·B[q, ·]} over the packed strips, stored
     * as {@code C = T}, or {@code C = C + T} when {@code accumulate} (a general beta was applied to C
     * beforehand), by the workspace's micro-kernel.
     */
    private static void microKernel(int kc, float[] a, int aBase, float[] b, int bBase,
                                    float[] c, int cIndex, int ldc, boolean accumulate, Workspace ws) {
        if (ws.vectorApi) {
            VectorMicroKernel.compute(kc, a, aBase, b, bBase, c, cIndex, ldc, accumulate);
        } else {
            PlainMicroKernel.compute(kc, a, aBase, b, bBase, c, cIndex, ldc, accumulate, ws.sums);
        }
    }
}
