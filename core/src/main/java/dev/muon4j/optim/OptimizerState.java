package dev.muon4j.optim;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.ByteArrayInputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UTFDataFormatException;
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
import java.util.zip.CheckedOutputStream;

/**
 * An optimizer's state, keyed by parameter name (never by position), with a format version.
 *
 * <p>File layout (big-endian): magic {@code "MUON4JOS"}, int format version, long applied steps,
 * long skipped steps, int parameter count; per parameter: UTF name, UTF route, int rank, the
 * shape, int buffer count; per buffer: UTF buffer name, the buffer's own shape (int rank, then the
 * dimensions: the parameter's shape for parameter-sized buffers, one dimension for others, such as
 * a per-row statistic), the floats' raw bits. Version 1 files, where every buffer had the
 * parameter's shape and was written as an int length, are still read. Last, a long CRC-32 of everything before it. {@link #write} is atomic: a reader
 * sees the old file or the complete new one, never a part. {@link #read} verifies the checksum
 * before it parses anything and then checks every field, so a damaged file always ends in an
 * {@code IOException} that names the file and the byte offset of the damage.
 */
public final class OptimizerState {
    /** Version of the file layout this code writes and reads. */
    public static final int FORMAT_VERSION = 2;
    /** The oldest layout this code reads: version 1, where every buffer has its parameter's shape. */
    public static final int OLDEST_READABLE_VERSION = 1;
    private static final byte[] MAGIC = "MUON4JOS".getBytes(java.nio.charset.StandardCharsets.US_ASCII);
    /** Most parameters a state file may hold. */
    private static final int MAX_PARAMETERS = 10_000_000;
    /** Highest rank of a parameter's shape. */
    private static final int MAX_RANK = 16;
    /** Most buffers one parameter may have. */
    private static final int MAX_BUFFERS = 64;
    /** Bytes of the trailing checksum. */
    private static final int CRC_BYTES = Long.BYTES;
    /** Bytes of a file without parameters: magic, version, two step counts, parameter count, checksum. */
    private static final int MIN_FILE_BYTES = MAGIC.length + Integer.BYTES + 2 * Long.BYTES + Integer.BYTES + CRC_BYTES;
    /** The fewest bytes one parameter takes: the lengths of two empty strings, the rank and the buffer count. */
    private static final int MIN_PARAMETER_BYTES = 2 + 2 + Integer.BYTES + Integer.BYTES;

    /** One parameter's state: the route it was optimised by, its shape, and named buffers (e.g. "momentum"). */
    public record Entry(Route route, int[] shape, Map<String, float[]> buffers) {
        /** Copies the shape and the buffers. */
        public Entry {
            Objects.requireNonNull(route, "route");
            shape = shape.clone();
            LinkedHashMap<String, float[]> copy = new LinkedHashMap<>();
            buffers.forEach((k, v) -> copy.put(k, v.clone()));
            buffers = Collections.unmodifiableMap(copy);
        }

        /** A copy of the shape. */
        @Override
        public int[] shape() {
            return shape.clone();
        }
    }

    private final long step;
    private final long skippedSteps;
    private final Map<String, Entry> entries;

    /**
     * A state of {@code step} applied and {@code skippedSteps} skipped steps.
     *
     * @param entries parameter name → entry, in the optimizer's parameter order (copied)
     * @throws IllegalArgumentException when a step count is negative
     */
    public OptimizerState(long step, long skippedSteps, Map<String, Entry> entries) {
        if (step < 0 || skippedSteps < 0) {
            throw new IllegalArgumentException("step counts must be >= 0, got " + step + " and " + skippedSteps);
        }
        this.step = step;
        this.skippedSteps = skippedSteps;
        this.entries = Collections.unmodifiableMap(new LinkedHashMap<>(entries));
    }

    /** The number of applied optimizer steps. */
    public long step() {
        return step;
    }

    /** The number of steps skipped for non-finite gradients. */
    public long skippedSteps() {
        return skippedSteps;
    }

    /** Parameter name → entry, in the optimizer's parameter order. */
    public Map<String, Entry> entries() {
        return entries;
    }

    /**
     * Writes the state to {@code file} atomically (temporary file in the same directory, fsync, rename).
     *
     * @throws IllegalArgumentException before anything is written, for state that {@link #read} would
     *                                  refuse: a rank above {@value #MAX_RANK}, a negative dimension, more
     *                                  than {@value #MAX_BUFFERS} buffers, or a buffer whose length is not
     *                                  its parameter's element count
     */
    public void write(Path file) throws IOException {
        entries.forEach(OptimizerState::checkWritable);
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

    private static void checkWritable(String name, Entry entry) {
        int[] shape = entry.shape;
        if (shape.length > MAX_RANK || Arrays.stream(shape).anyMatch(d -> d < 0) || elementCount(shape) > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("cannot write the state of " + name + ": invalid shape " + Arrays.toString(shape));
        }
        if (entry.buffers().size() > MAX_BUFFERS) {
            throw new IllegalArgumentException("cannot write the state of " + name + ": " + entry.buffers().size()
                    + " buffers, at most " + MAX_BUFFERS);
        }
    }

    /** A buffer's own shape: the parameter's when it has the parameter's size, else one dimension. */
    private static int[] bufferShape(int[] parameterShape, float[] data) {
        return data.length == elementCount(parameterShape) ? parameterShape : new int[] {data.length};
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
                int[] own = bufferShape(shape, data);
                out.writeInt(own.length);
                for (int d : own) {
                    out.writeInt(d);
                }
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
     * Reads a state file written by {@link #write}, trusting none of its bytes.
     *
     * <p>A first streaming pass checks the magic, the format version and the CRC-32 of the whole
     * file; only then is the content parsed, and every field is checked: step counts ≥ 0, the
     * parameter count (also against the bytes that follow it), names and routes in valid modified
     * UTF-8 (as {@link DataOutputStream#writeUTF} writes them), no parameter or buffer name twice,
     * known routes, ranks from 0 to {@value #MAX_RANK}, dimensions ≥ 0 whose product fits in an int,
     * buffer counts from 0 to {@value #MAX_BUFFERS}, each buffer's shape checked as a parameter's is
     * (in version 1: its length equal to its parameter's element count), and no bytes after the last parameter. Every length is checked against the
     * bytes left before anything is allocated for it, so no field can make the reader allocate
     * more than the file holds.
     *
     * @throws IOException naming the file and what is wrong: not a state file, another format
     *                     version, or damage, with the byte offset where it was found
     */
    public static OptimizerState read(Path file) throws IOException {
        long[] verified = verifyChecksum(file);
        try (InputStream raw = Files.newInputStream(file)) {
            return new StateReader(file, raw, verified[0], (int) verified[1]).read();
        } catch (EOFException e) {
            throw new IOException(file + " ended early: it changed while being read", e);
        }
    }

    /**
     * Checks the magic, the format version and the trailing CRC-32 in one streaming pass. A wrong
     * version is reported as such even when the checksum does not match, because a file of another
     * version need not keep its checksum where this version does.
     *
     * @return the number of bytes before the checksum, and the format version
     */
    private static long[] verifyChecksum(Path file) throws IOException {
        long size = Files.size(file);
        CRC32 crc = new CRC32();
        ByteBuffer head = ByteBuffer.allocate(MAGIC.length + Integer.BYTES);
        ByteBuffer trailer = ByteBuffer.allocate(CRC_BYTES);
        try (InputStream in = Files.newInputStream(file)) {
            int headBytes = in.readNBytes(head.array(), 0, head.capacity());
            int magicBytes = Math.min(headBytes, MAGIC.length);
            if (!Arrays.equals(head.array(), 0, magicBytes, MAGIC, 0, magicBytes)) {
                throw new IOException(file + " is not a muon4j optimizer state file (bad magic at byte 0)");
            }
            if (size < MIN_FILE_BYTES) {
                throw new IOException(file + " is truncated: it has " + size + " bytes, an optimizer state file has at least "
                        + MIN_FILE_BYTES);
            }
            crc.update(head.array());
            byte[] chunk = new byte[1 << 16];
            long remaining = size - CRC_BYTES - head.capacity();
            while (remaining > 0) {
                int n = in.read(chunk, 0, (int) Math.min(chunk.length, remaining));
                if (n < 0) {
                    throw new IOException(file + " ended early: it changed while being read");
                }
                crc.update(chunk, 0, n);
                remaining -= n;
            }
            if (in.readNBytes(trailer.array(), 0, CRC_BYTES) != CRC_BYTES) {
                throw new IOException(file + " ended early: it changed while being read");
            }
        }
        long stored = trailer.getLong(0);
        long bodySize = size - CRC_BYTES;
        boolean intact = stored == crc.getValue();
        int version = head.getInt(MAGIC.length);
        if (version < OLDEST_READABLE_VERSION || version > FORMAT_VERSION) {
            throw new IOException(file + " has optimizer state format version " + version + " (at byte " + MAGIC.length
                    + "); this muon4j reads versions " + OLDEST_READABLE_VERSION + " to " + FORMAT_VERSION
                    + (intact ? "" : ", or the file is damaged: its CRC-32 does not match either"));
        }
        if (!intact) {
            throw new IOException(file + " is damaged at byte " + bodySize + ": checksum mismatch, the stored CRC-32 "
                    + Long.toHexString(stored) + " does not match " + Long.toHexString(crc.getValue()) + ", computed over the "
                    + bodySize + " bytes before it (the file was changed, truncated or extended)");
        }
        return new long[] {bodySize, version};
    }

    /** Parses the bytes before the checksum, checking every field and tracking the byte offset. */
    private static final class StateReader {
        private final Path file;
        private final DataInputStream in;
        private final long end;
        private final int version;
        private final byte[] chunk = new byte[1 << 16];
        private long position;

        StateReader(Path file, InputStream raw, long end, int version) {
            this.file = file;
            this.version = version;
            this.in = new DataInputStream(new BufferedInputStream(raw, 1 << 16));
            this.end = end;
        }

        OptimizerState read() throws IOException {
            in.skipNBytes(MAGIC.length + Integer.BYTES); // magic and version, checked with the checksum
            position = MAGIC.length + Integer.BYTES;
            long step = readStepCount("the step count");
            long skipped = readStepCount("the skipped-step count");
            long countAt = position;
            int count = readInt("the parameter count");
            if (count < 0 || count > MAX_PARAMETERS) {
                throw damaged(countAt, "parameter count " + count + " is not between 0 and " + MAX_PARAMETERS);
            }
            if ((long) count * MIN_PARAMETER_BYTES > end - position) {
                throw damaged(countAt, "parameter count " + count + " cannot fit in the " + (end - position)
                        + " bytes that follow (a parameter takes at least " + MIN_PARAMETER_BYTES + ")");
            }
            Map<String, Entry> entries = new LinkedHashMap<>();
            for (int p = 0; p < count; p++) {
                long nameAt = position;
                String name = readUtf("the name of parameter " + p);
                if (entries.containsKey(name)) {
                    throw damaged(nameAt, "parameter " + name + " appears twice");
                }
                entries.put(name, readEntry(name));
            }
            if (position != end) {
                throw damaged(position, (end - position) + " unexpected bytes after the last parameter, before the checksum");
            }
            return new OptimizerState(step, skipped, entries);
        }

        /** A rank and that many dimensions, each ≥ 0, whose product fits in an int. */
        private int[] readShape(String what) throws IOException {
            long rankAt = position;
            int rank = readInt("the rank of " + what);
            if (rank < 0 || rank > MAX_RANK) {
                throw damaged(rankAt, what + " has rank " + rank + ", not between 0 and " + MAX_RANK);
            }
            int[] shape = new int[rank];
            for (int i = 0; i < rank; i++) {
                long dimensionAt = position;
                shape[i] = readInt("dimension " + i + " of " + what);
                if (shape[i] < 0) {
                    throw damaged(dimensionAt, what + " has negative dimension " + shape[i] + " (dimension " + i + ")");
                }
            }
            if (elementCount(shape) > Integer.MAX_VALUE) {
                throw damaged(rankAt, what + " has shape " + Arrays.toString(shape) + ", more elements than an int counts");
            }
            return shape;
        }

        private long readStepCount(String what) throws IOException {
            long at = position;
            need(Long.BYTES, what);
            long value = in.readLong();
            position += Long.BYTES;
            if (value < 0) {
                throw damaged(at, what + " " + value + " is negative");
            }
            return value;
        }

        private Entry readEntry(String name) throws IOException {
            long routeAt = position;
            String routeName = readUtf("the route of parameter " + name);
            Route route;
            try {
                route = Route.valueOf(routeName);
            } catch (IllegalArgumentException e) {
                throw damaged(routeAt, "parameter " + name + " has unknown route '" + routeName + "' (known: "
                        + Arrays.toString(Route.values()) + ")");
            }
            int[] shape = readShape("parameter " + name);
            long elements = elementCount(shape);
            long bufferCountAt = position;
            int bufferCount = readInt("the buffer count of parameter " + name);
            if (bufferCount < 0 || bufferCount > MAX_BUFFERS) {
                throw damaged(bufferCountAt, "parameter " + name + " has " + bufferCount + " buffers, not between 0 and "
                        + MAX_BUFFERS);
            }
            Map<String, float[]> buffers = new LinkedHashMap<>();
            for (int b = 0; b < bufferCount; b++) {
                long bufferAt = position;
                String bufferName = readUtf("the name of buffer " + b + " of parameter " + name);
                String buffer = "buffer " + name + "/" + bufferName;
                if (buffers.containsKey(bufferName)) {
                    throw damaged(bufferAt, buffer + " appears twice");
                }
                int length;
                if (version == 1) {
                    long lengthAt = position;
                    length = readInt("the length of " + buffer);
                    if (length != elements) {
                        throw damaged(lengthAt, buffer + " has " + length + " floats, the shape " + Arrays.toString(shape)
                                + " holds " + elements);
                    }
                } else {
                    length = (int) elementCount(readShape(buffer));
                }
                buffers.put(bufferName, readFloats(length, buffer));
            }
            return new Entry(route, shape, buffers);
        }

        private int readInt(String what) throws IOException {
            need(Integer.BYTES, what);
            int value = in.readInt();
            position += Integer.BYTES;
            return value;
        }

        /** A string as {@link DataOutputStream#writeUTF} writes it: an unsigned 16-bit length, then modified UTF-8. */
        private String readUtf(String what) throws IOException {
            long at = position;
            need(2, what);
            int length = in.readUnsignedShort();
            position += 2;
            need(length, what);
            byte[] bytes = new byte[2 + length];
            bytes[0] = (byte) (length >>> 8);
            bytes[1] = (byte) length;
            in.readFully(bytes, 2, length);
            position += length;
            try {
                return DataInputStream.readUTF(new DataInputStream(new ByteArrayInputStream(bytes)));
            } catch (UTFDataFormatException e) {
                throw damaged(at, what + " is not valid UTF-8 (" + e.getMessage() + ")");
            }
        }

        private float[] readFloats(int length, String what) throws IOException {
            need((long) length * Float.BYTES, what);
            float[] data = new float[length];
            ByteBuffer buf = ByteBuffer.wrap(chunk).order(ByteOrder.BIG_ENDIAN);
            int perChunk = chunk.length / Float.BYTES;
            for (int i = 0; i < length; i += perChunk) {
                int n = Math.min(perChunk, length - i);
                in.readFully(chunk, 0, n * Float.BYTES);
                buf.clear();
                buf.asFloatBuffer().get(data, i, n);
            }
            position += (long) length * Float.BYTES;
            return data;
        }

        /** Fails unless {@code bytes} more bytes lie before the checksum. */
        private void need(long bytes, String what) throws IOException {
            if (end - position < bytes) {
                throw damaged(position, "ends early: " + what + " needs " + bytes + " bytes but only " + (end - position)
                        + " remain before the checksum");
            }
        }

        private IOException damaged(long at, String message) {
            return new IOException(file + " is damaged at byte " + at + ": " + message);
        }
    }

    /** The product of the dimensions (all ≥ 0), or {@code Long.MAX_VALUE} when it exceeds an int. */
    private static long elementCount(int[] shape) {
        long n = 1;
        for (int d : shape) {
            if (d == 0) {
                return 0;
            }
        }
        for (int d : shape) {
            n *= d;
            if (n > Integer.MAX_VALUE) {
                return Long.MAX_VALUE;
            }
        }
        return n;
    }
}
