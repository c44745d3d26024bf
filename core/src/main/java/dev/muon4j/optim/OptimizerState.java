package dev.muon4j.optim;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.zip.CRC32;
import java.util.zip.CheckedInputStream;
import java.util.zip.CheckedOutputStream;

/**
 * An optimizer's state, keyed by parameter name (never by position), with a format version.
 *
 * <p>File layout (big-endian): magic {@code "MUON4JOS"}, int format version, long applied steps,
 * long skipped steps, int parameter count; per parameter: UTF name, UTF route, int rank, the
 * shape, int buffer count; per buffer: UTF buffer name, int length, the floats' raw bits. Last, a
 * long CRC-32 of everything before it. {@link #write} is atomic: a reader sees the old file or the
 * complete new one, never a part.
 */
public final class OptimizerState {
    /** Version of the file layout this code writes and reads. */
    public static final int FORMAT_VERSION = 1;
    private static final byte[] MAGIC = "MUON4JOS".getBytes(java.nio.charset.StandardCharsets.US_ASCII);

    /** One parameter's state: the route it was optimised by, its shape, and named buffers (e.g. "momentum"). */
    public record Entry(Route route, int[] shape, Map<String, float[]> buffers) {
        public Entry {
            Objects.requireNonNull(route, "route");
            shape = shape.clone();
            LinkedHashMap<String, float[]> copy = new LinkedHashMap<>();
            buffers.forEach((k, v) -> copy.put(k, v.clone()));
            buffers = Collections.unmodifiableMap(copy);
        }

        @Override
        public int[] shape() {
            return shape.clone();
        }
    }

    private final long step;
    private final long skippedSteps;
    private final Map<String, Entry> entries;

    public OptimizerState(long step, long skippedSteps, Map<String, Entry> entries) {
        if (step < 0 || skippedSteps < 0) {
            throw new IllegalArgumentException("step counts must be >= 0, got " + step + " and " + skippedSteps);
        }
        this.step = step;
        this.skippedSteps = skippedSteps;
        this.entries = Collections.unmodifiableMap(new LinkedHashMap<>(entries));
    }

    public long step() {
        return step;
    }

    public long skippedSteps() {
        return skippedSteps;
    }

    /** Parameter name → entry, in the optimizer's parameter order. */
    public Map<String, Entry> entries() {
        return entries;
    }

    /** Writes the state to {@code file} atomically (temporary file in the same directory, fsync, rename). */
    public void write(Path file) throws IOException {
        Path dir = file.toAbsolutePath().getParent();
        Files.createDirectories(dir);
        Path tmp = Files.createTempFile(dir, file.getFileName().toString(), ".tmp");
        try {
            try (FileChannel channel = FileChannel.open(tmp, StandardOpenOption.WRITE)) {
                OutputStream raw = java.nio.channels.Channels.newOutputStream(channel);
                CRC32 crc = new CRC32();
                DataOutputStream out = new DataOutputStream(new CheckedOutputStream(new BufferedOutputStream(raw, 1 << 16), crc));
                writeBody(out);
                out.flush();
                new DataOutputStream(raw).writeLong(crc.getValue());
                channel.force(true);
            }
            try {
                Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                throw new IOException("cannot atomically replace " + file + ": the file system does not support atomic moves", e);
            }
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    private void writeBody(DataOutputStream out) throws IOException {
        out.write(MAGIC);
        out.writeInt(FORMAT_VERSION);
        out.writeLong(step);
        out.writeLong(skippedSteps);
        out.writeInt(entries.size());
        byte[] chunk = new byte[1 << 16];
        for (Map.Entry<String, Entry> e : entries.entrySet()) {
            out.writeUTF(e.getKey());
            Entry entry = e.getValue();
            out.writeUTF(entry.route().name());
            int[] shape = entry.shape;
            out.writeInt(shape.length);
            for (int d : shape) {
                out.writeInt(d);
            }
            out.writeInt(entry.buffers().size());
            for (Map.Entry<String, float[]> b : entry.buffers().entrySet()) {
                out.writeUTF(b.getKey());
                float[] data = b.getValue();
                out.writeInt(data.length);
                writeFloats(out, data, chunk);
            }
        }
    }

    private static void writeFloats(OutputStream out, float[] data, byte[] chunk) throws IOException {
        ByteBuffer buf = ByteBuffer.wrap(chunk).order(ByteOrder.BIG_ENDIAN);
        int perChunk = chunk.length / Float.BYTES;
        for (int i = 0; i < data.length; i += perChunk) {
            int n = Math.min(perChunk, data.length - i);
            buf.clear();
            buf.asFloatBuffer().put(data, i, n);
            out.write(chunk, 0, n * Float.BYTES);
        }
    }

    /**
     * Reads a state file written by {@link #write}.
     *
     * @throws IOException with the file name and what is wrong: not a state file, another format
     *                     version, truncated, or a checksum mismatch
     */
    public static OptimizerState read(Path file) throws IOException {
        long size = Files.size(file);
        try (InputStream raw = Files.newInputStream(file)) {
            CRC32 crc = new CRC32();
            BufferedInputStream buffered = new BufferedInputStream(raw, 1 << 16);
            DataInputStream in = new DataInputStream(new CheckedInputStream(buffered, crc));
            byte[] magic = new byte[MAGIC.length];
            in.readFully(magic);
            if (!Arrays.equals(magic, MAGIC)) {
                throw new IOException(file + " is not a muon4j optimizer state file (bad magic)");
            }
            int version = in.readInt();
            if (version != FORMAT_VERSION) {
                throw new IOException(file + " has optimizer state format version " + version
                        + "; this muon4j reads version " + FORMAT_VERSION);
            }
            long step = in.readLong();
            long skipped = in.readLong();
            int count = in.readInt();
            if (count < 0 || count > 10_000_000) {
                throw new IOException(file + " is damaged: parameter count " + count);
            }
            Map<String, Entry> entries = new LinkedHashMap<>();
            byte[] chunk = new byte[1 << 16];
            for (int p = 0; p < count; p++) {
                String name = in.readUTF();
                String routeName = in.readUTF();
                Route route;
                try {
                    route = Route.valueOf(routeName);
                } catch (IllegalArgumentException e) {
                    throw new IOException(file + " is damaged: parameter " + name + " has unknown route " + routeName);
                }
                int rank = in.readInt();
                if (rank < 0 || rank > 16) {
                    throw new IOException(file + " is damaged: parameter " + name + " has rank " + rank);
                }
                int[] shape = new int[rank];
                for (int i = 0; i < rank; i++) {
                    shape[i] = in.readInt();
                }
                int bufferCount = in.readInt();
                if (bufferCount < 0 || bufferCount > 64) {
                    throw new IOException(file + " is damaged: parameter " + name + " has " + bufferCount + " buffers");
                }
                Map<String, float[]> buffers = new LinkedHashMap<>();
                for (int b = 0; b < bufferCount; b++) {
                    String bufferName = in.readUTF();
                    int length = in.readInt();
                    if (length < 0 || (long) length * Float.BYTES > size) {
                        throw new IOException(file + " is damaged: buffer " + name + "/" + bufferName + " claims " + length + " floats");
                    }
                    buffers.put(bufferName, readFloats(in, length, chunk));
                }
                if (entries.put(name, new Entry(route, shape, buffers)) != null) {
                    throw new IOException(file + " is damaged: parameter " + name + " appears twice");
                }
            }
            long expected = crc.getValue();
            long stored = new DataInputStream(buffered).readLong();
            if (stored != expected) {
                throw new IOException(file + " is damaged: checksum mismatch (stored " + Long.toHexString(stored)
                        + ", computed " + Long.toHexString(expected) + ")");
            }
            if (buffered.read() != -1) {
                throw new IOException(file + " is damaged: unexpected bytes after the checksum");
            }
            return new OptimizerState(step, skipped, entries);
        } catch (EOFException e) {
            throw new IOException(file + " is truncated (ended early)", e);
        }
    }

    private static float[] readFloats(DataInputStream in, int length, byte[] chunk) throws IOException {
        float[] data = new float[length];
        ByteBuffer buf = ByteBuffer.wrap(chunk).order(ByteOrder.BIG_ENDIAN);
        int perChunk = chunk.length / Float.BYTES;
        for (int i = 0; i < length; i += perChunk) {
            int n = Math.min(perChunk, length - i);
            in.readFully(chunk, 0, n * Float.BYTES);
            buf.clear();
            buf.asFloatBuffer().get(data, i, n);
        }
        return data;
    }
}
