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
}
