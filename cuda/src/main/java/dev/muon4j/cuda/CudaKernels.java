package dev.muon4j.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.HashMap;
import java.util.Map;

/**
 * muon4j's own GPU kernels: the elementwise parts of the optimizer step (Muon's momentum, Adam's
 * moments, the decoupled update, plain and cautious, AdamW fused), and the parts of Newton–Schulz
 * cuBLAS has no call for (per-matrix sums of squares, the normalisation into float32 or bfloat16,
 * the mirror of a symmetric product's lower blocks, bfloat16 to float32).
 *
 * <p>They are CUDA C++ compiled by NVRTC when the device opens, for its exact architecture, with
 * {@code --fmad=false}: every multiply and add is rounded on its own, as Java's float arithmetic is,
 * so the elementwise kernels give the bits of muon4j-core's scalar kernels ({@code PlainKernels}).
 * bfloat16 is handled as its 16 bits (round to nearest even, as {@code BFloat16.round}), so no CUDA
 * header is needed.
 */
final class CudaKernels implements AutoCloseable {
    static final int THREADS = 256;

    static final String SOURCE = """
            typedef unsigned short bf16_t;
            typedef long long i64;

            __device__ __forceinline__ float bf2f(bf16_t h) { return __uint_as_float(((unsigned) h) << 16); }

            // Round to nearest even, NaN kept a (quiet) NaN: BFloat16.round's rule.
            __device__ __forceinline__ bf16_t f2bf(float f) {
                unsigned u = __float_as_uint(f);
                if ((u & 0x7fffffffu) > 0x7f800000u) return (bf16_t) ((u >> 16) | 0x40u);
                u += 0x7fffu + ((u >> 16) & 1u);
                return (bf16_t) (u >> 16);
            }

            __device__ __forceinline__ float load(const float* p, i64 i) { return p[i]; }
            __device__ __forceinline__ float load(const bf16_t* p, i64 i) { return bf2f(p[i]); }
            __device__ __forceinline__ void store(float* p, i64 i, float v) { p[i] = v; }
            __device__ __forceinline__ void store(bf16_t* p, i64 i, float v) { p[i] = f2bf(v); }

            #define GRID_STRIDE(i, n) for (i64 i = (i64) blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64) gridDim.x * blockDim.x)

            // out[b] += sum of squares of matrix b (blockIdx.y), in double; out zeroed beforehand.
            extern "C" __global__ void sum_squares(const float* x, i64 per, double* out) {
                const float* xm = x + (i64) blockIdx.y * per;
                double s = 0;
                GRID_STRIDE(i, per) { double v = xm[i]; s += v * v; }
                for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
                __shared__ double warps[32];
                int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
                if (lane == 0) warps[w] = s;
                __syncthreads();
                if (w == 0) {
                    s = lane < (int) (blockDim.x >> 5) ? warps[lane] : 0.0;
                    for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
                    if (lane == 0) atomicAdd(out + blockIdx.y, s);
                }
            }

            // X = G / (s·‖G‖ + eps) per matrix (blockIdx.y), the factor in double, the product in float32
            // (NewtonSchulz.normalize's arithmetic); zero where the denominator is 0.
            template <typename T>
            __device__ void normalize_impl(const float* in, T* out, i64 per, const double* sumsq, double normScale, double eps) {
                i64 base = (i64) blockIdx.y * per;
                double denominator = normScale * sqrt(sumsq[blockIdx.y]) + eps;
                if (denominator == 0.0) { GRID_STRIDE(i, per) store(out, base + i, 0.0f); return; }
                double factor = 1.0 / denominator;
                float f = (float) factor;
                if ((__float_as_uint(f) & 0x7fffffffu) == 0x7f800000u) {
                    float half = (float) sqrt(factor);
                    float rest = (float) (factor / half);
                    GRID_STRIDE(i, per) store(out, base + i, (in[base + i] * half) * rest);
                } else {
                    GRID_STRIDE(i, per) store(out, base + i, in[base + i] * f);
                }
            }
            extern "C" __global__ void normalize_f32(const float* in, float* out, i64 per, const double* sumsq, double s, double eps) {
                normalize_impl(in, out, per, sumsq, s, eps);
            }
            extern "C" __global__ void normalize_bf16(const float* in, bf16_t* out, i64 per, const double* sumsq, double s, double eps) {
                normalize_impl(in, out, per, sumsq, s, eps);
            }

            extern "C" __global__ void bf16_to_f32(const bf16_t* in, float* out, i64 n) {
                GRID_STRIDE(i, n) out[i] = bf2f(in[i]);
            }

            // In each column-major m×m matrix (blockIdx.y) whose blocks on and above the block diagonal are
            // computed, fills the blocks below it from their mirror images, by 32×32 tiles through shared memory.
            template <typename T>
            __device__ void mirror_impl(T* c, int m, int block) {
                __shared__ T tile[32][33];
                T* cm = c + (i64) blockIdx.y * m * m;
                int tiles = (m + 31) / 32;
                int r0 = (blockIdx.x % tiles) * 32, c0 = (blockIdx.x / tiles) * 32;
                if (min(r0 + 31, m - 1) / block <= c0 / block) return;
                int tx = threadIdx.x, ty = threadIdx.y;
                for (int j = ty; j < 32; j += blockDim.y) {
                    int sr = c0 + tx, sc = r0 + j;
                    if (sr < m && sc < m) tile[j][tx] = cm[sr + (i64) sc * m];
                }
                __syncthreads();
                for (int j = ty; j < 32; j += blockDim.y) {
                    int dr = r0 + tx, dc = c0 + j;
                    if (dr < m && dc < m && dr / block > dc / block) cm[dr + (i64) dc * m] = tile[tx][j];
                }
            }
            extern "C" __global__ void mirror_f32(float* c, int m, int block) { mirror_impl(c, m, block); }
            extern "C" __global__ void mirror_bf16(bf16_t* c, int m, int block) { mirror_impl(c, m, block); }

            // Muon's momentum (PlainKernels.muonMomentum): gScale = 1 - beta (EMA) or 1 (classic).
            extern "C" __global__ void muon_momentum(const float* g, float* m, float* u, i64 n, float gScale, float beta, int nesterov) {
                GRID_STRIDE(i, n) {
                    float gv = gScale * g[i];
                    float mv = beta * m[i] + gv;
                    m[i] = mv;
                    u[i] = nesterov ? beta * mv + gv : mv;
                }
            }

            __device__ __forceinline__ float adam(float gv, float* m, float* v, i64 i, float b1, float b2, float omb1, float omb2,
                                                  float eps, float invBc1, float invBc2) {
                float mv = b1 * m[i] + omb1 * gv;
                float vv = b2 * v[i] + omb2 * (gv * gv);
                m[i] = mv;
                v[i] = vv;
                return (mv * invBc1) / (sqrtf(vv * invBc2) + eps);
            }

            // Adam's bias-corrected moments (PlainKernels.adamMoments): u = m̂ / (√v̂ + eps).
            extern "C" __global__ void adam_moments(const float* g, float* m, float* v, float* u, i64 n, float b1, float b2,
                                                    float omb1, float omb2, float eps, float invBc1, float invBc2) {
                GRID_STRIDE(i, n) u[i] = adam(g[i], m, v, i, b1, b2, omb1, omb2, eps, invBc1, invBc2);
            }

            __device__ __forceinline__ float decayed(float wv, float ov, float decay, float step, int cautious) {
                return cautious ? (wv * ov >= 0.0f ? wv * decay : wv) - step * ov : wv * decay - step * ov;
            }

            // The decoupled update W ← W·decay − step·U (PlainKernels.decayAndSubtract), or cautious
            // (PlainKernels.cautiousDecayAndSubtract), U in float32 or bfloat16.
            extern "C" __global__ void decay_update_f32(float* w, const float* u, i64 n, float decay, float step, int cautious) {
                GRID_STRIDE(i, n) w[i] = decayed(w[i], u[i], decay, step, cautious);
            }
            extern "C" __global__ void decay_update_bf16(float* w, const bf16_t* u, i64 n, float decay, float step, int cautious) {
                GRID_STRIDE(i, n) w[i] = decayed(w[i], bf2f(u[i]), decay, step, cautious);
            }

            // Adam's moments and the decoupled update in one pass: the same arithmetic as the two kernels above.
            extern "C" __global__ void adamw(float* w, const float* g, float* m, float* v, i64 n, float b1, float b2, float omb1,
                                             float omb2, float eps, float invBc1, float invBc2, float decay, float step, int cautious) {
                GRID_STRIDE(i, n) w[i] = decayed(w[i], adam(g[i], m, v, i, b1, b2, omb1, omb2, eps, invBc1, invBc2), decay, step, cautious);
            }

            extern "C" __global__ void scale_f32(float* x, i64 n, float f) {
                GRID_STRIDE(i, n) x[i] = x[i] * f;
            }
            """;

    private static final String[] NAMES = {"sum_squares", "normalize_f32", "normalize_bf16", "bf16_to_f32", "mirror_f32", "mirror_bf16",
        "muon_momentum", "adam_moments", "decay_update_f32", "decay_update_bf16", "adamw", "scale_f32"};

    private final CudaDevice device;
    private final MemorySegment module;
    private final Map<String, MemorySegment> functions = new HashMap<>();
    private final int maxBlocks;

    CudaKernels(CudaDevice device) {
        this.device = device;
        CudaApi cuda = device.cuda;
        String arch = "--gpu-architecture=sm_" + device.capabilityMajor() + device.capabilityMinor();
        byte[] cubin = cuda.compile(SOURCE, "muon4j_kernels.cu", arch, "--fmad=false", "--std=c++17");
        try (Arena a = Arena.ofConfined()) {
            MemorySegment image = a.allocate(cubin.length);
            MemorySegment.copy(cubin, 0, image, ValueLayout.JAVA_BYTE, 0, cubin.length);
            this.module = cuda.moduleLoad(image);
        }
        for (String name : NAMES) {
            functions.put(name, cuda.moduleFunction(module, name));
        }
        this.maxBlocks = Math.max(1, device.multiprocessors() * 16);
    }

    /** Blocks of {@link #THREADS} for a grid-stride loop over {@code n} elements. */
    int blocksFor(long n) {
        return (int) Math.max(1, Math.min(maxBlocks, (n + THREADS - 1) / THREADS));
    }

    /**
     * Enqueues kernel {@code name} on the device's stream. Arguments: {@code Long} (a device address or a
     * 64-bit integer), {@code Integer}, {@code Float} or {@code Double}, in the kernel's order.
     */
    void launch(String name, int gridX, int gridY, int blockX, int blockY, Object... args) {
        MemorySegment function = functions.get(name);
        if (function == null) {
            throw new IllegalArgumentException("no kernel " + name);
        }
        device.makeCurrent();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment params = a.allocate(ValueLayout.ADDRESS, args.length);
            for (int i = 0; i < args.length; i++) {
                MemorySegment slot = switch (args[i]) {
                    case Long v -> a.allocateFrom(ValueLayout.JAVA_LONG, v);
                    case Integer v -> a.allocateFrom(ValueLayout.JAVA_INT, v);
                    case Float v -> a.allocateFrom(ValueLayout.JAVA_FLOAT, v);
                    case Double v -> a.allocateFrom(ValueLayout.JAVA_DOUBLE, v);
                    default -> throw new IllegalArgumentException("kernel " + name + " argument " + i + ": " + args[i].getClass());
                };
                params.setAtIndex(ValueLayout.ADDRESS, i, slot);
            }
            device.cuda.launch(function, name, gridX, gridY, blockX, blockY, device.stream, params);
        }
    }

    /** An elementwise grid-stride kernel over {@code n} elements. */
    void elementwise(String name, long n, Object... args) {
        if (n > 0) {
            launch(name, blocksFor(n), 1, THREADS, 1, args);
        }
    }

    // ---- the kernels, typed

    /** out[b] = Σ x² over matrix b of {@code batch} matrices of {@code per} floats at {@code x}. */
    void sumSquares(long x, long per, int batch, long out) {
        device.zero(out, (long) batch * Double.BYTES);
        int blocks = (int) Math.max(1, Math.min(1024, (per + THREADS - 1) / THREADS));
        launch("sum_squares", blocks, batch, THREADS, 1, x, per, out);
    }

    void normalize(boolean bf16, long in, long out, long per, int batch, long sumsq, double normScale, double eps) {
        int blocks = (int) Math.max(1, Math.min(1024, (per + THREADS - 1) / THREADS));
        launch(bf16 ? "normalize_bf16" : "normalize_f32", blocks, batch, THREADS, 1, in, out, per, sumsq, normScale, eps);
    }

    void bf16ToF32(long in, long out, long n) {
        elementwise("bf16_to_f32", n, in, out, n);
    }

    void mirror(boolean bf16, long c, int m, int block, int batch) {
        int tiles = (m + 31) / 32;
        launch(bf16 ? "mirror_bf16" : "mirror_f32", tiles * tiles, batch, 32, 8, c, m, block);
    }

    void muonMomentum(long g, long m, long u, long n, float gScale, float beta, boolean nesterov) {
        elementwise("muon_momentum", n, g, m, u, n, gScale, beta, nesterov ? 1 : 0);
    }

    void adamMoments(long g, long m, long v, long u, long n, AdamScalars s) {
        elementwise("adam_moments", n, g, m, v, u, n, s.beta1, s.beta2, s.oneMinusBeta1, s.oneMinusBeta2, s.eps, s.invBc1, s.invBc2);
    }

    void decayUpdate(boolean bf16, long w, long u, long n, float decay, float step, boolean cautious) {
        elementwise(bf16 ? "decay_update_bf16" : "decay_update_f32", n, w, u, n, decay, step, cautious ? 1 : 0);
    }

    void adamw(long w, long g, long m, long v, long n, AdamScalars s, float decay, float step, boolean cautious) {
        elementwise("adamw", n, w, g, m, v, n, s.beta1, s.beta2, s.oneMinusBeta1, s.oneMinusBeta2, s.eps, s.invBc1, s.invBc2, decay, step,
                cautious ? 1 : 0);
    }

    void scale(long x, long n, float factor) {
        elementwise("scale_f32", n, x, n, factor);
    }

    /** Adam's float32 scalars of step t, computed as {@code Transforms.AdamMoments} and {@code PlainKernels.adamMoments} compute them. */
    record AdamScalars(float beta1, float beta2, float oneMinusBeta1, float oneMinusBeta2, float eps, float invBc1, float invBc2) {
        static AdamScalars of(double beta1, double beta2, double eps, long t) {
            float bc1 = (float) (1 - Math.pow(beta1, t));
            float bc2 = (float) (1 - Math.pow(beta2, t));
            return new AdamScalars((float) beta1, (float) beta2, (float) (1 - beta1), (float) (1 - beta2), (float) eps, 1f / bc1, 1f / bc2);
        }
    }

    @Override
    public void close() {
        device.cuda.moduleUnload(module);
    }
}
