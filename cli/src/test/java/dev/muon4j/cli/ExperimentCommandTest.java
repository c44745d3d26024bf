package dev.muon4j.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.experiments.ReportFiles;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import javax.xml.parsers.DocumentBuilderFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.w3c.dom.Document;
import picocli.CommandLine;

/**
 * {@code muon4j experiment NAME --quick} end to end for every experiment: report.md, well-formed SVG
 * plots (with PNG copies where rsvg-convert is installed) and the CSV data behind them; a second
 * invocation trains nothing; a grid with runs removed or cut trains only those; --analyze-only needs
 * every run ended; an unknown name is refused with the names.
 */
class ExperimentCommandTest {
    @TempDir
    Path tmp;

    record Outcome(int code, String out, String err) {
    }

    static Outcome run(String... args) {
        CommandLine cli = Main.commandLine();
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        cli.setOut(new PrintWriter(out));
        cli.setErr(new PrintWriter(err));
        int code = cli.execute(args);
        return new Outcome(code, out.toString(), err.toString());
    }

    /** Runs the quick grid into a fresh directory, checks the files, and returns the directory. */
    private Path quick(String name, List<String> plots, List<String> csvs, List<String> reportHas) throws Exception {
        Path out = tmp.resolve(name);
        long t0 = System.nanoTime();
        Outcome o = run("experiment", name, "--quick", "--out", out.toString(), "--backend", "OPENBLAS_BUNDLED", "--threads", "2");
        double seconds = (System.nanoTime() - t0) / 1e9;
        System.out.printf("experiment %s --quick: %.1f s%n", name, seconds);
        assertEquals(0, o.code(), () -> "exit code; stdout:\n" + o.out() + "\nstderr:\n" + o.err());
        assertTrue(o.out().contains("grid: " + "") && o.out().contains("complete"), o.out());
        assertTrue(o.out().contains("report: " + out.resolve("report.md")), o.out());
        String report = Files.readString(out.resolve("report.md"));
        assertTrue(report.contains("Command: `./muon4j experiment " + name + " --quick --out " + out), report);
        assertTrue(report.contains("**This is the quick grid**"), report);
        for (String s : reportHas) {
            assertTrue(report.contains(s), "report.md lacks \"" + s + "\":\n" + report);
        }
        boolean png = ReportFiles.findRsvgConvert().isPresent();
        DocumentBuilderFactory factory = DocumentBuilderFactory.newInstance();
        factory.setNamespaceAware(true);
        factory.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
        for (String plot : plots) {
            Document svg = factory.newDocumentBuilder().parse(out.resolve(plot + ".svg").toFile());
            assertEquals("svg", svg.getDocumentElement().getLocalName(), plot);
            assertTrue(svg.getElementsByTagNameNS("http://www.w3.org/2000/svg", "polyline").getLength()
                    + svg.getElementsByTagNameNS("http://www.w3.org/2000/svg", "circle").getLength() > 1, plot + " draws data");
            assertTrue(report.contains("](" + plot + ".svg)"), "report shows " + plot);
            assertEquals(png, Files.isRegularFile(out.resolve(plot + ".png")), plot + ".png iff rsvg-convert is installed");
            if (png) {
                byte[] head = Files.readAllBytes(out.resolve(plot + ".png"));
                assertArrayEquals(new byte[] {(byte) 0x89, 'P', 'N', 'G'}, java.util.Arrays.copyOf(head, 4), plot + ".png is a PNG");
            }
        }
        assertTrue(report.contains(png ? "with a PNG copy beside it" : "no PNG copies were drawn"), report);
        for (String csv : csvs) {
            List<String> lines = Files.readAllLines(out.resolve(csv + ".csv"));
            assertTrue(lines.size() > 1, csv + ".csv has data");
            int columns = fields(lines.getFirst());
            for (String line : lines) {
                assertEquals(columns, fields(line), csv + ".csv: " + line);
            }
        }
        return out;
    }

    @Test
    void scalingQuick() throws Exception {
        Path out = quick("scaling", List.of("frontier", "flop-ratio"), List.of("frontier", "flop-ratio", "runs"),
                List.of("Moonlight: **52%**", "| optimizer | fitted to | a | b | L∞ | RMS residual |", "## Every run"));
        int runs = extendedGrid(out, "scaling");
        // A second invocation finds every run, extensions included, ended and only writes the report again.
        Outcome again = run("experiment", "scaling", "--quick", "--out", out.toString(), "--backend", "OPENBLAS_BUNDLED");
        assertEquals(0, again.code(), again.err());
        assertTrue(again.out().contains("48 ended earlier (skipped), 0 to train"), again.out());
        assertTrue(again.out().contains(runs + " ended earlier (skipped), 0 to train"), again.out());
    }

    /**
     * Checks the quick scaling grid's 48 runs and the runs its sweeps went on with (the quick grid goes at most one rate
     * past an edge): each extension is named on the output, has its run directory and its line in runs.csv, and lies
     * beyond its sweep's first three rates by a factor of 2; returns the number of runs.
     */
    private int extendedGrid(Path out, String name) throws IOException {
        List<String> lines = Files.readAllLines(out.resolve("runs.csv"));
        int runs = lines.size() - 1;
        try (Stream<Path> dirs = Files.list(out.resolve("runs"))) {
            assertEquals(runs, dirs.count(), "a run directory for each line of runs.csv");
        }
        java.util.Set<String> base = dev.muon4j.experiments.Experiments.byName(name).grid(dev.muon4j.experiments.GridSize.QUICK).stream()
                .map(dev.muon4j.experiments.GridRun::id).collect(java.util.stream.Collectors.toSet());
        assertEquals(48, base.size());
        List<String> extra = lines.stream().skip(1).map(l -> l.substring(0, l.indexOf(','))).filter(id -> !base.contains(id)).toList();
        assertEquals(runs - 48, extra.size(), "runs.csv holds the 48 runs of the grid and its extensions");
        for (String id : extra) {
            String sweep = id.substring(0, id.lastIndexOf("-lr"));
            double lr = Double.parseDouble(id.substring(id.lastIndexOf("-lr") + 3));
            List<Double> first = base.stream().filter(b -> b.startsWith(sweep + "-lr")).map(b -> Double.parseDouble(b.substring(b.lastIndexOf("-lr") + 3)))
                    .sorted().toList();
            assertEquals(3, first.size(), sweep);
            assertTrue(lr == twoDigits(first.getFirst() / 2) || lr == twoDigits(first.getLast() * 2),
                    id + " lies one factor of 2 (to 2 significant digits) beyond " + first);
        }
        return runs;
    }

    /** A rate to 2 significant digits, as the scaling grids write them. */
    private static double twoDigits(double v) {
        return new java.math.BigDecimal(v).round(new java.math.MathContext(2)).doubleValue();
    }

    @Test
    void scalingMoeQuick() throws Exception {
        Path out = quick("scaling-moe", List.of("frontier"), List.of("frontier", "runs"),
                List.of("# Scaling, Mixture of Experts (MoE): the training FLOPs Muon needs to reach AdamW's loss, counted on active parameters",
                        "| optimizer | model | N (active matrix parameters) |", "m2w8: 2 layers, width 8, 4 experts (2 active + 2 shared) of width 4",
                        "N counts the **active parameters**", "Mixture-of-Experts (MoE) models", "4 routed experts of width F/4",
                        "router bias rate 0.01", "not tuned for the Mixture-of-Experts model", "## Every run"));
        extendedGrid(out, "scaling-moe");
        String settings = Files.readString(out.resolve("runs/m2w8-0.5n-adamw-lr0.005/result.json"));
        assertTrue(settings.contains("\"model\": \"deepseek\"") && settings.contains("\"router_bias_rate\": 0.01"), settings);
    }

    @Test
    void updateRmsQuickCarriesOnACutGrid() throws Exception {
        Path out = quick("update-rms", List.of("update-rms-adamw", "update-rms-muon-original", "update-rms-muon-match-rms"),
                List.of("update-rms"), List.of("| matrices | class | fan-out × fan-in |", "| experts |", "| square |", "| wide |", "| tall |"));
        Path runs = out.resolve("runs");
        byte[] adamw = Files.readAllBytes(runs.resolve("adamw/metrics.jsonl"));
        // One run lost whole, one killed after its last checkpoint but before its result.
        deleteTree(runs.resolve("muon-original"));
        Files.delete(runs.resolve("muon-match-rms/result.json"));
        Outcome incomplete = run("experiment", "update-rms", "--quick", "--out", out.toString(), "--analyze-only");
        assertEquals(2, incomplete.code(), incomplete.out());
        assertTrue(incomplete.err().contains("2 of the grid's 3 runs have not ended") && incomplete.err().contains("muon-original"),
                incomplete.err());
        Outcome again = run("experiment", "update-rms", "--quick", "--out", out.toString(), "--backend", "OPENBLAS_BUNDLED");
        assertEquals(0, again.code(), again.err());
        assertTrue(again.out().contains("1 ended earlier (skipped), 2 to train"), again.out());
        assertFalse(again.out().contains("[1/3] adamw:"), again.out());
        assertTrue(again.out().contains("[3/3] muon-match-rms: nothing to do"), again.out());
        assertArrayEquals(adamw, Files.readAllBytes(runs.resolve("adamw/metrics.jsonl")), "the ended run is not trained again");
        Outcome analysis = run("experiment", "update-rms", "--quick", "--out", out.toString(), "--analyze-only");
        assertEquals(0, analysis.code(), analysis.err());
        assertFalse(analysis.out().contains("grid:"), "--analyze-only trains nothing: " + analysis.out());
        assertTrue(Files.readString(out.resolve("report.md")).contains("Command: `./muon4j experiment update-rms --quick --out " + out + "`"),
                "the report names the command that trains the grid, without --analyze-only");
    }

    @Test
    void weightDecayQuick() throws Exception {
        quick("weight-decay", List.of("weight-rms", "layer-output-rms", "validation-loss", "validation-loss-end"),
                List.of("weight-rms", "layer-output-rms", "validation-loss"),
                List.of("Lowest final validation loss: **", "hidden weight RMS: first → last"));
    }

    @Test
    void svdEntropyQuick() throws Exception {
        Path out = quick("svd-entropy", List.of("svd-entropy-dense", "svd-entropy-moe"), List.of("svd-entropy", "svd-entropy-final"),
                List.of("Moonlight (arXiv 2502.16982, §3.4)", "### Dense Llama model", "### Mixture-of-Experts model", "| q |", "| k |",
                        "| v |", "| o |", "| gate |", "| up |", "| down |", "| router |", "| experts | 12 matrices, 16×32 and 32×16 |",
                        "| shared experts |"));
        // Every matrix at the last measurement: 14 of the dense model and, in the MoE model, 8 of attention, 3 of the dense
        // layer, the router, 3 shared and 12 experts (4 per stack), for each optimizer; and the header.
        assertEquals(1 + 2 * 14 + 2 * 27, Files.readAllLines(out.resolve("svd-entropy-final.csv")).size());
    }

    @Test
    void finetuneQuickCarriesOnAHalfFinishedGridInDependencyOrder() throws Exception {
        Path out = quick("finetune", List.of("finetune-loss", "pretrain-loss"), List.of("finetune-loss", "pretrain-loss", "finetune-table"),
                List.of("| pretrained with ↓ / fine-tuned with → | AdamW | Muon |", "pretraining and fine-tuning both with Muon works best",
                        "sotu: byte tokens"));
        assertEquals(5, Files.readAllLines(out.resolve("finetune-table.csv")).size(), "four fine-tuning runs and the header");
        Path runs = out.resolve("runs");
        String firstTable = Files.readString(out.resolve("finetune-table.csv"));
        byte[] adamwThenAdamw = Files.readAllBytes(runs.resolve("adamw-then-adamw/metrics.jsonl"));
        // Half the grid undone: Muon's pretraining killed after its last checkpoint, the two runs fine-tuned from it lost
        // whole, and one fine-tuning run of AdamW's model cut before its result.
        Files.delete(runs.resolve("pretrain-muon/result.json"));
        deleteTree(runs.resolve("muon-then-adamw"));
        deleteTree(runs.resolve("muon-then-muon"));
        Files.delete(runs.resolve("adamw-then-muon/result.json"));
        Outcome again = run("experiment", "finetune", "--quick", "--out", out.toString(), "--backend", "OPENBLAS_BUNDLED", "--threads", "2");
        assertEquals(0, again.code(), again.err());
        assertTrue(again.out().contains("2 ended earlier (skipped), 4 to train"), again.out());
        assertTrue(again.out().contains("[2/6] pretrain-muon: nothing to do"), again.out());
        assertTrue(again.out().contains("[5/6] muon-then-adamw: initial weights from checkpoint " + runs.resolve("pretrain-muon")),
                again.out());
        assertFalse(again.out().contains("[3/6] adamw-then-adamw:"), again.out());
        assertArrayEquals(adamwThenAdamw, Files.readAllBytes(runs.resolve("adamw-then-adamw/metrics.jsonl")), "not trained again");
        assertEquals(firstTable, Files.readString(out.resolve("finetune-table.csv")), "the carried-on grid ends as the whole one did");
        String settings = Files.readString(runs.resolve("muon-then-muon/result.json"));
        assertTrue(settings.contains("\"corpus\": \"sotu\"") && settings.contains("\"init_from\": \"pretrain-muon\""), settings);
    }

    @Test
    void anUnknownExperimentIsRefusedWithTheNames() {
        Outcome o = run("experiment", "nonesuch");
        assertEquals(2, o.code());
        assertTrue(o.err().contains("no experiment named 'nonesuch'; the experiments are scaling, scaling-moe, update-rms, weight-decay, svd-entropy, finetune"), o.err());
    }

    /** The fields of a CSV line: commas outside double quotes, plus one. */
    static int fields(String line) {
        int n = 1;
        boolean quoted = false;
        for (char c : line.toCharArray()) {
            if (c == '"') {
                quoted = !quoted;
            } else if (c == ',' && !quoted) {
                n++;
            }
        }
        return n;
    }

    private static void deleteTree(Path dir) throws IOException {
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }
}
