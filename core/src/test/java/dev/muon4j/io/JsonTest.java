package dev.muon4j.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
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

/** The JSON writer and parser: round trips, exact formatting, escapes, numbers, and errors with positions. */
class JsonTest {
    @TempDir
    Path dir;

    private static Map<String, Object> sample() {
        Map<String, Object> inner = new LinkedHashMap<>();
        inner.put("lr", 0.02);
        inner.put("betas", List.of(0.9, 0.95));
        inner.put("empty", new LinkedHashMap<>());
        inner.put("none", new ArrayList<>());
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("name", "llama \"tiny\"\n\ttab\\ é 😀 \u0001 \u2028");
        m.put("step", 1234567890123L);
        m.put("negative", -7L);
        m.put("loss", 2.718281828459045);
        m.put("tiny", 1.0E-300);
        m.put("ok", true);
        m.put("bad", false);
        m.put("missing", null);
        m.put("optim", inner);
        m.put("mixed", List.of(1L, "two", List.of(3.5), Map.of("four", 4L)));
        return m;
    }

    @Test
    void compactAndPrettyRoundTrip() {
        Map<String, Object> m = sample();
        assertEquals(m, Json.parse(Json.write(m)));
        assertEquals(m, Json.parse(Json.pretty(m)));
        assertEquals(m, Json.parseObject(Json.pretty(m)));
        assertTrue(Json.write(m).chars().allMatch(c -> c < 0x7f), "output is ASCII");
    }

    @Test
    void prettyFormat() {
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
                }""", Json.pretty(m));
        assertEquals("{\"a\":1,\"b\":[true,\"x\"],\"c\":{},\"d\":[],\"e\":{\"f\":1.5}}", Json.write(m));
    }

    @Test
    void stringEscapes() {
        assertEquals("\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u00e9\\ud83d\\ude00\"", Json.write("a\"b\\c\n\r\t\b\f\u0001é😀"));
        assertEquals("😀", Json.parse("\"\\uD83D\\uDE00\""));
        assertEquals("😀é", Json.parse("\"😀é\""));
        assertEquals("/\b\f\n\r\t\"\\", Json.parse("\"\\/\\b\\f\\n\\r\\t\\\"\\\\\""));
        String lone = "x\uD800y\uDC00";
        assertEquals(lone, Json.parse(Json.write(lone)), "lone surrogates survive");
        assertEquals("A", Json.parse("\"\\u0041\""));
    }

    @Test
    void numbers() {
        assertEquals(0L, Json.parse("0"));
        assertEquals(-12L, Json.parse("-12"));
        assertEquals(Long.MAX_VALUE, Json.parse("9223372036854775807"));
        assertEquals(Long.MIN_VALUE, Json.parse("-9223372036854775808"));
        assertInstanceOf(Double.class, Json.parse("9223372036854775808"));
        assertEquals(1.5, Json.parse("1.5"));
        assertEquals(1000.0, Json.parse("1e3"));
        assertEquals(-0.025, Json.parse("-2.5E-2"));
        assertEquals(1.0, Json.parse("1.0"));
        assertEquals(-0.0, Json.parse("-0.0"));
        float f = 0.1f;
        assertEquals(f, ((Double) Json.parse(Json.write(f))).floatValue());
        assertEquals("0.1", Json.write(f));
        assertEquals("[1,2,3]", Json.write(List.of(1, (short) 2, (byte) 3)));
        assertNull(Json.parse(" null "));
        assertEquals(true, Json.parse("true"));
    }

    @Test
    void writerRejectsWhatJsonCannotHold() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Json.write(Map.of("metrics", Map.of("loss", List.of(1.0, Double.NaN)))));
        assertTrue(e.getMessage().contains("$.metrics.loss[1]"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Json.write(Float.POSITIVE_INFINITY));
        assertThrows(IllegalArgumentException.class, () -> Json.write(Map.of(1, 2)));
        assertThrows(IllegalArgumentException.class, () -> Json.write(new Object()));
    }

    private static Json.ParseException fails(String text) {
        return assertThrows(Json.ParseException.class, () -> Json.parse(text), text);
    }

    @Test
    void malformedInputIsRejectedWithPosition() {
        String[] bad = {
            "", " ", "{", "[", "[1,]", "{\"a\":1,}", "{,}", "01", "-01", "1.", ".5", "-", "+1", "1e", "1e+", "tru", "nul", "True",
            "\"abc", "\"\\x\"", "\"\\u12G4\"", "\"\\u12\"", "{\"a\" 1}", "{a:1}", "{'a':1}", "[1 2]", "1 2", "\"a\nb\"",
            "NaN", "Infinity", "-Infinity", "1e400", "{\"a\":1}}", "[1]]", "// c\n1", "\"\\", "{\"a\":}", "\u00a01",
        };
        for (String text : bad) {
            Json.ParseException e = fails(text);
            assertTrue(e.getMessage().startsWith("JSON error at line "), e.getMessage());
        }
        Json.ParseException e = fails("{\n  \"a\": 1,\n  \"b\": tru\n}");
        assertEquals(3, e.line());
        assertEquals(8, e.column());
        assertEquals(19, e.offset());
        e = fails("[1, 2,\n 3 x]");
        assertEquals(2, e.line());
        assertEquals(4, e.column());
        assertTrue(e.getMessage().contains("expected ',' or ']'"), e.getMessage());
    }

    @Test
    void duplicateKeysAndDeepNestingAreRejected() {
        Json.ParseException e = fails("{\"a\":1,\"b\":2,\"a\":3}");
        assertTrue(e.getMessage().contains("duplicate key \"a\""), e.getMessage());
        assertEquals(13, e.offset());
        String deep = "[".repeat(Json.MAX_DEPTH + 1) + "]".repeat(Json.MAX_DEPTH + 1);
        assertTrue(fails(deep).getMessage().contains("nesting"));
        String ok = "[".repeat(Json.MAX_DEPTH) + "]".repeat(Json.MAX_DEPTH);
        assertInstanceOf(List.class, Json.parse(ok));
    }

    @Test
    void parseObjectRequiresAnObject() {
        assertThrows(Json.ParseException.class, () -> Json.parseObject("[1]"));
        assertThrows(Json.ParseException.class, () -> Json.parseObject(""));
        assertEquals(Map.of("a", List.of()), Json.parseObject(" {\"a\": []} "));
    }

    private IOException unreadable(String name, byte[] bytes) throws IOException {
        Path file = dir.resolve(name);
        Files.write(file, bytes);
        IOException e = assertThrows(IOException.class, () -> Json.readObject(file));
        assertTrue(e.getMessage().startsWith(file + " "), "names the file: " + e.getMessage());
        return e;
    }

    @Test
    void readObjectNamesTheFileAndTheByteOffset() throws IOException {
        // 'é' takes two bytes: the 'x' at character 8 is byte 9.
        IOException syntax = unreadable("syntax.json", "{\"é\": 1 x}".getBytes(StandardCharsets.UTF_8));
        String expected = "is damaged at byte 9: the file is not valid JSON: JSON error at line 1, column 9 (offset 8)";
        assertTrue(syntax.getMessage().contains(expected), syntax.getMessage());
        IOException utf8 = unreadable("utf8.json", new byte[] {'{', '"', 'a', (byte) 0xC3, '"', ':', '1', '}'});
        assertTrue(utf8.getMessage().contains("is damaged at byte 3: the file is not valid UTF-8"), utf8.getMessage());
        IOException cut = unreadable("cut.json", new byte[] {'{', '"', 'a', (byte) 0xE2, (byte) 0x82});
        assertTrue(cut.getMessage().contains("is damaged at byte 3: the file is not valid UTF-8"), cut.getMessage());
        IOException array = unreadable("array.json", "[1]".getBytes(StandardCharsets.UTF_8));
        assertTrue(array.getMessage().contains("is damaged at byte 0") && array.getMessage().contains("expected a JSON object"),
                array.getMessage());
        IOException missing = assertThrows(IOException.class, () -> Json.readObject(dir.resolve("none.json")));
        assertTrue(missing.getMessage().contains("none.json cannot be read"), missing.getMessage());

        Path good = dir.resolve("good.json");
        Files.writeString(good, Json.pretty(sample()));
        assertEquals(sample(), Json.readObject(good));
    }
}
