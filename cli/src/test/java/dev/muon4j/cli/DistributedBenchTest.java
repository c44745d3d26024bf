package dev.muon4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.io.JsonCodec;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * {@code muon4j bench distributed} end to end on a one-layer model, 1 and 2 in-process ranks:
 * Distributed Muon moves more bytes than AdamW (the all-gathers of split matrices), each of 2
 * ranks holds about half the optimizer state, and the report is written.
 */
class DistributedBenchTest {
    @TempDir
    Path tmp;

    private String[] args(Path out, String ranks) throws Exception {
        Path data = tmp.resolve("data.txt");
        Files.writeString(data, "Sphinx of black quartz, judge my vow. Pack my box with five dozen liquor jugs!\n".repeat(30));
        return new String[] {"bench", "distributed", "--preset", "tiny", "--layers", "1", "--width", "32", "--heads", "2",
                "--mlp-width", "64", "--context", "16", "--batch", "4", "--steps", "1", "--ranks", ranks,
                "--data", data.toString(), "--out", out.toString()};
    }

    private static String run(String[] args) {
        CommandLine cli = Main.commandLine();
        StringWriter stdout = new StringWriter();
        StringWriter stderr = new StringWriter();
        cli.setOut(new PrintWriter(stdout));
        cli.setErr(new PrintWriter(stderr));
        int code = cli.execute(args);
        assertEquals(0, code, () -> "exit code; stdout:\n" + stdout + "\nstderr:\n" + stderr);
        return stdout.toString();
    }

    private static double number(String text, String regex) {
        Matcher m = Pattern.compile(regex).matcher(text);
        assertTrue(m.find(), "no line matching " + regex + " in:\n" + text);
        return Double.parseDouble(m.group(1));
    }

    @Test
    void distributedMuonMovesMoreBytesThanAdamWAndTwoRanksHoldHalfTheState() throws Exception {
        Path out = tmp.resolve("bench.json");
        String console = run(args(out, "1,2"));

        double bytesRatio = number(console, "(?m)^bytes per rank per step, Muon/AdamW, 2 ranks, DISTRIBUTED_MUON: ([0-9.]+) ");
        assertTrue(bytesRatio > 1 && bytesRatio < 1.5, "Muon/AdamW bytes ratio " + bytesRatio + "\n" + console);
        double wholeRatio = number(console, "(?m)^bytes per rank per step, Muon/AdamW, 2 ranks, WHOLE_MATRIX: ([0-9.]+) ");
        assertEquals(1.0, wholeRatio, 1e-9, "whole matrices need no gathers:\n" + console);
        for (String setting : List.of("Muon \\(hybrid\\) DISTRIBUTED_MUON", "Muon \\(hybrid\\) WHOLE_MATRIX", "AdamW ZeRO-1")) {
            double state = number(console, "(?m)^optimizer state per rank / one process, 2 ranks, " + setting + ": ([0-9.]+) ");
            assertTrue(state >= 0.5 && state < 0.6, setting + " state ratio " + state + "\n" + console);
        }
        // The step-time table has a row per setting; one process communicates nothing.
        assertTrue(Pattern.compile("(?m)^\\s+1\\s+Muon \\(hybrid\\)\\s+one process\\s+[0-9.]+\\s+[0-9.]+ \\(\\s*[0-9.]+%\\)\\s+0\\.000 ")
                .matcher(console).find(), console);
        assertTrue(console.contains("report: " + out), console);

        Map<String, Object> report = JsonCodec.parseObject(Files.readString(out));
        assertTrue(((String) report.get("command")).startsWith("./muon4j bench distributed --preset tiny"), report.toString());
        List<Map<String, Object>> rows = new ArrayList<>();
        for (Object row : (List<?>) report.get("results")) {
            @SuppressWarnings("unchecked")
            Map<String, Object> r = (Map<String, Object>) row;
            rows.add(r);
        }
        assertEquals(5, rows.size(), "1 rank: Muon, AdamW; 2 ranks: AdamW and Muon in both modes");
        assertEquals(List.of("command", "date", "machine", "data", "model", "batch", "context", "warmup_steps", "measured_steps", "notes",
                "results"), List.copyOf(report.keySet()));
        for (Map<String, Object> r : rows) {
            long ranks = ((Number) r.get("ranks")).longValue();
            assertEquals(ranks == 2 && !"ADAMW".equals(r.get("optimizer")), r.containsKey("bytes_ratio_to_adamw"), r.toString());
            assertEquals(ranks == 1, ((Number) r.get("bytes_sent_per_rank")).doubleValue() == 0, r.toString());
            assertTrue(((Number) r.get("compute_seconds")).doubleValue() > 0, r.toString());
            if (ranks == 2 && "DISTRIBUTED_MUON".equals(r.get("sharding"))) {
                assertEquals(bytesRatio, ((Number) r.get("bytes_ratio_to_adamw")).doubleValue(), 1e-4);
                assertTrue(((Number) r.get("newton_schulz_seconds")).doubleValue() > 0, r.toString());
            }
        }
        if (FileSystems.getDefault().supportedFileAttributeViews().contains("posix")) {
            Path reference = Files.createFile(tmp.resolve("reference"));
            assertEquals(Files.getPosixFilePermissions(reference), Files.getPosixFilePermissions(out), "the usual permissions of a new file");
            Files.delete(reference);
        }
        // No run directory is left behind in the working directory or next to the report.
        try (var files = Files.list(tmp)) {
            assertEquals(List.of("bench.json", "data.txt"), files.map(p -> p.getFileName().toString()).sorted().toList());
        }
    }

    @Test
    void writesAMarkdownReport() throws Exception {
        Path out = tmp.resolve("reports/bench.md");
        run(args(out, "2"));
        String md = Files.readString(out);
        assertTrue(md.startsWith("# muon4j bench distributed\n"), md);
        assertTrue(md.contains("| 2 | Muon (hybrid) | DISTRIBUTED_MUON |"), md);
        assertTrue(md.contains("| 2 | AdamW | ZeRO-1 |"), md);
        assertTrue(md.contains("- bytes per rank per step, Muon/AdamW, 2 ranks, DISTRIBUTED_MUON: "), md);
    }

    /** The MoE model on 2 ranks: each rank holds about half the state; the report names the experts. */
    @Test
    void theMoeModelRunsOnRanksToo() throws Exception {
        Path out = tmp.resolve("moe.json");
        String[] dense = args(out, "1,2");
        List<String> a = new ArrayList<>(List.of(dense));
        a.addAll(List.of("--model", "deepseek", "--experts", "4", "--expert-width", "16"));
        String console = run(a.toArray(String[]::new));
        assertTrue(console.contains("4 experts (2 active + 2 shared) of width 16"), console);
        double state = number(console, "(?m)^optimizer state per rank / one process, 2 ranks, Muon \\(hybrid\\) WHOLE_MATRIX: ([0-9.]+) ");
        assertTrue(state >= 0.5 && state < 0.6, "state ratio " + state + "\n" + console);
        Map<String, Object> report = JsonCodec.parseObject(Files.readString(out));
        assertEquals("deepseek", ((Map<?, ?>) report.get("model")).get("model"));
    }
}
