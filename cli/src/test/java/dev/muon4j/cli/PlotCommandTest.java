package dev.muon4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code muon4j plot} on metrics.jsonl files written here in the trainer's format: one line per run,
 * against steps, tokens or minutes; a field only some lines carry (val_loss) drawn from those lines;
 * clear one-line errors for what cannot be drawn.
 */
class PlotCommandTest {
    @TempDir
    Path tmp;

    private Path run(String name, String... lines) throws Exception {
        Path dir = Files.createDirectories(tmp.resolve(name));
        Files.write(dir.resolve("metrics.jsonl"), List.of(lines));
        return dir;
    }

    private static int polylinePoints(String svg, int which) {
        Matcher m = Pattern.compile("<polyline[^>]*points=\"([^\"]*)\"").matcher(svg);
        for (int i = 0; i <= which; i++) {
            if (!m.find()) {
                return -1;
            }
        }
        return m.group(1).strip().split("\\s+").length;
    }

    @Test
    void drawsOneLinePerRunFromTheLinesThatCarryTheMetric() throws Exception {
        Path adamw = run("adamw",
                "{\"step\":1,\"tokens\":100,\"loss\":5.0,\"lr\":0.001,\"grad_norm\":2.0,\"seconds\":1.0,\"time\":\"2026-11-28T00:00:00Z\"}",
                "{\"step\":1,\"tokens\":100,\"val_loss\":4.9,\"time\":\"2026-11-28T00:00:01Z\"}",
                "{\"step\":2,\"tokens\":200,\"loss\":4.0,\"lr\":0.002,\"grad_norm\":1.0,\"seconds\":1.0,\"time\":\"2026-11-28T00:01:00Z\"}",
                "{\"step\":2,\"tokens\":200,\"val_loss\":4.1,\"time\":\"2026-11-28T00:01:01Z\"}");
        Path muon = run("muon",
                "{\"step\":1,\"tokens\":100,\"loss\":5.0,\"lr\":0.001,\"muon_lr\":0.004,\"grad_norm\":2.0,\"seconds\":1.0,\"time\":\"2026-11-28T00:00:00Z\"}",
                "{\"step\":2,\"tokens\":200,\"loss\":3.5,\"lr\":0.002,\"muon_lr\":0.008,\"grad_norm\":1.0,\"seconds\":1.0,\"time\":\"2026-11-28T00:02:00Z\"}",
                "{\"step\":3,\"tokens\":300,\"loss\":3.0,\"lr\":0.003,\"muon_lr\":0.012,\"grad_norm\":1.0,\"seconds\":1.0,\"time\":\"2026-11-28T00:03:00Z\"}");
        Path svg = tmp.resolve("out/loss.svg");
        RunSafetyCommandTest.Outcome o = RunSafetyCommandTest.run(List.of("plot", adamw.toString(), muon.toString(), "--metric", "loss",
                "--x", "tokens", "--out", svg.toString()));
        assertEquals(0, o.code(), o::err);
        assertTrue(o.out().contains("adamw: 2 points, last loss = 4") && o.out().contains("muon: 3 points, last loss = 3"), o.out());
        String drawn = Files.readString(svg);
        assertTrue(drawn.startsWith("<?xml") || drawn.startsWith("<svg"), drawn.substring(0, 40));
        assertEquals(2, polylinePoints(drawn, 0), drawn);
        assertEquals(3, polylinePoints(drawn, 1), drawn);
        assertTrue(drawn.contains(">tokens<") && drawn.contains(">adamw<") && drawn.contains(">muon<"), drawn);

        // val_loss only on validation lines; muon_lr only in the Muon run, the other left out with a note
        Path val = tmp.resolve("val.svg");
        o = RunSafetyCommandTest.run(List.of("plot", adamw.toString(), "--out", val.toString()));
        assertEquals(0, o.code(), o::err);
        assertEquals(2, polylinePoints(Files.readString(val), 0));
        Path lr = tmp.resolve("lr.svg");
        o = RunSafetyCommandTest.run(List.of("plot", adamw.toString(), muon.toString(), "--metric", "muon_lr", "--x", "time",
                "--out", lr.toString()));
        assertEquals(0, o.code(), o::err);
        assertTrue(o.err().contains("has no 'muon_lr'"), o.err());
        assertEquals(3, polylinePoints(Files.readString(lr), 0));
        assertEquals(-1, polylinePoints(Files.readString(lr), 1), "one line only");
    }

    @Test
    void whatCannotBeDrawnIsNamedInOneLine() throws Exception {
        Path old = run("old", "{\"step\":1,\"tokens\":100,\"loss\":5.0,\"lr\":0.001,\"grad_norm\":2.0,\"seconds\":1.0}");
        assertError(RunSafetyCommandTest.run(List.of("plot", old.toString(), "--metric", "loss", "--x", "time", "--out",
                tmp.resolve("a.svg").toString())),
                "has no time");
        assertError(RunSafetyCommandTest.run(List.of("plot", old.toString(), "--metric", "accuracy", "--out", tmp.resolve("b.svg").toString())),
                "no run has a 'accuracy'");
        assertError(RunSafetyCommandTest.run(List.of("plot", tmp.resolve("missing").toString())), "has no metrics.jsonl");
        assertError(RunSafetyCommandTest.run(List.of("plot", old.toString(), "--x", "epochs")), "--x must be step, tokens or time");
        Path bad = run("bad", "{\"step\":1,", "");
        assertError(RunSafetyCommandTest.run(List.of("plot", bad.toString(), "--metric", "loss")), "line 1 is not a JSON object");
        assertFalse(Files.exists(tmp.resolve("a.svg")) || Files.exists(tmp.resolve("b.svg")), "nothing written on an error");
    }

    private static void assertError(RunSafetyCommandTest.Outcome o, String part) {
        assertEquals(2, o.code(), () -> "exit code; out: " + o.out() + " err: " + o.err());
        String err = o.err().strip();
        assertFalse(err.contains("\n"), "one line: " + err);
        assertTrue(err.contains(part), "'" + part + "' in: " + err);
    }
}
