package dev.muon4j.io;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonFactoryBuilder;
import com.fasterxml.jackson.core.JsonGenerationException;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonParseException;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.core.io.CharacterEscapes;
import com.fasterxml.jackson.core.io.SerializedString;
import com.fasterxml.jackson.core.json.JsonWriteFeature;
import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.core.util.DefaultIndenter;
import com.fasterxml.jackson.core.util.DefaultPrettyPrinter;
import com.fasterxml.jackson.core.util.JsonGeneratorDelegate;
import com.fasterxml.jackson.core.util.JsonParserDelegate;
import com.fasterxml.jackson.core.util.Separators;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonMappingException;
import com.fasterxml.jackson.databind.MapperFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.cfg.CoercionAction;
import com.fasterxml.jackson.databind.cfg.CoercionInputShape;
import com.fasterxml.jackson.databind.exc.ValueInstantiationException;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.type.LogicalType;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * JSON as muon4j reads and writes it, on one Jackson {@link ObjectMapper} configured for files that
 * must round-trip and for input that may be damaged.
 *
 * <p>Reading is strict: no comments, trailing commas, leading zeros, NaN or Infinity, numbers beyond
 * the range of a double, unescaped control characters, duplicate keys in an object (silently keeping
 * one of them would hide damage), or anything after the value. Untyped values come back as {@code LinkedHashMap} (keys in document
 * order), {@code ArrayList}, {@code String}, {@code Boolean}, {@code null}, {@code Long} for an integer
 * (one beyond a long is refused) and {@code Double} for any other number. Records are read strictly
 * too: no unknown fields, no number where a string belongs and the other way round, no fraction
 * where an integer belongs.
 *
 * <p>Writing refuses NaN and infinite numbers (JSON has neither) naming where they are, and escapes
 * every character outside printable ASCII as {@code \}{@code uXXXX} (lower-case hex), so that the
 * compact form is byte for byte Python's {@code json.dumps(value, separators=(",", ":"))}, which
 * formats such as the optimizer state's metadata checksum rely on. {@link #pretty} indents by two
 * spaces, one member or element per line, {@code "key": value}.
 *
 * <p>Errors name what was wrong: the file, the byte offset (with line and column) of a syntax error,
 * the path of a field of the wrong type.
 */
public final class JsonCodec {
    /** The largest file {@link #readObject(Path)} and {@link #read(Path, Class)} read, in bytes. */
    public static final long MAX_FILE_BYTES = 100_000_000L;

    private static final TypeReference<Map<String, Object>> OBJECT = new TypeReference<>() {
    };

    private static final ObjectMapper MAPPER = mapper();

    private JsonCodec() {
    }

    private static ObjectMapper mapper() {
        Separators separators = Separators.createDefaultInstance()
                .withObjectFieldValueSpacing(Separators.Spacing.AFTER)
                .withObjectEmptySeparator("")
                .withArrayEmptySeparator("");
        DefaultIndenter indenter = new DefaultIndenter("  ", "\n");
        DefaultPrettyPrinter pretty = new DefaultPrettyPrinter(separators)
                .withObjectIndenter(indenter)
                .withArrayIndenter(indenter);
        JsonFactory factory = new JsonFactoryBuilder()
                .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
                .streamReadConstraints(StreamReadConstraints.builder().maxStringLength((int) MAX_FILE_BYTES).build())
                .enable(JsonWriteFeature.ESCAPE_NON_ASCII)
                .disable(JsonWriteFeature.WRITE_HEX_UPPER_CASE)
                .disable(JsonWriteFeature.WRITE_NAN_AS_STRINGS)
                .characterEscapes(new AsciiEscapes())
                .addDecorator((f, generator) -> new FiniteNumbers(generator))
                .build();
        return JsonMapper.builder(factory)
                .enable(DeserializationFeature.USE_LONG_FOR_INTS, DeserializationFeature.FAIL_ON_TRAILING_TOKENS,
                        DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
                .disable(DeserializationFeature.ACCEPT_FLOAT_AS_INT)
                .disable(MapperFeature.ALLOW_COERCION_OF_SCALARS)
                .withCoercionConfig(LogicalType.Textual, text -> text.setCoercion(CoercionInputShape.Integer, CoercionAction.Fail)
                        .setCoercion(CoercionInputShape.Float, CoercionAction.Fail)
                        .setCoercion(CoercionInputShape.Boolean, CoercionAction.Fail))
                .defaultPrettyPrinter(pretty)
                .build();
    }

    // ------------------------------------------------------------------------------------------ writing

    /**
     * The value (a record, map, collection, string, number, boolean or null) as compact JSON text.
     *
     * @throws IllegalArgumentException naming the place of a NaN or infinite number, or a value Jackson cannot write
     */
    public static String write(Object value) {
        try {
            return MAPPER.writeValueAsString(value);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException("cannot write JSON: " + e.getOriginalMessage(), e);
        }
    }

    /**
     * The value as JSON text indented by two spaces, one member or element per line, {@code "key":
     * value}; empty objects and arrays stay {@code {}} and {@code []}. No trailing newline.
     *
     * @throws IllegalArgumentException as {@link #write} does
     */
    public static String pretty(Object value) {
        try {
            return MAPPER.writerWithDefaultPrettyPrinter().writeValueAsString(value);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException("cannot write JSON: " + e.getOriginalMessage(), e);
        }
    }

    /**
     * The value as the JSON object it is written as, read back: a record's components under their JSON
     * names, numbers as {@code Long} or {@code Double}, exactly what reading its file gives.
     *
     * @throws IllegalArgumentException as {@link #write} does, or when the value is not written as an object
     */
    public static Map<String, Object> toObject(Object value) {
        return parseObject(write(value));
    }

    /** {@link #pretty} and a newline, as UTF-8 bytes: the contents of a JSON file. */
    public static byte[] prettyFile(Object value) {
        return (pretty(value) + "\n").getBytes(StandardCharsets.UTF_8);
    }

    // ------------------------------------------------------------------------------------------ reading

    /**
     * Parses JSON text whose value must be an object.
     *
     * @throws IllegalArgumentException "JSON error at line L, column C: …" on a syntax error, when the
     *                                  value is not an object, or when something follows it
     */
    public static Map<String, Object> parseObject(String text) {
        try (JsonParser parser = new FiniteParser(MAPPER.createParser(text))) {
            return object(parser);
        } catch (JsonProcessingException e) {
            JsonLocation at = e.getLocation();
            throw new IllegalArgumentException("JSON error" + (at == null ? "" : " at line " + at.getLineNr() + ", column "
                    + at.getColumnNr()) + ": " + e.getOriginalMessage(), e);
        } catch (IOException e) {
            throw new IllegalStateException("reading a string failed", e); // cannot happen
        }
    }

    /**
     * Reads a file of UTF-8 JSON text whose value must be an object.
     *
     * @throws IOException naming the file: when it cannot be read or is larger than {@value #MAX_FILE_BYTES}
     *                     bytes, or "is damaged at byte N" when it is not UTF-8 JSON text of one object
     */
    public static Map<String, Object> readObject(Path file) throws IOException {
        byte[] bytes = readBytes(file);
        return parseObject(file, bytes, 0, bytes.length, 0, "the file");
    }

    /**
     * Reads a file of UTF-8 JSON text into a record (or any type Jackson maps).
     *
     * @throws IOException naming the file: when it cannot be read or is too large, "is damaged at byte N"
     *                     on a syntax error, and with the path of the field for a field that is missing,
     *                     unknown or of the wrong type
     */
    public static <T> T read(Path file, Class<T> type) throws IOException {
        byte[] bytes = readBytes(file);
        try (JsonParser parser = new FiniteParser(MAPPER.createParser(bytes))) {
            T value = MAPPER.readValue(parser, type);
            JsonToken after = parser.nextToken();
            if (after != null) {
                throw new JsonParseException(parser, "unexpected " + describe(after) + " after the JSON value",
                        parser.currentTokenLocation());
            }
            return value;
        } catch (JsonProcessingException e) {
            throw damaged(file, 0, "the file", e);
        }
    }

    /**
     * Converts a value read from {@code file} (a map from {@link #readObject}, typically, after checks of
     * its format and version) into a record.
     *
     * @param what names the value in error messages, e.g. "the manifest"
     * @throws IOException "{@code file} is damaged: {@code what} has an invalid field /path: …" for a field
     *                     that is missing, unknown, of the wrong type or refused by the record's constructor
     */
    public static <T> T convert(Path file, Object value, Class<T> type, String what) throws IOException {
        try {
            return MAPPER.treeToValue(MAPPER.valueToTree(value), type);
        } catch (JsonProcessingException e) {
            throw damaged(file, 0, what, e);
        }
    }

    /**
     * Parses {@code length} bytes of UTF-8 JSON text from {@code bytes[offset]}, which lie at byte
     * {@code base} of {@code file}; the value must be an object.
     *
     * @param what names the text in error messages, e.g. "the header"
     * @throws IOException "{@code file} is damaged at byte N: {@code what} is not valid JSON: …", N
     *                     being the offset in the file of the error
     */
    static Map<String, Object> parseObject(Path file, byte[] bytes, int offset, int length, long base, String what)
            throws IOException {
        try (JsonParser parser = new FiniteParser(MAPPER.createParser(bytes, offset, length))) {
            return object(parser);
        } catch (JsonProcessingException e) {
            throw damaged(file, base, what, e);
        }
    }

    private static byte[] readBytes(Path file) throws IOException {
        try {
            long size = Files.size(file);
            if (size > MAX_FILE_BYTES) {
                throw new IOException("it has " + size + " bytes, more than the " + MAX_FILE_BYTES + " a JSON file may have");
            }
            return Files.readAllBytes(file);
        } catch (IOException e) {
            throw new IOException(file + " cannot be read: " + e.getMessage(), e);
        }
    }

    private static Map<String, Object> object(JsonParser parser) throws IOException {
        JsonToken first = parser.nextToken();
        if (first != JsonToken.START_OBJECT) {
            throw new JsonParseException(parser, "expected a JSON object ('{'), found " + describe(first),
                    parser.currentTokenLocation());
        }
        Map<String, Object> value = MAPPER.readValue(parser, OBJECT);
        JsonToken after = parser.nextToken();
        if (after != null) {
            throw new JsonParseException(parser, "unexpected " + describe(after) + " after the JSON object",
                    parser.currentTokenLocation());
        }
        return value;
    }

    private static String describe(JsonToken token) {
        return token == null ? "the end of the input" : switch (token) {
            case START_ARRAY -> "an array";
            case VALUE_STRING -> "a string";
            case VALUE_NUMBER_INT, VALUE_NUMBER_FLOAT -> "a number";
            case VALUE_TRUE, VALUE_FALSE -> "a boolean";
            case VALUE_NULL -> "null";
            default -> "'" + token.asString() + "'";
        };
    }

    /**
     * "{@code file} is damaged at byte N: {@code what} is not valid JSON: …" for a syntax error,
     * "{@code file} is damaged: {@code what} has an invalid field /path: …" for a field of the wrong kind
     * or one a record's constructor refuses ("… is invalid: …" for the record itself).
     */
    private static IOException damaged(Path file, long base, String what, JsonProcessingException e) {
        if (e instanceof JsonMappingException m) {
            // A record's constructor refusing a value says best what was wrong.
            String problem = e instanceof ValueInstantiationException && e.getCause() != null && e.getCause().getMessage() != null
                    ? e.getCause().getMessage() : e.getOriginalMessage();
            return new IOException(file + " is damaged: " + what + (m.getPath().isEmpty() ? " is invalid"
                    : " has an invalid field " + pointer(m)) + ": " + problem, e);
        }
        JsonLocation at = e.getLocation();
        if (at == null || at.getByteOffset() < 0) {
            return new IOException(file + " is damaged: " + what + " is not valid JSON: " + e.getOriginalMessage(), e);
        }
        return new IOException(file + " is damaged at byte " + (base + at.getByteOffset()) + ": " + what + " is not valid JSON: "
                + e.getOriginalMessage() + " (line " + at.getLineNr() + ", column " + at.getColumnNr() + ")", e);
    }

    /** The JSON pointer (RFC 6901) of the field an exception is about, e.g. {@code /files/config.json/size}. */
    private static String pointer(JsonMappingException e) {
        StringBuilder s = new StringBuilder();
        for (JsonMappingException.Reference r : e.getPath()) {
            s.append('/');
            if (r.getFieldName() != null) {
                s.append(r.getFieldName().replace("~", "~0").replace("/", "~1"));
            } else {
                s.append(r.getIndex());
            }
        }
        return s.toString();
    }

    /** Escapes DEL (U+007F) as well, as Python's {@code json.dumps} does; ESCAPE_NON_ASCII takes the rest. */
    private static final class AsciiEscapes extends CharacterEscapes {
        private static final long serialVersionUID = 1L;
        private final int[] ascii = standardAsciiEscapesForJSON();

        AsciiEscapes() {
            ascii[0x7f] = ESCAPE_STANDARD;
        }

        @Override
        public int[] getEscapeCodesForAscii() {
            return ascii;
        }

        @Override
        public SerializedString getEscapeSequence(int ch) {
            return null;
        }
    }

    /** Refuses a number beyond the range of a double, which Jackson would read as infinite. */
    private static final class FiniteParser extends JsonParserDelegate {
        FiniteParser(JsonParser parser) {
            super(parser);
        }

        @Override
        public JsonToken nextToken() throws IOException {
            return checked(super.nextToken());
        }

        @Override
        public JsonToken nextValue() throws IOException {
            return checked(super.nextValue());
        }

        private JsonToken checked(JsonToken token) throws IOException {
            if (token == JsonToken.VALUE_NUMBER_FLOAT && !Double.isFinite(getDoubleValue())) {
                throw new JsonParseException(this, "the number " + getText() + " is beyond the range of a double",
                        currentTokenLocation());
            }
            return token;
        }
    }

    /** Refuses NaN and infinite numbers, which JSON cannot hold, naming where they were to go. */
    private static final class FiniteNumbers extends JsonGeneratorDelegate {
        FiniteNumbers(JsonGenerator generator) {
            super(generator, false);
        }

        @Override
        public void writeNumber(double v) throws IOException {
            check(v);
            super.writeNumber(v);
        }

        @Override
        public void writeNumber(float v) throws IOException {
            check(v);
            super.writeNumber(v);
        }

        @Override
        public void writeArray(double[] array, int offset, int length) throws IOException {
            for (int i = offset; i < offset + length; i++) {
                check(array[i]);
            }
            super.writeArray(array, offset, length);
        }

        private void check(double v) throws JsonGenerationException {
            if (!Double.isFinite(v)) {
                String where = getOutputContext().pathAsPointer().toString();
                throw new JsonGenerationException((where.isEmpty() ? "the value" : where) + " is " + v
                        + " (JSON has no NaN or Infinity)", this);
            }
        }
    }
}
