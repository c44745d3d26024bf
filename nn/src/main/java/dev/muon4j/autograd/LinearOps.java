package dev.muon4j.autograd;

import dev.muon4j.backend.Backend;
import java.util.Arrays;

/** Matrix products: the linear layer and the batched matmul. Every product goes through the backend's GEMM. */
final class LinearOps {
    private LinearOps() {
    }

    /** y (N, out) = x (N, in) · Wᵀ, W (out, in). */
    static Tensor linear(Graph g, Tensor x, Tensor w) {
        if (w.rank() != 2 || x.cols() != w.dim(1)) {
            throw new IllegalArgumentException("linear: input " + Arrays.toString(x.shape()) + " does not fit weight "
                    + Arrays.toString(w.shape()) + " (weight is (out, in), input's last dimension must be in)");
        }
        int n = x.rows();
        int in = w.dim(1);
        int out = w.dim(0);
        int[] shape = x.shape();
        shape[shape.length - 1] = out;
        Tensor y = g.output(g.needsGrad(x, w), shape);
        Backend b = g.backend();
        b.gemm(false, true, n, out, in, 1f, x.data, 0, in, w.data, 0, in, 0f, y.data, 0, out);
        if (y.requiresGrad()) {
            g.record(y, () -> {
                float[] dy = g.grad(y);
                if (x.requiresGrad) {
                    b.gemm(false, false, n, in, out, 1f, dy, 0, out, w.data, 0, in, 1f, g.grad(x), 0, in);
                }
                if (w.requiresGrad) {
                    b.gemm(true, false, out, in, n, 1f, dy, 0, out, x.data, 0, in, 1f, g.grad(w), 0, in);
                }
            });
        }
        return y;
    }

    /**
     * y (…, M, N) = a (…, M, K) · b (…, K, N). The leading (batch) dimensions of a and b must be
     * equal, or b may be 2-D and is then shared by every batch entry.
     */
    static Tensor matmul(Graph g, Tensor a, Tensor b) {
        if (a.rank() < 2 || b.rank() < 2) {
            throw new IllegalArgumentException("matmul needs rank >= 2, got " + Arrays.toString(a.shape()) + " and " + Arrays.toString(b.shape()));
        }
        int m = a.dim(-2);
        int k = a.dim(-1);
        int n = b.dim(-1);
        if (b.dim(-2) != k) {
            throw new IllegalArgumentException("matmul: inner dimensions differ: " + Arrays.toString(a.shape()) + " · " + Arrays.toString(b.shape()));
        }
        int batchCount = 1;
        for (int i = 0; i < a.rank() - 2; i++) {
            batchCount *= a.dim(i);
        }
        final int batch = batchCount;
        boolean shared = b.rank() == 2;
        if (!shared) {
            int[] aBatch = Arrays.copyOf(a.shape(), a.rank() - 2);
            int[] bBatch = Arrays.copyOf(b.shape(), b.rank() - 2);
            if (!Arrays.equals(aBatch, bBatch)) {
                throw new IllegalArgumentException("matmul: batch dimensions differ: " + Arrays.toString(a.shape()) + " · " + Arrays.toString(b.shape()));
            }
        }
        int[] shape = a.shape();
        shape[shape.length - 1] = n;
        Tensor y = g.output(g.needsGrad(a, b), shape);
        Backend be = g.backend();
        int aStride = m * k;
        int bStride = shared ? 0 : k * n;
        int yStride = m * n;
        for (int i = 0; i < batch; i++) {
            be.gemm(false, false, m, n, k, 1f, a.data, i * aStride, k, b.data, i * bStride, n, 0f, y.data, i * yStride, n);
        }
        if (y.requiresGrad()) {
            g.record(y, () -> {
                float[] dy = g.grad(y);
                for (int i = 0; i < batch; i++) {
                    if (a.requiresGrad) {
                        be.gemm(false, true, m, k, n, 1f, dy, i * yStride, n, b.data, i * bStride, n, 1f, g.grad(a), i * aStride, k);
                    }
                    if (b.requiresGrad) {
                        be.gemm(true, false, k, n, m, 1f, a.data, i * aStride, k, dy, i * yStride, n, 1f, g.grad(b), i * bStride, n);
                    }
                }
            });
        }
        return y;
    }
}
