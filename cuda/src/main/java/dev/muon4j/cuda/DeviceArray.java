package dev.muon4j.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Objects;

/**
 * An array in a GPU's memory: its device address, element count and element type. Copies to and from
 * Java arrays go through native memory in pieces of at most {@link #PIECE} bytes and wait for the
 * device's stream first, so they see every earlier operation's result.
 */
public final class DeviceArray implements AutoCloseable {
    /** Element types. */
    public enum Type {
        F32(4), BF16(2), F64(8);

        final int bytes;

        Type(int bytes) {
            this.bytes = bytes;
        }
    }

    /** Host staging is done in pieces of this many bytes (64 MiB). */
    static final long PIECE = 64L << 20;

    private final CudaDevice device;
    private final long address;
    private final long count;
    private final Type type;
    private boolean freed;

    DeviceArray(CudaDevice device, long address, long count, Type type) {
        this.device = device;
        this.address = address;
        this.count = count;
        this.type = type;
    }

    /** The device address of element 0. */
    public long address() {
        return address;
    }

    /** The device address of element {@code index}. */
    public long address(long index) {
        Objects.checkIndex(index, count + 1);
        return address + index * type.bytes;
    }

    public long count() {
        return count;
    }

    public Type type() {
        return type;
    }

    /** Copies {@code len} floats of {@code src} from {@code srcOff} into elements {@code [at, at + len)}. */
    public void copyFrom(float[] src, int srcOff, long at, int len) {
        checkFloat(at, len);
        Objects.checkFromIndexSize(srcOff, len, src.length);
        device.makeCurrent();
        device.synchronize();
        int piece = (int) (PIECE / Float.BYTES);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment host = a.allocate(ValueLayout.JAVA_FLOAT, Math.max(1, Math.min(piece, len)));
            for (int done = 0; done < len; done += piece) {
                int n = Math.min(piece, len - done);
                MemorySegment.copy(src, srcOff + done, host, ValueLayout.JAVA_FLOAT, 0, n);
                device.cuda.memcpy(MemorySegment.ofAddress(address + (at + done) * Float.BYTES), host, (long) n * Float.BYTES,
                        CudaApi.HOST_TO_DEVICE);
            }
        }
    }

    /** Copies elements {@code [at, at + len)} into {@code dst} from {@code dstOff}. */
    public void copyTo(long at, float[] dst, int dstOff, int len) {
        checkFloat(at, len);
        Objects.checkFromIndexSize(dstOff, len, dst.length);
        device.makeCurrent();
        device.synchronize();
        int piece = (int) (PIECE / Float.BYTES);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment host = a.allocate(ValueLayout.JAVA_FLOAT, Math.max(1, Math.min(piece, len)));
            for (int done = 0; done < len; done += piece) {
                int n = Math.min(piece, len - done);
                device.cuda.memcpy(host, MemorySegment.ofAddress(address + (at + done) * Float.BYTES), (long) n * Float.BYTES,
                        CudaApi.DEVICE_TO_HOST);
                MemorySegment.copy(host, ValueLayout.JAVA_FLOAT, 0, dst, dstOff + done, n);
            }
        }
    }

    /** The whole array as floats (float32 arrays only). */
    public float[] toFloats() {
        float[] out = new float[Math.toIntExact(count)];
        copyTo(0, out, 0, out.length);
        return out;
    }

    /** The whole array as doubles (float64 arrays only). */
    public double[] toDoubles() {
        if (type != Type.F64) {
            throw new IllegalStateException("not a float64 array: " + type);
        }
        device.synchronize();
        double[] out = new double[Math.toIntExact(count)];
        try (Arena a = Arena.ofConfined()) {
            MemorySegment host = a.allocate(ValueLayout.JAVA_DOUBLE, Math.max(1, out.length));
            device.cuda.memcpy(host, MemorySegment.ofAddress(address), count * Double.BYTES, CudaApi.DEVICE_TO_HOST);
            MemorySegment.copy(host, ValueLayout.JAVA_DOUBLE, 0, out, 0, out.length);
        }
        return out;
    }

    /** The raw bfloat16 bits of the whole array (bfloat16 arrays only). */
    public short[] toBf16Bits() {
        if (type != Type.BF16) {
            throw new IllegalStateException("not a bfloat16 array: " + type);
        }
        device.synchronize();
        short[] out = new short[Math.toIntExact(count)];
        try (Arena a = Arena.ofConfined()) {
            MemorySegment host = a.allocate(ValueLayout.JAVA_SHORT, Math.max(1, out.length));
            device.cuda.memcpy(host, MemorySegment.ofAddress(address), count * Short.BYTES, CudaApi.DEVICE_TO_HOST);
            MemorySegment.copy(host, ValueLayout.JAVA_SHORT, 0, out, 0, out.length);
        }
        return out;
    }

    /** Sets the raw bfloat16 bits of the whole array (bfloat16 arrays only). */
    public void copyFromBf16Bits(short[] bits) {
        if (type != Type.BF16 || bits.length != count) {
            throw new IllegalArgumentException("need " + count + " bfloat16 values for a " + type + " array, got " + bits.length);
        }
        device.synchronize();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment host = a.allocate(ValueLayout.JAVA_SHORT, Math.max(1, bits.length));
            MemorySegment.copy(bits, 0, host, ValueLayout.JAVA_SHORT, 0, bits.length);
            device.cuda.memcpy(MemorySegment.ofAddress(address), host, count * Short.BYTES, CudaApi.HOST_TO_DEVICE);
        }
    }

    private void checkFloat(long at, int len) {
        if (type != Type.F32) {
            throw new IllegalStateException("not a float32 array: " + type);
        }
        if (freed) {
            throw new IllegalStateException("device array already freed");
        }
        if (at < 0 || len < 0 || at + len > count) {
            throw new IndexOutOfBoundsException("elements [" + at + ", " + (at + len) + ") of a device array of " + count);
        }
    }

    @Override
    public void close() {
        if (!freed) {
            freed = true;
            device.makeCurrent();
            device.synchronize();
            device.free(address);
        }
    }
}
