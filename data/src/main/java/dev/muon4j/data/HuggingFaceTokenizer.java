package dev.muon4j.data;

import com.knuddels.jtokkit.Encodings;
import com.knuddels.jtokkit.api.Encoding;
import com.knuddels.jtokkit.api.EncodingType;
import com.knuddels.jtokkit.api.IntArrayList;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * A muon4j tokenizer as the files Hugging Face's tokenizers load, derived from the tokenizer itself
 * (nothing is downloaded).
 *
 * <p><b>GPT-2 ({@link TokenizerKind#GPT2}, r50k_base).</b> What {@code GPT2TokenizerFast} and
 * {@code GPT2Tokenizer} read: {@code vocab.json} (token → id), {@code merges.txt} (the merges in rank
 * order after a {@code #version: 0.2} line), {@code tokenizer.json} (the same as one file: a byte-level
 * pre-tokenizer with GPT-2's pattern, a BPE model, a byte-level decoder, {@code <|endoftext|>} as the
 * special token 50256), {@code tokenizer_config.json} and {@code special_tokens_map.json}. Tokens are
 * written in GPT-2's byte-to-character alphabet ({@link #byteToChar}: printable bytes stand for
 * themselves, the other 68 for the characters from U+0100 on). The vocabulary is jtokkit's ranks:
 * token r is the bytes that rank r decodes to. A tiktoken file has no merge list; each token's merge is
 * recovered by running byte-pair encoding on its bytes with the ranks below its own, which ends in two
 * parts, the pair whose merge made it ({@link #merges}); merges in rank order are GPT-2's merge list.
 *
 * <p><b>Bytes ({@link TokenizerKind#BYTE}).</b> Hugging Face has no tokenizer class for "one token per
 * UTF-8 byte, id = byte value" (ByT5's shifts the ids by 3 for its special tokens), but a
 * {@code tokenizer.json} can say it: a byte-level pre-tokenizer without the splitting pattern, a BPE
 * model whose vocabulary is the 256 byte characters with id = byte and no merges, and the byte-level
 * decoder; {@code PreTrainedTokenizerFast} loads it ({@code tokenizer_class} in tokenizer_config.json),
 * and encodes and decodes exactly as {@link ByteTokenizer}. There are no special tokens.
 *
 * <p>cl100k_base and o200k_base are not written: their pre-tokenizer patterns are not GPT-2's, and
 * {@link #files} says so.
 */
public final class HuggingFaceTokenizer {
    /** GPT-2's end-of-text token. */
    public static final String END_OF_TEXT = "<|endoftext|>";

    private HuggingFaceTokenizer() {
    }

    /**
     * The files of one tokenizer.
     *
     * @param json file name → the JSON object it holds (maps in file order), for a JSON writer
     * @param text file name → its UTF-8 text
     */
    public record Files(Map<String, Map<String, Object>> json, Map<String, String> text) {
    }

    /**
     * The end-of-text token's id ({@code <|endoftext|>}, checked against what the encoding decodes it to):
     * 50256 for r50k_base, 100257 for cl100k_base, 199999 for o200k_base; none for bytes.
     */
    public static OptionalInt endOfText(TokenizerKind kind) {
        if (kind == TokenizerKind.BYTE) {
            return OptionalInt.empty();
        }
        int id = switch (kind) {
            case GPT2 -> 50256;
            case CL100K -> 100257;
            case O200K -> 199999;
            case BYTE -> throw new AssertionError();
        };
        IntArrayList one = new IntArrayList(1);
        one.add(id);
        String text = new String(encoding(kind).decodeBytes(one), java.nio.charset.StandardCharsets.UTF_8);
        if (!text.equals(END_OF_TEXT)) {
            throw new IllegalStateException(kind.encodingName() + "'s token " + id + " is \"" + text + "\", not " + END_OF_TEXT);
        }
        return OptionalInt.of(id);
    }

    /**
     * The files Hugging Face loads {@code kind} from, or empty when it cannot be written (cl100k_base,
     * o200k_base).
     *
     * @param contextLength the model's context, tokenizer_config.json's {@code model_max_length}
     */
    public static Optional<Files> files(TokenizerKind kind, int contextLength) {
        return switch (kind) {
            case BYTE -> Optional.of(byteFiles(contextLength));
            case GPT2 -> Optional.of(gpt2Files(contextLength));
            case CL100K, O200K -> Optional.empty();
        };
    }

    /** Why {@link #files} gives nothing for {@code kind}, in a sentence; empty when it gives files. */
    public static Optional<String> unsupported(TokenizerKind kind) {
        return switch (kind) {
            case BYTE, GPT2 -> Optional.empty();
            case CL100K, O200K -> Optional.of("no tokenizer files are written for " + kind.encodingName() + ": muon4j writes "
                    + "Hugging Face tokenizer files for byte and gpt2 (r50k_base) only; load " + kind.encodingName()
                    + " with tiktoken (its ids are the model's)");
        };
    }

    /**
     * GPT-2's byte-to-character table ({@code bytes_to_unicode} in GPT-2's encoder.py and in Hugging
     * Face's GPT2Tokenizer): the bytes '!'..'~', '¡'..'¬' and '®'..'ÿ' map to themselves, the other 68
     * bytes in increasing order to U+0100, U+0101, ….
     */
    public static char[] byteToChar() {
        char[] table = new char[256];
        boolean[] printable = new boolean[256];
        for (int b = 0; b < 256; b++) {
            printable[b] = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        }
        int next = 0;
        for (int b = 0; b < 256; b++) {
            table[b] = printable[b] ? (char) b : (char) (256 + next++);
        }
        return table;
    }

    /** {@code bytes} in GPT-2's byte alphabet. */
    static String asChars(byte[] bytes, char[] table) {
        StringBuilder sb = new StringBuilder(bytes.length);
        for (byte b : bytes) {
            sb.append(table[b & 0xFF]);
        }
        return sb.toString();
    }

    private static Encoding encoding(TokenizerKind kind) {
        EncodingType type = switch (kind) {
            case GPT2 -> EncodingType.R50K_BASE;
            case CL100K -> EncodingType.CL100K_BASE;
            case O200K -> EncodingType.O200K_BASE;
            case BYTE -> throw new IllegalArgumentException("the byte tokenizer has no BPE encoding");
        };
        return Encodings.newLazyEncodingRegistry().getEncoding(type);
    }

    /** The bytes of every ordinary token of r50k_base, by rank (0..50255). */
    static List<byte[]> gpt2Tokens() {
        Encoding encoding = encoding(TokenizerKind.GPT2);
        int ordinary = endOfText(TokenizerKind.GPT2).orElseThrow();
        List<byte[]> tokens = new ArrayList<>(ordinary);
        IntArrayList one = new IntArrayList(1);
        one.add(0);
        for (int rank = 0; rank < ordinary; rank++) {
            one.set(0, rank);
            tokens.add(encoding.decodeBytes(one));
        }
        return tokens;
    }

    /**
     * The merge that made each multi-byte token, in rank order: byte-pair encoding of the token's bytes
     * with only the ranks below its own (each step merging the adjacent pair whose merged bytes have the
     * lowest rank) ends in two parts, which are the merge.
     *
     * @param tokens the bytes of each rank, every single byte among them
     * @return one {left, right} pair per multi-byte token, ordered by the token's rank
     * @throws IllegalStateException when a token does not end in exactly two parts (not a BPE vocabulary)
     */
    static List<byte[][]> merges(List<byte[]> tokens) {
        Map<ByteBuffer, Integer> rankOf = new HashMap<>(tokens.size() * 2);
        for (int r = 0; r < tokens.size(); r++) {
            rankOf.put(ByteBuffer.wrap(tokens.get(r)), r);
        }
        List<byte[][]> merges = new ArrayList<>();
        for (int r = 0; r < tokens.size(); r++) {
            byte[] token = tokens.get(r);
            if (token.length < 2) {
                continue;
            }
            List<byte[]> parts = new ArrayList<>();
            for (byte b : token) {
                parts.add(new byte[] {b});
            }
            while (parts.size() > 2) {
                int best = -1;
                int bestRank = r;
                for (int i = 0; i + 1 < parts.size(); i++) {
                    Integer rank = rankOf.get(ByteBuffer.wrap(concat(parts.get(i), parts.get(i + 1))));
                    if (rank != null && rank < bestRank) {
                        best = i;
                        bestRank = rank;
                    }
                }
                if (best < 0) {
                    break;
                }
                parts.set(best, concat(parts.get(best), parts.remove(best + 1)));
            }
            if (parts.size() != 2) {
                throw new IllegalStateException("token " + r + " does not come from one merge of lower-ranked tokens ("
                        + parts.size() + " parts remain)");
            }
            merges.add(new byte[][] {parts.get(0), parts.get(1)});
        }
        return merges;
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] c = new byte[a.length + b.length];
        System.arraycopy(a, 0, c, 0, a.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }

    private static Files gpt2Files(int contextLength) {
        char[] table = byteToChar();
        List<byte[]> tokens = gpt2Tokens();
        int endOfText = tokens.size();
        Map<String, Object> vocab = new LinkedHashMap<>();
        for (int r = 0; r < tokens.size(); r++) {
            if (vocab.put(asChars(tokens.get(r), table), r) != null) {
                throw new IllegalStateException("r50k_base has two tokens of the bytes of rank " + r);
            }
        }
        vocab.put(END_OF_TEXT, endOfText);
        List<String> merges = new ArrayList<>();
        for (byte[][] m : merges(tokens)) {
            merges.add(asChars(m[0], table) + " " + asChars(m[1], table));
        }
        StringBuilder mergesTxt = new StringBuilder("#version: 0.2\n");
        for (String m : merges) {
            mergesTxt.append(m).append('\n');
        }

        Map<String, Object> tokenizer = tokenizerJson(List.of(addedToken(endOfText)), true, vocab, merges);
        Map<String, Object> config = new LinkedHashMap<>();
        config.put("tokenizer_class", "GPT2Tokenizer");
        config.put("add_bos_token", false);
        config.put("add_prefix_space", false);
        config.put("bos_token", END_OF_TEXT);
        config.put("eos_token", END_OF_TEXT);
        config.put("unk_token", END_OF_TEXT);
        config.put("clean_up_tokenization_spaces", false);
        config.put("model_max_length", contextLength);
        Map<String, Object> decoder = new LinkedHashMap<>();
        Map<String, Object> endOfTextEntry = new LinkedHashMap<>(addedToken(endOfText));
        endOfTextEntry.remove("id");
        decoder.put(Integer.toString(endOfText), endOfTextEntry);
        config.put("added_tokens_decoder", decoder);
        Map<String, Object> special = new LinkedHashMap<>();
        special.put("bos_token", END_OF_TEXT);
        special.put("eos_token", END_OF_TEXT);
        special.put("unk_token", END_OF_TEXT);

        Map<String, Map<String, Object>> json = new LinkedHashMap<>();
        json.put("tokenizer.json", tokenizer);
        json.put("vocab.json", vocab);
        json.put("tokenizer_config.json", config);
        json.put("special_tokens_map.json", special);
        return new Files(json, Map.of("merges.txt", mergesTxt.toString()));
    }

    private static Files byteFiles(int contextLength) {
        char[] table = byteToChar();
        Map<String, Object> vocab = new LinkedHashMap<>();
        for (int b = 0; b < 256; b++) {
            vocab.put(String.valueOf(table[b]), b);
        }
        Map<String, Object> tokenizer = tokenizerJson(List.of(), false, vocab, List.of());
        Map<String, Object> config = new LinkedHashMap<>();
        config.put("tokenizer_class", "PreTrainedTokenizerFast");
        config.put("clean_up_tokenization_spaces", false);
        config.put("model_max_length", contextLength);
        Map<String, Map<String, Object>> json = new LinkedHashMap<>();
        json.put("tokenizer.json", tokenizer);
        json.put("tokenizer_config.json", config);
        json.put("special_tokens_map.json", new LinkedHashMap<>());
        return new Files(json, Map.of());
    }

    private static Map<String, Object> addedToken(int id) {
        Map<String, Object> t = new LinkedHashMap<>();
        t.put("id", id);
        t.put("content", END_OF_TEXT);
        t.put("single_word", false);
        t.put("lstrip", false);
        t.put("rstrip", false);
        t.put("normalized", true);
        t.put("special", true);
        return t;
    }

    /**
     * tokenizer.json in the layout of Hugging Face's tokenizers (version "1.0"): byte-level pre-tokenizer
     * ({@code use_regex}: GPT-2's splitting pattern), byte-level post-processor and decoder, a BPE model.
     */
    private static Map<String, Object> tokenizerJson(List<Map<String, Object>> added, boolean useRegex, Map<String, Object> vocab,
                                                     List<String> merges) {
        Map<String, Object> t = new LinkedHashMap<>();
        t.put("version", "1.0");
        t.put("truncation", null);
        t.put("padding", null);
        t.put("added_tokens", added);
        t.put("normalizer", null);
        t.put("pre_tokenizer", byteLevel("ByteLevel", useRegex, true));
        t.put("post_processor", byteLevel("ByteLevel", useRegex, false));
        t.put("decoder", byteLevel("ByteLevel", useRegex, true));
        Map<String, Object> model = new LinkedHashMap<>();
        model.put("type", "BPE");
        model.put("dropout", null);
        model.put("unk_token", null);
        model.put("continuing_subword_prefix", "");
        model.put("end_of_word_suffix", "");
        model.put("fuse_unk", false);
        model.put("byte_fallback", false);
        model.put("vocab", vocab);
        model.put("merges", merges);
        t.put("model", model);
        return t;
    }

    private static Map<String, Object> byteLevel(String type, boolean useRegex, boolean trimOffsets) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("type", type);
        m.put("add_prefix_space", false);
        m.put("trim_offsets", trimOffsets);
        m.put("use_regex", useRegex);
        return m;
    }
}
