package dev.muon4j.cuda;

import java.util.Optional;

/**
 * The GPU the tests run on: the first CUDA GPU, opened once for the whole run and never closed (the
 * process's end frees it). Where there is none, {@link #gpuAvailable} is false and the GPU tests are
 * skipped, saying why once.
 */
final class CudaTestSupport {
    private static Optional<CudaDevice> device;
    private static String reason;

    private CudaTestSupport() {
    }

    static synchronized boolean gpuAvailable() {
        if (device == null) {
            Optional<String> why = CudaDevice.unavailableReason();
            if (why.isPresent()) {
                reason = why.get();
                device = Optional.empty();
                System.out.println("CUDA tests skipped: " + reason);
            } else {
                CudaDevice d = CudaDevice.open(0);
                System.out.println("CUDA tests on " + d.describe());
                device = Optional.of(d);
            }
        }
        return device.isPresent();
    }

    static CudaDevice device() {
        if (!gpuAvailable()) {
            throw new IllegalStateException("no GPU: " + reason);
        }
        return device.get();
    }
}
