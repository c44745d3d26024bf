package dev.muon4j.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

class BatchSamplerTest {

    /** Token i has value i, so a window's position in the stream can be read off its ids. */
    private static int[] iota(int n) {
        int[] a = new int[n];
        Arrays.setAll(a, i -> i);
        return a;
    }

    @Test
    void batchOfAStepIsReproducibleAndStepsDiffer() {
        int[] tokens = iota(10_000);
        BatchSampler a = new BatchSampler(tokens, 16, 8, 42);
        BatchSampler b = new BatchSampler(tokens, 16, 8, 42);
        b.batch(0);
        b.batch(1); // history must not matter
        Batch x = a.batch(7);
        Batch y = b.batch(7);
        assertArrayEquals(x.inputs(), y.inputs());
        assertArrayEquals(x.targets(), y.targets());
        assertFalse(Arrays.equals(a.batch(7).inputs(), a.batch(8).inputs()));
        assertFalse(Arrays.equals(a.batch(7).inputs(), new BatchSampler(tokens, 16, 8, 43).batch(7).inputs()));
        assertEquals(8, x.batch());
        assertEquals(16, x.time());
    }

    @Test
    void targetsAreInputsShiftedByOne() {
        int[] tokens = iota(5_000);
        BatchSampler s = new BatchSampler(tokens, 32, 4, 1);
        for (long step = 0; step < 20; step++) {
            Batch bt = s.batch(step);
            for (int r = 0; r < bt.batch(); r++) {
                int start = bt.inputs()[r * 32];
                assertTrue(start >= 0 && start + 32 < tokens.length);
                for (int t = 0; t < 32; t++) {
                    assertEquals(tokens[start + t], bt.inputs()[r * 32 + t]);
                    assertEquals(tokens[start + t + 1], bt.targets()[r * 32 + t]);
                }
            }
        }
    }

    @Test
    void windowsReachBothEndsOfASmallStream() {
        int t = 4;
        int[] tokens = iota(t + 3); // offsets 0, 1, 2 possible
        BatchSampler s = new BatchSampler(tokens, t, 64, 9);
        boolean[] seen = new boolean[3];
        for (long step = 0; step < 10; step++) {
            for (long o : s.offsets(step)) {
                seen[(int) o] = true;
            }
        }
        assertTrue(seen[0] && seen[1] && seen[2]);
    }

    @Test
    void rankShardsConcatenateToTheGlobalBatch() {
        int[] tokens = iota(20_000);
        BatchSampler s = new BatchSampler(tokens, 8, 12, 5);
        Batch global = s.batch(3);
        for (int ranks : new int[] {1, 2, 3, 4, 5, 6, 7, 12, 13}) {
            int[] in = new int[0];
            int[] tg = new int[0];
            for (int r = 0; r < ranks; r++) {
                Batch shard = s.batch(3, r, ranks);
                assertEquals((r + 1) * 12 / ranks - r * 12 / ranks, shard.batch());
                in = concat(in, shard.inputs());
                tg = concat(tg, shard.targets());
            }
            assertArrayEquals(global.inputs(), in, "ranks " + ranks);
            assertArrayEquals(global.targets(), tg, "ranks " + ranks);
        }
    }

    @Test
    void unevenSharesDifferByOneRowAndBadRanksAreErrors() {
        BatchSampler s = new BatchSampler(iota(1000), 8, 12, 5);
        int[] rows = new int[5];
        for (int r = 0; r < 5; r++) {
            rows[r] = s.batch(0, r, 5).batch();
        }
        assertArrayEquals(new int[] {2, 2, 3, 2, 3}, rows);
        assertEquals(0, s.batch(0, 0, 13).batch(), "more ranks than rows leaves a share empty");
        assertEquals(0, s.batch(0, 0, 13).inputs().length);
        assertThrows(IllegalArgumentException.class, () -> s.batch(0, 4, 4));
        assertThrows(IllegalArgumentException.class, () -> s.batch(0, -1, 4));
        assertThrows(IllegalArgumentException.class, () -> s.batch(0, 0, 0));
    }

    @Test
    void datasetTooShortForContextIsAnError() {
        Tokenizer bt = new ByteTokenizer();
        Corpus tiny = Corpus.ofText("tiny", "x".repeat(300));
        var e = assertThrows(IllegalArgumentException.class, () -> TokenDataset.of(tiny, bt, 64));
        assertTrue(e.getMessage().contains("corpus of 300 tokens is too short for context 64"), e.getMessage());
        // 300 tokens, 5% = 15 for validation: context 14 fits, 15 does not
        TokenDataset ok = TokenDataset.of(tiny, bt, 14);
        assertEquals(285, ok.trainTokens().length);
        assertEquals(15, ok.validationTokens().length);
        assertThrows(IllegalArgumentException.class, () -> TokenDataset.of(tiny, bt, 15));
        assertThrows(IllegalArgumentException.class, () -> new BatchSampler(new int[8], 8, 1, 0));
    }

    @Test
    void splitKeepsEveryTokenInOrder() {
        int[] tokens = iota(1000);
        TokenDataset d = new TokenDataset(tokens, new ByteTokenizer(), 0.1, 16);
        assertEquals(900, d.trainTokens().length);
        assertEquals(100, d.validationTokens().length);
        assertEquals(899, d.trainTokens()[899]);
        assertEquals(900, d.validationTokens()[0]);
        assertThrows(IllegalArgumentException.class, () -> new TokenDataset(tokens, new ByteTokenizer(), 0, 16));
    }

    @Test
    void validationBatchesAreDeterministicNonOverlappingAndInsideTheSplit() {
        int[] tokens = iota(10_000);
        TokenDataset d = new TokenDataset(tokens, new ByteTokenizer(), 0.05, 32);
        int valStart = d.trainTokens().length;
        List<Batch> v1 = d.validationBatches(100, 4, 32);
        List<Batch> v2 = d.validationBatches(100, 4, 32);
        assertEquals(v1.size(), v2.size());
        // 500 validation tokens -> (500-1)/32 = 15 windows -> batches of 4,4,4,3
        assertEquals(4, v1.size());
        assertEquals(3, v1.get(3).batch());
        int expectedStart = valStart;
        for (int i = 0; i < v1.size(); i++) {
            Batch b = v1.get(i);
            assertArrayEquals(b.inputs(), v2.get(i).inputs());
            for (int r = 0; r < b.batch(); r++) {
                assertEquals(expectedStart, b.inputs()[r * 32], "windows follow each other without overlap");
                for (int t = 0; t < 32; t++) {
                    int in = b.inputs()[r * 32 + t];
                    int tg = b.targets()[r * 32 + t];
                    assertTrue(in >= valStart && tg < tokens.length && tg == in + 1);
                }
                expectedStart += 32;
            }
        }
        assertEquals(2, d.validationBatches(2, 4, 32).size());
    }

    @Test
    void defaultCorpusWithGpt2GivesAUsableDataset() {
        TokenDataset d = TokenDataset.of(Corpus.defaultCorpus(), TokenizerKind.GPT2.create(), 256);
        int n = d.trainTokens().length + d.validationTokens().length;
        assertTrue(n > 1_000_000, d.describe());
        Batch b = d.trainSampler(256, 4, 0).batch(0);
        assertEquals(4 * 256, b.inputs().length);
        for (int id : b.inputs()) {
            assertTrue(id >= 0 && id < 50_257);
        }
    }

    private static int[] concat(int[] a, int[] b) {
        int[] c = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }
}
