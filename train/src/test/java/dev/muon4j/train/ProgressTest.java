package dev.muon4j.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

/**
 * The progress line fits its width (79 columns by default, so an 80-column terminal never wraps it),
 * giving up the bar first and then the fields least needed; it redraws in place on a terminal and
 * prints plain lines elsewhere.
 */
class ProgressTest {
    private static Progress progress(String label, long steps, int width) {
        return new Progress(new PrintStream(new ByteArrayOutputStream()), false, label, steps, 0, width);
    }

    @Test
    void theLongestLinesFitEightyColumns() {
        // a long run of the MoE model with every field present: the widest line train prints
        Progress p = progress("adamw", 1_000_000, Progress.DEFAULT_WIDTH);
        String line = p.line(999_999, 12.3456, 123_456, 3 * 86_400 + 59, 11.2345, 12.34);
        assertTrue(line.length() <= 79, line.length() + ": " + line);
        assertTrue(line.contains("loss 12.3456") && line.contains("ETA 72h00m"), line);
        String usual = progress("muon", 20, 79).line(16, 2.7001, 3053, 3, 2.7657, null);
        assertEquals("muon 16/20 [###############....]  80% loss 2.7001 val 2.7657 3,053 tok/s ETA 3s", usual);
        assertTrue(usual.length() <= 79);
    }

    @Test
    void narrowWidthsGiveUpTheBarThenTheLeastNeededFields() {
        String full = progress("muon", 300, 100).line(150, 2.5, 3000, 60, 2.6, 1.05);
        assertTrue(full.contains("[##########..........]") && full.contains("load 1.05") && full.contains("val 2.6000"), full);
        String shorterBar = progress("muon", 300, 79).line(150, 2.5, 3000, 60, 2.6, 1.05);
        assertTrue(shorterBar.length() <= 79 && shorterBar.contains("load 1.05") && !shorterBar.contains("[####"), shorterBar);
        String noBar = progress("muon", 300, 72).line(150, 2.5, 3000, 60, 2.6, 1.05);
        assertTrue(noBar.length() <= 72, noBar);
        assertFalse(noBar.contains("["), "no room for a bar of 5: " + noBar);
        assertTrue(noBar.contains("load 1.05"), noBar);
        String noLoad = progress("muon", 300, 62).line(150, 2.5, 3000, 60, 2.6, 1.05);
        assertTrue(noLoad.length() <= 62 && !noLoad.contains("load") && noLoad.contains("val"), noLoad);
        String least = progress("muon", 300, 30).line(150, 2.5, 3000, 60, 2.6, 1.05);
        assertTrue(least.length() <= 30 && least.contains("loss 2.5000"), least);
        for (int w = 20; w <= 100; w++) {
            String l = progress("adamw", 100_000, w).line(54_321, 3.25, 2_345, 7_200, 3.3, 1.2);
            assertTrue(l.length() <= w, w + ": " + l);
        }
    }

    @Test
    void widthComesFromColumnsWhenNarrower() {
        assertEquals(79, Progress.widthFrom(null));
        assertEquals(79, Progress.widthFrom("120"));
        assertEquals(59, Progress.widthFrom("60"));
        assertEquals(79, Progress.widthFrom("wide"));
        assertEquals(79, Progress.widthFrom("10"), "implausible: keep the default");
        assertThrows(IllegalArgumentException.class, () -> progress("x", 1, 19));
    }

    @Test
    void redrawsInPlaceOnATerminalAndPrintsLinesElsewhere() {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        Progress terminal = new Progress(new PrintStream(bytes, true, StandardCharsets.UTF_8), true, "muon", 3, 0, 79);
        for (int s = 1; s <= 3; s++) {
            terminal.update(s, 3.0 - s * 0.1, 1000, 3 - s, null);
        }
        String drawn = bytes.toString(StandardCharsets.UTF_8);
        assertEquals(3, drawn.chars().filter(c -> c == '\r').count(), drawn);
        assertEquals(1, drawn.chars().filter(c -> c == '\n').count(), "one line, ended once: " + drawn);
        for (String row : drawn.split("\r")) {
            assertTrue(row.strip().length() <= 79, row);
        }
        bytes.reset();
        Progress log = new Progress(new PrintStream(bytes, true, StandardCharsets.UTF_8), false, "muon", 3, 0, 79);
        for (int s = 1; s <= 3; s++) {
            log.update(s, 3.0 - s * 0.1, 1000, 3 - s, null);
        }
        String logged = bytes.toString(StandardCharsets.UTF_8);
        assertFalse(logged.contains("\r"), logged);
        assertEquals(3, logged.lines().count(), logged);
    }
}
