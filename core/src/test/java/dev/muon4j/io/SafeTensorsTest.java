package dev.muon4j.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The safetensors writer and reader: exact bytes, round trips, validation of damaged files, and an independent Python reader. */
class SafeTensorsTest {
    @TempDir
    Path dir;

    private static int[] bits(float[] a) {
        int[] b = new int[a.length];
        for (int i = 0; i < a.length; i++) {
            b[i] = Float.floatToRawIntBits(a[i]);
        }
        return b;
    }

    @Test
    void writtenBytesMatchTheSpecification() throws IOException {
        Map<String, TensorData> tensors = new LinkedHashMap<>();
        tensors.put("b", TensorData.f32(new int[] {2}, new float[] {1.0f, -2.5f}));
        tensors.put("a", TensorData.f32(new int[] {1, 2}, new float[] {0.5f, 3.0f}));
        Path file = dir.resolve("small.safetensors");
        SafeTensors.write(file, tensors, Map.of("k", "v"));
        byte[] bytes = Files.readAllBytes(file);

        String json = "{\"__metadata__\":{\"k\":\"v\"},"
                + "\"a\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}";
        int padded = (json.length() + 7) / 8 * 8;
        assertTrue(padded > json.length(), "this header needs padding (the test covers it)");
        ByteBuffer buf = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        long n = buf.getLong(0);
        assertEquals(padded, n, "header length field");
        assertEquals(0, (8 + n) % 8, "data start is 8-byte aligned");
        assertEquals(8 + n + 16, bytes.length, "no gaps, nothing after the data");
        // the length field itself, byte by byte (little-endian)
        assertEquals(padded & 0xFF, bytes[0] & 0xFF);
        for (int i = 1; i < 8; i++) {
            assertEquals(i == 1 ? (padded >> 8) & 0xFF : 0, bytes[i] & 0xFF);
        }
        String header = new String(bytes, 8, (int) n, StandardCharsets.UTF_8);
        assertEquals(json + " ".repeat(padded - json.length()), header, "exact header JSON, space-padded");
        int data = 8 + (int) n;
        // "a" first (sorted by name): 0.5f = 0x3F000000 stored little-endian
        assertArrayEquals(new byte[] {0, 0, 0, 0x3F}, Arrays.copyOfRange(bytes, data, data + 4));
        assertEquals(3.0f, buf.getFloat(data + 4));
        assertEquals(1.0f, buf.getFloat(data + 8));
        assertArrayEquals(new byte[] {0, 0, 0x20, (byte) 0xC0}, Arrays.copyOfRange(bytes, data + 12, data + 16), "-2.5f little-endian");

        ByteArrayOutputStream stream = new ByteArrayOutputStream();
        long written = SafeTensors.write(stream, tensors, Map.of("k", "v"));
        assertEquals(bytes.length, written);
        assertArrayEquals(bytes, stream.toByteArray(), "stream and file writers agree");
        try (var listing = Files.list(dir)) {
            assertEquals(List.of(file), listing.toList(), "no temporary file left");
        }
    }

    @Test
    void emptyFileAndNoMetadata() throws IOException {
        Path file = dir.resolve("empty.safetensors");
        SafeTensors.write(file, Map.of(), null);
        byte[] bytes = Files.readAllBytes(file);
        assertEquals(16, bytes.length);
        assertEquals("{}      ", new String(bytes, 8, 8, StandardCharsets.UTF_8));
        SafeTensors.Contents c = SafeTensors.read(file);
        assertTrue(c.tensors().isEmpty());
        assertTrue(c.metadata().isEmpty());
    }

    @Test
    void roundTripIsBitExact() throws IOException {
        Random random = new Random(7);
        Map<String, TensorData> tensors = new LinkedHashMap<>();
        float[] big = new float[100_003]; // several I/O chunks
        for (int i = 0; i < big.length; i++) {
            big[i] = (float) random.nextGaussian();
        }
        tensors.put("layers.0.attn.wq", TensorData.f32(new int[] {100_003}, big));
        tensors.put("special", TensorData.f32(new int[] {2, 4}, new float[] {
            -0.0f, Float.MIN_VALUE, Float.MAX_VALUE, Float.NEGATIVE_INFINITY, Float.intBitsToFloat(0x7fc00001), 1e-40f, 1f, -1f}));
        tensors.put("scalar", TensorData.f32(new int[] {}, new float[] {42f}));
        tensors.put("empty", TensorData.f32(new int[] {0, 3}, new float[0]));
        tensors.put("ünïcode/名前", TensorData.f32(new int[] {1}, new float[] {3f}));
        Map<String, String> metadata = Map.of("format", "pt", "note", "\"quoted\" é");
        Path file = dir.resolve("model.safetensors");
        SafeTensors.write(file, tensors, metadata);
        SafeTensors.Contents c = SafeTensors.read(file);
        assertEquals(metadata, c.metadata());
        assertEquals(List.of("empty", "layers.0.attn.wq", "scalar", "special", "ünïcode/名前"), List.copyOf(c.tensors().keySet()));
        for (var e : tensors.entrySet()) {
            TensorData read = c.tensors().get(e.getKey());
            assertEquals("F32", read.dtype());
            assertArrayEquals(e.getValue().shape(), read.shape(), e.getKey());
            assertArrayEquals(bits(e.getValue().data()), bits(read.data()), e.getKey());
        }
        // atomic overwrite of an existing file
        SafeTensors.write(file, Map.of("x", TensorData.f32(new int[] {1}, new float[] {1f})), null);
        assertEquals(List.of("x"), List.copyOf(SafeTensors.read(file).tensors().keySet()));
    }

    @Test
    void halfPrecisionRoundsToNearestEven() throws IOException {
        float[] values = {1.0f, 1.00390625f, 1.01171875f, -3.140625f, Float.NaN, Float.POSITIVE_INFINITY, 65504f, 0.1f};
        Path file = dir.resolve("half.safetensors");
        SafeTensors.write(file, Map.of(
                "bf", new TensorData("BF16", new int[] {8}, values),
                "f16", new TensorData("F16", new int[] {8}, values)), null);
        SafeTensors.Contents c = SafeTensors.read(file);
        float[] bf = c.tensors().get("bf").data();
        assertEquals("BF16", c.tensors().get("bf").dtype());
        assertEquals(1.0f, bf[0]);
        assertEquals(1.0f, bf[1], "tie rounds to even (down)");
        assertEquals(1.015625f, bf[2], "tie rounds to even (up)");
        assertEquals(-3.140625f, bf[3]);
        assertTrue(Float.isNaN(bf[4]));
        assertEquals(Float.POSITIVE_INFINITY, bf[5]);
        assertEquals(65536f, bf[6]);
        assertEquals(Float.intBitsToFloat(0x3DCD0000), bf[7]);
        float[] h = c.tensors().get("f16").data();
        assertEquals(1.0f, h[0]);
        assertEquals(65504f, h[6]);
        assertEquals(Float.float16ToFloat(Float.floatToFloat16(0.1f)), h[7]);
        long size = Files.size(file);
        long n = ByteBuffer.wrap(Files.readAllBytes(file), 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        assertEquals(8 + n + 2 * 8 * 2, size, "two bytes per element");
    }

    // ------------------------------------------------------------------------------ damaged files

    private Path raw(String name, String header, byte[] data) throws IOException {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer buf = ByteBuffer.allocate(8 + h.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        buf.putLong(h.length).put(h).put(data);
        Path file = dir.resolve(name);
        Files.write(file, buf.array());
        return file;
    }

    private static void rejected(Path file, String... fragments) {
        IOException e = assertThrows(IOException.class, () -> SafeTensors.read(file));
        assertTrue(e.getMessage().contains(file.toString()), "names the file: " + e.getMessage());
        for (String f : fragments) {
            assertTrue(e.getMessage().contains(f), "'" + f + "' in: " + e.getMessage());
        }
    }

    private static String t(String name, String dtype, String shape, long begin, long end) {
        return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" + begin + "," + end + "]}";
    }

    @Test
    void truncatedFilesAreRejected() throws IOException {
        Path good = dir.resolve("good.safetensors");
        SafeTensors.write(good, Map.of("w", TensorData.f32(new int[] {4}, new float[] {1, 2, 3, 4})), null);
        byte[] bytes = Files.readAllBytes(good);
        for (int cut : new int[] {bytes.length - 1, bytes.length - 8, 30, 8, 5, 0}) {
            Path file = dir.resolve("cut" + cut);
            Files.write(file, Arrays.copyOf(bytes, cut));
            IOException e = assertThrows(IOException.class, () -> SafeTensors.read(file));
            assertTrue(e.getMessage().contains(file.toString()), e.getMessage());
            assertTrue(e.getMessage().contains("truncated") || e.getMessage().contains("too short"), e.getMessage());
            if (cut >= bytes.length - 8) {
                assertTrue(e.getMessage().contains("tensor 'w'"), e.getMessage());
            }
        }
        Path longer = dir.resolve("longer");
        Files.write(longer, Arrays.copyOf(bytes, bytes.length + 4));
        rejected(longer, "4 bytes after the last tensor");
    }

    @Test
    void badHeadersAreRejected() throws IOException {
        byte[] eight = new byte[8];
        rejected(raw("notjson", "{\"a\":", eight), "not valid JSON");
        rejected(raw("array", "[1,2]   ", new byte[0]), "not valid JSON");
        rejected(raw("dup", "{" + t("w", "F32", "[1]", 0, 4) + "," + t("w", "F32", "[1]", 4, 8) + "}", eight), "Duplicate field 'w'");
        rejected(raw("overlap", "{" + t("a", "F32", "[2]", 0, 8) + "," + t("b", "F32", "[1]", 4, 8) + "}", eight), "tensor 'b'", "overlaps tensor 'a'");
        rejected(raw("gap", "{" + t("a", "F32", "[1]", 0, 4) + "," + t("b", "F32", "[0]", 8, 8) + "}", eight), "gap", "tensor 'b'");
        rejected(raw("notzero", "{" + t("a", "F32", "[1]", 4, 8) + "}", eight), "gap", "tensor 'a'");
        rejected(raw("size", "{" + t("a", "F32", "[3]", 0, 8) + "}", eight), "tensor 'a'", "span 8 bytes", "needs 12");
        rejected(raw("dtype", "{" + t("a", "Q4", "[2]", 0, 8) + "}", eight), "tensor 'a'", "unknown dtype Q4");
        rejected(raw("i64", "{" + t("a", "I64", "[1]", 0, 8) + "}", eight), "tensor 'a'", "dtype I64");
        rejected(raw("shape", "{" + t("a", "F32", "[-2]", 0, 8) + "}", eight), "tensor 'a'", "invalid shape");
        rejected(raw("shape2", "{" + t("a", "F32", "[2.0]", 0, 8) + "}", eight), "tensor 'a'", "invalid shape");
        rejected(raw("offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8]}}", eight), "tensor 'a'", "data_offsets");
        rejected(raw("reversed", "{" + t("a", "F32", "[0]", 8, 0) + "}", eight), "tensor 'a'", "invalid data_offsets");
        rejected(raw("nodtype", "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", eight), "tensor 'a'", "dtype");
        rejected(raw("entry", "{\"a\":3}", new byte[0]), "tensor 'a'");
        rejected(raw("meta", "{\"__metadata__\":{\"k\":1}}", new byte[0]), "__metadata__", "'k'");
        rejected(raw("meta2", "{\"__metadata__\":[]}", new byte[0]), "__metadata__");
        rejected(raw("overflow", "{" + t("a", "F32", "[2147483647,2147483647,2147483647]", 0, 8) + "}", eight), "tensor 'a'", "needs more than");
        rejected(raw("beyond", "{" + t("a", "F32", "[4]", 0, 16) + "}", eight), "truncated", "tensor 'a'");

        Path utf = dir.resolve("utf");
        ByteBuffer buf = ByteBuffer.allocate(8 + 4).order(ByteOrder.LITTLE_ENDIAN).putLong(4).put(new byte[] {'{', (byte) 0xC3, '}', ' '});
        Files.write(utf, buf.array());
        rejected(utf, "Invalid UTF-8");

        rejected(utf, "is damaged at byte 11: the header is not valid JSON: Invalid UTF-8 middle byte 0x7d");
        rejected(raw("position", "{\"a\":", eight), "is damaged at byte 13: the header is not valid JSON");
        rejected(raw("gapAt", "{" + t("a", "F32", "[1]", 0, 4) + "," + t("b", "F32", "[0]", 8, 8) + "}", eight),
                "is damaged at byte " + (8 + 107 + 4) + ": gap of 4 bytes");

        Path huge = dir.resolve("huge");
        Files.write(huge, ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(-1L).array());
        rejected(huge, "is damaged at byte 0: insane header size 18446744073709551615");
        Path past = dir.resolve("past");
        Files.write(past, ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(1000).array());
        rejected(past, "header size 1000", "truncated");
        rejected(raw("tiny", "{", new byte[0]), "too small");
    }

    @Test
    void validFilesFromOtherWritersAreAccepted() throws IOException {
        // tensors listed out of offset order, unpadded header, zero-size tensors, unknown extra keys
        byte[] data = ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN).putFloat(1f).putFloat(2f).putShort((short) 0x3F80).putShort((short) 0xC000).array();
        Path file = raw("other", "{" + t("z", "F32", "[2]", 0, 8) + "," + t("e", "F32", "[0]", 8, 8) + ","
                + "\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[8,12],\"extra\":1}}", data);
        SafeTensors.Contents c = SafeTensors.read(file);
        assertArrayEquals(new float[] {1f, 2f}, c.tensors().get("z").data());
        assertArrayEquals(new float[] {1f, -2f}, c.tensors().get("a").data());
        assertEquals(0, c.tensors().get("e").size());
    }

    @Test
    void writerRejectsBadNames() {
        TensorData one = TensorData.f32(new int[] {1}, new float[1]);
        assertThrows(IllegalArgumentException.class, () -> SafeTensors.write(new ByteArrayOutputStream(), Map.of("", one), null));
        assertThrows(IllegalArgumentException.class,
                () -> SafeTensors.write(new ByteArrayOutputStream(), Map.of(SafeTensors.METADATA_KEY, one), null));
        assertThrows(IllegalArgumentException.class, () -> TensorData.f32(new int[] {2}, new float[3]));
        assertThrows(IllegalArgumentException.class, () -> new TensorData("I64", new int[] {1}, new float[1]));
    }

    // ------------------------------------------------------------------------------ independent reader

    private static final String PYTHON_READER = """
            import json, struct, sys
            path = sys.argv[1]
            with open(path, 'rb') as f:
                raw = f.read()
            (n,) = struct.unpack('<Q', raw[:8])
            assert (8 + n) % 8 == 0, 'data start not aligned'
            header = json.loads(raw[8:8 + n].decode('utf-8'))
            meta = header.pop('__metadata__', {})
            buf = raw[8 + n:]
            out = {'metadata': meta, 'tensors': {}}
            pos = 0
            for name, info in sorted(header.items(), key=lambda kv: kv[1]['data_offsets']):
                b, e = info['data_offsets']
                assert b == pos, 'gap or overlap at ' + name
                count = 1
                for d in info['shape']:
                    count *= d
                assert info['dtype'] == 'F32'
                assert e - b == 4 * count, 'size of ' + name
                values = struct.unpack('<%df' % count, buf[b:e])
                out['tensors'][name] = {'shape': info['shape'], 'values': [repr(v) for v in values]}
                pos = e
            assert pos == len(buf), 'buffer not covered'
            print(json.dumps(out))
            """;

    @Test
    void pythonReadsWhatWeWrite() throws Exception {
        Python3.assumeAvailable();

        Random random = new Random(3);
        Map<String, TensorData> tensors = new LinkedHashMap<>();
        float[] w = new float[6 * 5];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) random.nextGaussian() * 10;
        }
        w[0] = -0.0f;
        w[1] = Float.MIN_VALUE;
        w[2] = Float.MAX_VALUE;
        tensors.put("model.layers.0.mlp.w1", TensorData.f32(new int[] {6, 5}, w));
        tensors.put("model.norm", TensorData.f32(new int[] {3}, new float[] {1f, 0.5f, -1e-30f}));
        tensors.put("a.scalar", TensorData.f32(new int[] {}, new float[] {7f}));
        Path file = dir.resolve("py.safetensors");
        SafeTensors.write(file, tensors, Map.of("producer", "muon4j"));
        Path script = dir.resolve("reader.py");
        Files.writeString(script, PYTHON_READER);
        Python3.Run run = Python3.run(script.toString(), file.toString());
        String output = run.output();
        assertEquals(0, run.exitCode(), output);

        Map<String, Object> parsed = JsonCodec.parseObject(output.trim());
        assertEquals(Map.of("producer", "muon4j"), parsed.get("metadata"));
        @SuppressWarnings("unchecked")
        Map<String, Object> read = (Map<String, Object>) parsed.get("tensors");
        assertEquals(tensors.keySet(), read.keySet());
        for (var e : tensors.entrySet()) {
            @SuppressWarnings("unchecked")
            Map<String, Object> t = (Map<String, Object>) read.get(e.getKey());
            List<Long> shape = Arrays.stream(e.getValue().shape()).mapToObj(d -> (long) d).toList();
            assertEquals(shape, t.get("shape"), e.getKey());
            @SuppressWarnings("unchecked")
            List<Object> values = (List<Object>) t.get("values");
            float[] expected = e.getValue().data();
            assertEquals(expected.length, values.size());
            for (int i = 0; i < expected.length; i++) {
                float got = (float) Double.parseDouble((String) values.get(i));
                assertEquals(Float.floatToRawIntBits(expected[i]), Float.floatToRawIntBits(got), e.getKey() + "[" + i + "]");
            }
        }
    }
}
