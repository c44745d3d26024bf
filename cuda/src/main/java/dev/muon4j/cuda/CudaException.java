package dev.muon4j.cuda;

/** A CUDA library was not found, or a CUDA, cuBLAS or NVRTC call failed; the message names the call and the error. */
public final class CudaException extends IllegalStateException {
    public CudaException(String message) {
        super(message);
    }
}
