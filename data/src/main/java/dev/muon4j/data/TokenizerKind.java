package dev.muon4j.data;

import java.util.Arrays;
import java.util.Locale;
import java.util.stream.Collectors;

/** The tokenizers muon4j offers by name, for configuration files and the command line. */
public enum TokenizerKind {
    /** UTF-8 bytes, vocabulary 256 ({@link ByteTokenizer}). */
    BYTE("byte"),
    /** GPT-2's byte-pair encoding, {@code r50k_base}, vocabulary 50,257. */
    GPT2("r50k_base"),
    /** {@code cl100k_base}, vocabulary 100,277. */
    CL100K("cl100k_base"),
    /** {@code o200k_base}, vocabulary 200,019. */
    O200K("o200k_base");

    private final String encodingName;

    TokenizerKind(String encodingName) {
        this.encodingName = encodingName;
    }

    /** The name {@link Tokenizer#name()} reports for this kind: {@code byte}, {@code r50k_base}, ... */
    public String encodingName() {
        return encodingName;
    }

    /** Creates the tokenizer of this kind (BPE rank files load on first use, offline). */
    public Tokenizer create() {
        return switch (this) {
            case BYTE -> new ByteTokenizer();
            case GPT2 -> BpeTokenizer.gpt2();
            case CL100K -> BpeTokenizer.cl100k();
            case O200K -> BpeTokenizer.o200k();
        };
    }

    /**
     * Parses a kind, case-insensitively, from its constant name ({@code gpt2}) or its encoding
     * name ({@code r50k_base}).
     *
     * @param name the name
     * @return the kind
     * @throws IllegalArgumentException naming the value and the accepted ones
     */
    public static TokenizerKind parse(String name) {
        String n = name.trim().toLowerCase(Locale.ROOT);
        for (TokenizerKind k : values()) {
            if (k.name().toLowerCase(Locale.ROOT).equals(n) || k.encodingName.equals(n)) {
                return k;
            }
        }
        throw new IllegalArgumentException("unknown tokenizer '" + name + "'; accepted: "
                + Arrays.stream(values()).map(k -> k.name().toLowerCase(Locale.ROOT) + " (" + k.encodingName + ")")
                        .collect(Collectors.joining(", ")));
    }
}
