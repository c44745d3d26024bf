package dev.muon4j.io;

import java.io.IOException;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A small JSON (RFC 8259) writer and strict recursive-descent parser, without dependencies.
 *
 * <p>Parsed values map to Java as follows: object → {@code LinkedHashMap<String, Object>} (keys in
 * document order), array → {@code ArrayList<Object>}, string → {@code String}, {@code true}/{@code
 * false} → {@code Boolean}, {@code null} → {@code null}, and a number → {@code Long} when its literal
 * has neither fraction nor exponent and fits in a long, else {@code Double}. The parser is strict:
 * no comments, no trailing commas, no leading zeros, no unescaped control characters in strings,
 * no NaN or Infinity, no number overflowing a double, and no duplicate keys in one object (the RFC
 * leaves their meaning open; silently keeping one of them would hide damage). Nesting is limited to
 * {@value #MAX_DEPTH} levels. Errors are {@link ParseException}s that give the line, column and
 * character offset; {@link #readObject} reads a file and reports bad UTF-8 and syntax errors as an
 * {@code IOException} naming the file and the byte offset.
 *
 * <p>The writer accepts {@code Map} (keys must be strings), {@code Collection}, {@code String},
 * {@code Boolean}, {@code null}, and the numbers {@code Byte}, {@code Short}, {@code Integer},
 * {@code Long}, {@code AtomicInteger}, {@code AtomicLong}, {@code BigInteger}, {@code BigDecimal},
 * {@code Float} and {@code Double} (finite only: JSON has no NaN or Infinity). A {@code Float} is
 * written with the shortest decimal that identifies it, so it parses back (as a Double) to a value
 * that casts back to the same float. Strings are escaped so that the output is pure ASCII and
 * every Java string round-trips, lone surrogates included.
 */
public final class Json {
    /** The deepest nesting of arrays and objects the parser accepts. */
    public static final int MAX_DEPTH = 512;
    /** The largest file {@link #readObject} reads, in bytes. */
    public static final long MAX_FILE_BYTES = 100_000_000L;

    private Json() {
    }

    /** A syntax error in JSON text, with the position where it was found. */
    public static final class ParseException extends IllegalArgumentException {
        private static final long serialVersionUID = 1L;
        private final int offset;
        private final int line;
        private final int column;

        ParseException(String message, int offset, int line, int column) {
            super("JSON error at line " + line + ", column " + column + " (offset " + offset + "): " + message);
            this.offset = offset;
            this.line = line;
            this.column = column;
        }

        /** Zero-based character offset of the error in the parsed text. */
        public int offset() {
            return offset;
        }

        /** One-based line of the error. */
        public int line() {
            return line;
        }

        /** One-based column (in characters) of the error. */
        public int column() {
            return column;
        }
    }

    // ------------------------------------------------------------------------------------------ writing

    /** The value as compact JSON text (no whitespace). */
    public static String write(Object value) {
        StringBuilder sb = new StringBuilder();
        writeValue(sb, value, -1, 0, "$");
        return sb.toString();
    }

    /**
     * The value as JSON text pretty-printed with a 2-space indent, one member or element per line,
     * {@code "key": value}; empty objects and arrays stay {@code {}} and {@code []}. No trailing newline.
     */
    public static String pretty(Object value) {
        StringBuilder sb = new StringBuilder();
        writeValue(sb, value, 2, 0, "$");
        return sb.toString();
    }

    private static void newline(StringBuilder sb, int indent, int depth) {
        if (indent >= 0) {
            sb.append('\n');
            sb.append(" ".repeat(indent * depth));
        }
    }

    private static void writeValue(StringBuilder sb, Object value, int indent, int depth, String path) {
        if (depth > MAX_DEPTH) {
            throw new IllegalArgumentException("cannot write JSON: nesting deeper than " + MAX_DEPTH + " at " + path);
        }
        switch (value) {
            case null -> sb.append("null");
            case String s -> writeString(sb, s);
            case Boolean b -> sb.append(b);
            case Map<?, ?> map -> {
                if (map.isEmpty()) {
                    sb.append("{}");
                    return;
                }
                sb.append('{');
                boolean first = true;
                for (Map.Entry<?, ?> e : map.entrySet()) {
                    if (!(e.getKey() instanceof String key)) {
                        throw new IllegalArgumentException("cannot write JSON: object key " + e.getKey() + " at " + path
                                + " is not a string");
                    }
                    if (!first) {
                        sb.append(',');
                    }
                    first = false;
                    newline(sb, indent, depth + 1);
                    writeString(sb, key);
                    sb.append(indent >= 0 ? ": " : ":");
                    writeValue(sb, e.getValue(), indent, depth + 1, path + "." + key);
                }
                newline(sb, indent, depth);
                sb.append('}');
            }
            case Collection<?> list -> {
                if (list.isEmpty()) {
                    sb.append("[]");
                    return;
                }
                sb.append('[');
                int i = 0;
                for (Object item : list) {
                    if (i > 0) {
                        sb.append(',');
                    }
                    newline(sb, indent, depth + 1);
                    writeValue(sb, item, indent, depth + 1, path + "[" + i + "]");
                    i++;
                }
                newline(sb, indent, depth);
                sb.append(']');
            }
            case Double d -> {
                if (!Double.isFinite(d)) {
                    throw new IllegalArgumentException("cannot write JSON: " + path + " is " + d + " (JSON has no NaN or Infinity)");
                }
                sb.append(d);
            }
            case Float f -> {
                if (!Float.isFinite(f)) {
                    throw new IllegalArgumentException("cannot write JSON: " + path + " is " + f + " (JSON has no NaN or Infinity)");
                }
                sb.append(f);
            }
            case Long l -> sb.append(l);
            case Integer i -> sb.append(i);
            case Short s -> sb.append(s);
            case Byte b -> sb.append(b);
            case AtomicInteger a -> sb.append(a.get());
            case AtomicLong a -> sb.append(a.get());
            case BigInteger b -> sb.append(b);
            case BigDecimal b -> sb.append(b);
            default -> throw new IllegalArgumentException("cannot write JSON: " + path + " is a "
                    + value.getClass().getName() + " (use Map, Collection, String, Number, Boolean or null)");
        }
    }

    private static final char[] HEX = "0123456789abcdef".toCharArray();

    private static void writeString(StringBuilder sb, String s) {
        sb.append('"');
        int n = s.length();
        for (int i = 0; i < n; i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                case '\b' -> sb.append("\\b");
                case '\f' -> sb.append("\\f");
                default -> {
                    if (c >= 0x20 && c < 0x7f) {
                        sb.append(c);
                    } else {
                        sb.append("\\u").append(HEX[c >> 12]).append(HEX[(c >> 8) & 15]).append(HEX[(c >> 4) & 15]).append(HEX[c & 15]);
                    }
                }
            }
        }
        sb.append('"');
    }

    // ------------------------------------------------------------------------------------------ parsing

    /**
     * Parses one JSON value; only whitespace may surround it.
     *
     * @throws ParseException with the position of the first error
     */
    public static Object parse(String text) {
        Parser p = new Parser(text);
        p.skipWhitespace();
        Object value = p.value(0);
        p.skipWhitespace();
        if (p.pos < text.length()) {
            throw p.error("unexpected " + p.describe(p.pos) + " after the JSON value");
        }
        return value;
    }

    /**
     * Parses JSON text whose top-level value must be an object.
     *
     * @throws ParseException on a syntax error or when the value is not an object
     */
    @SuppressWarnings("unchecked")
    public static Map<String, Object> parseObject(String text) {
        Parser p = new Parser(text);
        p.skipWhitespace();
        if (p.pos >= text.length() || text.charAt(p.pos) != '{') {
            throw p.error("expected a JSON object ('{'), found " + p.describe(p.pos));
        }
        return (Map<String, Object>) parse(text);
    }

    /**
     * Reads a file of UTF-8 JSON text whose top-level value must be an object.
     *
     * @throws IOException naming the file: when it cannot be read or is larger than {@value
     *                     #MAX_FILE_BYTES} bytes, or "is damaged at byte N" when its bytes are not
     *                     UTF-8 or its text is not a JSON object (the message then also gives the
     *                     line, column and character offset)
     */
    public static Map<String, Object> readObject(Path file) throws IOException {
        byte[] bytes;
        try {
            long size = Files.size(file);
            if (size > MAX_FILE_BYTES) {
                throw new IOException("it has " + size + " bytes, more than the " + MAX_FILE_BYTES + " a JSON file may have");
            }
            bytes = Files.readAllBytes(file);
        } catch (IOException e) {
            throw new IOException(file + " cannot be read: " + e.getMessage(), e);
        }
        return parseObject(file, ByteBuffer.wrap(bytes), 0, "the file");
    }

    /**
     * Parses the UTF-8 JSON text in {@code utf8} (from its position to its limit), which lies at
     * byte {@code base} of {@code file}; its top-level value must be an object.
     *
     * @param what names the text in error messages, e.g. "the header"
     * @throws IOException "{@code file} is damaged at byte N: {@code what} is not valid …", N being
     *                     the file offset of the first bad byte or of the JSON syntax error
     */
    static Map<String, Object> parseObject(Path file, ByteBuffer utf8, long base, String what) throws IOException {
        int start = utf8.position();
        CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT);
        CharBuffer chars = CharBuffer.allocate(utf8.remaining()); // UTF-8 never has more chars than bytes
        CoderResult result = decoder.decode(utf8, chars, true);
        if (!result.isError()) {
            result = decoder.flush(chars);
        }
        if (result.isError()) {
            throw new IOException(file + " is damaged at byte " + (base + utf8.position() - start) + ": " + what
                    + " is not valid UTF-8");
        }
        String text = chars.flip().toString();
        try {
            return parseObject(text);
        } catch (ParseException e) {
            throw new IOException(file + " is damaged at byte " + (base + utf8Length(text, e.offset())) + ": " + what
                    + " is not valid JSON: " + e.getMessage(), e);
        }
    }

    /** The number of UTF-8 bytes of the first {@code end} chars of {@code text}. */
    private static long utf8Length(String text, int end) {
        long bytes = 0;
        for (int i = 0; i < Math.min(end, text.length()); i++) {
            char c = text.charAt(i);
            if (c < 0x80) {
                bytes += 1;
            } else if (c < 0x800) {
                bytes += 2;
            } else if (Character.isHighSurrogate(c) && i + 1 < text.length() && Character.isLowSurrogate(text.charAt(i + 1))) {
                bytes += 4;
                i++;
            } else {
                bytes += 3;
            }
        }
        return bytes;
    }

    private static final class Parser {
        final String s;
        int pos;

        Parser(String s) {
            this.s = s;
        }

        ParseException error(String message) {
            return errorAt(message, pos);
        }

        ParseException errorAt(String message, int at) {
            int line = 1;
            int lineStart = 0;
            for (int i = 0; i < at && i < s.length(); i++) {
                if (s.charAt(i) == '\n') {
                    line++;
                    lineStart = i + 1;
                }
            }
            return new ParseException(message, at, line, at - lineStart + 1);
        }

        String describe(int at) {
            if (at >= s.length()) {
                return "end of input";
            }
            char c = s.charAt(at);
            if (c >= 0x20 && c < 0x7f) {
                return "'" + c + "'";
            }
            return String.format("character U+%04X", (int) c);
        }

        void skipWhitespace() {
            while (pos < s.length()) {
                char c = s.charAt(pos);
                if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
                    pos++;
                } else {
                    break;
                }
            }
        }

        Object value(int depth) {
            if (pos >= s.length()) {
                throw error("unexpected end of input, expected a value");
            }
            char c = s.charAt(pos);
            return switch (c) {
                case '{' -> object(depth + 1);
                case '[' -> array(depth + 1);
                case '"' -> string();
                case 't' -> literal("true", Boolean.TRUE);
                case 'f' -> literal("false", Boolean.FALSE);
                case 'n' -> literal("null", null);
                default -> {
                    if (c == '-' || (c >= '0' && c <= '9')) {
                        yield number();
                    }
                    throw error("unexpected " + describe(pos) + ", expected a value");
                }
            };
        }

        Object literal(String word, Object value) {
            if (!s.startsWith(word, pos)) {
                throw error("invalid literal, expected '" + word + "'");
            }
            pos += word.length();
            return value;
        }

        Map<String, Object> object(int depth) {
            if (depth > MAX_DEPTH) {
                throw error("nesting deeper than " + MAX_DEPTH + " levels");
            }
            pos++; // '{'
            LinkedHashMap<String, Object> map = new LinkedHashMap<>();
            skipWhitespace();
            if (pos < s.length() && s.charAt(pos) == '}') {
                pos++;
                return map;
            }
            while (true) {
                skipWhitespace();
                if (pos >= s.length() || s.charAt(pos) != '"') {
                    throw error("expected a string key, found " + describe(pos));
                }
                int keyAt = pos;
                String key = string();
                skipWhitespace();
                if (pos >= s.length() || s.charAt(pos) != ':') {
                    throw error("expected ':' after object key, found " + describe(pos));
                }
                pos++;
                skipWhitespace();
                Object value = value(depth);
                if (map.containsKey(key)) {
                    throw errorAt("duplicate key " + Json.write(key) + " in object", keyAt);
                }
                map.put(key, value);
                skipWhitespace();
                if (pos >= s.length()) {
                    throw error("unexpected end of input in object, expected ',' or '}'");
                }
                char c = s.charAt(pos++);
                if (c == '}') {
                    return map;
                }
                if (c != ',') {
                    pos--;
                    throw error("expected ',' or '}' in object, found " + describe(pos));
                }
            }
        }

        List<Object> array(int depth) {
            if (depth > MAX_DEPTH) {
                throw error("nesting deeper than " + MAX_DEPTH + " levels");
            }
            pos++; // '['
            ArrayList<Object> list = new ArrayList<>();
            skipWhitespace();
            if (pos < s.length() && s.charAt(pos) == ']') {
                pos++;
                return list;
            }
            while (true) {
                skipWhitespace();
                list.add(value(depth));
                skipWhitespace();
                if (pos >= s.length()) {
                    throw error("unexpected end of input in array, expected ',' or ']'");
                }
                char c = s.charAt(pos++);
                if (c == ']') {
                    return list;
                }
                if (c != ',') {
                    pos--;
                    throw error("expected ',' or ']' in array, found " + describe(pos));
                }
            }
        }

        String string() {
            int start = pos;
            pos++; // opening quote
            StringBuilder sb = null;
            int runStart = pos;
            while (true) {
                if (pos >= s.length()) {
                    throw errorAt("unterminated string", start);
                }
                char c = s.charAt(pos);
                if (c == '"') {
                    String result = sb == null ? s.substring(runStart, pos) : sb.append(s, runStart, pos).toString();
                    pos++;
                    return result;
                }
                if (c < 0x20) {
                    throw error(String.format("unescaped control character U+%04X in string", (int) c));
                }
                if (c != '\\') {
                    pos++;
                    continue;
                }
                if (sb == null) {
                    sb = new StringBuilder();
                }
                sb.append(s, runStart, pos);
                int escapeAt = pos;
                pos++;
                if (pos >= s.length()) {
                    throw errorAt("unterminated escape sequence", escapeAt);
                }
                char e = s.charAt(pos++);
                switch (e) {
                    case '"' -> sb.append('"');
                    case '\\' -> sb.append('\\');
                    case '/' -> sb.append('/');
                    case 'b' -> sb.append('\b');
                    case 'f' -> sb.append('\f');
                    case 'n' -> sb.append('\n');
                    case 'r' -> sb.append('\r');
                    case 't' -> sb.append('\t');
                    case 'u' -> {
                        // A surrogate pair arrives as two escapes (\uD83D\uDE00); appending both UTF-16 units
                        // restores the code point, and lone surrogates stay as they are.
                        sb.append(hex4(escapeAt));
                    }
                    default -> throw errorAt("invalid escape sequence '\\" + (e >= 0x20 && e < 0x7f ? String.valueOf(e)
                            : String.format("U+%04X", (int) e)) + "'", escapeAt);
                }
                runStart = pos;
            }
        }

        char hex4(int escapeAt) {
            if (pos + 4 > s.length()) {
                throw errorAt("truncated \\u escape (needs 4 hex digits)", escapeAt);
            }
            int v = 0;
            for (int i = 0; i < 4; i++) {
                int d = Character.digit(s.charAt(pos + i), 16);
                if (d < 0 || s.charAt(pos + i) > 'f') {
                    throw errorAt("invalid \\u escape: '" + s.substring(pos, pos + 4) + "' is not 4 hex digits", escapeAt);
                }
                v = v * 16 + d;
            }
            pos += 4;
            return (char) v;
        }

        Object number() {
            int start = pos;
            boolean integral = true;
            if (s.charAt(pos) == '-') {
                pos++;
            }
            if (pos >= s.length() || !isDigit(s.charAt(pos))) {
                throw errorAt("invalid number: expected a digit after '-'", start);
            }
            if (s.charAt(pos) == '0') {
                pos++;
                if (pos < s.length() && isDigit(s.charAt(pos))) {
                    throw errorAt("invalid number: leading zeros are not allowed", start);
                }
            } else {
                while (pos < s.length() && isDigit(s.charAt(pos))) {
                    pos++;
                }
            }
            if (pos < s.length() && s.charAt(pos) == '.') {
                integral = false;
                pos++;
                if (pos >= s.length() || !isDigit(s.charAt(pos))) {
                    throw errorAt("invalid number: expected a digit after '.'", start);
                }
                while (pos < s.length() && isDigit(s.charAt(pos))) {
                    pos++;
                }
            }
            if (pos < s.length() && (s.charAt(pos) == 'e' || s.charAt(pos) == 'E')) {
                integral = false;
                pos++;
                if (pos < s.length() && (s.charAt(pos) == '+' || s.charAt(pos) == '-')) {
                    pos++;
                }
                if (pos >= s.length() || !isDigit(s.charAt(pos))) {
                    throw errorAt("invalid number: expected a digit in the exponent", start);
                }
                while (pos < s.length() && isDigit(s.charAt(pos))) {
                    pos++;
                }
            }
            String literal = s.substring(start, pos);
            if (integral) {
                try {
                    return Long.parseLong(literal);
                } catch (NumberFormatException tooBig) {
                    // falls through to a double
                }
            }
            double d = Double.parseDouble(literal);
            if (Double.isInfinite(d)) {
                throw errorAt("number " + literal + " is out of the range of a double", start);
            }
            return d;
        }

        static boolean isDigit(char c) {
            return c >= '0' && c <= '9';
        }
    }
}
