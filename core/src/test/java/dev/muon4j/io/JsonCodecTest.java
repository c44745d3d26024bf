package dev.muon4j.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The JSON settings muon4j's files rely on: the value types read back, the exact text written (the
 * optimizer state's metadata checksum is computed over it), strictness, and errors that name the file,
 * the byte and the field.
 */
class JsonCodecTest {
    @TempDir
    Path dir;

    private static Map<String, Object> sample() {
        Map<String, Object> inner = new LinkedHashMap<>();
        inner.put("lr", 0.02);
        inner.put("betas", List.of(0.9, 0.95));
        inner.put("empty", new LinkedHashMap<>());
        inner.put("none", new ArrayList<>());
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("name", "llama \"tiny\"\n\ttab\\ é 😀 \u0001 \u2028 \u007f");
        m.put("step", 1234567890123L);
        m.put("small", 7L);
        m.put("loss", 2.718281828459045);
        m.put("tiny", 1.0E-300);
        m.put("ok", true);
        m.put("missing", null);
        m.put("optim", inner);
        m.put("mixed", List.of(1L, "two", List.of(3.5), Map.of("four", 4L)));
        return m;
    }

    @Test
    void valuesRoundTripWithLongsAndDoubles() {
        Map<String, Object> m = sample();
        assertEquals(m, JsonCodec.parseObject(JsonCodec.write(m)));
        assertEquals(m, JsonCodec.parseObject(JsonCodec.pretty(m)));
        Map<String, Object> numbers = JsonCodec.parseObject("{\"i\": 3, \"big\": 9223372036854775807, \"f\": 1e3, \"z\": -0.0}");
        assertInstanceOf(Long.class, numbers.get("i"));
        assertEquals(Long.MAX_VALUE, numbers.get("big"));
        assertEquals(1000.0, numbers.get("f"));
        assertEquals(-0.0, numbers.get("z"));
        assertEquals(0.1f, ((Double) JsonCodec.parseObject(JsonCodec.write(Map.of("f", 0.1f))).get("f")).floatValue());
    }

    @Test
    void writtenTextIsPlainAsciiInTheProjectsLayout() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("a", 1L);
        m.put("b", List.of(true, "x"));
        m.put("c", new LinkedHashMap<>());
        m.put("d", List.of());
        m.put("e", Map.of("f", 1.5));
        assertEquals("""
                {
                  "a": 1,
                  "b": [
                    true,
                    "x"
                  ],
                  "c": {},
                  "d": [],
                  "e": {
                    "f": 1.5
                  }
                }""", JsonCodec.pretty(m));
        assertEquals("{\"a\":1,\"b\":[true,\"x\"],\"c\":{},\"d\":[],\"e\":{\"f\":1.5}}", JsonCodec.write(m));
        // As Python's json.dumps(s) writes it: every character outside printable ASCII escaped, lower-case hex.
        assertEquals("\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u007f\\u00e9\\ud83d\\ude00\"", JsonCodec.write("a\"b\\c\n\r\t\b\f\u0001\u007fé😀"));
        Map<String, Object> numbers = new LinkedHashMap<>();
        numbers.put("f", 0.1f);
        numbers.put("d", 1.0E-5);
        assertEquals("{\"f\":0.1,\"d\":1.0E-5}", JsonCodec.write(numbers));
        String lone = "x\uD800y\uDC00";
        assertEquals(lone, JsonCodec.parseObject(JsonCodec.write(Map.of("s", lone))).get("s"), "lone surrogates survive");
    }

    record Point(String name, double loss) {
    }

    @Test
    void nonFiniteNumbersAreRefusedNamingThePlace() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> JsonCodec.write(Map.of("metrics", Map.of("loss", List.of(1.0, Double.NaN)))));
        assertTrue(e.getMessage().contains("/metrics/loss") && e.getMessage().contains("NaN"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> JsonCodec.pretty(new Point("w", Double.POSITIVE_INFINITY)));
        assertTrue(e.getMessage().contains("/loss is Infinity"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> JsonCodec.write(Float.NaN));
        assertThrows(IllegalArgumentException.class, () -> JsonCodec.write(Map.of("a", new double[] {1, Double.NEGATIVE_INFINITY})));
    }

    @Test
    void malformedTextIsRefusedWithItsPosition() {
        String[] bad = {
            "", " ", "{", "[1]", "{\"a\":[1,]}", "{\"a\":1,}", "{\"a\":01}", "{\"a\":1.}", "{\"a\":tru}", "{\"a\":\"abc}",
            "{\"a\":\"\\x\"}", "{\"a\" 1}", "{a:1}", "{'a':1}", "{\"a\":\"a\nb\"}", "{\"a\":NaN}", "{\"a\":1e400}", "{\"a\":[-1e999]}", "{\"a\":1}}", "{\"a\":1} {}",
            "// c\n{}", "{\"a\":}", "{\"a\":99999999999999999999}", "{\"a\":1,\"b\":2,\"a\":3}",
        };
        for (String text : bad) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> JsonCodec.parseObject(text), text);
            assertTrue(e.getMessage().startsWith("JSON error at line "), e.getMessage());
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> JsonCodec.parseObject("{\n  \"a\": 1,\n  \"b\": tru\n}"));
        assertTrue(e.getMessage().startsWith("JSON error at line 3, column "), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> JsonCodec.parseObject("{\"a\":1,\"b\":2,\"a\":3}"));
        assertTrue(e.getMessage().contains("Duplicate field 'a'"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> JsonCodec.parseObject("{\"lr\": 1e400}"));
        assertTrue(e.getMessage().contains("the number 1e400 is beyond the range of a double"), e.getMessage());
        assertEquals(0.0, JsonCodec.parseObject("{\"tiny\": 1e-400}").get("tiny"), "underflow is a number, zero");
        e = assertThrows(IllegalArgumentException.class, () -> JsonCodec.parseObject("[1]"));
        assertTrue(e.getMessage().contains("expected a JSON object ('{'), found an array"), e.getMessage());
    }

    private IOException unreadable(String name, byte[] bytes) throws IOException {
        Path file = dir.resolve(name);
        Files.write(file, bytes);
        IOException e = assertThrows(IOException.class, () -> JsonCodec.readObject(file));
        assertTrue(e.getMessage().startsWith(file + " "), "names the file: " + e.getMessage());
        return e;
    }

    @Test
    void readObjectNamesTheFileAndTheByteOffset() throws IOException {
        // 'é' takes two bytes: the 'x' at character 8 is byte 9.
        IOException syntax = unreadable("syntax.json", "{\"é\": 1 x}".getBytes(StandardCharsets.UTF_8));
        assertTrue(syntax.getMessage().contains("is damaged at byte 9: the file is not valid JSON: "), syntax.getMessage());
        IOException utf8 = unreadable("utf8.json", new byte[] {'{', '"', 'a', (byte) 0xC3, '"', ':', '1', '}'});
        assertTrue(utf8.getMessage().contains("is damaged at byte 5: the file is not valid JSON: Invalid UTF-8"), utf8.getMessage());
        IOException cut = unreadable("cut.json", new byte[] {'{', '"', 'a', (byte) 0xE2, (byte) 0x82});
        assertTrue(cut.getMessage().contains("is damaged at byte 5: the file is not valid JSON: Unexpected end-of-input"), cut.getMessage());
        IOException array = unreadable("array.json", "[1]".getBytes(StandardCharsets.UTF_8));
        assertTrue(array.getMessage().contains("is damaged at byte 0") && array.getMessage().contains("expected a JSON object"),
                array.getMessage());
        IOException missing = assertThrows(IOException.class, () -> JsonCodec.readObject(dir.resolve("none.json")));
        assertTrue(missing.getMessage().contains("none.json cannot be read"), missing.getMessage());

        Path good = dir.resolve("good.json");
        Files.write(good, JsonCodec.prettyFile(sample()));
        assertEquals(sample(), JsonCodec.readObject(good));
    }

    record Entry(long size, String sha256) {
    }

    record Listing(String format, Map<String, Entry> files) {
    }

    @Test
    void recordsAreReadStrictlyAndErrorsNameTheField() throws IOException {
        Path file = dir.resolve("listing.json");
        Listing listing = new Listing("x", Map.of("a/b.json", new Entry(3, "ff")));
        Files.write(file, JsonCodec.prettyFile(listing));
        assertEquals(listing, JsonCodec.read(file, Listing.class));
        for (String[] bad : new String[][] {
            {"{\"format\":\"x\",\"files\":{\"a/b.json\":{\"size\":\"3\",\"sha256\":\"ff\"}}}", "/files/a~1b.json/size"},
            {"{\"format\":\"x\",\"files\":{\"a\":{\"size\":2.5,\"sha256\":\"ff\"}}}", "/files/a/size"},
            {"{\"format\":\"x\",\"files\":{\"a\":{\"size\":3,\"sha256\":7}}}", "/files/a/sha256"},
            {"{\"format\":\"x\",\"files\":[]}", "/files"},
            {"{\"format\":\"x\",\"extra\":1}", "/extra"},
        }) {
            Files.writeString(file, bad[0]);
            IOException e = assertThrows(IOException.class, () -> JsonCodec.read(file, Listing.class), bad[0]);
            assertTrue(e.getMessage().startsWith(file + " is damaged: the file has an invalid field " + bad[1] + ": "), e.getMessage());
        }
        Files.writeString(file, "{\"format\":\"x\",");
        IOException e = assertThrows(IOException.class, () -> JsonCodec.read(file, Listing.class));
        assertTrue(e.getMessage().startsWith(file + " is damaged at byte 14: the file is not valid JSON"), e.getMessage());
    }
}
