package dev.muon4j.data;

/**
 * Turns text into token ids and back.
 *
 * <p>Every id an implementation returns from {@link #encode(String)} lies in
 * {@code [0, vocabSize())}, so a model's embedding table needs {@link #vocabSize()} rows.
 * Implementations are immutable and safe to share between threads.
 */
public interface Tokenizer {

    /** A short name for logs and checkpoints, for example {@code "byte"} or {@code "r50k_base"}. */
    String name();

    /** The number of distinct ids, one more than the largest id this tokenizer can produce. */
    int vocabSize();

    /**
     * Encodes text into token ids.
     *
     * @param text the text, not null
     * @return the ids, each in {@code [0, vocabSize())}
     */
    int[] encode(String text);

    /**
     * Decodes token ids into text. Byte sequences that are not valid UTF-8 (for example a
     * multi-byte character cut in half) become U+FFFD replacement characters rather than errors.
     *
     * @param tokens the ids, each in {@code [0, vocabSize())}
     * @return the text
     * @throws IllegalArgumentException if an id lies outside the vocabulary
     */
    String decode(int[] tokens);

    /**
     * The bytes the ids stand for, without decoding them as text: a multi-byte character may be
     * split between two calls, and the bytes of consecutive calls concatenate to those of one call
     * over all the ids. {@link TokenTextStream} turns them into whole characters.
     *
     * @param tokens the ids, each in {@code [0, vocabSize())}
     * @return the bytes, usually UTF-8
     * @throws IllegalArgumentException if an id lies outside the vocabulary or is one the encoding leaves undefined
     */
    byte[] decodeBytes(int[] tokens);
}
