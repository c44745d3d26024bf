package dev.muon4j.optim;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.zip.CRC32;

/**
 * The writer of muon4j's state files of format versions 1 and 2 (the {@code MUON4JOS} layout), as
 * {@code OptimizerState.write} wrote them before state files became safetensors: kept for tests of
 * reading such files.
 */
public final class LegacyStateWriter {
    private LegacyStateWriter() {
    }

    /** Writes {@code state} to {@code file} in format version {@code version} (1: every buffer must have its parameter's size). */
    public static void write(OptimizerState state, Path file, int version) throws IOException {
        Files.write(file, bytes(state, version));
    }

    /** The bytes of {@code state} in format version 1 or 2, the CRC-32 last. */
    public static byte[] bytes(OptimizerState state, int version) throws IOException {
        if (version != 1 && version != 2) {
            throw new IllegalArgumentException("the old layout has versions 1 and 2, not " + version);
        }
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        DataOutputStream out = new DataOutputStream(bytes);
        out.writeBytes("MUON4JOS");
        out.writeInt(version);
        out.writeLong(state.step());
        out.writeLong(state.skippedSteps());
        out.writeInt(state.entries().size());
        for (Map.Entry<String, OptimizerState.Entry> e : state.entries().entrySet()) {
            OptimizerState.Entry entry = e.getValue();
            out.writeUTF(e.getKey());
            out.writeUTF(entry.route().name());
            int[] shape = entry.shape();
            writeShape(out, shape);
            out.writeInt(entry.buffers().size());
            for (Map.Entry<String, float[]> b : entry.buffers().entrySet()) {
                out.writeUTF(b.getKey());
                float[] data = b.getValue();
                if (version == 1) {
                    if (data.length != OptimizerState.elementCount(shape)) {
                        throw new IllegalArgumentException("version 1 cannot hold buffer " + e.getKey() + "/" + b.getKey() + " of "
                                + data.length + " floats");
                    }
                    out.writeInt(data.length);
                } else {
                    writeShape(out, OptimizerState.bufferShape(shape, data.length));
                }
                for (float f : data) {
                    out.writeFloat(f);
                }
            }
        }
        CRC32 crc = new CRC32();
        crc.update(bytes.toByteArray());
        out.writeLong(crc.getValue());
        return bytes.toByteArray();
    }

    private static void writeShape(DataOutputStream out, int[] shape) throws IOException {
        out.writeInt(shape.length);
        for (int d : shape) {
            out.writeInt(d);
        }
    }
}
