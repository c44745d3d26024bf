package dev.muon4j.backend;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.Future;
import java.util.ArrayList;
import java.util.List;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Pure-Java {@link Backend} on the Vector API. Always available; slower than OpenBLAS.
 * Work is split over row blocks of C across {@code threads} worker threads.
 */
public final class VectorBackend implements Backend {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private final int threads;
    private final ForkJoinPool pool;

    public VectorBackend(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be at least 1, got " + threads);
        }
        this.threads = threads;
        this.pool = threads == 1 ? null : new ForkJoinPool(threads);
    }

    @Override
    public String description() {
        return "Vector API (" + S.length() + " floats a vector), " + threads + " thread" + (threads == 1 ? "" : "s");
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
        Backend.checkMatrix("gemm A", a, aOffset, transA ? k : m, transA ? m : k, lda);
        Backend.checkMatrix("gemm B", b, bOffset, transB ? n : k, transB ? k : n, ldb);
        Backend.checkMatrix("gemm C", c, cOffset, m, n, ldc);
        if (m == 0 || n == 0) {
            return;
        }
        Kernels.scaleMatrix(c, cOffset, m, n, ldc, beta);
        if (k == 0 || alpha == 0f) {
            return;
        }
        // Pack op(B) as a dense k×n row-major panel so the inner loop streams contiguous rows.
        float[] bp = new float[k * n];
        for (int p = 0; p < k; p++) {
            for (int j = 0; j < n; j++) {
                bp[p * n + j] = transB ? b[bOffset + j * ldb + p] : b[bOffset + p * ldb + j];
            }
        }
        parallelRows(m, (r0, r1) -> {
            float[] arow = new float[k];
            for (int i = r0; i < r1; i++) {
                for (int p = 0; p < k; p++) {
                    arow[p] = alpha * (transA ? a[aOffset + p * lda + i] : a[aOffset + i * lda + p]);
                }
                rowTimesPanel(arow, k, bp, n, 0, n, c, cOffset + i * ldc);
            }
        });
    }

    /** c[cRow + j] += Σ_p arow[p]·panel[p·n + j] for j in [j0, j1). */
    private static void rowTimesPanel(float[] arow, int k, float[] panel, int n, int j0, int j1, float[] c, int cRow) {
        int len = j1 - j0;
        int bound = S.loopBound(len);
        for (int p = 0; p < k; p++) {
            float av = arow[p];
            if (av == 0f) {
                continue;
            }
            int base = p * n;
            int j = 0;
            for (; j < bound; j += S.length()) {
                FloatVector bv = FloatVector.fromArray(S, panel, base + j0 + j);
                FloatVector cv = FloatVector.fromArray(S, c, cRow + j0 + j);
                bv.fma(FloatVector.broadcast(S, av), cv).intoArray(c, cRow + j0 + j);
            }
            for (; j < len; j++) {
                c[cRow + j0 + j] = Math.fma(av, panel[base + j0 + j], c[cRow + j0 + j]);
            }
        }
    }

    @Override
    public void syrk(boolean trans, int n, int k,
                     float alpha, float[] a, int aOffset, int lda,
                     float beta, float[] c, int cOffset, int ldc) {
        Backend.checkMatrix("syrk A", a, aOffset, trans ? k : n, trans ? n : k, lda);
        Backend.checkMatrix("syrk C", c, cOffset, n, n, ldc);
        if (n == 0) {
            return;
        }
        Kernels.scaleUpperTriangle(c, cOffset, n, ldc, beta);
        if (k == 0 || alpha == 0f) {
            return;
        }
        // Panel = op(A)ᵀ as k×n: column j of the panel is row j of op(A).
        float[] panel = new float[k * n];
        for (int j = 0; j < n; j++) {
            for (int p = 0; p < k; p++) {
                panel[p * n + j] = trans ? a[aOffset + p * lda + j] : a[aOffset + j * lda + p];
            }
        }
        parallelRows(n, (r0, r1) -> {
            float[] arow = new float[k];
            for (int i = r0; i < r1; i++) {
                for (int p = 0; p < k; p++) {
                    arow[p] = alpha * panel[p * n + i];
                }
                rowTimesPanel(arow, k, panel, n, i, n, c, cOffset + i * ldc);
            }
        });
    }

    @Override
    public void symm(int m, int n,
                     float alpha, float[] s, int sOffset, int lds,
                     float[] b, int bOffset, int ldb,
                     float beta, float[] c, int cOffset, int ldc) {
        Backend.checkMatrix("symm S", s, sOffset, m, m, lds);
        Backend.checkMatrix("symm B", b, bOffset, m, n, ldb);
        Backend.checkMatrix("symm C", c, cOffset, m, n, ldc);
        if (m == 0 || n == 0) {
            return;
        }
        float[] full = new float[m * m];
        for (int i = 0; i < m; i++) {
            for (int j = i; j < m; j++) {
                float v = s[sOffset + i * lds + j];
                full[i * m + j] = v;
                full[j * m + i] = v;
            }
        }
        gemm(false, false, m, n, m, alpha, full, 0, m, b, bOffset, ldb, beta, c, cOffset, ldc);
    }

    private interface RowRange {
        void run(int from, int to);
    }

    private void parallelRows(int rows, RowRange body) {
        if (pool == null || rows < 2 * threads) {
            body.run(0, rows);
            return;
        }
        int chunks = Math.min(rows, threads * 4);
        List<Future<?>> futures = new ArrayList<>(chunks);
        for (int t = 0; t < chunks; t++) {
            int from = (int) ((long) rows * t / chunks);
            int to = (int) ((long) rows * (t + 1) / chunks);
            futures.add(pool.submit(() -> body.run(from, to)));
        }
        for (Future<?> f : futures) {
            try {
                f.get();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted during a Vector API kernel", e);
            } catch (java.util.concurrent.ExecutionException e) {
                throw new IllegalStateException("Vector API kernel failed", e.getCause());
            }
        }
    }
}
