package dev.muon4j.io;

import com.fasterxml.jackson.annotation.JsonProperty;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import java.util.zip.CRC32;
import java.util.zip.CheckedOutputStream;

/**
 * Writer and reader of the <a href="https://github.com/huggingface/safetensors">safetensors</a>
 * format.
 *
 * <p>Layout: an 8-byte little-endian unsigned header size {@code N}; {@code N} bytes of UTF-8 JSON
 * mapping each tensor name to {@code {"dtype":"F32","shape":[...],"data_offsets":[begin,end]}}
 * (offsets relative to the first byte after the header), plus an optional {@code "__metadata__"}
 * object of string → string; then the raw little-endian tensor bytes. This writer emits compact
 * JSON with {@code "__metadata__"} first (left out when there is no metadata) and the tensors sorted
 * by name, pads the header with spaces so that the data starts at an 8-byte aligned offset (as the
 * reference writer does), and lays the tensors out contiguously in name order.
 *
 * <p>Values: F32 is stored exactly; BF16 and F16 are written by rounding to nearest-even (NaN
 * stays NaN) and read by exact widening. Other dtypes of the format are recognised (so their sizes
 * are checked) but a file holding them cannot be read into {@link TensorData}.
 *
 * <p>The reader validates the file as the reference implementation does and every error is an
 * {@code IOException} that names the file and, where there is one, the tensor and the byte offset
 * in the file: a header size that is insane or runs past the file, a header that is not UTF-8 or
 * not a JSON object, duplicate names, unknown dtypes, shapes and offsets that are malformed,
 * inconsistent with dtype × shape, overlapping, leaving gaps, or not covering the data buffer
 * exactly. Nothing is allocated before its size has been checked against the file's.
 */
public final class SafeTensors {
    /** Largest header the reader accepts, in bytes (the reference implementation's limit). */
    public static final long MAX_HEADER_SIZE = 100_000_000L;
    /** The key of the metadata object in the header. */
    public static final String METADATA_KEY = "__metadata__";
    /** The dtypes this class converts to and from floats. */
    public static final Set<String> CONVERTIBLE = Set.of("F32", "BF16", "F16");

    private static final Map<String, Integer> DTYPE_BYTES = Map.ofEntries(
            Map.entry("BOOL", 1), Map.entry("U8", 1), Map.entry("I8", 1), Map.entry("F8_E5M2", 1), Map.entry("F8_E4M3", 1),
            Map.entry("F8_E8M0", 1), Map.entry("I16", 2), Map.entry("U16", 2), Map.entry("F16", 2), Map.entry("BF16", 2),
            Map.entry("I32", 4), Map.entry("U32", 4), Map.entry("F32", 4), Map.entry("I64", 8), Map.entry("U64", 8),
            Map.entry("F64", 8));
    private static final int CHUNK = 1 << 16;

    private SafeTensors() {
    }

    /**
     * The contents of a safetensors file.
     *
     * @param tensors   tensor name → tensor, in name order (unmodifiable)
     * @param metadata  the {@code "__metadata__"} strings, empty when the file has none (unmodifiable)
     * @param dataBytes the size of the data section (the bytes after the header)
     * @param dataCrc32 the CRC-32 of the data section as read, for formats that record one in their metadata
     */
    public record Contents(Map<String, TensorData> tensors, Map<String, String> metadata, long dataBytes, long dataCrc32) {
        /** Makes unmodifiable copies of both maps. */
        public Contents {
            tensors = Collections.unmodifiableMap(new LinkedHashMap<>(tensors));
            metadata = Collections.unmodifiableMap(new LinkedHashMap<>(metadata));
        }
    }

    /** Bytes per element of a safetensors dtype, or -1 for an unknown dtype. */
    static int dtypeBytes(String dtype) {
        Integer n = DTYPE_BYTES.get(dtype);
        return n == null ? -1 : n;
    }

    // ------------------------------------------------------------------------------------------ writing

    /**
     * Writes the tensors to {@code file} atomically: into a temporary file in the same directory,
     * fsynced, then renamed over {@code file} (and the directory fsynced), so that a reader sees
     * the old file or the complete new one.
     *
     * @param tensors  name → tensor; names must be non-empty and not {@value #METADATA_KEY}
     * @param metadata string → string for {@code "__metadata__"}; null or empty for none
     * @throws IOException if writing fails; {@code file} is then left as it was
     */
    public static void write(Path file, Map<String, TensorData> tensors, Map<String, String> metadata) throws IOException {
        AtomicFiles.write(file, out -> write(out, tensors, metadata));
    }

    /**
     * The CRC-32 of the data section that {@link #write} lays out for {@code tensors}: every tensor's
     * little-endian bytes, in name order. A format can record it in the metadata, which the data
     * section follows, and check it against {@link Contents#dataCrc32()} on reading.
     */
    public static long dataCrc32(Map<String, TensorData> tensors) {
        CRC32 crc = new CRC32();
        OutputStream out = new CheckedOutputStream(OutputStream.nullOutputStream(), crc);
        byte[] chunk = new byte[CHUNK];
        try {
            for (TensorData t : new TreeMap<>(tensors).values()) {
                writeData(out, t, chunk);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("writing to no stream failed", e); // cannot happen
        }
        return crc.getValue();
    }

    /**
     * Writes the file's bytes to a stream (not atomic, does not flush or close it).
     *
     * @return the number of bytes written
     * @see #write(Path, Map, Map)
     */
    public static long write(OutputStream out, Map<String, TensorData> tensors, Map<String, String> metadata) throws IOException {
        TreeMap<String, TensorData> sorted = new TreeMap<>();
        tensors.forEach((name, t) -> {
            if (name == null || name.isEmpty() || name.equals(METADATA_KEY)) {
                throw new IllegalArgumentException("invalid tensor name " + (name == null ? "null" : "'" + name + "'"));
            }
            sorted.put(name, Objects.requireNonNull(t, "tensor " + name));
        });
        byte[] header = header(sorted, metadata);
        byte[] prefix = new byte[8];
        ByteBuffer.wrap(prefix).order(ByteOrder.LITTLE_ENDIAN).putLong(header.length);
        out.write(prefix);
        out.write(header);
        long written = 8L + header.length;
        byte[] chunk = new byte[CHUNK];
        for (TensorData t : sorted.values()) {
            written += writeData(out, t, chunk);
        }
        return written;
    }

    /** A tensor's entry in the header. */
    private record HeaderEntry(String dtype, int[] shape, @JsonProperty("data_offsets") long[] dataOffsets) {
    }

    /** The header bytes (JSON padded with spaces to a multiple of 8) for tensors sorted by name. */
    static byte[] header(TreeMap<String, TensorData> sorted, Map<String, String> metadata) {
        LinkedHashMap<String, Object> json = new LinkedHashMap<>();
        if (metadata != null && !metadata.isEmpty()) {
            LinkedHashMap<String, String> meta = new LinkedHashMap<>();
            metadata.forEach((k, v) -> meta.put(Objects.requireNonNull(k, "metadata key"), Objects.requireNonNull(v, "metadata value of " + k)));
            json.put(METADATA_KEY, meta);
        }
        long offset = 0;
        for (Map.Entry<String, TensorData> e : sorted.entrySet()) {
            TensorData t = e.getValue();
            long bytes = (long) t.size() * dtypeBytes(t.dtype());
            json.put(e.getKey(), new HeaderEntry(t.dtype(), t.shape(), new long[] {offset, offset + bytes}));
            offset += bytes;
        }
        byte[] text = JsonCodec.write(json).getBytes(StandardCharsets.UTF_8);
        int padded = (text.length + 7) / 8 * 8;
        byte[] header = Arrays.copyOf(text, padded);
        Arrays.fill(header, text.length, padded, (byte) ' ');
        return header;
    }

    private static long writeData(OutputStream out, TensorData t, byte[] chunk) throws IOException {
        float[] data = t.data();
        ByteBuffer buf = ByteBuffer.wrap(chunk).order(ByteOrder.LITTLE_ENDIAN);
        int width = dtypeBytes(t.dtype());
        int perChunk = chunk.length / width;
        for (int i = 0; i < data.length; i += perChunk) {
            int n = Math.min(perChunk, data.length - i);
            buf.clear();
            switch (t.dtype()) {
                case "F32" -> buf.asFloatBuffer().put(data, i, n);
                case "BF16" -> {
                    for (int j = 0; j < n; j++) {
                        buf.putShort(toBf16(data[i + j]));
                    }
                }
                case "F16" -> {
                    for (int j = 0; j < n; j++) {
                        buf.putShort(Float.floatToFloat16(data[i + j]));
                    }
                }
                default -> throw new IllegalArgumentException("cannot write dtype " + t.dtype());
            }
            out.write(chunk, 0, n * width);
        }
        return (long) data.length * width;
    }

    /** Rounds a float to bfloat16 bits, to nearest-even; NaN stays a (quiet) NaN. */
    static short toBf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        if (Float.isNaN(f)) {
            return (short) ((bits >>> 16) | 0x40);
        }
        return (short) ((bits + 0x7FFF + ((bits >>> 16) & 1)) >>> 16);
    }

    // ------------------------------------------------------------------------------------------ reading

    private record Entry(String name, String dtype, int[] shape, long begin, long end) {
    }

    /**
     * Reads and validates a safetensors file.
     *
     * @throws IOException naming the file (and the tensor, where one is concerned) when the file is
     *                     truncated, damaged, malformed, or holds a dtype other than F32, BF16, F16
     */
    public static Contents read(Path file) throws IOException {
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = channel.size();
            if (size < 8) {
                throw bad(file, "is too short (" + size + " bytes) to be a safetensors file: the 8-byte header size is missing");
            }
            ByteBuffer prefix = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            readFully(channel, prefix, 0, file);
            long n = prefix.flip().getLong();
            if (n < 0 || n > MAX_HEADER_SIZE) {
                throw bad(file, "is damaged at byte 0: insane header size " + Long.toUnsignedString(n) + " (limit " + MAX_HEADER_SIZE
                        + "): not a safetensors file or damaged");
            }
            if (n > size - 8) {
                throw bad(file, "is truncated or damaged at byte 0: header size " + n + " but only " + (size - 8)
                        + " bytes follow the size field");
            }
            if (n < 2) {
                throw bad(file, "is damaged at byte 0: header size " + n + " is too small for a JSON object");
            }
            ByteBuffer headerBytes = ByteBuffer.allocate((int) n);
            readFully(channel, headerBytes, 8, file);
            Map<String, Object> header = JsonCodec.parseObject(file, headerBytes.array(), 0, (int) n, 8, "the header");
            long dataStart = 8 + n;
            long bufferSize = size - dataStart;
            Map<String, String> metadata = new LinkedHashMap<>();
            List<Entry> entries = new ArrayList<>();
            for (Map.Entry<String, Object> e : header.entrySet()) {
                if (e.getKey().equals(METADATA_KEY)) {
                    if (!(e.getValue() instanceof Map<?, ?> meta)) {
                        throw bad(file, "has a " + METADATA_KEY + " that is not an object");
                    }
                    for (Map.Entry<?, ?> m : meta.entrySet()) {
                        if (!(m.getValue() instanceof String value)) {
                            throw bad(file, "has " + METADATA_KEY + " entry '" + m.getKey() + "' that is not a string");
                        }
                        metadata.put((String) m.getKey(), value);
                    }
                } else {
                    entries.add(entry(file, e.getKey(), e.getValue()));
                }
            }
            entries.sort(Comparator.comparingLong(Entry::begin).thenComparingLong(Entry::end).thenComparing(Entry::name));
            long expected = 0;
            Entry previous = null;
            for (Entry e : entries) {
                if (e.end > bufferSize) {
                    throw bad(file, "is truncated: tensor '" + e.name + "' ends at byte " + e.end + " of the data (byte "
                            + (dataStart + e.end) + " of the file) but the file holds only " + bufferSize + " data bytes");
                }
                if (e.begin < expected) {
                    throw bad(file, "is damaged at byte " + (dataStart + e.begin) + ": tensor '" + e.name + "' (data_offsets ["
                            + e.begin + ", " + e.end + "]) overlaps tensor '" + previous.name + "' (ends at " + expected + ")");
                }
                if (e.begin > expected) {
                    throw bad(file, "is damaged at byte " + (dataStart + expected) + ": gap of " + (e.begin - expected)
                            + " bytes before tensor '" + e.name + "' (data_offsets [" + e.begin + ", " + e.end
                            + "]), expected it to begin at " + expected);
                }
                expected = e.end;
                previous = e;
            }
            if (expected != bufferSize) {
                throw bad(file, "is damaged at byte " + (dataStart + expected) + ": the tensors cover " + expected
                        + " data bytes but the file holds " + bufferSize + " (" + (bufferSize - expected)
                        + " bytes after the last tensor)");
            }
            for (Entry e : entries) {
                if (!CONVERTIBLE.contains(e.dtype)) {
                    throw bad(file, "holds tensor '" + e.name + "' of dtype " + e.dtype + "; this reader converts only " + CONVERTIBLE);
                }
                if (e.end - e.begin > (long) (Integer.MAX_VALUE - 16) * dtypeBytes(e.dtype)) {
                    throw bad(file, "holds tensor '" + e.name + "' with more elements than a Java array holds");
                }
            }
            TreeMap<String, TensorData> tensors = new TreeMap<>();
            ByteBuffer chunk = ByteBuffer.allocate(CHUNK).order(ByteOrder.LITTLE_ENDIAN);
            CRC32 crc = new CRC32(); // the entries are in offset order and cover the data section exactly
            for (Entry e : entries) {
                tensors.put(e.name, new TensorData(e.dtype, e.shape, readData(channel, dataStart, e, chunk, crc, file)));
            }
            return new Contents(tensors, metadata, bufferSize, crc.getValue());
        }
    }

    private static Entry entry(Path file, String name, Object value) throws IOException {
        String where = "tensor '" + name + "'";
        if (name.isEmpty()) {
            throw bad(file, "has a tensor with an empty name");
        }
        if (!(value instanceof Map<?, ?> info)) {
            throw bad(file, "has " + where + " whose header entry is not an object");
        }
        if (!(info.get("dtype") instanceof String dtype)) {
            throw bad(file, "has " + where + " without a string \"dtype\"");
        }
        int width = dtypeBytes(dtype);
        if (width < 0) {
            throw bad(file, "has " + where + " of unknown dtype " + dtype);
        }
        if (!(info.get("shape") instanceof List<?> shapeList)) {
            throw bad(file, "has " + where + " without a \"shape\" array");
        }
        int[] shape = new int[shapeList.size()];
        for (int i = 0; i < shape.length; i++) {
            if (!(shapeList.get(i) instanceof Long d) || d < 0 || d > Integer.MAX_VALUE) {
                throw bad(file, "has " + where + " with invalid shape " + JsonCodec.write(shapeList)
                        + " (dimensions must be integers from 0 to " + Integer.MAX_VALUE + ")");
            }
            shape[i] = (int) (long) d;
        }
        if (!(info.get("data_offsets") instanceof List<?> offsets) || offsets.size() != 2
                || !(offsets.get(0) instanceof Long begin) || !(offsets.get(1) instanceof Long end)) {
            throw bad(file, "has " + where + " without \"data_offsets\" of two integers");
        }
        if (begin < 0 || end < begin) {
            throw bad(file, "has " + where + " with invalid data_offsets [" + begin + ", " + end + "]");
        }
        long elements = TensorData.elementCount(shape);
        long bytes = elements == Long.MAX_VALUE || elements > Long.MAX_VALUE / width ? -1 : elements * width;
        if (bytes != end - begin) {
            throw bad(file, "has " + where + " whose data_offsets [" + begin + ", " + end + "] span " + (end - begin)
                    + " bytes but dtype " + dtype + " × shape " + Arrays.toString(shape) + " needs "
                    + (bytes < 0 ? "more than 2^63" : String.valueOf(bytes)));
        }
        return new Entry(name, dtype, shape, begin, end);
    }

    private static float[] readData(FileChannel channel, long dataStart, Entry e, ByteBuffer chunk, CRC32 crc, Path file)
            throws IOException {
        int width = dtypeBytes(e.dtype);
        int count = (int) ((e.end - e.begin) / width);
        float[] data = new float[count];
        int perChunk = chunk.capacity() / width;
        long position = dataStart + e.begin;
        for (int i = 0; i < count; i += perChunk) {
            int n = Math.min(perChunk, count - i);
            chunk.clear().limit(n * width);
            readFully(channel, chunk, position, file);
            position += (long) n * width;
            chunk.flip();
            crc.update(chunk.array(), 0, n * width);
            switch (e.dtype) {
                case "F32" -> chunk.asFloatBuffer().get(data, i, n);
                case "BF16" -> {
                    for (int j = 0; j < n; j++) {
                        data[i + j] = Float.intBitsToFloat((chunk.getShort() & 0xFFFF) << 16);
                    }
                }
                case "F16" -> {
                    for (int j = 0; j < n; j++) {
                        data[i + j] = Float.float16ToFloat(chunk.getShort());
                    }
                }
                default -> throw new IllegalStateException(e.dtype);
            }
        }
        return data;
    }

    private static void readFully(FileChannel channel, ByteBuffer buf, long position, Path file) throws IOException {
        while (buf.hasRemaining()) {
            int r = channel.read(buf, position);
            if (r < 0) {
                throw bad(file, "is truncated (ended at byte " + position + ")");
            }
            position += r;
        }
    }

    private static IOException bad(Path file, String message) {
        return new IOException(file + " " + message);
    }
}
