package dev.muon4j.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * The Hugging Face tokenizer files derived from muon4j's tokenizers: GPT-2's vocabulary and merges
 * as GPT-2 publishes them, and, run through byte-pair encoding as GPT-2's encoder.py and Hugging Face's
 * GPT2Tokenizer do it (written again here from that description), the same ids as muon4j's tokenizer.
 */
class HuggingFaceTokenizerTest {
    /** GPT-2's pre-tokenizer pattern (encoder.py; tokenizers' ByteLevel with use_regex), Unicode classes as the regex crate. */
    private static final Pattern GPT2_SPLIT = Pattern.compile(
            "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", Pattern.UNICODE_CHARACTER_CLASS);

    @Test
    void gpt2sByteAlphabetIsABijectionThatKeepsPrintableBytes() {
        char[] table = HuggingFaceTokenizer.byteToChar();
        Set<Character> seen = new HashSet<>();
        for (char c : table) {
            seen.add(c);
        }
        assertEquals(256, seen.size());
        assertEquals('!', table['!']);
        assertEquals('\u0100', table[0]);
        assertEquals('\u0120', table[' '], "a space is Ġ");
        assertEquals('\u010a', table['\n'], "a newline is Ċ");
        assertEquals('\u00e9', table[0xE9]);
    }

    @Test
    void gpt2sVocabularyAndMergesAreGpt2s() {
        HuggingFaceTokenizer.Files files = HuggingFaceTokenizer.files(TokenizerKind.GPT2, 1024).orElseThrow();
        Map<String, Object> vocab = files.json().get("vocab.json");
        assertEquals(50257, vocab.size());
        assertEquals(262, vocab.get("\u0120the"), "GPT-2's id of ' the'");
        assertEquals(0, vocab.get("!"));
        assertEquals(50256, vocab.get("<|endoftext|>"));
        String[] lines = files.text().get("merges.txt").split("\n", -1);
        assertEquals("#version: 0.2", lines[0]);
        assertEquals("\u0120 t", lines[1], "GPT-2's first merge");
        assertEquals(50000 + 2, lines.length, "50,000 merges, the header and the final newline");
        assertEquals("", lines[lines.length - 1]);
        Map<String, Object> model = cast(files.json().get("tokenizer.json").get("model"));
        assertEquals(vocab, model.get("vocab"));
        assertEquals(List.of(lines).subList(1, lines.length - 1), model.get("merges"));
        assertEquals("GPT2Tokenizer", files.json().get("tokenizer_config.json").get("tokenizer_class"));
        assertEquals(1024, files.json().get("tokenizer_config.json").get("model_max_length"));
        assertEquals(50256, HuggingFaceTokenizer.endOfText(TokenizerKind.GPT2).getAsInt());
        assertEquals(100257, HuggingFaceTokenizer.endOfText(TokenizerKind.CL100K).getAsInt());
        assertEquals(199999, HuggingFaceTokenizer.endOfText(TokenizerKind.O200K).getAsInt());
        assertTrue(HuggingFaceTokenizer.endOfText(TokenizerKind.BYTE).isEmpty());
    }

    @Test
    void bytePairEncodingWithTheWrittenFilesGivesMuon4jsIds() {
        HuggingFaceTokenizer.Files files = HuggingFaceTokenizer.files(TokenizerKind.GPT2, 1024).orElseThrow();
        Map<String, Object> vocab = files.json().get("vocab.json");
        Map<String, Integer> mergeRank = new HashMap<>();
        String[] lines = files.text().get("merges.txt").split("\n");
        for (int i = 1; i < lines.length; i++) {
            mergeRank.put(lines[i], i);
        }
        String corpus = Corpus.defaultCorpus().text();
        String text = corpus.substring(0, 60_000) + corpus.substring(corpus.length() / 2, corpus.length() / 2 + 20_000)
                + " naïve café — “quoted” 日本語 emoji 🙂 tabs\t\tand  spaces \n\n\n 1234567 it's we'll they'd <|endoftext|>";
        int[] expected = BpeTokenizer.gpt2().encode(text);
        int[] actual = encode(text, vocab, mergeRank);
        assertArrayEquals(expected, actual);
    }

    @Test
    void theByteTokenizerIsOneTokenPerByteWithIdsTheByteValues() {
        HuggingFaceTokenizer.Files files = HuggingFaceTokenizer.files(TokenizerKind.BYTE, 128).orElseThrow();
        Map<String, Object> tokenizer = files.json().get("tokenizer.json");
        Map<String, Object> model = cast(tokenizer.get("model"));
        Map<String, Object> vocab = cast(model.get("vocab"));
        char[] table = HuggingFaceTokenizer.byteToChar();
        assertEquals(256, vocab.size());
        for (int b = 0; b < 256; b++) {
            assertEquals(b, vocab.get(String.valueOf(table[b])));
        }
        assertEquals(List.of(), model.get("merges"));
        assertEquals(false, ((Map<?, ?>) tokenizer.get("pre_tokenizer")).get("use_regex"), "no splitting: every byte is a token");
        assertEquals("PreTrainedTokenizerFast", files.json().get("tokenizer_config.json").get("tokenizer_class"));
        assertTrue(HuggingFaceTokenizer.files(TokenizerKind.CL100K, 128).isEmpty());
        assertTrue(HuggingFaceTokenizer.unsupported(TokenizerKind.O200K).orElseThrow().contains("o200k_base"));
    }

    /** GPT-2's encoder: split by the pattern, each piece's UTF-8 bytes into the byte alphabet, then merge lowest rank first. */
    private static int[] encode(String text, Map<String, Object> vocab, Map<String, Integer> mergeRank) {
        char[] table = HuggingFaceTokenizer.byteToChar();
        List<Integer> ids = new ArrayList<>();
        Matcher m = GPT2_SPLIT.matcher(text);
        while (m.find()) {
            String piece = HuggingFaceTokenizer.asChars(m.group().getBytes(StandardCharsets.UTF_8), table);
            List<String> word = new ArrayList<>();
            piece.codePoints().forEach(c -> word.add(new String(Character.toChars(c))));
            while (word.size() > 1) {
                int best = -1;
                int bestRank = Integer.MAX_VALUE;
                for (int i = 0; i + 1 < word.size(); i++) {
                    Integer rank = mergeRank.get(word.get(i) + " " + word.get(i + 1));
                    if (rank != null && rank < bestRank) {
                        best = i;
                        bestRank = rank;
                    }
                }
                if (best < 0) {
                    break;
                }
                word.set(best, word.get(best) + word.remove(best + 1));
            }
            for (String token : word) {
                Object id = vocab.get(token);
                assertTrue(id instanceof Integer, () -> "token " + token + " is in the vocabulary");
                ids.add((Integer) id);
            }
        }
        return ids.stream().mapToInt(Integer::intValue).toArray();
    }

    @SuppressWarnings("unchecked")
    private static <T> T cast(Object o) {
        return (T) o;
    }
}
