package dev.muon4j.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * The CUDA runtime, driver, cuBLAS and NVRTC functions muon4j calls, as java.lang.foreign downcalls,
 * each wrapped so that a failing status throws a {@link CudaException} naming the call and the
 * library's own error string. Signatures and enum values are those of CUDA 12–13's headers
 * ({@code cuda_runtime_api.h}, {@code cuda.h}, {@code cublas_api.h}, {@code library_types.h},
 * {@code nvrtc.h}).
 */
final class CudaApi {
    // library_types.h: cudaDataType
    static final int R_32F = 0;
    static final int R_16BF = 14;
    // cublas_api.h: cublasComputeType_t CUBLAS_COMPUTE_32F, cublasGemmAlgo_t CUBLAS_GEMM_DEFAULT, cublasOperation_t
    static final int COMPUTE_32F = 68;
    static final int GEMM_DEFAULT = -1;
    static final int OP_N = 0;
    static final int OP_T = 1;
    // cuda_runtime_api.h: cudaMemcpyKind
    static final int HOST_TO_DEVICE = 1;
    static final int DEVICE_TO_HOST = 2;
    static final int DEVICE_TO_DEVICE = 3;
    // cudaDeviceAttr
    static final int ATTR_MULTIPROCESSORS = 16;
    static final int ATTR_CC_MAJOR = 75;
    static final int ATTR_CC_MINOR = 76;

    private static final ValueLayout.OfInt I = ValueLayout.JAVA_INT;
    private static final ValueLayout.OfLong J = ValueLayout.JAVA_LONG;
    private static final java.lang.foreign.AddressLayout P = ValueLayout.ADDRESS;

    final CudaLibraries libraries;

    private final MethodHandle cudaGetDeviceCount;
    private final MethodHandle cudaSetDevice;
    private final MethodHandle cudaMalloc;
    private final MethodHandle cudaFree;
    private final MethodHandle cudaMemcpy;
    private final MethodHandle cudaMemcpyAsync;
    private final MethodHandle cudaMemsetAsync;
    private final MethodHandle cudaStreamCreate;
    private final MethodHandle cudaStreamSynchronize;
    private final MethodHandle cudaStreamDestroy;
    private final MethodHandle cudaGetErrorString;
    private final MethodHandle cudaDeviceGetAttribute;
    private final MethodHandle cudaEventCreate;
    private final MethodHandle cudaEventRecord;
    private final MethodHandle cudaEventSynchronize;
    private final MethodHandle cudaEventElapsedTime;
    private final MethodHandle cudaEventDestroy;
    private final MethodHandle cudaRuntimeGetVersion;
    private final MethodHandle cudaDriverGetVersion;

    private final MethodHandle cuInit;
    private final MethodHandle cuCtxGetCurrent;
    private final MethodHandle cuCtxSetCurrent;
    private final MethodHandle cuDeviceGetName;
    private final MethodHandle cuModuleLoadData;
    private final MethodHandle cuModuleGetFunction;
    private final MethodHandle cuModuleUnload;
    private final MethodHandle cuLaunchKernel;
    private final MethodHandle cuGetErrorString;

    private final MethodHandle cublasCreate;
    private final MethodHandle cublasDestroy;
    private final MethodHandle cublasSetStream;
    private final MethodHandle cublasGetVersion;
    private final MethodHandle cublasGemmEx;
    private final MethodHandle cublasGemmStridedBatchedEx;
    private final MethodHandle cublasGemmBatchedEx;

    private final MethodHandle ltCreate;
    private final MethodHandle ltDestroy;
    private final MethodHandle ltDescCreate;
    private final MethodHandle ltDescDestroy;
    private final MethodHandle ltDescSetAttribute;
    private final MethodHandle ltLayoutCreate;
    private final MethodHandle ltLayoutDestroy;
    private final MethodHandle ltLayoutSetAttribute;
    private final MethodHandle ltPreferenceCreate;
    private final MethodHandle ltPreferenceDestroy;
    private final MethodHandle ltPreferenceSetAttribute;
    private final MethodHandle ltHeuristic;
    private final MethodHandle ltMatmul;

    private final MethodHandle nvrtcVersion;
    private final MethodHandle nvrtcCreateProgram;
    private final MethodHandle nvrtcCompileProgram;
    private final MethodHandle nvrtcGetProgramLogSize;
    private final MethodHandle nvrtcGetProgramLog;
    private final MethodHandle nvrtcGetCUBINSize;
    private final MethodHandle nvrtcGetCUBIN;
    private final MethodHandle nvrtcDestroyProgram;
    private final MethodHandle nvrtcGetErrorString;

    CudaApi(CudaLibraries libraries) {
        this.libraries = libraries;
        SymbolLookup rt = libraries.runtime;
        cudaGetDeviceCount = handle(rt, "cudaGetDeviceCount", FunctionDescriptor.of(I, P));
        cudaSetDevice = handle(rt, "cudaSetDevice", FunctionDescriptor.of(I, I));
        cudaMalloc = handle(rt, "cudaMalloc", FunctionDescriptor.of(I, P, J));
        cudaFree = handle(rt, "cudaFree", FunctionDescriptor.of(I, P));
        cudaMemcpy = handle(rt, "cudaMemcpy", FunctionDescriptor.of(I, P, P, J, I));
        cudaMemcpyAsync = handle(rt, "cudaMemcpyAsync", FunctionDescriptor.of(I, P, P, J, I, P));
        cudaMemsetAsync = handle(rt, "cudaMemsetAsync", FunctionDescriptor.of(I, P, I, J, P));
        cudaStreamCreate = handle(rt, "cudaStreamCreate", FunctionDescriptor.of(I, P));
        cudaStreamSynchronize = handle(rt, "cudaStreamSynchronize", FunctionDescriptor.of(I, P));
        cudaStreamDestroy = handle(rt, "cudaStreamDestroy", FunctionDescriptor.of(I, P));
        cudaGetErrorString = handle(rt, "cudaGetErrorString", FunctionDescriptor.of(P, I));
        cudaDeviceGetAttribute = handle(rt, "cudaDeviceGetAttribute", FunctionDescriptor.of(I, P, I, I));
        cudaEventCreate = handle(rt, "cudaEventCreate", FunctionDescriptor.of(I, P));
        cudaEventRecord = handle(rt, "cudaEventRecord", FunctionDescriptor.of(I, P, P));
        cudaEventSynchronize = handle(rt, "cudaEventSynchronize", FunctionDescriptor.of(I, P));
        cudaEventElapsedTime = handle(rt, "cudaEventElapsedTime", FunctionDescriptor.of(I, P, P, P));
        cudaEventDestroy = handle(rt, "cudaEventDestroy", FunctionDescriptor.of(I, P));
        cudaRuntimeGetVersion = handle(rt, "cudaRuntimeGetVersion", FunctionDescriptor.of(I, P));
        cudaDriverGetVersion = handle(rt, "cudaDriverGetVersion", FunctionDescriptor.of(I, P));

        SymbolLookup drv = libraries.driver;
        cuInit = handle(drv, "cuInit", FunctionDescriptor.of(I, I));
        cuCtxGetCurrent = handle(drv, "cuCtxGetCurrent", FunctionDescriptor.of(I, P));
        cuCtxSetCurrent = handle(drv, "cuCtxSetCurrent", FunctionDescriptor.of(I, P));
        cuDeviceGetName = handle(drv, "cuDeviceGetName", FunctionDescriptor.of(I, P, I, I));
        cuModuleLoadData = handle(drv, "cuModuleLoadData", FunctionDescriptor.of(I, P, P));
        cuModuleGetFunction = handle(drv, "cuModuleGetFunction", FunctionDescriptor.of(I, P, P, P));
        cuModuleUnload = handle(drv, "cuModuleUnload", FunctionDescriptor.of(I, P));
        // CUresult cuLaunchKernel(CUfunction f, uint gridX, gridY, gridZ, uint blockX, blockY, blockZ, uint sharedMemBytes,
        //                         CUstream hStream, void** kernelParams, void** extra)
        cuLaunchKernel = handle(drv, "cuLaunchKernel", FunctionDescriptor.of(I, P, I, I, I, I, I, I, I, P, P, P));
        cuGetErrorString = handle(drv, "cuGetErrorString", FunctionDescriptor.of(I, I, P));

        SymbolLookup bl = libraries.cublas;
        cublasCreate = handle(bl, "cublasCreate_v2", FunctionDescriptor.of(I, P));
        cublasDestroy = handle(bl, "cublasDestroy_v2", FunctionDescriptor.of(I, P));
        cublasSetStream = handle(bl, "cublasSetStream_v2", FunctionDescriptor.of(I, P, P));
        cublasGetVersion = handle(bl, "cublasGetVersion_v2", FunctionDescriptor.of(I, P, P));
        // cublasGemmEx(handle, transa, transb, m, n, k, alpha*, A*, Atype, lda, B*, Btype, ldb, beta*, C*, Ctype, ldc,
        //              computeType, algo)
        cublasGemmEx = handle(bl, "cublasGemmEx", FunctionDescriptor.of(I, P, I, I, I, I, I, P, P, I, I, P, I, I, P, P, I, I, I, I));
        // cublasGemmStridedBatchedEx(handle, transa, transb, m, n, k, alpha*, A*, Atype, lda, strideA, B*, Btype, ldb,
        //                            strideB, beta*, C*, Ctype, ldc, strideC, batchCount, computeType, algo)
        cublasGemmStridedBatchedEx = handle(bl, "cublasGemmStridedBatchedEx",
                FunctionDescriptor.of(I, P, I, I, I, I, I, P, P, I, I, J, P, I, I, J, P, P, I, I, J, I, I, I));
        // cublasGemmBatchedEx(handle, transa, transb, m, n, k, alpha*, Aarray**, Atype, lda, Barray**, Btype, ldb, beta*,
        //                     Carray**, Ctype, ldc, batchCount, computeType, algo)
        cublasGemmBatchedEx = handle(bl, "cublasGemmBatchedEx",
                FunctionDescriptor.of(I, P, I, I, I, I, I, P, P, I, I, P, I, I, P, P, I, I, I, I, I));

        SymbolLookup lt = libraries.cublasLt;
        ltCreate = handle(lt, "cublasLtCreate", FunctionDescriptor.of(I, P));
        ltDestroy = handle(lt, "cublasLtDestroy", FunctionDescriptor.of(I, P));
        ltDescCreate = handle(lt, "cublasLtMatmulDescCreate", FunctionDescriptor.of(I, P, I, I));
        ltDescDestroy = handle(lt, "cublasLtMatmulDescDestroy", FunctionDescriptor.of(I, P));
        ltDescSetAttribute = handle(lt, "cublasLtMatmulDescSetAttribute", FunctionDescriptor.of(I, P, I, P, J));
        // cublasLtMatrixLayoutCreate(layout*, cudaDataType, uint64_t rows, uint64_t cols, int64_t ld)
        ltLayoutCreate = handle(lt, "cublasLtMatrixLayoutCreate", FunctionDescriptor.of(I, P, I, J, J, J));
        ltLayoutDestroy = handle(lt, "cublasLtMatrixLayoutDestroy", FunctionDescriptor.of(I, P));
        ltLayoutSetAttribute = handle(lt, "cublasLtMatrixLayoutSetAttribute", FunctionDescriptor.of(I, P, I, P, J));
        ltPreferenceCreate = handle(lt, "cublasLtMatmulPreferenceCreate", FunctionDescriptor.of(I, P));
        ltPreferenceDestroy = handle(lt, "cublasLtMatmulPreferenceDestroy", FunctionDescriptor.of(I, P));
        ltPreferenceSetAttribute = handle(lt, "cublasLtMatmulPreferenceSetAttribute", FunctionDescriptor.of(I, P, I, P, J));
        // cublasLtMatmulAlgoGetHeuristic(handle, desc, Adesc, Bdesc, Cdesc, Ddesc, pref, int requested, results*, int* returned)
        ltHeuristic = handle(lt, "cublasLtMatmulAlgoGetHeuristic", FunctionDescriptor.of(I, P, P, P, P, P, P, P, I, P, P));
        // cublasLtMatmul(handle, desc, alpha*, A*, Adesc, B*, Bdesc, beta*, C*, Cdesc, D*, Ddesc, algo*, workspace*, size_t, stream)
        ltMatmul = handle(lt, "cublasLtMatmul", FunctionDescriptor.of(I, P, P, P, P, P, P, P, P, P, P, P, P, P, P, J, P));

        SymbolLookup nv = libraries.nvrtc;
        nvrtcVersion = handle(nv, "nvrtcVersion", FunctionDescriptor.of(I, P, P));
        nvrtcCreateProgram = handle(nv, "nvrtcCreateProgram", FunctionDescriptor.of(I, P, P, P, I, P, P));
        nvrtcCompileProgram = handle(nv, "nvrtcCompileProgram", FunctionDescriptor.of(I, P, I, P));
        nvrtcGetProgramLogSize = handle(nv, "nvrtcGetProgramLogSize", FunctionDescriptor.of(I, P, P));
        nvrtcGetProgramLog = handle(nv, "nvrtcGetProgramLog", FunctionDescriptor.of(I, P, P));
        nvrtcGetCUBINSize = handle(nv, "nvrtcGetCUBINSize", FunctionDescriptor.of(I, P, P));
        nvrtcGetCUBIN = handle(nv, "nvrtcGetCUBIN", FunctionDescriptor.of(I, P, P));
        nvrtcDestroyProgram = handle(nv, "nvrtcDestroyProgram", FunctionDescriptor.of(I, P));
        nvrtcGetErrorString = handle(nv, "nvrtcGetErrorString", FunctionDescriptor.of(P, I));
    }

    private static MethodHandle handle(SymbolLookup lookup, String name, FunctionDescriptor descriptor) {
        MemorySegment symbol = lookup.find(name).orElseThrow(() -> new CudaException("the CUDA library lacks " + name));
        return Linker.nativeLinker().downcallHandle(symbol, descriptor);
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

    private static String cString(MemorySegment pointer) {
        return pointer.equals(MemorySegment.NULL) ? "(no message)" : pointer.reinterpret(4096).getString(0);
    }

    // ---- runtime

    void checkRuntime(int status, String call) {
        if (status != 0) {
            String message;
            try {
                message = cString((MemorySegment) cudaGetErrorString.invokeExact(status));
            } catch (Throwable t) {
                message = "(no message)";
            }
            throw new CudaException(call + " failed: CUDA error " + status + " (" + message + ")");
        }
    }

    int deviceCount() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment n = a.allocate(I);
            int status = (int) cudaGetDeviceCount.invokeExact(n);
            // cudaErrorNoDevice (100) and cudaErrorInsufficientDriver (35) mean no usable GPU, not a failure to report.
            if (status == 100 || status == 35) {
                return 0;
            }
            checkRuntime(status, "cudaGetDeviceCount");
            return n.get(I, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void setDevice(int device) {
        try {
            checkRuntime((int) cudaSetDevice.invokeExact(device), "cudaSetDevice(" + device + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int attribute(int attribute, int device) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(I);
            checkRuntime((int) cudaDeviceGetAttribute.invokeExact(v, attribute, device), "cudaDeviceGetAttribute(" + attribute + ")");
            return v.get(I, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int runtimeVersion() {
        return version(cudaRuntimeGetVersion, "cudaRuntimeGetVersion");
    }

    int driverVersion() {
        return version(cudaDriverGetVersion, "cudaDriverGetVersion");
    }

    private int version(MethodHandle h, String call) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(I);
            checkRuntime((int) h.invokeExact(v), call);
            return v.get(I, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    long malloc(long bytes) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocate(P);
            checkRuntime((int) cudaMalloc.invokeExact(p, Math.max(bytes, 1L)), "cudaMalloc(" + bytes + " bytes)");
            return p.get(ValueLayout.JAVA_LONG, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void free(long pointer) {
        try {
            checkRuntime((int) cudaFree.invokeExact(MemorySegment.ofAddress(pointer)), "cudaFree");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void memcpy(MemorySegment dst, MemorySegment src, long bytes, int kind) {
        try {
            checkRuntime((int) cudaMemcpy.invokeExact(dst, src, bytes, kind), "cudaMemcpy(" + bytes + " bytes, kind " + kind + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void memcpyAsync(long dst, long src, long bytes, int kind, MemorySegment stream) {
        try {
            checkRuntime((int) cudaMemcpyAsync.invokeExact(MemorySegment.ofAddress(dst), MemorySegment.ofAddress(src), bytes, kind, stream),
                    "cudaMemcpyAsync(" + bytes + " bytes)");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void memsetAsync(long dst, int value, long bytes, MemorySegment stream) {
        try {
            checkRuntime((int) cudaMemsetAsync.invokeExact(MemorySegment.ofAddress(dst), value, bytes, stream), "cudaMemsetAsync");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    MemorySegment streamCreate() {
        return created(cudaStreamCreate, "cudaStreamCreate");
    }

    void streamSynchronize(MemorySegment stream) {
        try {
            checkRuntime((int) cudaStreamSynchronize.invokeExact(stream), "cudaStreamSynchronize");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void streamDestroy(MemorySegment stream) {
        try {
            checkRuntime((int) cudaStreamDestroy.invokeExact(stream), "cudaStreamDestroy");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    MemorySegment eventCreate() {
        return created(cudaEventCreate, "cudaEventCreate");
    }

    void eventRecord(MemorySegment event, MemorySegment stream) {
        try {
            checkRuntime((int) cudaEventRecord.invokeExact(event, stream), "cudaEventRecord");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    float eventElapsedMillis(MemorySegment start, MemorySegment end) {
        try (Arena a = Arena.ofConfined()) {
            checkRuntime((int) cudaEventSynchronize.invokeExact(end), "cudaEventSynchronize");
            MemorySegment ms = a.allocate(ValueLayout.JAVA_FLOAT);
            checkRuntime((int) cudaEventElapsedTime.invokeExact(ms, start, end), "cudaEventElapsedTime");
            return ms.get(ValueLayout.JAVA_FLOAT, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void eventDestroy(MemorySegment event) {
        try {
            checkRuntime((int) cudaEventDestroy.invokeExact(event), "cudaEventDestroy");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    private MemorySegment created(MethodHandle create, String call) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocate(P);
            checkRuntime((int) create.invokeExact(p), call);
            return MemorySegment.ofAddress(p.get(ValueLayout.JAVA_LONG, 0));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // ---- driver

    void checkDriver(int status, String call) {
        if (status != 0) {
            String message = "(no message)";
            try (Arena a = Arena.ofConfined()) {
                MemorySegment p = a.allocate(P);
                if ((int) cuGetErrorString.invokeExact(status, p) == 0) {
                    message = cString(p.get(P, 0));
                }
            } catch (Throwable t) {
                // keep "(no message)"
            }
            throw new CudaException(call + " failed: CUDA driver error " + status + " (" + message + ")");
        }
    }

    void driverInit() {
        try {
            checkDriver((int) cuInit.invokeExact(0), "cuInit");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    MemorySegment currentContext() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocate(P);
            checkDriver((int) cuCtxGetCurrent.invokeExact(p), "cuCtxGetCurrent");
            return MemorySegment.ofAddress(p.get(ValueLayout.JAVA_LONG, 0));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void setCurrentContext(MemorySegment context) {
        try {
            checkDriver((int) cuCtxSetCurrent.invokeExact(context), "cuCtxSetCurrent");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    String deviceName(int device) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment name = a.allocate(256);
            checkDriver((int) cuDeviceGetName.invokeExact(name, 256, device), "cuDeviceGetName");
            return name.getString(0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    MemorySegment moduleLoad(MemorySegment image) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocate(P);
            checkDriver((int) cuModuleLoadData.invokeExact(p, image), "cuModuleLoadData");
            return MemorySegment.ofAddress(p.get(ValueLayout.JAVA_LONG, 0));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    MemorySegment moduleFunction(MemorySegment module, String name) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocate(P);
            checkDriver((int) cuModuleGetFunction.invokeExact(p, module, a.allocateFrom(name)), "cuModuleGetFunction(" + name + ")");
            return MemorySegment.ofAddress(p.get(ValueLayout.JAVA_LONG, 0));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void moduleUnload(MemorySegment module) {
        try {
            checkDriver((int) cuModuleUnload.invokeExact(module), "cuModuleUnload");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void launch(MemorySegment function, String name, int gridX, int gridY, int blockX, int blockY, MemorySegment stream,
                MemorySegment params) {
        try {
            checkDriver((int) cuLaunchKernel.invokeExact(function, gridX, gridY, 1, blockX, blockY, 1, 0, stream, params, MemorySegment.NULL),
                    "cuLaunchKernel(" + name + ", grid " + gridX + "×" + gridY + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // ---- cuBLAS

    void checkCublas(int status, String call) {
        if (status != 0) {
            throw new CudaException(call + " failed: cuBLAS status " + status);
        }
    }

    MemorySegment cublasCreate() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocate(P);
            checkCublas((int) cublasCreate.invokeExact(p), "cublasCreate");
            return MemorySegment.ofAddress(p.get(ValueLayout.JAVA_LONG, 0));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void cublasDestroy(MemorySegment handle) {
        try {
            checkCublas((int) cublasDestroy.invokeExact(handle), "cublasDestroy");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void cublasSetStream(MemorySegment handle, MemorySegment stream) {
        try {
            checkCublas((int) cublasSetStream.invokeExact(handle, stream), "cublasSetStream");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int cublasVersion(MemorySegment handle) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(I);
            checkCublas((int) cublasGetVersion.invokeExact(handle, v), "cublasGetVersion");
            return v.get(I, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Column-major C = alpha·op(A)·op(B) + beta·C; alpha and beta are float32 values in host memory. */
    void gemmEx(MemorySegment handle, int opA, int opB, int m, int n, int k, MemorySegment alpha, long a, int aType, int lda,
                long b, int bType, int ldb, MemorySegment beta, long c, int cType, int ldc) {
        try {
            checkCublas((int) cublasGemmEx.invokeExact(handle, opA, opB, m, n, k, alpha, MemorySegment.ofAddress(a), aType, lda,
                    MemorySegment.ofAddress(b), bType, ldb, beta, MemorySegment.ofAddress(c), cType, ldc, COMPUTE_32F, GEMM_DEFAULT),
                    "cublasGemmEx(" + m + "×" + n + "×" + k + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void gemmStridedBatchedEx(MemorySegment handle, int opA, int opB, int m, int n, int k, MemorySegment alpha, long a, int aType,
                              int lda, long strideA, long b, int bType, int ldb, long strideB, MemorySegment beta, long c, int cType,
                              int ldc, long strideC, int batch) {
        try {
            checkCublas((int) cublasGemmStridedBatchedEx.invokeExact(handle, opA, opB, m, n, k, alpha, MemorySegment.ofAddress(a), aType,
                    lda, strideA, MemorySegment.ofAddress(b), bType, ldb, strideB, beta, MemorySegment.ofAddress(c), cType, ldc, strideC,
                    batch, COMPUTE_32F, GEMM_DEFAULT), "cublasGemmStridedBatchedEx(" + m + "×" + n + "×" + k + ", batch " + batch + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** As {@link #gemmEx} over {@code batch} products whose operand addresses are in device arrays of pointers. */
    void gemmBatchedEx(MemorySegment handle, int opA, int opB, int m, int n, int k, MemorySegment alpha, long aArray, int aType,
                       int lda, long bArray, int bType, int ldb, MemorySegment beta, long cArray, int cType, int ldc, int batch) {
        try {
            checkCublas((int) cublasGemmBatchedEx.invokeExact(handle, opA, opB, m, n, k, alpha, MemorySegment.ofAddress(aArray), aType,
                    lda, MemorySegment.ofAddress(bArray), bType, ldb, beta, MemorySegment.ofAddress(cArray), cType, ldc, batch,
                    COMPUTE_32F, GEMM_DEFAULT), "cublasGemmBatchedEx(" + m + "×" + n + "×" + k + ", batch " + batch + ")");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // ---- cuBLASLt (cublasLt.h): matmuls whose output D is not their input C

    static final int LT_DESC_TRANSA = 3;
    static final int LT_DESC_TRANSB = 4;
    static final int LT_LAYOUT_BATCH_COUNT = 5;
    static final int LT_LAYOUT_STRIDED_BATCH_OFFSET = 6;
    static final int LT_PREF_MAX_WORKSPACE_BYTES = 1;
    /** sizeof(cublasLtMatmulHeuristicResult_t): the algo (8 × uint64), size_t, cublasStatus_t, float, int[4]. */
    static final int LT_HEURISTIC_RESULT_BYTES = 96;

    private MemorySegment created(MethodHandle create, String call, CheckedCreate body) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocate(P);
            checkCublas(body.call(p), call);
            return MemorySegment.ofAddress(p.get(ValueLayout.JAVA_LONG, 0));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    private interface CheckedCreate {
        int call(MemorySegment out) throws Throwable;
    }

    MemorySegment ltCreate() {
        return created(ltCreate, "cublasLtCreate", p -> (int) ltCreate.invokeExact(p));
    }

    void ltDestroy(MemorySegment handle) {
        try {
            checkCublas((int) ltDestroy.invokeExact(handle), "cublasLtDestroy");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** A matmul descriptor: float32 compute and scale type, the two operations. */
    MemorySegment ltDesc(int opA, int opB) {
        MemorySegment desc = created(ltDescCreate, "cublasLtMatmulDescCreate", p -> (int) ltDescCreate.invokeExact(p, COMPUTE_32F, R_32F));
        try (Arena a = Arena.ofConfined()) {
            checkCublas((int) ltDescSetAttribute.invokeExact(desc, LT_DESC_TRANSA, a.allocateFrom(I, opA), 4L), "TRANSA");
            checkCublas((int) ltDescSetAttribute.invokeExact(desc, LT_DESC_TRANSB, a.allocateFrom(I, opB), 4L), "TRANSB");
            return desc;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void ltDescDestroy(MemorySegment desc) {
        try {
            checkCublas((int) ltDescDestroy.invokeExact(desc), "cublasLtMatmulDescDestroy");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** A column-major layout of {@code batch} rows × cols matrices, {@code stride} elements apart. */
    MemorySegment ltLayout(int type, long rows, long cols, long ld, int batch, long stride) {
        MemorySegment layout = created(ltLayoutCreate, "cublasLtMatrixLayoutCreate",
                p -> (int) ltLayoutCreate.invokeExact(p, type, rows, cols, ld));
        try (Arena a = Arena.ofConfined()) {
            checkCublas((int) ltLayoutSetAttribute.invokeExact(layout, LT_LAYOUT_BATCH_COUNT, a.allocateFrom(I, batch), 4L), "BATCH_COUNT");
            checkCublas((int) ltLayoutSetAttribute.invokeExact(layout, LT_LAYOUT_STRIDED_BATCH_OFFSET, a.allocateFrom(J, stride), 8L),
                    "STRIDED_BATCH_OFFSET");
            return layout;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void ltLayoutDestroy(MemorySegment layout) {
        try {
            checkCublas((int) ltLayoutDestroy.invokeExact(layout), "cublasLtMatrixLayoutDestroy");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * cuBLASLt's first algorithm for the matmul, copied into {@code algo} (64 bytes); false where it offers none.
     */
    boolean ltHeuristic(MemorySegment handle, MemorySegment desc, MemorySegment aDesc, MemorySegment bDesc, MemorySegment cDesc,
                        MemorySegment dDesc, long workspaceBytes, MemorySegment algo) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment pref = created(ltPreferenceCreate, "cublasLtMatmulPreferenceCreate", p -> (int) ltPreferenceCreate.invokeExact(p));
            try {
                checkCublas((int) ltPreferenceSetAttribute.invokeExact(pref, LT_PREF_MAX_WORKSPACE_BYTES, a.allocateFrom(J, workspaceBytes),
                        8L), "MAX_WORKSPACE_BYTES");
                MemorySegment results = a.allocate(LT_HEURISTIC_RESULT_BYTES, 8);
                MemorySegment count = a.allocate(I);
                int status = (int) ltHeuristic.invokeExact(handle, desc, aDesc, bDesc, cDesc, dDesc, pref, 1, results, count);
                if (status != 0 || count.get(I, 0) < 1 || results.get(I, 72) != 0) {
                    return false;
                }
                MemorySegment.copy(results, 0, algo, 0, 64);
                return true;
            } finally {
                int ignored = (int) ltPreferenceDestroy.invokeExact(pref);
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** D = alpha·op(A)·op(B) + beta·C on {@code stream}. */
    void ltMatmul(MemorySegment handle, MemorySegment desc, MemorySegment alpha, long a, MemorySegment aDesc, long b, MemorySegment bDesc,
                  MemorySegment beta, long c, MemorySegment cDesc, long d, MemorySegment dDesc, MemorySegment algo, long workspace,
                  long workspaceBytes, MemorySegment stream) {
        try {
            checkCublas((int) ltMatmul.invokeExact(handle, desc, alpha, MemorySegment.ofAddress(a), aDesc, MemorySegment.ofAddress(b), bDesc,
                    beta, MemorySegment.ofAddress(c), cDesc, MemorySegment.ofAddress(d), dDesc, algo, MemorySegment.ofAddress(workspace),
                    workspaceBytes, stream), "cublasLtMatmul");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // ---- NVRTC

    private void checkNvrtc(int status, String call) {
        if (status != 0) {
            String message;
            try {
                message = cString((MemorySegment) nvrtcGetErrorString.invokeExact(status));
            } catch (Throwable t) {
                message = "(no message)";
            }
            throw new CudaException(call + " failed: NVRTC error " + status + " (" + message + ")");
        }
    }

    String nvrtcVersion() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment major = a.allocate(I);
            MemorySegment minor = a.allocate(I);
            checkNvrtc((int) nvrtcVersion.invokeExact(major, minor), "nvrtcVersion");
            return major.get(I, 0) + "." + minor.get(I, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Compiles CUDA C++ {@code source} to a cubin for the given options; the compiler's log is in the error. */
    byte[] compile(String source, String name, String... options) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment prog = a.allocate(P);
            checkNvrtc((int) nvrtcCreateProgram.invokeExact(prog, a.allocateFrom(source), a.allocateFrom(name), 0, MemorySegment.NULL,
                    MemorySegment.NULL), "nvrtcCreateProgram");
            MemorySegment program = prog.get(P, 0);
            try {
                MemorySegment opts = a.allocate(P, options.length);
                for (int i = 0; i < options.length; i++) {
                    opts.setAtIndex(P, i, a.allocateFrom(options[i]));
                }
                int status = (int) nvrtcCompileProgram.invokeExact(program, options.length, opts);
                if (status != 0) {
                    MemorySegment logSize = a.allocate(J);
                    String log = "";
                    if ((int) nvrtcGetProgramLogSize.invokeExact(program, logSize) == 0) {
                        MemorySegment text = a.allocate(Math.max(1, logSize.get(J, 0)));
                        if ((int) nvrtcGetProgramLog.invokeExact(program, text) == 0) {
                            log = text.getString(0);
                        }
                    }
                    checkNvrtc(status, "nvrtcCompileProgram(" + name + "): " + log);
                }
                MemorySegment size = a.allocate(J);
                checkNvrtc((int) nvrtcGetCUBINSize.invokeExact(program, size), "nvrtcGetCUBINSize");
                MemorySegment cubin = a.allocate(size.get(J, 0));
                checkNvrtc((int) nvrtcGetCUBIN.invokeExact(program, cubin), "nvrtcGetCUBIN");
                return cubin.toArray(ValueLayout.JAVA_BYTE);
            } finally {
                int ignored = (int) nvrtcDestroyProgram.invokeExact(prog);
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }
}
