package dev.muon4j.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Streaming tokens as text: whole characters only, the same text as decoding all the bytes at once. */
class TokenTextStreamTest {
    private static final String MIXED = "Hé said “naïve” — 你好, € and 🚀 (a surrogate pair) done.\n";

    /** The pieces {@code push} returns, one per token. */
    private static List<String> pieces(Tokenizer tokenizer, int[] tokens) {
        TokenTextStream stream = new TokenTextStream(tokenizer);
        List<String> out = new ArrayList<>();
        for (int t : tokens) {
            out.add(stream.push(t));
        }
        out.add(stream.finish());
        return out;
    }

    private static void assertWholeCharacters(List<String> pieces) {
        for (String piece : pieces) {
            assertFalse(piece.contains("\uFFFD"), "no replacement character in valid text: " + pieces);
            if (!piece.isEmpty()) {
                assertFalse(Character.isLowSurrogate(piece.charAt(0)), "a piece never starts inside a surrogate pair");
                assertFalse(Character.isHighSurrogate(piece.charAt(piece.length() - 1)), "a piece never ends inside one");
            }
        }
    }

    @Test
    void byteTokensComeOutAsWholeCharacters() {
        Tokenizer bytes = new ByteTokenizer();
        int[] tokens = bytes.encode(MIXED);
        List<String> pieces = pieces(bytes, tokens);
        assertWholeCharacters(pieces);
        assertEquals(MIXED, String.join("", pieces));
        // The three bytes of "€" give "", "", "€".
        int euro = MIXED.getBytes(StandardCharsets.UTF_8).length - (MIXED.substring(MIXED.indexOf('€')).getBytes(StandardCharsets.UTF_8).length);
        assertEquals(List.of("", "", "€"), pieces.subList(euro, euro + 3));
        int rocket = MIXED.getBytes(StandardCharsets.UTF_8).length - (MIXED.substring(MIXED.indexOf("🚀")).getBytes(StandardCharsets.UTF_8).length);
        assertEquals(List.of("", "", "", "🚀"), pieces.subList(rocket, rocket + 4));
    }

    @Test
    void bytePairTokensThatEndInsideACharacterAreHeldBack() {
        Tokenizer gpt2 = TokenizerKind.GPT2.create();
        int[] tokens = gpt2.encode(MIXED);
        boolean someTokenSplitsACharacter = false;
        for (int t : tokens) {
            byte[] b = gpt2.decodeBytes(new int[] {t});
            someTokenSplitsACharacter |= new String(b, StandardCharsets.UTF_8).contains("\uFFFD");
        }
        assertTrue(someTokenSplitsACharacter, "the text has a token that ends inside a character, so the test means something");
        List<String> pieces = pieces(gpt2, tokens);
        assertWholeCharacters(pieces);
        assertEquals(MIXED, String.join("", pieces));
    }

    @Test
    void decodeBytesOfPartsConcatenateToTheWhole() {
        for (Tokenizer t : List.of(new ByteTokenizer(), TokenizerKind.GPT2.create(), TokenizerKind.CL100K.create())) {
            int[] ids = t.encode(MIXED);
            ByteArrayOutputStream parts = new ByteArrayOutputStream();
            for (int id : ids) {
                parts.writeBytes(t.decodeBytes(new int[] {id}));
            }
            assertArrayEquals(MIXED.getBytes(StandardCharsets.UTF_8), parts.toByteArray(), t.name());
            assertArrayEquals(MIXED.getBytes(StandardCharsets.UTF_8), t.decodeBytes(ids), t.name());
        }
    }

    @Test
    void invalidBytesBecomeReplacementCharactersAsDecodingAllAtOnceWould() {
        Tokenizer bytes = new ByteTokenizer();
        byte[] euro = "€".getBytes(StandardCharsets.UTF_8);
        // a stray continuation byte; a character cut off by another; a lead byte left open at the end
        int[] tokens = {'a', 0x80, 'b', euro[0] & 0xFF, euro[1] & 0xFF, 'c', 0xE4};
        List<String> pieces = pieces(bytes, tokens);
        byte[] raw = new byte[tokens.length];
        for (int i = 0; i < tokens.length; i++) {
            raw[i] = (byte) tokens[i];
        }
        assertEquals(new String(raw, StandardCharsets.UTF_8), String.join("", pieces));
        assertEquals("\uFFFD", pieces.get(1), "a stray continuation byte is replaced at once");
        assertEquals("\uFFFDc", pieces.get(5), "the cut-off euro sign is replaced when the byte after it shows it cannot end");
        assertEquals("", pieces.get(6), "a lead byte waits for its continuation");
        assertEquals("\uFFFD", pieces.get(7), "finish replaces the character left open");
    }

    @Test
    void idsOutsideTheVocabularyAreNamedAndUndefinedOnesStandForReplacement() {
        TokenTextStream stream = new TokenTextStream(new ByteTokenizer());
        var e = assertThrows(IllegalArgumentException.class, () -> stream.push(256));
        assertTrue(e.getMessage().contains("256") && e.getMessage().contains("byte vocabulary"), e.getMessage());
        Tokenizer cl100k = TokenizerKind.CL100K.create();
        int undefined = -1;
        for (int id = cl100k.vocabSize() - 1; id >= 0 && undefined < 0; id--) {
            try {
                cl100k.decodeBytes(new int[] {id});
            } catch (IllegalArgumentException gap) {
                undefined = id;
            }
        }
        assertTrue(undefined >= 0, "cl100k_base leaves some ids undefined");
        TokenTextStream s = new TokenTextStream(cl100k);
        assertEquals("\uFFFD", s.push(undefined) + s.finish());
    }
}
