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

    /** The tiny dense model's comparison of 12 steps into {@code out}, on a small corpus written into the test's directory. */
    private List<String> tinyLlama(Path out) throws java.io.IOException {
        Path data = tmp.resolve("data.txt");
        Files.writeString(data, "Sphinx of black quartz, judge my vow. Pack my box with five dozen liquor jugs!\n".repeat(30));
        return List.of("compare", "--model", "llama", "--layers", "2", "--width", "32", "--heads", "2", "--mlp-width", "64",
                "--context", "16", "--batch", "4", "--steps", "12", "--warmup", "2", "--eval-every", "4", "--eval-batches", "2",
                "--data", data.toString(), "--out", out.toString(), "--backend", "OPENBLAS_BUNDLED", "--threads", "2");
    }

    @Test
    void comparesAndWritesTheReportAndThePlot() throws Exception {
        Path out = tmp.resolve("report");
        List<String> args = tinyLlama(out);
        String[] result = run(args);
        String console = result[1];
        assertEquals("0", result[0], () -> "exit code; stdout:\n" + console + "\nstderr:\n" + result[2]);

        // Console: a row per optimizer (final loss, tokens, tokens/s, training time, training wall-clock, tokens and
        // wall-clock to AdamW's final loss), the ratios, and the sentence (reached, or not reached: no ratio).
        Matcher adamwRow = Pattern.compile("(?m)^AdamW\\s+([0-9.]+)\\s+([0-9,]+)\\s+([0-9,]+)\\s+([0-9.]+) s\\s+([0-9.]+) s"
                + "\\s+([0-9,]+)\\s+([0-9.]+) s$").matcher(console);
        Matcher muonRow = Pattern.compile("(?m)^Muon\\s+([0-9.]+)\\s+([0-9,]+)\\s+([0-9,]+)\\s+([0-9.]+) s\\s+([0-9.]+) s"
                + "\\s+([0-9,]+|not reached)\\s+([0-9.]+ s|–)$").matcher(console);
        assertTrue(adamwRow.find(), console);
        assertTrue(muonRow.find(), console);
        String adamwLoss = adamwRow.group(1);
        String muonLoss = muonRow.group(1);
        assertEquals("768", adamwRow.group(2).replace(",", ""), "12 steps x 4 sequences x 16 tokens");
        assertEquals("768", muonRow.group(2).replace(",", ""));
        assertEquals("768", adamwRow.group(6).replace(",", ""), "AdamW's curve falls at every evaluation: it reaches its final loss at the end");
        assertEquals(adamwRow.group(5), adamwRow.group(7), "AdamW's wall-clock to its final loss is its whole training wall-clock");
        assertTrue(Double.parseDouble(adamwLoss) < Math.log(256) && Double.parseDouble(muonLoss) < Math.log(256), console);
        boolean reached = !muonRow.group(6).equals("not reached");
        assertEquals(reached, Double.parseDouble(muonLoss) <= Double.parseDouble(adamwLoss), console);
        Matcher ratios = Pattern.compile("(?m)^Muon / AdamW\\s+([0-9.]+)\\s+([0-9.]+|–)\\s+([0-9.]+|–)$").matcher(console);
        assertTrue(ratios.find(), console);
        if (reached) {
            assertEquals(Double.parseDouble(muonRow.group(6).replace(",", "")) / 768, Double.parseDouble(ratios.group(2)), 1e-3, console);
            assertEquals(Double.parseDouble(muonRow.group(7).replace(" s", "")) / Double.parseDouble(adamwRow.group(7)),
                    Double.parseDouble(ratios.group(3)), 0.02, console);
            assertTrue(console.contains("Muon reached AdamW's final validation loss (" + adamwLoss + ") after "), console);
        } else {
            assertTrue(console.contains("Muon did not reach AdamW's final validation loss (" + adamwLoss + ") within its 768 tokens: no ratio."),
                    console);
        }
        assertTrue(console.contains("report: " + out.resolve("report.md")), console);

        // report.md: the command line, both final losses, the table.
        String report = Files.readString(out.resolve("report.md"));
        assertTrue(report.contains("Command: `./muon4j " + String.join(" ", args) + "`"), report);
        assertTrue(report.contains("| optimizer | final validation loss | tokens | tokens/s | training time | training wall-clock "
                + "| tokens to target | wall-clock to target |"), report);
        assertTrue(report.contains("| AdamW | " + adamwLoss + " | 768 |"), report);
        assertTrue(report.contains("| Muon | " + muonLoss + " | 768 |"), report);
        assertTrue(report.contains("| step | tokens | AdamW | Muon |"), report);
        for (int step : new int[] {4, 8, 12}) {
            assertTrue(Pattern.compile("(?m)^\\| " + step + " \\| [0-9,]+ \\| [0-9.]+ \\| [0-9.]+ \\|$").matcher(report).find(),
                    "validation row of step " + step + ":\n" + report);
        }
        assertTrue(report.contains("![validation loss against tokens](loss.svg)"), report);
        assertTrue(report.contains(String.format(Locale.ROOT, "(%s)", adamwLoss)), "the target loss is AdamW's final loss:\n" + report);

        // loss.svg: well-formed XML, an svg root, one polyline per optimizer with one point per evaluation, the target's dashed line.
        DocumentBuilderFactory factory = DocumentBuilderFactory.newInstance();
        factory.setNamespaceAware(true);
        factory.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
        DocumentBuilder builder = factory.newDocumentBuilder();
        Document svg = builder.parse(out.resolve("loss.svg").toFile());
        Element root = svg.getDocumentElement();
        assertEquals("svg", root.getLocalName());
        assertEquals("http://www.w3.org/2000/svg", root.getNamespaceURI());
        NodeList lines = svg.getElementsByTagNameNS("http://www.w3.org/2000/svg", "polyline");
        assertEquals(3, lines.getLength(), "one polyline per optimizer and the target's");
        assertTrue(((Element) lines.item(2)).hasAttribute("stroke-dasharray"), "the target is dashed");
        assertTrue(svg.getDocumentElement().getTextContent().contains("target: AdamW's final loss, " + adamwLoss));
        assertEquals(reached ? 1 : 0, svg.getElementsByTagNameNS("http://www.w3.org/2000/svg", "circle").getLength(),
                "a marker where Muon reaches the target");
        assertTrue(svg.getDocumentElement().getTextContent().contains(reached ? "Muon reaches the target at " : "Muon never reaches the target"));
        for (int i = 0; i < lines.getLength(); i++) {
            String points = ((Element) lines.item(i)).getAttribute("points").strip();
            String[] pairs = points.split("\\s+");
            assertEquals(i < 2 ? 3 : 2, pairs.length, "evaluations at steps 4, 8 and 12: " + points);
            for (String pair : pairs) {
                String[] xy = pair.split(",");
                assertEquals(2, xy.length, pair);
                assertTrue(Double.isFinite(Double.parseDouble(xy[0])) && Double.isFinite(Double.parseDouble(xy[1])), pair);
            }
        }
        assertTrue(Files.isRegularFile(out.resolve("adamw").resolve("metrics.jsonl")));
        assertTrue(Files.isRegularFile(out.resolve("muon").resolve("metrics.jsonl")));
        assertTrue(Files.readString(out.resolve("muon").resolve("sittings.jsonl")).contains("\"from_step\":0,\"to_step\":12"));
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

    /** Runs the command line; returns {exit code, stdout, stderr}. */
    private static String[] run(List<String> args) {
        CommandLine cli = Main.commandLine();
        StringWriter stdout = new StringWriter();
        StringWriter stderr = new StringWriter();
        cli.setOut(new PrintWriter(stdout));
        cli.setErr(new PrintWriter(stderr));
        int code = cli.execute(args.toArray(String[]::new));
        return new String[] {Integer.toString(code), stdout.toString(), stderr.toString()};
    }

    private static List<String> with(List<String> args, String... more) {
        List<String> all = new java.util.ArrayList<>(args);
        all.addAll(List.of(more));
        return all;
    }

    /**
     * {@code --seeds 2} on the directory of a finished one-seed comparison: the first seed's runs are found ended and train
     * nothing, the second seed's train into seed-2/, and the report gives both seeds with their mean and spread; a
     * changed setting on the same directory and {@code --seeds 0} are refused, naming what was wrong.
     */
    @Test
    void twoSeedsAddToAFinishedComparisonAndReportMeanAndSpread() throws Exception {
        Path out = tmp.resolve("seeds");
        List<String> args = tinyLlama(out);
        String[] one = run(args);
        assertEquals("0", one[0], () -> one[1] + one[2]);
        Matcher first = Pattern.compile("(?m)^\\| (AdamW|Muon) \\| ([0-9.]+) \\| 768 \\|").matcher(Files.readString(out.resolve("report.md")));
        assertTrue(first.find());
        String adamw1 = first.group(2);

        String[] two = run(with(args, "--seeds", "2"));
        String console = two[1];
        assertEquals("0", two[0], () -> console + two[2]);
        assertEquals(2, console.split("nothing to do: the checkpoint is at step 12 of 12", -1).length - 1,
                "seed 1's runs had ended: " + console);
        assertTrue(console.contains("== adamw seed 2 ==") && console.contains("== muon seed 2 =="), console);
        for (String run : List.of("adamw", "muon")) {
            assertTrue(Files.isRegularFile(out.resolve("seed-2").resolve(run).resolve("metrics.jsonl")), run);
            assertFalse(Files.exists(out.resolve("seed-1")), "the first seed stays in adamw/ and muon/");
        }
        String report = Files.readString(out.resolve("report.md"));
        assertTrue(report.contains("seeds 1 to 2 (each seed's two runs share initial weights and data order)"), report);
        assertTrue(report.contains("|  | seed 1 | seed 2 | mean ± sd | min–max |"), report);
        Matcher losses = Pattern.compile("(?m)^\\| AdamW final loss \\| ([0-9.]+) \\| ([0-9.]+) \\| ([0-9.]+) ± ([0-9.]+) \\| "
                + "([0-9.]+)–([0-9.]+) \\|$").matcher(report);
        assertTrue(losses.find(), report);
        assertEquals(adamw1, losses.group(1), "seed 1's AdamW run as the one-seed comparison reported it");
        double a = Double.parseDouble(losses.group(1));
        double b = Double.parseDouble(losses.group(2));
        assertTrue(a != b, "another seed, other initial weights and data order: " + a);
        // Mean and sample standard deviation of two values: (a + b)/2 and |a − b|/√2 (to the rounding of the four decimals shown).
        assertEquals((a + b) / 2, Double.parseDouble(losses.group(3)), 1e-4);
        assertEquals(Math.abs(a - b) / Math.sqrt(2), Double.parseDouble(losses.group(4)), 1e-4);
        assertEquals(Math.min(a, b), Double.parseDouble(losses.group(5)));
        assertEquals(Math.max(a, b), Double.parseDouble(losses.group(6)));
        for (String row : List.of("Muon final loss", "AdamW tokens/s", "Muon tokens/s", "AdamW tokens to target", "Muon tokens to target",
                "token ratio", "AdamW wall-clock to target", "Muon wall-clock to target", "wall-clock ratio")) {
            assertTrue(Pattern.compile("(?m)^\\| " + Pattern.quote(row) + "( \\| [^|]+){4} \\|$").matcher(report).find(), row + ":\n" + report);
        }
        assertTrue(report.contains("| step | tokens | AdamW seed 1 | AdamW seed 2 | Muon seed 1 | Muon seed 2 |"), report);
        assertTrue(console.contains("Over 2 seeds the final validation loss was "), console);

        // loss.svg: each seed thin, the means bold, the target dashed.
        DocumentBuilderFactory factory = DocumentBuilderFactory.newInstance();
        factory.setNamespaceAware(true);
        factory.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
        NodeList lines = factory.newDocumentBuilder().parse(out.resolve("loss.svg").toFile())
                .getElementsByTagNameNS("http://www.w3.org/2000/svg", "polyline");
        int thin = 0;
        for (int i = 0; i < lines.getLength(); i++) {
            thin += ((Element) lines.item(i)).getAttribute("stroke-width").equals("1") ? 1 : 0;
        }
        assertEquals(7, lines.getLength(), "4 runs, 2 means, the target");
        assertEquals(4, thin, "one thin line per run");

        String[] changed = run(with(args.stream().map(v -> v.equals("12") ? "8" : v).toList(), "--seeds", "2")); // --steps 8
        assertEquals("2", changed[0], changed[1]);
        assertTrue(changed[2].contains("run directory " + out.resolve("adamw") + " holds a checkpoint of other settings")
                && changed[2].contains("steps"), changed[2]);
        String[] none = run(with(args, "--seeds", "0"));
        assertEquals("2", none[0]);
        assertEquals("muon4j: --seeds must be at least 1, got 0", none[2].strip());
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
        String[] result = run(args);
        String console = result[1];
        assertEquals("0", result[0], () -> "exit code; stdout:\n" + console + "\nstderr:\n" + result[2]);
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
