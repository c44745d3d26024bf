package dev.muon4j.data;

import java.nio.charset.StandardCharsets;

/**
 * The byte-level tokenizer: each UTF-8 byte of the text is one token, so the vocabulary is 256.
 * No training, no files, and every string round-trips exactly (strings holding unpaired
 * surrogates excepted, which UTF-8 cannot represent; they encode as {@code '?'}).
 */
public final class ByteTokenizer implements Tokenizer {

    /** The vocabulary size, 256: one id per byte value. */
    public static final int VOCAB_SIZE = 256;

    /** Creates the byte tokenizer; it holds no state, so one instance serves everyone. */
    public ByteTokenizer() {
    }

    @Override
    public String name() {
        return "byte";
    }

    @Override
    public int vocabSize() {
        return VOCAB_SIZE;
    }

    @Override
    public int[] encode(String text) {
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        int[] ids = new int[bytes.length];
        for (int i = 0; i < bytes.length; i++) {
            ids[i] = bytes[i] & 0xFF;
        }
        return ids;
    }

    /** {@inheritDoc} Invalid UTF-8 becomes U+FFFD. */
    @Override
    public String decode(int[] tokens) {
        // new String(byte[], UTF_8) replaces malformed input with U+FFFD.
        return new String(decodeBytes(tokens), StandardCharsets.UTF_8);
    }

    /** {@inheritDoc} Each id is one byte. */
    @Override
    public byte[] decodeBytes(int[] tokens) {
        byte[] bytes = new byte[tokens.length];
        for (int i = 0; i < tokens.length; i++) {
            int t = tokens[i];
            if (t < 0 || t >= VOCAB_SIZE) {
                throw new IllegalArgumentException("token id " + t + " at position " + i
                        + " is outside the byte vocabulary [0, 256)");
            }
            bytes[i] = (byte) t;
        }
        return bytes;
    }

    @Override
    public String toString() {
        return "ByteTokenizer";
    }
}
