package dev.muon4j.optim;

import dev.muon4j.backend.Backend;
import dev.muon4j.backend.Bf16Matmul;
import dev.muon4j.backend.Kernels;
import dev.muon4j.tensor.BFloat16;
import dev.muon4j.tensor.DType;
import java.util.List;

/**
 * Newton–Schulz orthogonalisation: maps a matrix G = U·Σ·Vᵀ to approximately U·Vᵀ.
 *
 * <pre>
 * X = G / (s·‖G‖_F + eps)               transposed first when rows &gt; cols, so X is m×n with m ≤ n
 * repeat steps times, with (a, b, c) from the schedule:
 *     A = X·Xᵀ                          m×m, symmetric: a rank-k update (SYRK), half a GEMM
 *     B = b·A + c·A·A                   A·A = A·Aᵀ since A is symmetric: SYRK again
 *     X = a·X + B·X
 * transpose back
 * </pre>
 *
 * Counted the usual way the iteration costs {@code steps·(4m²n + 2m³)} flops; with the two
 * symmetric products it does {@code steps·(3m²n + m³)}.
 *
 * <p>{@link NewtonSchulzConfig.Method#GRAM} computes the same iterates another way (Gram Newton–Schulz,
 * Dao-AILab/gram-newton-schulz {@code GramNewtonSchulz._gram_newton_schulz}; DeepSpeed
 * {@code zeropower_via_gram_newtonschulz}). Each X_t equals Q_t·X_0 with Q_t a polynomial in
 * R_0 = X_0·X_0ᵀ, so the steps work on m×m matrices:
 *
 * <pre>
 * R = X·Xᵀ;  Q = I
 * each step t with (a, b, c):
 *     if t is a restart (NewtonSchulzConfig.GRAM_RESTARTS):  X = Q·X;  R = X·Xᵀ;  Q = I
 *     Z = b·R + c·R·R                   SYRK, R symmetric
 *     Q = a·Q + Q·Z                     (Q = Z + a·I when Q = I)
 *     RZ = a·R + R·Z;  R = a·RZ + Z·RZ  = (Z + aI)·R·(Z + aI), skipped when nothing reads it
 * X = Q·X
 * </pre>
 *
 * Five steps with the restart before step 2 cost {@code 6m²n + 23m³} flops against the standard
 * {@code 15m²n + 5m³}. A square input (m = n) runs the standard iteration, as in both sources.
 *
 * <p>All methods are pure functions of their inputs: input arrays are read only, the output
 * array is written, and the {@link Workspace} only holds scratch memory. The input and the
 * output may be the same array region (then the input is overwritten by the result).
 */
public final class NewtonSchulz {
    private NewtonSchulz() {
    }

    /** Scratch buffers for one matrix shape (or any smaller); reuse one per thread to avoid allocation. */
    public static final class Workspace {
        private float[] x = new float[0];
        private float[] y = new float[0];
        private float[] a = new float[0];
        private float[] b = new float[0];
        /** Gram Newton–Schulz's Q and a scratch m×m matrix; allocated only when that method runs. */
        private float[] q = new float[0];
        private float[] t = new float[0];
        /**
         * bfloat16 copies of X, Y, A and B in native memory for the bfloat16 iteration on a backend's
         * {@link Backend#bf16Matmul()}; allocated only when that runs, freed with the workspace.
         */
        private java.lang.foreign.MemorySegment xs;
        private java.lang.foreign.MemorySegment ys;
        private java.lang.foreign.MemorySegment as;
        private java.lang.foreign.MemorySegment bs;
        /** One workspace per concurrent worker of {@link #orthogonalizeBatch}; made when first needed. */
        private Workspace[] workers = new Workspace[0];

        Workspace worker(int i, int count) {
            if (workers.length < count) {
                Workspace[] grown = java.util.Arrays.copyOf(workers, count);
                for (int j = workers.length; j < count; j++) {
                    grown[j] = new Workspace();
                }
                workers = grown;
            }
            return workers[i];
        }

        void ensure(int m, int n) {
            int mn = Math.multiplyExact(m, n);
            int mm = Math.multiplyExact(m, m);
            if (x.length < mn) {
                x = new float[mn];
                y = new float[mn];
            }
            if (a.length < mm) {
                a = new float[mm];
                b = new float[mm];
            }
        }

        void ensureBf16(int m, int n) {
            long mn = (long) m * n * Short.BYTES;
            long mm = (long) m * m * Short.BYTES;
            if (xs == null || xs.byteSize() < mn) {
                xs = java.lang.foreign.Arena.ofAuto().allocate(mn, 64);
                ys = java.lang.foreign.Arena.ofAuto().allocate(mn, 64);
            }
            if (as == null || as.byteSize() < mm) {
                as = java.lang.foreign.Arena.ofAuto().allocate(mm, 64);
                bs = java.lang.foreign.Arena.ofAuto().allocate(mm, 64);
            }
        }

        void ensureGram(int m) {
            int mm = Math.multiplyExact(m, m);
            if (q.length < mm) {
                q = new float[mm];
                t = new float[mm];
            }
        }
    }

    /**
     * Orthogonalises the {@code rows×cols} row-major matrix at {@code input[inputOffset..]} into
     * {@code output[outputOffset..]} (same shape). Modifies only output (and the workspace).
     */
    public static void orthogonalize(Backend backend, NewtonSchulzConfig config,
                                     float[] input, int inputOffset, int rows, int cols,
                                     float[] output, int outputOffset, Workspace workspace) {
        checkShape(rows, cols);
        Backend.checkMatrix("Newton–Schulz input", input, inputOffset, rows, cols, cols);
        Backend.checkMatrix("Newton–Schulz output", output, outputOffset, rows, cols, cols);
        boolean transposed = rows > cols;
        int m = Math.min(rows, cols);
        int n = Math.max(rows, cols);
        boolean gram = config.method() == NewtonSchulzConfig.Method.GRAM && m < n;
        boolean bf16 = config.precision() == DType.BF16;
        // bfloat16 products work on X as it is laid out, tall or wide (transposes are strides to them)
        java.util.Optional<Bf16Matmul> bf16Products = bf16 && !gram ? backend.bf16Matmul() : java.util.Optional.empty();
        int size = m * n;
        CoefficientSchedule schedule = config.schedule();
        if (bf16Products.isPresent() && config.normalization() != NewtonSchulzConfig.Normalization.TORCH_BF16) {
            // X = bf16(G / (s·‖G‖_F + eps)) straight from the input into bfloat16: one pass, no float32 copy
            double denominator = schedule.normScale() * Math.sqrt(Kernels.sumOfSquares(input, inputOffset, size)) + config.eps();
            if (denominator == 0) {
                java.util.Arrays.fill(output, outputOffset, outputOffset + size, 0f);
                return;
            }
            double factor = 1.0 / denominator;
            if ((float) factor < Float.POSITIVE_INFINITY) {
                workspace.ensureBf16(m, n);
                Kernels.scaleToBFloat16(input, inputOffset, size, (float) factor, workspace.xs, 0);
                standardBf16(bf16Products.get(), config, rows, cols, workspace, output, outputOffset);
                return;
            }
            // 1/denominator overflows float32: the two-step scaling below
        }
        workspace.ensure(m, n);
        float[] x = workspace.x;
        if (transposed && bf16Products.isEmpty()) {
            Kernels.transpose(input, inputOffset, rows, cols, x, 0);
        } else {
            System.arraycopy(input, inputOffset, x, 0, size);
        }
        if (config.normalization() == NewtonSchulzConfig.Normalization.TORCH_BF16) {
            normalizeAsTorch(x, size, schedule.normScale(), config.eps());
        } else if (!normalize(x, size, schedule.normScale(), config.eps(), bf16)) {
            // G = 0 with eps = 0: the result is the zero matrix (dividing would give 0/0 = NaN).
            java.util.Arrays.fill(output, outputOffset, outputOffset + size, 0f);
            return;
        }
        if (bf16Products.isPresent()) {
            workspace.ensureBf16(m, n);
            Kernels.scaleToBFloat16(x, 0, size, 1f, workspace.xs, 0); // already bfloat16 values: exact
            standardBf16(bf16Products.get(), config, rows, cols, workspace, output, outputOffset);
            return;
        }
        if (gram) {
            gram(backend, config, m, n, workspace);
            x = workspace.x;
        } else {
            x = standard(backend, config, m, n, workspace);
        }
        if (transposed) {
            Kernels.transpose(x, 0, m, n, output, outputOffset);
        } else {
            System.arraycopy(x, 0, output, outputOffset, size);
        }
    }

    /** The standard iteration on the normalised X in {@code workspace.x}; returns the array holding the result. */
    private static float[] standard(Backend backend, NewtonSchulzConfig config, int m, int n, Workspace workspace) {
        int size = m * n;
        float[] x = workspace.x;
        float[] y = workspace.y;
        float[] a = workspace.a;
        float[] b = workspace.b;
        CoefficientSchedule schedule = config.schedule();
        boolean bf16 = config.precision() == DType.BF16;
        for (int step = 0; step < config.steps(); step++) {
            Coefficients k = schedule.at(step);
            // A = X·Xᵀ (upper triangle), then made full: it is the general input of the next product.
            backend.syrk(false, m, n, 1f, x, 0, n, 0f, a, 0, m);
            Kernels.symmetrizeFromUpper(a, 0, m, m);
            if (bf16) {
                Kernels.roundToBFloat16(a, 0, m * m);
            }
            // B = b·A + c·A·Aᵀ (A symmetric, so A·Aᵀ = A·A).
            System.arraycopy(a, 0, b, 0, m * m);
            backend.syrk(false, m, m, (float) k.c(), a, 0, m, (float) k.b(), b, 0, m);
            Kernels.symmetrizeFromUpper(b, 0, m, m);
            if (bf16) {
                Kernels.roundToBFloat16(b, 0, m * m);
            }
            // Y = a·X + B·X
            System.arraycopy(x, 0, y, 0, size);
            backend.gemm(false, false, m, n, m, 1f, b, 0, m, x, 0, n, (float) k.a(), y, 0, n);
            if (bf16) {
                Kernels.roundToBFloat16(y, 0, size);
            }
            float[] t = x;
            x = y;
            y = t;
        }
        // x/y may have swapped: keep the workspace's fields pointing at the two buffers.
        workspace.x = x;
        workspace.y = y;
        return x;
    }

    /**
     * The standard iteration in {@link DType#BF16} precision on bfloat16 matrices in native memory, from
     * the normalised rows×cols X in bfloat16 in {@code workspace.xs} into {@code output}:
     * the same products, each accumulated in float32 and rounded once to bfloat16, as {@link #standard}
     * computes with float32 products and rounding afterwards; only the order of the float32 sums
     * differs. A tall X (rows &gt; cols) is not transposed: the iteration runs on Xᵀ's terms, A = XᵀX and
     * X ← a·X + X·B, which are the transposes of the wide form's.
     *
     * <p>The two symmetric products, A and A·A, are computed by blocks of {@link #symmetricBlock}
     * rows: only the blocks on and below the diagonal are multiplied and those above are copied from
     * their mirror images, so p blocks do (p + 1)/(2p) of a full product's work (two thirds for the
     * 384×384 A of a 384-wide model). No library here offers a bfloat16 SYRK.
     */
    private static void standardBf16(Bf16Matmul matmul, NewtonSchulzConfig config, int rows, int cols, Workspace workspace,
                                     float[] output, int outputOffset) {
        boolean tall = rows > cols;
        int m = Math.min(rows, cols);
        int size = rows * cols;
        workspace.ensureBf16(m, Math.max(rows, cols));
        java.lang.foreign.MemorySegment x = workspace.xs;
        java.lang.foreign.MemorySegment y = workspace.ys;
        java.lang.foreign.MemorySegment a = workspace.as;
        java.lang.foreign.MemorySegment b = workspace.bs;
        long xBytes = (long) size * Short.BYTES;
        long aBytes = (long) m * m * Short.BYTES;
        CoefficientSchedule schedule = config.schedule();
        for (int step = 0; step < config.steps(); step++) {
            Coefficients k = schedule.at(step);
            // A = X·Xᵀ (wide) or Xᵀ·X (tall), m×m, symmetric: blocks on and below the diagonal
            int block = symmetricBlock(m);
            for (int i = 0; i < m; i += block) {
                int bi = Math.min(block, m - i);
                for (int j = 0; j <= i; j += block) {
                    int bj = Math.min(block, m - j);
                    java.lang.foreign.MemorySegment aij = a.asSlice(((long) i * m + j) * Short.BYTES);
                    if (tall) {
                        // Xᵀ's rows i.. are X's columns i..
                        matmul.gemm(true, false, bi, bj, rows, 1f, x.asSlice((long) i * Short.BYTES), cols,
                                x.asSlice((long) j * Short.BYTES), cols, 0f, aij, m);
                    } else {
                        matmul.gemm(false, true, bi, bj, cols, 1f, x.asSlice((long) i * cols * Short.BYTES), cols,
                                x.asSlice((long) j * cols * Short.BYTES), cols, 0f, aij, m);
                    }
                }
            }
            mirrorLowerBlocks(a, m, block);
            // B = b·A + c·A·A, symmetric too: B's block (i, j) = b·A_ij + c·(A's rows i)·(A's columns j)
            java.lang.foreign.MemorySegment.copy(a, 0, b, 0, aBytes);
            for (int i = 0; i < m; i += block) {
                int bi = Math.min(block, m - i);
                for (int j = 0; j <= i; j += block) {
                    int bj = Math.min(block, m - j);
                    matmul.gemm(false, false, bi, bj, m, (float) k.c(), a.asSlice((long) i * m * Short.BYTES), m,
                            a.asSlice((long) j * Short.BYTES), m, (float) k.b(), b.asSlice(((long) i * m + j) * Short.BYTES), m);
                }
            }
            mirrorLowerBlocks(b, m, block);
            // Y = a·X + B·X (wide) or a·X + X·B (tall)
            java.lang.foreign.MemorySegment.copy(x, 0, y, 0, xBytes);
            if (tall) {
                matmul.gemm(false, false, rows, cols, cols, 1f, x, cols, b, m, (float) k.a(), y, cols);
            } else {
                matmul.gemm(false, false, rows, cols, rows, 1f, b, m, x, cols, (float) k.a(), y, cols);
            }
            java.lang.foreign.MemorySegment t = x;
            x = y;
            y = t;
        }
        workspace.xs = x;
        workspace.ys = y;
        Kernels.fromBFloat16(x, 0, output, outputOffset, size);
    }

    /**
     * Rows per block of the symmetric products in {@link #standardBf16}: m (one block, a full
     * product) below twice {@link #symmetricMinBlock} or above {@value #SYMMETRIC_MAX_ROWS}, else m cut
     * into equal blocks of at least that many rows, rounded up to a multiple of 32 (a 64-byte cache
     * line of bfloat16).
     */
    static int symmetricBlock(int m) {
        int blocks = m / symmetricMinBlock;
        if (blocks < 2 || m > SYMMETRIC_MAX_ROWS) {
            return m;
        }
        int block = (m + blocks - 1) / blocks;
        return (block + 31) / 32 * 32;
    }

    /**
     * The smallest block of the symmetric products in {@link #standardBf16}: smaller blocks save more
     * of the products, but each runs slower (measured with one thread of oneDNN's bfloat16 matmul on
     * a Zen 5, docs/BENCHMARKS.md). Not final only so that tests can compare against one full product.
     */
    static int symmetricMinBlock = 128;

    /**
     * Above this many rows the symmetric products are full ones: on one thread, 1024×1024 ran 1.01×
     * the full products' time by blocks of 128 (0.88–0.94× at 384 and 768 rows), and on two threads a
     * product of 128-row blocks leaves them idle more (docs/BENCHMARKS.md).
     */
    static final int SYMMETRIC_MAX_ROWS = 768;

    /**
     * One row of a 4×4 tile of bfloat16 patterns, read little-endian whatever the platform: its four
     * patterns then sit in the long's 16-bit slots 0..3 in order, and each moves whole, so it is
     * written back as it was read. A constant, so that the JIT compiles its accesses to plain loads.
     */
    private static final java.lang.foreign.ValueLayout.OfLong TILE_ROW =
            java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN);

    /**
     * Copies each m×m bfloat16 matrix's blocks below the diagonal (blocks of {@code block} rows and
     * columns) onto their mirror images above it; the diagonal blocks are left as they are.
     */
    static void mirrorLowerBlocks(java.lang.foreign.MemorySegment s, int m, int block) {
        // 4×4 tiles, each row of a tile one long of four bfloat16 patterns, transposed in registers;
        // block is a multiple of 4 here (symmetricBlock), so tiles never straddle the diagonal blocks
        int tiled = block % 4 == 0 ? block + (m - block) / 4 * 4 : block;
        long rowBytes = (long) m * Short.BYTES;
        for (int i = block; i < tiled; i += 4) {
            int end = i / block * block;
            long from = i * rowBytes;
            long to = (long) i * Short.BYTES;
            for (int j = 0; j < end; j += 4) {
                long at = from + (long) j * Short.BYTES;
                long r0 = s.get(TILE_ROW, at);
                long r1 = s.get(TILE_ROW, at + rowBytes);
                long r2 = s.get(TILE_ROW, at + 2 * rowBytes);
                long r3 = s.get(TILE_ROW, at + 3 * rowBytes);
                // element e of row r sits in bits 16e..16e+15: pair rows 0,1 and 2,3, then the pairs
                long t0 = (r0 & 0x0000FFFF0000FFFFL) | ((r1 & 0x0000FFFF0000FFFFL) << 16);
                long t1 = ((r0 >>> 16) & 0x0000FFFF0000FFFFL) | (r1 & 0xFFFF0000FFFF0000L);
                long t2 = (r2 & 0x0000FFFF0000FFFFL) | ((r3 & 0x0000FFFF0000FFFFL) << 16);
                long t3 = ((r2 >>> 16) & 0x0000FFFF0000FFFFL) | (r3 & 0xFFFF0000FFFF0000L);
                long back = to + (long) j * rowBytes;
                s.set(TILE_ROW, back, (t0 & 0xFFFFFFFFL) | (t2 << 32));
                s.set(TILE_ROW, back + rowBytes, (t1 & 0xFFFFFFFFL) | (t3 << 32));
                s.set(TILE_ROW, back + 2 * rowBytes, (t0 >>> 32) | (t2 & 0xFFFFFFFF00000000L));
                s.set(TILE_ROW, back + 3 * rowBytes, (t1 >>> 32) | (t3 & 0xFFFFFFFF00000000L));
            }
        }
        for (int i = tiled; i < m; i++) {
            int end = i / block * block;
            long row = (long) i * m;
            for (int j = 0; j < end; j++) {
                s.setAtIndex(java.lang.foreign.ValueLayout.JAVA_SHORT, (long) j * m + i,
                        s.getAtIndex(java.lang.foreign.ValueLayout.JAVA_SHORT, row + j));
            }
        }
    }

    /**
     * Gram Newton–Schulz (see the class comment) on the normalised m×n X in {@code workspace.x}, m &lt; n,
     * float32; leaves the result in {@code workspace.x}. R lives in {@code workspace.a}, Z in
     * {@code workspace.b}, Q in {@code workspace.q}; {@code workspace.t} receives products before they
     * replace Q or R.
     */
    private static void gram(Backend backend, NewtonSchulzConfig config, int m, int n, Workspace workspace) {
        workspace.ensureGram(m);
        int mm = m * m;
        float[] r = workspace.a;
        float[] z = workspace.b;
        float[] q = workspace.q;
        float[] t = workspace.t;
        CoefficientSchedule schedule = config.schedule();
        int steps = config.steps();
        gramOf(backend, workspace.x, m, n, r);
        boolean qIsIdentity = true;
        for (int step = 0; step < steps; step++) {
            if (step > 0 && NewtonSchulzConfig.GRAM_RESTARTS.contains(step)) {
                applyQ(backend, q, m, n, workspace);
                gramOf(backend, workspace.x, m, n, r);
                qIsIdentity = true;
            }
            Coefficients k = schedule.at(step);
            float alpha = (float) k.a();
            // Z = b·R + c·R·Rᵀ (R symmetric, so R·Rᵀ = R·R).
            System.arraycopy(r, 0, z, 0, mm);
            backend.syrk(false, m, m, (float) k.c(), r, 0, m, (float) k.b(), z, 0, m);
            Kernels.symmetrizeFromUpper(z, 0, m, m);
            if (qIsIdentity) {
                // Q = Z + a·I
                System.arraycopy(z, 0, q, 0, mm);
                for (int i = 0; i < m; i++) {
                    q[i * m + i] += alpha;
                }
                qIsIdentity = false;
            } else {
                // Q = a·Q + Q·Z
                System.arraycopy(q, 0, t, 0, mm);
                backend.gemm(false, false, m, m, m, 1f, q, 0, m, z, 0, m, alpha, t, 0, m);
                float[] swap = q;
                q = t;
                t = swap;
            }
            boolean rNeeded = step + 1 < steps && !NewtonSchulzConfig.GRAM_RESTARTS.contains(step + 1);
            if (rNeeded) {
                // RZ = a·R + R·Z (in t), then R = a·RZ + Z·RZ: R ← (Z + aI)·R·(Z + aI), symmetric.
                System.arraycopy(r, 0, t, 0, mm);
                backend.gemm(false, false, m, m, m, 1f, r, 0, m, z, 0, m, alpha, t, 0, m);
                System.arraycopy(t, 0, r, 0, mm);
                backend.gemm(false, false, m, m, m, 1f, z, 0, m, t, 0, m, alpha, r, 0, m);
                Kernels.symmetrizeFromUpper(r, 0, m, m);
            }
        }
        workspace.q = q;
        workspace.t = t;
        applyQ(backend, q, m, n, workspace);
    }

    /** R = X·Xᵀ (m×m, both halves) of the m×n X. */
    private static void gramOf(Backend backend, float[] x, int m, int n, float[] r) {
        backend.syrk(false, m, n, 1f, x, 0, n, 0f, r, 0, m);
        Kernels.symmetrizeFromUpper(r, 0, m, m);
    }

    /** X ← Q·X on the workspace's m×n X (computed into its second buffer, then the two swap). */
    private static void applyQ(Backend backend, float[] q, int m, int n, Workspace workspace) {
        backend.gemm(false, false, m, n, m, 1f, q, 0, m, workspace.x, 0, n, 0f, workspace.y, 0, n);
        float[] swap = workspace.x;
        workspace.x = workspace.y;
        workspace.y = swap;
    }

    /** X ← X / (s·‖X‖_F + eps) (rounded to bfloat16 if asked); false when that divides by zero. */
    private static boolean normalize(float[] x, int size, double normScale, double eps, boolean bf16) {
        double norm = Math.sqrt(Kernels.sumOfSquares(x, 0, size));
        double denominator = normScale * norm + eps;
        if (denominator == 0) {
            return false;
        }
        double factor = 1.0 / denominator;
        if ((float) factor < Float.POSITIVE_INFINITY) {
            Kernels.scale(x, 0, size, (float) factor);
        } else {
            // 1/denominator overflows float32 (tiny G, eps = 0): scale in two steps.
            float half = (float) Math.sqrt(factor);
            Kernels.scale(x, 0, size, half);
            Kernels.scale(x, 0, size, (float) (factor / half));
        }
        if (bf16) {
            Kernels.roundToBFloat16(x, 0, size);
        }
        return true;
    }

    /**
     * torch.optim.Muon's normalisation in bfloat16: X ← bf16(X); ν = max(bf16(s·‖X‖_F), bf16(eps));
     * X ← bf16(X / ν) element by element (a zero matrix with eps = 0 stays zero).
     */
    private static void normalizeAsTorch(float[] x, int size, double normScale, double eps) {
        Kernels.roundToBFloat16(x, 0, size);
        float norm = BFloat16.round((float) (normScale * Math.sqrt(Kernels.sumOfSquares(x, 0, size))));
        norm = Math.max(norm, BFloat16.round((float) eps));
        if (norm == 0) {
            return;
        }
        for (int i = 0; i < size; i++) {
            x[i] = BFloat16.round(x[i] / norm);
        }
    }

    /**
     * Orthogonalises each of {@code count} stacked {@code rows×cols} matrices (a 3-D tensor, e.g.
     * the weights of all experts of an MoE layer) stored contiguously. Modifies only output.
     *
     * <p>Where the backend has {@link Backend#concurrentWorkers() concurrent workers} and the
     * matrices are at most {@value #CONCURRENT_MAX_FLOATS} floats, the stack is cut into as many
     * contiguous runs as there are workers and each run is orthogonalised on its own thread and
     * worker: many small products on one thread each waste none of their time handing work between
     * threads. Each matrix's arithmetic is the same whichever the split (its worker is fixed by its
     * index), so the result is the same on every run with the same backend.
     */
    public static void orthogonalizeBatch(Backend backend, NewtonSchulzConfig config,
                                          float[] input, int inputOffset, int count, int rows, int cols,
                                          float[] output, int outputOffset, Workspace workspace) {
        if (count < 0) {
            throw new IllegalArgumentException("batch count must be >= 0, got " + count);
        }
        checkShape(rows, cols);
        int size = Math.multiplyExact(rows, cols);
        List<Backend> workers = backend.concurrentWorkers();
        if (workers.size() < 2 || count < 2 || size > CONCURRENT_MAX_FLOATS) {
            for (int i = 0; i < count; i++) {
                orthogonalize(backend, config, input, inputOffset + i * size, rows, cols,
                        output, outputOffset + i * size, workspace);
            }
            return;
        }
        int parts = Math.min(workers.size(), count);
        SideBySide.run(parts, p -> {
            int from = (int) ((long) count * p / parts);
            int to = (int) ((long) count * (p + 1) / parts);
            Backend worker = workers.get(p);
            Workspace space = workspace.worker(p, parts);
            for (int i = from; i < to; i++) {
                orthogonalize(worker, config, input, inputOffset + i * size, rows, cols, output, outputOffset + i * size, space);
            }
        });
    }

    /**
     * The largest matrix (in floats) {@link #orthogonalizeBatch} splits over concurrent workers: above
     * it one product on all threads keeps them busy, and each worker's own workspace would cost more.
     */
    static final int CONCURRENT_MAX_FLOATS = 1 << 20;

    /**
     * Orthogonalises every matrix of a list of same-shape {@code rows×cols} matrices in one call
     * (each input array holds one matrix at offset 0); {@code outputs.get(i)} receives the result
     * of {@code inputs.get(i)}. Modifies only the outputs.
     */
    public static void orthogonalizeAll(Backend backend, NewtonSchulzConfig config, int rows, int cols,
                                        List<float[]> inputs, List<float[]> outputs, Workspace workspace) {
        if (inputs.size() != outputs.size()) {
            throw new IllegalArgumentException("inputs (" + inputs.size() + ") and outputs (" + outputs.size() + ") differ in count");
        }
        for (int i = 0; i < inputs.size(); i++) {
            orthogonalize(backend, config, inputs.get(i), 0, rows, cols, outputs.get(i), 0, workspace);
        }
    }

    /** Allocating convenience form of {@link #orthogonalize}: returns a new rows×cols array. */
    public static float[] orthogonalize(Backend backend, NewtonSchulzConfig config, float[] input, int rows, int cols) {
        float[] out = new float[Math.multiplyExact(rows, cols)];
        orthogonalize(backend, config, input, 0, rows, cols, out, 0, new Workspace());
        return out;
    }

    /** Flops of one call as conventionally counted: {@code steps·(4m²n + 2m³)}, m = min(rows, cols), n = max. */
    public static double conventionalFlops(int rows, int cols, int steps) {
        double m = Math.min(rows, cols);
        double n = Math.max(rows, cols);
        return steps * (4 * m * m * n + 2 * m * m * m);
    }

    private static void checkShape(int rows, int cols) {
        if (rows < 1 || cols < 1) {
            throw new IllegalArgumentException("Newton–Schulz needs a matrix of positive size, got " + rows + "×" + cols);
        }
    }
}
