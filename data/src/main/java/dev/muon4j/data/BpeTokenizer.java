package dev.muon4j.data;

import com.knuddels.jtokkit.Encodings;
import com.knuddels.jtokkit.api.Encoding;
import com.knuddels.jtokkit.api.EncodingRegistry;
import com.knuddels.jtokkit.api.EncodingType;
import com.knuddels.jtokkit.api.IntArrayList;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.stream.Collectors;

/**
 * OpenAI's byte-pair encodings through jtokkit, fully offline (the rank files ship inside the
 * jtokkit jar): {@code r50k_base} (GPT-2), {@code cl100k_base} and {@code o200k_base}.
 *
 * <p>Text is encoded as ordinary text: a literal {@code "<|endoftext|>"} inside the corpus is
 * split into ordinary tokens, never turned into the special token. {@link #vocabSize()} counts the
 * special tokens too (it is one more than the largest id of the encoding), so an embedding of that
 * size covers every id.
 */
public final class BpeTokenizer implements Tokenizer {

    /** The encodings this class offers, with the vocabulary size of each (ordinary + special ids). */
    private enum Kind {
        R50K_BASE(EncodingType.R50K_BASE, 50_257),
        CL100K_BASE(EncodingType.CL100K_BASE, 100_277),
        O200K_BASE(EncodingType.O200K_BASE, 200_019);

        final EncodingType type;
        final int vocabSize;

        Kind(EncodingType type, int vocabSize) {
            this.type = type;
            this.vocabSize = vocabSize;
        }
    }

    /** Lazily loads each rank file the first time it is asked for; thread-safe. */
    private static final EncodingRegistry REGISTRY = Encodings.newLazyEncodingRegistry();

    private final Kind kind;
    private final Encoding encoding;

    private BpeTokenizer(Kind kind) {
        this.kind = kind;
        this.encoding = REGISTRY.getEncoding(kind.type);
    }

    /** GPT-2's encoding, {@code r50k_base}: 50,257 ids. */
    public static BpeTokenizer gpt2() {
        return new BpeTokenizer(Kind.R50K_BASE);
    }

    /** The GPT-3.5/GPT-4 encoding, {@code cl100k_base}: 100,277 ids. */
    public static BpeTokenizer cl100k() {
        return new BpeTokenizer(Kind.CL100K_BASE);
    }

    /** The GPT-4o encoding, {@code o200k_base}: 200,019 ids. */
    public static BpeTokenizer o200k() {
        return new BpeTokenizer(Kind.O200K_BASE);
    }

    /**
     * The encoding with the given tiktoken name.
     *
     * @param encodingName {@code r50k_base}, {@code cl100k_base} or {@code o200k_base}
     * @return the tokenizer
     * @throws IllegalArgumentException for any other name, listing the supported ones
     */
    public static BpeTokenizer of(String encodingName) {
        for (Kind k : Kind.values()) {
            if (k.type.getName().equals(encodingName)) {
                return new BpeTokenizer(k);
            }
        }
        throw new IllegalArgumentException("unknown BPE encoding '" + encodingName + "'; supported: "
                + Arrays.stream(Kind.values()).map(k -> k.type.getName()).collect(Collectors.joining(", ")));
    }

    @Override
    public String name() {
        return kind.type.getName();
    }

    @Override
    public int vocabSize() {
        return kind.vocabSize;
    }

    @Override
    public int[] encode(String text) {
        return encoding.encodeOrdinary(text).toArray();
    }

    /** {@inheritDoc} Byte sequences that are not valid UTF-8 become U+FFFD. */
    @Override
    public String decode(int[] tokens) {
        return new String(decodeBytes(tokens), StandardCharsets.UTF_8);
    }

    @Override
    public byte[] decodeBytes(int[] tokens) {
        IntArrayList list = new IntArrayList(tokens.length);
        for (int i = 0; i < tokens.length; i++) {
            int t = tokens[i];
            if (t < 0 || t >= kind.vocabSize) {
                throw new IllegalArgumentException("token id " + t + " at position " + i
                        + " is outside the " + name() + " vocabulary [0, " + kind.vocabSize + ")");
            }
            list.add(t);
        }
        try {
            return encoding.decodeBytes(list);
        } catch (RuntimeException e) {
            // ids inside [0, vocabSize) that the encoding leaves unused (cl100k and o200k have gaps)
            throw new IllegalArgumentException("token ids " + Arrays.toString(tokens.length <= 16 ? tokens
                    : Arrays.copyOf(tokens, 16)) + (tokens.length > 16 ? "..." : "")
                    + " include an id the " + name() + " encoding does not define: " + e.getMessage(), e);
        }
    }

    @Override
    public String toString() {
        return "BpeTokenizer[" + name() + "]";
    }

}
