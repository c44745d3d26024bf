package dev.muon4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.xml.parsers.DocumentBuilder;
import javax.xml.parsers.DocumentBuilderFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.NodeList;
import picocli.CommandLine;

/** {@code muon4j compare} end to end with a tiny model: console table, report.md and a well-formed loss.svg. */
class CompareCommandTest {
    @TempDir
    Path tmp;

    @Test
    void comparesAndWritesTheReportAndThePlot() throws Exception {
        Path data = tmp.resolve("data.txt");
        Files.writeString(data, "Sphinx of black quartz, judge my vow. Pack my box with five dozen liquor jugs!\n".repeat(30));
        Path out = tmp.resolve("report");
        List<String> args = List.of("compare", "--model", "llama", "--layers", "2", "--width", "32", "--heads", "2", "--mlp-width", "64",
                "--context", "16", "--batch", "4", "--steps", "12", "--warmup", "2", "--eval-every", "4", "--eval-batches", "2",
                "--data", data.toString(), "--out", out.toString(), "--backend", "OPENBLAS_BUNDLED", "--threads", "2");

        CommandLine cli = Main.commandLine();
        StringWriter stdout = new StringWriter();
        StringWriter stderr = new StringWriter();
        cli.setOut(new PrintWriter(stdout));
        cli.setErr(new PrintWriter(stderr));
        int code = cli.execute(args.toArray(String[]::new));
        String console = stdout.toString();
        assertEquals(0, code, () -> "exit code; stdout:\n" + console + "\nstderr:\n" + stderr);

        // Console: a row per optimizer and the ratio line (reached, or not reached within the budget).
        Matcher adamwRow = Pattern.compile("(?m)^AdamW\\s+([0-9.]+)\\s+([0-9,]+)\\s+([0-9,]+)$").matcher(console);
        Matcher muonRow = Pattern.compile("(?m)^Muon\\s+([0-9.]+)\\s+([0-9,]+)\\s+([0-9,]+)$").matcher(console);
        assertTrue(adamwRow.find(), console);
        assertTrue(muonRow.find(), console);
        String adamwLoss = adamwRow.group(1);
        String muonLoss = muonRow.group(1);
        assertEquals("768", adamwRow.group(2).replace(",", ""), "12 steps x 4 sequences x 16 tokens");
        assertEquals("768", muonRow.group(2).replace(",", ""));
        assertTrue(Double.parseDouble(adamwLoss) < Math.log(256) && Double.parseDouble(muonLoss) < Math.log(256), console);
        assertTrue(console.contains("Muon reached AdamW's final validation loss with")
                || console.contains("Muon did not reach AdamW's final validation loss within the budget."), console);
        assertTrue(console.contains("report: " + out.resolve("report.md")), console);

        // report.md: the command line, both final losses, the table.
        String report = Files.readString(out.resolve("report.md"));
        assertTrue(report.contains("Command: `./muon4j " + String.join(" ", args) + "`"), report);
        assertTrue(report.contains("| optimizer | final validation loss | tokens | tokens/s | training time |"), report);
        assertTrue(report.contains("| AdamW | " + adamwLoss + " | 768 |"), report);
        assertTrue(report.contains("| Muon | " + muonLoss + " | 768 |"), report);
        assertTrue(report.contains("| step | tokens | AdamW | Muon |"), report);
        for (int step : new int[] {4, 8, 12}) {
            assertTrue(Pattern.compile("(?m)^\\| " + step + " \\| [0-9,]+ \\| [0-9.]+ \\| [0-9.]+ \\|$").matcher(report).find(),
                    "validation row of step " + step + ":\n" + report);
        }
        assertTrue(report.contains("![validation loss against tokens](loss.svg)"), report);
        assertTrue(report.contains(String.format(Locale.ROOT, "(%s)", adamwLoss)), "the target loss is AdamW's final loss:\n" + report);

        // loss.svg: well-formed XML, an svg root, one polyline per optimizer with one point per evaluation.
        DocumentBuilderFactory factory = DocumentBuilderFactory.newInstance();
        factory.setNamespaceAware(true);
        factory.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
        DocumentBuilder builder = factory.newDocumentBuilder();
        Document svg = builder.parse(out.resolve("loss.svg").toFile());
        Element root = svg.getDocumentElement();
        assertEquals("svg", root.getLocalName());
        assertEquals("http://www.w3.org/2000/svg", root.getNamespaceURI());
        NodeList lines = svg.getElementsByTagNameNS("http://www.w3.org/2000/svg", "polyline");
        assertEquals(2, lines.getLength(), "one polyline per optimizer");
        for (int i = 0; i < lines.getLength(); i++) {
            String points = ((Element) lines.item(i)).getAttribute("points").strip();
            String[] pairs = points.split("\\s+");
            assertEquals(3, pairs.length, "evaluations at steps 4, 8 and 12: " + points);
            for (String pair : pairs) {
                String[] xy = pair.split(",");
                assertEquals(2, xy.length, pair);
                assertTrue(Double.isFinite(Double.parseDouble(xy[0])) && Double.isFinite(Double.parseDouble(xy[1])), pair);
            }
        }
        assertTrue(Files.isRegularFile(out.resolve("adamw").resolve("metrics.jsonl")));
        assertTrue(Files.isRegularFile(out.resolve("muon").resolve("metrics.jsonl")));
        assertFalse(Files.exists(out.resolve("load.svg")), "a dense model has no expert loads");
        assertFalse(report.contains("Expert load"), report);

        // Written with the permissions of any new file (0644 under umask 022), not a temporary file's owner-only 0600.
        if (FileSystems.getDefault().supportedFileAttributeViews().contains("posix")) {
            Set<PosixFilePermission> usual = Files.getPosixFilePermissions(Files.createFile(tmp.resolve("reference")));
            for (Path file : List.of(out.resolve("report.md"), out.resolve("loss.svg"), out.resolve("muon/metrics.jsonl"))) {
                assertEquals(usual, Files.getPosixFilePermissions(file), file.toString());
            }
        }
    }

    /**
     * compare's default model is the Mixture-of-Experts one; it adds load.svg (worst layer's max/mean load per step)
     * and the load table.
     */
    @Test
    void onAMoeModelAddsTheExpertLoadPlot() throws Exception {
        Path data = tmp.resolve("data.txt");
        Files.writeString(data, "Sphinx of black quartz, judge my vow. Pack my box with five dozen liquor jugs!\n".repeat(30));
        Path out = tmp.resolve("moe");
        // No --model and no --router-bias-rate: compare's defaults, the MoE model with γ 0.01.
        List<String> args = List.of("compare", "--layers", "3", "--width", "32", "--heads", "2",
                "--mlp-width", "64", "--experts", "4", "--active-experts", "2", "--expert-width", "16", "--shared-experts", "1",
                "--context", "16", "--batch", "4", "--steps", "10", "--warmup", "2", "--eval-every", "5",
                "--eval-batches", "2", "--data", data.toString(), "--out", out.toString(), "--backend", "OPENBLAS_BUNDLED", "--threads", "2");
        CommandLine cli = Main.commandLine();
        StringWriter stdout = new StringWriter();
        StringWriter stderr = new StringWriter();
        cli.setOut(new PrintWriter(stdout));
        cli.setErr(new PrintWriter(stderr));
        int code = cli.execute(args.toArray(String[]::new));
        String console = stdout.toString();
        assertEquals(0, code, () -> "exit code; stdout:\n" + console + "\nstderr:\n" + stderr);
        assertTrue(console.contains("then 4 experts of 16") && console.contains("2 of 4 + 1 shared"), console);
        assertTrue(console.contains("router bias rate 0.0100"), console);
        assertTrue(console.contains("report: " + out.resolve("report.md") + " (plot: " + out.resolve("loss.svg") + ", "
                + out.resolve("load.svg") + ")"), console);
        Matcher consoleLoad = Pattern.compile("(?m)^(AdamW|Muon)\\s+final ([0-9.]+), mean over the steps ([0-9.]+)$").matcher(console);
        int rows = 0;
        while (consoleLoad.find()) {
            rows++;
            for (int g = 2; g <= 3; g++) {
                double v = Double.parseDouble(consoleLoad.group(g));
                assertTrue(v >= 1 && v <= 2.0 + 1e-9, "max/mean of 4 experts with 2 active lies in [1, 4/2]: " + consoleLoad.group());
            }
        }
        assertEquals(2, rows, console);

        // report.md: the load section with the plot and one row per optimizer, over the MoE blocks 1 and 2.
        String report = Files.readString(out.resolve("report.md"));
        assertTrue(report.contains("## Expert load balance"), report);
        assertTrue(report.contains("![expert load balance over the run](load.svg)"), report);
        assertTrue(report.contains("| optimizer | worst layer: final | worst layer: mean | layer 1: final | layer 1: mean "
                + "| layer 2: final | layer 2: mean |"), report);
        for (String name : new String[] {"AdamW", "Muon"}) {
            assertTrue(Pattern.compile("(?m)^\\| " + name + "( \\| [0-9.]+){6} \\|$").matcher(report).find(), name + " load row:\n" + report);
        }

        // load.svg: one polyline per optimizer with one point per step, every value at or above the axis's 1.
        DocumentBuilderFactory factory = DocumentBuilderFactory.newInstance();
        factory.setNamespaceAware(true);
        factory.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
        Document svg = factory.newDocumentBuilder().parse(out.resolve("load.svg").toFile());
        NodeList lines = svg.getElementsByTagNameNS("http://www.w3.org/2000/svg", "polyline");
        assertEquals(2, lines.getLength(), "one polyline per optimizer");
        for (int i = 0; i < lines.getLength(); i++) {
            String[] pairs = ((Element) lines.item(i)).getAttribute("points").strip().split("\\s+");
            assertEquals(10, pairs.length, "one point per step");
        }
        assertTrue(svg.getDocumentElement().getTextContent().contains("Expert load balance"));
        String metrics = Files.readString(out.resolve("muon").resolve("metrics.jsonl"));
        assertTrue(metrics.contains("\"expert_load_max_mean\""), metrics);
    }
}
