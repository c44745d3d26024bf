package dev.muon4j.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class TokenizerTest {

    @Test
    void byteTokenizerRoundTripsNonAscii() {
        Tokenizer t = new ByteTokenizer();
        String s = "Hello, wörld — 你好 🚀\n\ttabs";
        int[] ids = t.encode(s);
        assertEquals(s.getBytes(java.nio.charset.StandardCharsets.UTF_8).length, ids.length);
        for (int id : ids) {
            assertTrue(id >= 0 && id < 256);
        }
        assertEquals(s, t.decode(ids));
        assertEquals(256, t.vocabSize());
        assertEquals("byte", t.name());
    }

    @Test
    void byteTokenizerDecodesInvalidUtf8WithReplacement() {
        Tokenizer t = new ByteTokenizer();
        int[] euro = t.encode("€"); // three bytes
        String half = t.decode(new int[] {'a', euro[0], euro[1], 'b'});
        assertTrue(half.startsWith("a") && half.endsWith("b") && half.contains("\uFFFD"), half);
        var e = assertThrows(IllegalArgumentException.class, () -> t.decode(new int[] {1, 300}));
        assertTrue(e.getMessage().contains("300"), e.getMessage());
    }

    @Test
    void gpt2EncodesHelloWorldToKnownIds() {
        Tokenizer t = TokenizerKind.GPT2.create();
        assertArrayEquals(new int[] {15496, 995}, t.encode("Hello world"));
        assertEquals("Hello world", t.decode(new int[] {15496, 995}));
        assertEquals(50_257, t.vocabSize());
        assertEquals("r50k_base", t.name());
    }

    @Test
    void bpeEncodingsRoundTripAndStayInsideVocabulary() {
        String s = "The Muon optimizer orthogonalises updates — naïve café, 日本語. <|endoftext|> stays text.";
        for (TokenizerKind k : TokenizerKind.values()) {
            Tokenizer t = k.create();
            int[] ids = t.encode(s);
            for (int id : ids) {
                assertTrue(id >= 0 && id < t.vocabSize(), k + " id " + id);
            }
            assertEquals(s, t.decode(ids), k.toString());
            assertEquals(k.encodingName(), t.name());
        }
    }

    @Test
    void bpeDecodeRejectsOutOfRangeIds() {
        Tokenizer t = BpeTokenizer.gpt2();
        var e = assertThrows(IllegalArgumentException.class, () -> t.decode(new int[] {50_257}));
        assertTrue(e.getMessage().contains("50257"), e.getMessage());
    }

    @Test
    void kindsParseByEitherName() {
        assertEquals(TokenizerKind.GPT2, TokenizerKind.parse("gpt2"));
        assertEquals(TokenizerKind.GPT2, TokenizerKind.parse("r50k_base"));
        assertEquals(TokenizerKind.O200K, TokenizerKind.parse("O200K"));
        var e = assertThrows(IllegalArgumentException.class, () -> TokenizerKind.parse("wordpiece"));
        assertTrue(e.getMessage().contains("wordpiece"), e.getMessage());
        var e2 = assertThrows(IllegalArgumentException.class, () -> BpeTokenizer.of("p99k"));
        assertTrue(e2.getMessage().contains("p99k"), e2.getMessage());
    }
}
