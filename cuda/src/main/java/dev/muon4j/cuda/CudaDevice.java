package dev.muon4j.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Optional;

/**
 * One NVIDIA GPU, opened for muon4j: the CUDA runtime's context on it, one stream on which every
 * operation of muon4j runs in order, a cuBLAS handle bound to that stream, and muon4j's own kernels
 * ({@link CudaKernels}) compiled by NVRTC for this GPU's architecture when the device opens.
 *
 * <p>Like a CPU {@code Backend}, a device is opened once by the application and passed to what needs
 * it; every call is enqueued on its one stream, so work runs in the order it was asked for. Calls from
 * two Java threads at once are not supported. Closing it frees the stream, the cuBLAS handle and
 * the kernels' module; device arrays are freed by their own {@link DeviceArray#close}.
 */
public final class CudaDevice implements AutoCloseable {
    private static volatile CudaApi api;

    final CudaApi cuda;
    final int ordinal;
    final MemorySegment context;
    final MemorySegment stream;
    final MemorySegment cublas;
    /** cuBLASLt's handle and its workspace ({@link #LT_WORKSPACE_BYTES}), for products whose output is not their addend. */
    final MemorySegment cublasLt;
    final long ltWorkspace;
    static final long LT_WORKSPACE_BYTES = 32L << 20;
    final CudaKernels kernels;
    private final String name;
    private final int capabilityMajor;
    private final int capabilityMinor;
    private final int multiprocessors;
    private final ThreadLocal<Boolean> current = ThreadLocal.withInitial(() -> false);
    private boolean closed;

    private CudaDevice(CudaApi cuda, int ordinal) {
        this.cuda = cuda;
        this.ordinal = ordinal;
        cuda.setDevice(ordinal);
        cuda.driverInit();
        // cudaFree(NULL) makes the runtime create its (primary) context on the device, which the driver's module calls use.
        cuda.free(0L);
        this.context = cuda.currentContext();
        current.set(true);
        this.name = cuda.deviceName(ordinal);
        this.capabilityMajor = cuda.attribute(CudaApi.ATTR_CC_MAJOR, ordinal);
        this.capabilityMinor = cuda.attribute(CudaApi.ATTR_CC_MINOR, ordinal);
        this.multiprocessors = cuda.attribute(CudaApi.ATTR_MULTIPROCESSORS, ordinal);
        this.stream = cuda.streamCreate();
        this.cublas = cuda.cublasCreate();
        cuda.cublasSetStream(cublas, stream);
        this.cublasLt = cuda.ltCreate();
        this.ltWorkspace = cuda.malloc(LT_WORKSPACE_BYTES);
        this.kernels = new CudaKernels(this);
    }

    private static CudaApi api() {
        CudaApi a = api;
        if (a == null) {
            synchronized (CudaDevice.class) {
                a = api;
                if (a == null) {
                    a = new CudaApi(CudaLibraries.open());
                    api = a;
                }
            }
        }
        return a;
    }

    /**
     * Opens GPU {@code ordinal} (0 for the first).
     *
     * @throws CudaException when the CUDA libraries are not found (the message says where they were looked for),
     *                       there is no such GPU, or the kernels do not compile for it
     */
    public static CudaDevice open(int ordinal) {
        CudaApi a = api();
        int count = a.deviceCount();
        if (ordinal < 0 || ordinal >= count) {
            throw new CudaException("no CUDA GPU " + ordinal + ": this machine has " + count);
        }
        return new CudaDevice(a, ordinal);
    }

    /** The first GPU, opened; or why there is none (no driver, no libraries, no GPU), without throwing. */
    public static Optional<CudaDevice> tryOpen() {
        try {
            return Optional.of(open(0));
        } catch (CudaException | UnsatisfiedLinkError | IllegalArgumentException e) {
            return Optional.empty();
        }
    }

    /** Why no GPU can be opened here, or empty when one can (the check opens none). */
    public static Optional<String> unavailableReason() {
        try {
            int count = api().deviceCount();
            return count > 0 ? Optional.empty() : Optional.of("the CUDA driver reports no GPU");
        } catch (CudaException | UnsatisfiedLinkError | IllegalArgumentException e) {
            return Optional.of(e.getMessage());
        }
    }

    /** Binds the device's context to the calling thread once (the driver's calls need it there). */
    void makeCurrent() {
        if (!current.get()) {
            cuda.setDevice(ordinal);
            cuda.setCurrentContext(context);
            current.set(true);
        }
    }

    /** The GPU's name, e.g. "NVIDIA H200". */
    public String name() {
        return name;
    }

    /** Compute capability as "major.minor", e.g. "9.0". */
    public String computeCapability() {
        return capabilityMajor + "." + capabilityMinor;
    }

    int capabilityMajor() {
        return capabilityMajor;
    }

    int capabilityMinor() {
        return capabilityMinor;
    }

    public int multiprocessors() {
        return multiprocessors;
    }

    /** One line for logs: GPU, capability, CUDA runtime and driver versions, cuBLAS version, NVRTC version, the libraries' files. */
    public String describe() {
        return name + " (compute " + computeCapability() + ", " + multiprocessors + " SMs), CUDA runtime " + version(cuda.runtimeVersion())
                + ", driver " + version(cuda.driverVersion()) + ", cuBLAS " + cuda.cublasVersion(cublas) + ", NVRTC "
                + cuda.nvrtcVersion() + "; libraries: " + cuda.libraries.description;
    }

    private static String version(int v) {
        return v / 1000 + "." + (v % 1000) / 10;
    }

    /** A float32 array of {@code count} elements on the GPU, contents undefined. */
    public DeviceArray allocateFloats(long count) {
        return allocate(count, DeviceArray.Type.F32);
    }

    /** An array of {@code count} elements of {@code type} on the GPU, contents undefined. */
    public DeviceArray allocate(long count, DeviceArray.Type type) {
        checkOpen();
        makeCurrent();
        return new DeviceArray(this, cuda.malloc(count * type.bytes), count, type);
    }

    /** A float32 array holding a copy of {@code values}. */
    public DeviceArray upload(float[] values) {
        DeviceArray a = allocateFloats(values.length);
        a.copyFrom(values, 0, 0, values.length);
        return a;
    }

    /** Waits until everything enqueued so far has run; errors of earlier asynchronous work surface here. */
    public void synchronize() {
        makeCurrent();
        cuda.streamSynchronize(stream);
    }

    /** Zeroes {@code bytes} bytes at device address {@code address}, on the stream. */
    void zero(long address, long bytes) {
        cuda.memsetAsync(address, 0, bytes, stream);
    }

    /** Copies {@code bytes} bytes between device addresses, on the stream. */
    void copy(long dst, long src, long bytes) {
        cuda.memcpyAsync(dst, src, bytes, CudaApi.DEVICE_TO_DEVICE, stream);
    }

    /** Copies {@code values} (host addresses) into a new device array of 64-bit values: device pointers for batched cuBLAS calls. */
    long uploadLongs(long[] values) {
        long bytes = (long) values.length * Long.BYTES;
        long address = cuda.malloc(bytes);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment host = a.allocate(ValueLayout.JAVA_LONG, Math.max(1, values.length));
            MemorySegment.copy(values, 0, host, ValueLayout.JAVA_LONG, 0, values.length);
            cuda.memcpy(MemorySegment.ofAddress(address), host, bytes, CudaApi.HOST_TO_DEVICE);
        }
        return address;
    }

    void free(long address) {
        cuda.free(address);
    }

    /**
     * Times {@code work} on the GPU with CUDA events around it: {@code repeats} runs after {@code warmup},
     * each its own pair of events; the milliseconds of every timed run.
     */
    public double[] time(Runnable work, int warmup, int repeats) {
        makeCurrent();
        for (int i = 0; i < warmup; i++) {
            work.run();
        }
        synchronize();
        double[] out = new double[repeats];
        MemorySegment start = cuda.eventCreate();
        MemorySegment end = cuda.eventCreate();
        try {
            for (int i = 0; i < repeats; i++) {
                cuda.eventRecord(start, stream);
                work.run();
                cuda.eventRecord(end, stream);
                out[i] = cuda.eventElapsedMillis(start, end);
            }
        } finally {
            cuda.eventDestroy(start);
            cuda.eventDestroy(end);
        }
        return out;
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("the CUDA device " + name + " is closed");
        }
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        makeCurrent();
        cuda.streamSynchronize(stream);
        kernels.close();
        cuda.free(ltWorkspace);
        cuda.ltDestroy(cublasLt);
        cuda.cublasDestroy(cublas);
        cuda.streamDestroy(stream);
    }
}
