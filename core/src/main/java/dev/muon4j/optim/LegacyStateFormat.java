package dev.muon4j.optim;

import java.io.BufferedInputStream;
import java.io.ByteArrayInputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.UTFDataFormatException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.zip.CRC32;

/**
 * The reader of muon4j's own optimizer state format, format versions 1 and 2 (the files written
 * before state files became safetensors, {@link OptimizerState#FORMAT_VERSION 3}).
 *
 * <p>Layout (big-endian): magic {@code "MUON4JOS"}, int format version, long applied steps, long
 * skipped steps, int parameter count; per parameter: UTF name, UTF route, int rank, the shape, int
 * buffer count; per buffer: UTF buffer name, then in version 2 the buffer's own shape (int rank,
 * then the dimensions: the parameter's shape for parameter-sized buffers, one dimension for others,
 * such as a per-row statistic), in version 1 an int length equal to the parameter's element count;
 * the floats' raw bits. Last, a long CRC-32 of everything before it.
 */
final class LegacyStateFormat {
    /** The newest version of this layout. */
    static final int NEWEST_VERSION = 2;
    /** The first bytes of a file of this layout. */
    static final byte[] MAGIC = "MUON4JOS".getBytes(StandardCharsets.US_ASCII);
    /** Most parameters a state file may hold. */
    private static final int MAX_PARAMETERS = 10_000_000;
    private static final int MAX_RANK = OptimizerState.MAX_RANK;
    private static final int MAX_BUFFERS = OptimizerState.MAX_BUFFERS;
    /** Bytes of the trailing checksum. */
    private static final int CRC_BYTES = Long.BYTES;
    /** Bytes of a file without parameters: magic, version, two step counts, parameter count, checksum. */
    private static final int MIN_FILE_BYTES = MAGIC.length + Integer.BYTES + 2 * Long.BYTES + Integer.BYTES + CRC_BYTES;
    /** The fewest bytes one parameter takes: the lengths of two empty strings, the rank and the buffer count. */
    private static final int MIN_PARAMETER_BYTES = 2 + 2 + Integer.BYTES + Integer.BYTES;

    private LegacyStateFormat() {
    }

    /**
     * Reads a state file of this layout, trusting none of its bytes.
     *
     * <p>A first streaming pass checks the magic, the format version and the CRC-32 of the whole
     * file; only then is the content parsed, and every field is checked: step counts ≥ 0, the
     * parameter count (also against the bytes that follow it), names and routes in valid modified
     * UTF-8 (as {@code DataOutputStream.writeUTF} writes them), no parameter or buffer name twice,
     * known routes, ranks from 0 to {@value #MAX_RANK}, dimensions ≥ 0 whose product fits in an int,
     * buffer counts from 0 to {@value #MAX_BUFFERS}, each buffer's shape checked as a parameter's is
     * (in version 1: its length equal to its parameter's element count), and no bytes after the last parameter. Every length is checked against the
     * bytes left before anything is allocated for it, so no field can make the reader allocate
     * more than the file holds.
     *
     * @throws IOException naming the file and what is wrong: not a state file, another format
     *                     version, or damage, with the byte offset where it was found
     */
    static OptimizerState read(Path file) throws IOException {
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
        if (version < OptimizerState.OLDEST_READABLE_VERSION || version > NEWEST_VERSION) {
            throw new IOException(file + " has optimizer state format version " + version + " (at byte " + MAGIC.length
                    + "); this muon4j reads versions " + OptimizerState.OLDEST_READABLE_VERSION + " to " + NEWEST_VERSION
                    + " of this layout, and version " + OptimizerState.FORMAT_VERSION + " as safetensors"
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
            Map<String, OptimizerState.Entry> entries = new LinkedHashMap<>();
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
            if (OptimizerState.elementCount(shape) > Integer.MAX_VALUE) {
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

        private OptimizerState.Entry readEntry(String name) throws IOException {
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
            long elements = OptimizerState.elementCount(shape);
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
                    length = (int) OptimizerState.elementCount(readShape(buffer));
                }
                buffers.put(bufferName, readFloats(length, buffer));
            }
            return new OptimizerState.Entry(route, shape, buffers);
        }

        private int readInt(String what) throws IOException {
            need(Integer.BYTES, what);
            int value = in.readInt();
            position += Integer.BYTES;
            return value;
        }

        /** A string as {@code DataOutputStream.writeUTF} writes it: an unsigned 16-bit length, then modified UTF-8. */
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
}
