package dev.muon4j.cuda;

import dev.muon4j.optim.Coefficients;
import dev.muon4j.optim.NewtonSchulzConfig;
import dev.muon4j.tensor.DType;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;

/**
 * Newton–Schulz on the GPU for a batch of same-shape matrices in device memory: the arithmetic of
 * muon4j-core's {@code NewtonSchulz} (the standard quintic iteration, normalised by
 * {@code s·‖G‖_F + eps}), with every product one cuBLAS call over the whole batch.
 *
 * <pre>
 * X = G / (s·‖G‖_F + eps)                  per matrix (sums of squares in double)
 * repeat: A = X·Xᵀ;  B = b·A + c·A·A;  X ← a·X + B·X
 * </pre>
 *
 * <p>In {@link DType#BF16} precision X, A and B are bfloat16 and every product accumulates in float32
 * and is rounded once (as the CPU's bfloat16 mode and the reference GPU implementations); in
 * {@link DType#F32} everything is float32 ({@code CUBLAS_COMPUTE_32F}, no TF32).
 *
 * <p>No matrix is transposed: a row-major rows×cols X is, to column-major cuBLAS, its transpose, so
 * a wide X (rows ≤ cols) computes A = XᵀX in cuBLAS's terms with operands swapped, and a tall one
 * works on the m×m Gram matrix of its columns; each form is the transpose of the other's.
 *
 * <p>The symmetric products A and A·A can be computed by blocks (p×p blocks of m/p, only the blocks on
 * and above the diagonal, then the rest mirrored by a kernel): (p + 1)/(2p) of the work. All the
 * blocks of all matrices of the batch are one {@code cublasGemmBatchedEx} call.
 */
public final class CudaNewtonSchulz implements AutoCloseable {
    private final CudaDevice device;
    private final NewtonSchulzConfig config;
    private final int rows;
    private final int cols;
    private final int batch;
    private final int m;
    private final int n;
    private final boolean tall;
    private final boolean bf16;
    private final int type;
    private final int elementBytes;
    private final int blocks;
    private final DeviceArray x;
    private final DeviceArray y;
    private final DeviceArray a;
    private final DeviceArray b;
    private final DeviceArray sumsq;
    /** Device arrays of pointers for the blocked products: A from X in x, A from X in y, A·A into B. */
    private final long[] gramPointers = new long[6];
    private final long[] squarePointers = new long[3];
    private final int blockProducts;
    private final Arena scalars = Arena.ofShared();
    /** B = c·A·A + b·A and X' = B·X + a·X (or X·B + a·X) as cuBLASLt matmuls that read A and X without copying them; null where cuBLASLt offers no algorithm. */
    private final LtProduct squareLt;
    private final LtProduct[] stepLt = new LtProduct[2];
    private final MemorySegment one;
    private final MemorySegment zero;
    private final MemorySegment alpha;
    private final MemorySegment beta;
    private boolean closed;

    /**
     * Workspace for {@code batch} matrices of rows × cols.
     *
     * @param symmetricBlocks p, the blocks per side of the symmetric products (1: whole products); must divide
     *                        min(rows, cols)
     */
    public CudaNewtonSchulz(CudaDevice device, NewtonSchulzConfig config, int rows, int cols, int batch, int symmetricBlocks) {
        check(config);
        if (rows < 1 || cols < 1 || batch < 1) {
            throw new IllegalArgumentException("Newton–Schulz on the GPU needs rows, cols and batch >= 1, got " + rows + "×" + cols
                    + " × " + batch);
        }
        if (batch > 65_535) {
            throw new IllegalArgumentException("Newton–Schulz on the GPU runs at most 65535 matrices at once (a grid's y size), got "
                    + batch);
        }
        this.m = Math.min(rows, cols);
        if (symmetricBlocks < 1 || m % symmetricBlocks != 0) {
            throw new IllegalArgumentException("symmetric blocks must divide " + m + " (the smaller side of " + rows + "×" + cols
                    + "), got " + symmetricBlocks);
        }
        this.device = device;
        this.config = config;
        this.rows = rows;
        this.cols = cols;
        this.batch = batch;
        this.n = Math.max(rows, cols);
        this.tall = rows > cols;
        this.bf16 = config.precision() == DType.BF16;
        this.type = bf16 ? CudaApi.R_16BF : CudaApi.R_32F;
        this.elementBytes = bf16 ? 2 : 4;
        this.blocks = symmetricBlocks;
        DeviceArray.Type t = bf16 ? DeviceArray.Type.BF16 : DeviceArray.Type.F32;
        long size = (long) m * n;
        this.x = device.allocate(size * batch, t);
        this.y = device.allocate(size * batch, t);
        this.a = device.allocate((long) m * m * batch, t);
        this.b = device.allocate((long) m * m * batch, t);
        this.sumsq = device.allocate(batch, DeviceArray.Type.F64);
        this.blockProducts = blocks * (blocks + 1) / 2 * batch;
        if (blocks > 1) {
            buildPointers();
        }
        long xs = (long) m * n;
        long as = (long) m * m;
        this.squareLt = blocks == 1 ? LtProduct.of(device, scalars, type, CudaApi.OP_N, CudaApi.OP_N, m, m, m, m, as, m, as, m, as, batch)
                : null;
        for (int s = 0; s < 2; s++) {
            stepLt[s] = tall ? LtProduct.of(device, scalars, type, CudaApi.OP_N, CudaApi.OP_N, m, n, m, m, as, m, xs, m, xs, batch)
                    : LtProduct.of(device, scalars, type, CudaApi.OP_N, CudaApi.OP_N, n, m, m, n, xs, m, as, n, xs, batch);
        }
        this.one = scalars.allocateFrom(ValueLayout.JAVA_FLOAT, 1f);
        this.zero = scalars.allocateFrom(ValueLayout.JAVA_FLOAT, 0f);
        this.alpha = scalars.allocate(ValueLayout.JAVA_FLOAT);
        this.beta = scalars.allocate(ValueLayout.JAVA_FLOAT);
    }

    /**
     * A default for {@code symmetricBlocks}: 4 where the smaller side is at least 2048 (and divisible by 4), else 1.
     * Measured on an H200 (docs/results/gpu-h200): NS5 bf16 4096² 2.750 ms with 4 blocks against 2.857 with 2 and
     * 2.876 whole; at 768 (GPT-2 small's matrices, batches of 12) blocks lost: the step 4.25 ms with 4 and 4.43 with
     * 2 against 3.93 whole. Sides between 1024 and 2048 were not measured and stay whole.
     */
    public static int defaultBlocks(int rows, int cols) {
        int m = Math.min(rows, cols);
        return m >= 2048 && m % 4 == 0 ? 4 : 1;
    }

    /** Refuses what the GPU does not compute, naming it. */
    static void check(NewtonSchulzConfig config) {
        if (config.method() != NewtonSchulzConfig.Method.STANDARD) {
            throw new IllegalArgumentException("Newton–Schulz on CUDA runs the standard iteration only, not " + config.method());
        }
        if (config.normalization() != NewtonSchulzConfig.Normalization.FROBENIUS_PLUS_EPS) {
            throw new IllegalArgumentException("Newton–Schulz on CUDA normalises by s·‖G‖_F + eps (FROBENIUS_PLUS_EPS) only, not "
                    + config.normalization());
        }
        if (config.precision() != DType.F32 && config.precision() != DType.BF16) {
            throw new IllegalArgumentException("Newton–Schulz on CUDA runs in F32 or BF16, not " + config.precision());
        }
    }

    private void buildPointers() {
        long bs = m / blocks;
        int count = blockProducts;
        long[][] gramA = {new long[count], new long[count]};
        long[][] gramB = {new long[count], new long[count]};
        long[] gramC = new long[count];
        long[] sqA = new long[count];
        long[] sqB = new long[count];
        long[] sqC = new long[count];
        long xs = (long) m * n;
        long as = (long) m * m;
        int k = 0;
        for (int e = 0; e < batch; e++) {
            for (int i = 0; i < blocks; i++) {
                for (int j = i; j < blocks; j++) {
                    // C's block (i, j), column-major: row offset i·bs, column offset j·bs·m.
                    long cOff = e * as + i * bs + j * bs * m;
                    long[] xBase = {x.address(), y.address()};
                    for (int s = 0; s < 2; s++) {
                        long base = xBase[s] + e * xs * elementBytes;
                        if (tall) {
                            // Y (m×n, ld m): rows i·bs.. and j·bs..
                            gramA[s][k] = base + i * bs * elementBytes;
                            gramB[s][k] = base + j * bs * elementBytes;
                        } else {
                            // Y (n×m, ld n): columns i·bs.. and j·bs..
                            gramA[s][k] = base + i * bs * n * elementBytes;
                            gramB[s][k] = base + j * bs * n * elementBytes;
                        }
                    }
                    gramC[k] = a.address() + cOff * elementBytes;
                    // A·A: A's rows i·bs.. times A's columns j·bs.., into B's block (i, j)
                    sqA[k] = a.address() + (e * as + i * bs) * elementBytes;
                    sqB[k] = a.address() + (e * as + j * bs * m) * elementBytes;
                    sqC[k] = b.address() + cOff * elementBytes;
                    k++;
                }
            }
        }
        gramPointers[0] = device.uploadLongs(gramA[0]);
        gramPointers[1] = device.uploadLongs(gramB[0]);
        gramPointers[2] = device.uploadLongs(gramA[1]);
        gramPointers[3] = device.uploadLongs(gramB[1]);
        gramPointers[4] = device.uploadLongs(gramC);
        gramPointers[5] = 0;
        squarePointers[0] = device.uploadLongs(sqA);
        squarePointers[1] = device.uploadLongs(sqB);
        squarePointers[2] = device.uploadLongs(sqC);
    }

    public int rows() {
        return rows;
    }

    public int cols() {
        return cols;
    }

    public int batch() {
        return batch;
    }

    /** Whether the result is bfloat16 ({@link DType#BF16} precision) rather than float32. */
    public boolean bf16() {
        return bf16;
    }

    public int symmetricBlocks() {
        return blocks;
    }

    /**
     * Orthogonalizes the batch of float32 matrices at device address {@code input} (batch × rows × cols,
     * row-major, unchanged) and returns the device address of the result, rows × cols each in the same
     * layout, float32 or bfloat16 as {@link #bf16} says, in this workspace (valid until the next call).
     */
    public long orthogonalize(long input) {
        if (closed) {
            throw new IllegalStateException("Newton–Schulz workspace closed");
        }
        CudaKernels k = device.kernels;
        long size = (long) m * n;
        k.sumSquares(input, size, batch, sumsq.address());
        k.normalize(bf16, input, x.address(), size, batch, sumsq.address(), config.schedule().normScale(), config.eps());
        boolean inX = true;
        for (int step = 0; step < config.steps(); step++) {
            Coefficients c = config.schedule().at(step);
            long cur = inX ? x.address() : y.address();
            long next = inX ? y.address() : x.address();
            gram(cur, inX ? 0 : 2);
            square((float) c.b(), (float) c.c());
            alpha.set(ValueLayout.JAVA_FLOAT, 0, 1f);
            beta.set(ValueLayout.JAVA_FLOAT, 0, (float) c.a());
            LtProduct lt = stepLt[inX ? 0 : 1];
            if (lt != null) {
                // X ← B·X + a·X (tall: Y ← B·Y + a·Y; wide: Y ← Y·B + a·Y), reading X where it is
                if (tall) {
                    lt.run(device, alpha, b.address(), cur, beta, cur, next);
                } else {
                    lt.run(device, alpha, cur, b.address(), beta, cur, next);
                }
                inX = !inX;
                continue;
            }
            // X ← a·X + B·X: next = copy of X, then next = B·X + a·next
            device.copy(next, cur, size * batch * elementBytes);
            if (tall) {
                // Y (m×n, ld m) ← B·Y + a·Y
                device.cuda.gemmStridedBatchedEx(device.cublas, CudaApi.OP_N, CudaApi.OP_N, m, n, m, alpha, b.address(), type, m,
                        (long) m * m, cur, type, m, size, beta, next, type, m, size, batch);
            } else {
                // Y (n×m, ld n) ← Y·B + a·Y
                device.cuda.gemmStridedBatchedEx(device.cublas, CudaApi.OP_N, CudaApi.OP_N, n, m, m, alpha, cur, type, n, size,
                        b.address(), type, m, (long) m * m, beta, next, type, n, size, batch);
            }
            inX = !inX;
        }
        return inX ? x.address() : y.address();
    }

    /** Orthogonalizes {@code input} and writes the float32 result to {@code output} (which may be {@code input}). */
    public void orthogonalize(long input, long output) {
        long result = orthogonalize(input);
        long count = (long) rows * cols * batch;
        if (bf16) {
            device.kernels.bf16ToF32(result, output, count);
        } else {
            device.copy(output, result, count * Float.BYTES);
        }
    }

    /** A = X·Xᵀ of the X at {@code cur} (pointer set {@code set} for the blocked form). */
    private void gram(long cur, int set) {
        long size = (long) m * n;
        if (blocks == 1) {
            if (tall) {
                device.cuda.gemmStridedBatchedEx(device.cublas, CudaApi.OP_N, CudaApi.OP_T, m, m, n, one, cur, type, m, size, cur, type, m,
                        size, zero, a.address(), type, m, (long) m * m, batch);
            } else {
                device.cuda.gemmStridedBatchedEx(device.cublas, CudaApi.OP_T, CudaApi.OP_N, m, m, n, one, cur, type, n, size, cur, type, n,
                        size, zero, a.address(), type, m, (long) m * m, batch);
            }
            return;
        }
        int bs = m / blocks;
        if (tall) {
            device.cuda.gemmBatchedEx(device.cublas, CudaApi.OP_N, CudaApi.OP_T, bs, bs, n, one, gramPointers[set], type, m,
                    gramPointers[set + 1], type, m, zero, gramPointers[4], type, m, blockProducts);
        } else {
            device.cuda.gemmBatchedEx(device.cublas, CudaApi.OP_T, CudaApi.OP_N, bs, bs, n, one, gramPointers[set], type, n,
                    gramPointers[set + 1], type, n, zero, gramPointers[4], type, m, blockProducts);
        }
        device.kernels.mirror(bf16, a.address(), m, bs, batch);
    }

    /** B = b·A + c·A·A. */
    private void square(float coefB, float coefC) {
        alpha.set(ValueLayout.JAVA_FLOAT, 0, coefC);
        beta.set(ValueLayout.JAVA_FLOAT, 0, coefB);
        if (squareLt != null) {
            squareLt.run(device, alpha, a.address(), a.address(), beta, a.address(), b.address());
            return;
        }
        device.copy(b.address(), a.address(), (long) m * m * batch * elementBytes);
        if (blocks == 1) {
            device.cuda.gemmStridedBatchedEx(device.cublas, CudaApi.OP_N, CudaApi.OP_N, m, m, m, alpha, a.address(), type, m, (long) m * m,
                    a.address(), type, m, (long) m * m, beta, b.address(), type, m, (long) m * m, batch);
            return;
        }
        int bs = m / blocks;
        device.cuda.gemmBatchedEx(device.cublas, CudaApi.OP_N, CudaApi.OP_N, bs, bs, m, alpha, squarePointers[0], type, m,
                squarePointers[1], type, m, beta, squarePointers[2], type, m, blockProducts);
        device.kernels.mirror(bf16, b.address(), m, bs, batch);
    }

    /**
     * One batched cuBLASLt matmul shape, D = alpha·A·B + beta·C with C and D separate (column-major, no
     * transposes), its algorithm chosen once by cuBLASLt's heuristic.
     */
    private static final class LtProduct {
        final MemorySegment desc;
        final MemorySegment[] layouts;
        final MemorySegment algo;

        private LtProduct(MemorySegment desc, MemorySegment[] layouts, MemorySegment algo) {
            this.desc = desc;
            this.layouts = layouts;
            this.algo = algo;
        }

        /** The product of rows×k A (ld lda, stride sa) and k×cols B into rows×cols C and D (ld ldc, stride sc); null without an algorithm. */
        static LtProduct of(CudaDevice device, Arena arena, int type, int opA, int opB, int rows, int cols, int k, int lda, long sa,
                            int ldb, long sb, int ldc, long sc, int batch) {
            CudaApi cuda = device.cuda;
            MemorySegment desc = cuda.ltDesc(opA, opB);
            MemorySegment[] layouts = {cuda.ltLayout(type, rows, k, lda, batch, sa), cuda.ltLayout(type, k, cols, ldb, batch, sb),
                cuda.ltLayout(type, rows, cols, ldc, batch, sc), cuda.ltLayout(type, rows, cols, ldc, batch, sc)};
            MemorySegment algo = arena.allocate(64, 8);
            if (!cuda.ltHeuristic(device.cublasLt, desc, layouts[0], layouts[1], layouts[2], layouts[3], CudaDevice.LT_WORKSPACE_BYTES,
                    algo)) {
                new LtProduct(desc, layouts, algo).close(device);
                return null;
            }
            return new LtProduct(desc, layouts, algo);
        }

        void run(CudaDevice device, MemorySegment alpha, long a, long b, MemorySegment beta, long c, long d) {
            device.cuda.ltMatmul(device.cublasLt, desc, alpha, a, layouts[0], b, layouts[1], beta, c, layouts[2], d, layouts[3], algo,
                    device.ltWorkspace, CudaDevice.LT_WORKSPACE_BYTES, device.stream);
        }

        void close(CudaDevice device) {
            for (MemorySegment l : layouts) {
                device.cuda.ltLayoutDestroy(l);
            }
            device.cuda.ltDescDestroy(desc);
        }
    }

    /** Whether the products run on cuBLASLt without copies (false where it offered no algorithm: copies and cuBLAS then). */
    public boolean usesLt() {
        return stepLt[0] != null && stepLt[1] != null;
    }

    /** Bytes of device memory this workspace holds: X and its next value, A, B, the sums of squares, the pointer arrays. */
    public long deviceBytes() {
        long matrices = 2L * m * n * batch * elementBytes + 2L * m * m * batch * elementBytes;
        long pointers = blocks > 1 ? 8L * blockProducts * Long.BYTES : 0;
        return matrices + (long) batch * Double.BYTES + pointers;
    }

    /** Flops of one call as conventionally counted (whole products): {@code batch·steps·(4m²n + 2m³)}. */
    public double conventionalFlops() {
        double mm = m;
        return (double) batch * config.steps() * (4 * mm * mm * n + 2 * mm * mm * mm);
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        device.synchronize();
        List<Long> pointers = new ArrayList<>();
        for (long p : gramPointers) {
            pointers.add(p);
        }
        for (long p : squarePointers) {
            pointers.add(p);
        }
        for (long p : pointers) {
            if (p != 0) {
                device.free(p);
            }
        }
        if (squareLt != null) {
            squareLt.close(device);
        }
        for (LtProduct p : stepLt) {
            if (p != null) {
                p.close(device);
            }
        }
        x.close();
        y.close();
        a.close();
        b.close();
        sumsq.close();
        scalars.close();
    }
}
