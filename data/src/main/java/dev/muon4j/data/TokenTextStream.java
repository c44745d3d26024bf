package dev.muon4j.data;

import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Objects;

/**
 * Turns token ids, one at a time, into text that can be printed at once: only whole characters.
 *
 * <p>A token's bytes need not end on a character boundary: with the byte tokenizer every byte of a
 * multi-byte UTF-8 character is its own token, and a byte-pair token may end inside a character.
 * {@link #push} keeps the bytes of a character that has not ended yet and returns them with the
 * token that completes it; a surrogate pair (a 4-byte character) comes out whole. Bytes that cannot
 * be UTF-8 (a stray continuation byte, a character cut off by another) become U+FFFD as soon as that
 * is certain, as {@code new String(bytes, UTF_8)} would replace them; {@link #finish} replaces a
 * character left incomplete at the end. The concatenation of everything returned equals
 * {@code new String(all bytes, UTF_8)}.
 *
 * <p>An id the tokenizer leaves undefined (the gaps in {@code cl100k_base} and {@code o200k_base})
 * stands for U+FFFD. Not thread-safe.
 */
public final class TokenTextStream {
    private static final byte[] REPLACEMENT = "\uFFFD".getBytes(StandardCharsets.UTF_8);

    private final Tokenizer tokenizer;
    private final CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder()
            .onMalformedInput(CodingErrorAction.REPLACE)
            .onUnmappableCharacter(CodingErrorAction.REPLACE);
    private final int[] one = new int[1];
    private ByteBuffer pending = ByteBuffer.allocate(64);   // bytes not yet decoded, ready to read
    private CharBuffer chars = CharBuffer.allocate(64);

    /** A stream of the text {@code tokenizer}'s ids stand for. */
    public TokenTextStream(Tokenizer tokenizer) {
        this.tokenizer = Objects.requireNonNull(tokenizer, "tokenizer");
        pending.flip();
    }

    /**
     * Adds one token.
     *
     * @param token an id in {@code [0, vocabSize())}
     * @return the characters this token completes, possibly none (the empty string)
     * @throws IllegalArgumentException if the id lies outside the vocabulary
     */
    public String push(int token) {
        if (token < 0 || token >= tokenizer.vocabSize()) {
            throw new IllegalArgumentException("token id " + token + " is outside the " + tokenizer.name() + " vocabulary [0, "
                    + tokenizer.vocabSize() + ")");
        }
        one[0] = token;
        byte[] bytes;
        try {
            bytes = tokenizer.decodeBytes(one);
        } catch (IllegalArgumentException undefined) {
            bytes = REPLACEMENT;
        }
        append(bytes);
        return decode(false);
    }

    /**
     * Ends the stream: a character left incomplete becomes U+FFFD. The stream is empty afterwards
     * and may be used again.
     *
     * @return the characters still held back, possibly none
     */
    public String finish() {
        String rest = decode(true);
        decoder.reset();
        return rest;
    }

    private void append(byte[] bytes) {
        if (pending.remaining() + bytes.length > pending.capacity()) {
            ByteBuffer bigger = ByteBuffer.allocate(Math.max(2 * pending.capacity(), pending.remaining() + bytes.length));
            bigger.put(pending).flip();
            pending = bigger;
        }
        pending.compact();
        pending.put(bytes);
        pending.flip();
    }

    private String decode(boolean endOfInput) {
        int needed = (int) Math.ceil(pending.remaining() * (double) decoder.maxCharsPerByte()) + 2;
        if (chars.capacity() < needed) {
            chars = CharBuffer.allocate(needed);
        }
        chars.clear();
        decoder.decode(pending, chars, endOfInput);   // leaves an incomplete character's bytes in pending
        if (endOfInput) {
            decoder.flush(chars);
        }
        chars.flip();
        return chars.toString();
    }
}
