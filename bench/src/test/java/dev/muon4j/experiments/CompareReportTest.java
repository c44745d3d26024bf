package dev.muon4j.experiments;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.train.Trainer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The comparison's numbers on curves and clocks small enough to work out by hand: where a curve first reaches the
 * target, the training wall-clock from the metrics' times, the spread over seeds; and the committed default report's
 * numbers computed again from its metrics.
 */
class CompareReportTest {
    @TempDir
    Path tmp;

    private static List<Trainer.EvalPoint> curve(double... losses) {
        return IntStream.range(0, losses.length).mapToObj(i -> new Trainer.EvalPoint(i + 1, 100L * (i + 1), losses[i])).toList();
    }

    @Test
    void theCrossingIsInterpolatedLinearlyInTokensBetweenTheEvaluationsAroundIt() {
        List<Trainer.EvalPoint> evals = curve(3.0, 2.5, 2.0, 1.5);
        // 2.2 lies 0.3 of the way down from 2.5 (200 tokens) to 2.0 (300 tokens): 0.3 / 0.5 = 0.6 of 100 tokens.
        assertEquals(260, CompareReport.tokensToReach(evals, 2.2), 1e-9);
        assertEquals(200, CompareReport.tokensToReach(evals, 2.5), 1e-9, "an evaluation exactly at the target");
        assertEquals(100, CompareReport.tokensToReach(evals, 3.5), 1e-9, "already below at the first evaluation");
        assertEquals(400, CompareReport.tokensToReach(evals, 1.5), 1e-9);
        // A curve that dips below the target and climbs back: the first crossing counts.
        assertEquals(150, CompareReport.tokensToReach(curve(3.0, 2.0, 2.8, 2.4), 2.5), 1e-9);
    }

    @Test
    void aCurveThatNeverReachesTheTargetHasNoCrossingAndNoRatio() throws IOException {
        assertTrue(Double.isNaN(CompareReport.tokensToReach(curve(3.0, 2.5, 2.0), 1.99)));
        assertTrue(Double.isNaN(CompareReport.tokensToReach(List.of(), 2.0)));

        CompareReport.Pair pair = new CompareReport.Pair(1, run(curve(3.0, 2.4, 2.0), 1.0), run(curve(3.1, 2.6, 2.1), 1.5));
        assertEquals(2.0, pair.target());
        assertEquals(300, pair.adamwTokensToTarget(), 1e-9);
        assertFalse(pair.reached());
        assertTrue(Double.isNaN(pair.tokenRatio()) && Double.isNaN(pair.wallRatio()) && Double.isNaN(pair.muonWallToTarget()));
        String verdict = CompareReport.verdict(List.of(pair));
        assertTrue(verdict.startsWith("Muon did not reach AdamW's final validation loss (2.0000) within its 300 tokens: no ratio."), verdict);
        String table = CompareReport.resultTable(List.of(pair)).markdown();
        assertTrue(table.contains("| Muon | 2.1000 | 300 | 67 | 4.5 s | 4.5 s | not reached | – |"), table);
        assertTrue(table.contains("| Muon / AdamW |  |  | 0.667 |  |  | – | – |"), table);

        // Over seeds: one seed that never reached the target leaves Muon's numbers at the target without a mean.
        CompareReport.Pair reached = new CompareReport.Pair(2, run(curve(3.0, 2.4, 2.0), 1.0), run(curve(3.0, 2.2, 1.8), 1.0));
        List<CompareReport.Pair> both = List.of(pair, reached);
        assertTrue(CompareReport.verdict(both).contains("Muon did not reach its seed's AdamW final validation loss in 1 of 2 seeds (seed 1): "
                + "no mean ratio."), CompareReport.verdict(both));
        String seeds = CompareReport.resultTable(both).markdown();
        assertTrue(seeds.contains("| token ratio | – | 0.833 | – | – |"), seeds);
        assertTrue(seeds.contains("| Muon tokens to target | not reached | 250 | – | – |"), seeds);
        assertTrue(seeds.contains("| AdamW final loss | 2.0000 | 2.0000 | 2.0000 ± 0.0000 | 2.0000–2.0000 |"), seeds);
    }

    /**
     * A run of 100 tokens per step with one evaluation per step, whose steps each take {@code stepSeconds} and follow one
     * another without gaps; validations take 5 s each and must not count.
     */
    private CompareRun run(List<Trainer.EvalPoint> evals, double stepSeconds) throws IOException {
        Path dir = Files.createTempDirectory(tmp, "run");
        List<String> lines = new ArrayList<>();
        Instant t = Instant.parse("2026-12-01T10:00:00Z");
        for (Trainer.EvalPoint e : evals) {
            t = t.plusMillis(Math.round(stepSeconds * 1000));
            lines.add(stepLine(e.step(), stepSeconds, t));
            t = t.plusSeconds(5);
            lines.add(String.format(Locale.ROOT, "{\"step\":%d,\"tokens\":%d,\"val_loss\":%s,\"time\":\"%s\"}", e.step(), e.tokens(), e.loss(), t));
        }
        Files.write(dir.resolve("metrics.jsonl"), lines);
        return CompareRun.read(dir);
    }

    private static String stepLine(long step, double seconds, Instant time) {
        return String.format(Locale.ROOT, "{\"step\":%d,\"tokens\":%d,\"loss\":3.0,\"lr\":0.001,\"grad_norm\":1.0,\"seconds\":%s,\"time\":\"%s\"}",
                step, 100 * step, seconds, time);
    }

    @Test
    void theWallClockCountsStepsAndTheTimeBetweenThemButNotValidationsOrBreaksBetweenSittings() throws IOException {
        Path dir = tmp.resolve("resumed");
        Files.createDirectories(dir);
        Instant t0 = Instant.parse("2026-12-01T10:00:00Z");
        Files.write(dir.resolve("metrics.jsonl"), List.of(
                stepLine(1, 0.5, t0.plusMillis(10_500)),                                   // started at 10.0 s
                stepLine(2, 0.4, t0.plusMillis(11_000)),                                   // 0.1 s of writing before it
                "{\"step\":2,\"tokens\":200,\"val_loss\":2.5,\"time\":\"" + t0.plusMillis(11_300) + "\"}", // validation: 0.3 s
                stepLine(3, 0.5, t0.plusMillis(11_900)),                                   // 0.6 s after the validation
                "{\"step\":3,\"event\":\"resume\",\"changed\":{}}",                         // an event line has no time: skipped
                stepLine(4, 0.4, t0.plusMillis(100_000)),                                  // a new sitting, resumed after step 3
                stepLine(5, 0.5, t0.plusMillis(100_700)),
                "{\"step\":5,\"tokens\":500,\"val_loss\":2.0,\"time\":\"" + t0.plusMillis(101_000) + "\"}"));
        Files.writeString(dir.resolve("sittings.jsonl"), "{\"started\":\"2026-12-01T10:01:00Z\",\"seconds\":1.0,\"from_step\":3,"
                + "\"to_step\":5,\"outcome\":\"finished\"}\n");
        CompareRun r = CompareRun.read(dir);
        // 0.5; + 0.5 (10.5 → 11.0); + 0.6 (11.3 → 11.9, the validation's 0.3 s left out); + 0.4 (step 4's own time, the break
        // from 11.9 to its start at 99.6 left out); + 0.7 (100.0 → 100.7).
        assertArrayEquals(new double[] {0.5, 1.0, 1.6, 2.0, 2.7}, r.wallSeconds());
        assertEquals(2.7, r.totalWallSeconds(), 1e-9);
        assertEquals(2.3, r.trainSeconds(), 1e-9, "the steps' own seconds");
        assertEquals(500 / 2.3, r.tokensPerSecond(), 1e-9);
        assertEquals(0.25, r.wallSecondsAt(50), 1e-9, "half of step 1, from 0 at its start");
        assertEquals(1.3, r.wallSecondsAt(250), 1e-9, "half way between the ends of steps 2 and 3");
        assertEquals(2.7, r.wallSecondsAt(500), 1e-9);
        assertTrue(Double.isNaN(r.wallSecondsAt(501)), "beyond the run");
        assertEquals(List.of(new Trainer.EvalPoint(2, 200, 2.5), new Trainer.EvalPoint(5, 500, 2.0)), r.evals());

        // Without the sittings record the break counts as training: 87.7 s more from step 4 on.
        Files.delete(dir.resolve("sittings.jsonl"));
        assertEquals(2.7 + 87.7, CompareRun.read(dir).totalWallSeconds(), 1e-9);
    }

    private static void assertArrayEquals(double[] expected, double[] actual) {
        assertEquals(expected.length, actual.length, Arrays.toString(actual));
        for (int i = 0; i < expected.length; i++) {
            assertEquals(expected[i], actual[i], 1e-9, "element " + i + " of " + Arrays.toString(actual));
        }
    }

    @Test
    void aRunDirectoryWithoutStepsOrWithADamagedLineIsRefusedNamingTheFile() throws IOException {
        Path empty = tmp.resolve("empty");
        Files.createDirectories(empty);
        IOException none = assertThrows(IOException.class, () -> CompareRun.read(empty));
        assertTrue(none.getMessage().contains(empty.resolve("metrics.jsonl") + " holds no step"), none.getMessage());
        Path bad = tmp.resolve("bad");
        Files.createDirectories(bad);
        Files.write(bad.resolve("metrics.jsonl"), List.of("{\"step\":1,\"tokens\":100,\"loss\":3.0,\"lr\":0.001,\"seconds\":0.5}"));
        IOException missing = assertThrows(IOException.class, () -> CompareRun.read(bad));
        assertTrue(missing.getMessage().contains("line 1 has no number 'grad_norm'"), missing.getMessage());
    }

    @Test
    void seedsAreSummarisedByMeanSampleStandardDeviationAndRange() throws IOException {
        CompareReport.Spread s = CompareReport.Spread.of(0.5, 0.6, 0.7);
        // mean 0.6; squared deviations 0.01 + 0 + 0.01 over n − 1 = 2: variance 0.01, sd 0.1.
        assertEquals(3, s.count());
        assertEquals(0.6, s.mean(), 1e-12);
        assertEquals(0.1, s.sd(), 1e-12);
        assertEquals(0.5, s.min());
        assertEquals(0.7, s.max());
        assertTrue(Double.isNaN(CompareReport.Spread.of(2.0).sd()), "one value has no sample standard deviation");
        assertThrows(IllegalArgumentException.class, CompareReport.Spread::of);

        // Three seed pairs: AdamW reaches its final loss 2.0 at 300 tokens in 3 s (1 s a step); Muon at 250, 200 and 150 tokens
        // (token ratios 5/6, 4/6, 3/6), at 2 s a step: 5, 4 and 3 s (wall-clock ratios 5/3, 4/3, 3/3).
        List<CompareReport.Pair> pairs = List.of(
                new CompareReport.Pair(7, run(curve(3.0, 2.4, 2.0), 1.0), run(curve(3.0, 2.2, 1.8), 2.0)),
                new CompareReport.Pair(8, run(curve(3.0, 2.4, 2.0), 1.0), run(curve(3.0, 2.0, 1.8), 2.0)),
                new CompareReport.Pair(9, run(curve(3.0, 2.4, 2.0), 1.0), run(curve(2.5, 1.5, 1.4), 2.0)));
        double[] tokenRatios = {5.0 / 6, 4.0 / 6, 3.0 / 6};
        double[] wallRatios = {5.0 / 3, 4.0 / 3, 1.0};
        for (int i = 0; i < 3; i++) {
            assertEquals(tokenRatios[i], pairs.get(i).tokenRatio(), 1e-12, "seed " + pairs.get(i).seed());
            assertEquals(wallRatios[i], pairs.get(i).wallRatio(), 1e-9, "seed " + pairs.get(i).seed());
        }
        String table = CompareReport.resultTable(pairs).markdown();
        // token ratios 0.8333, 0.6667, 0.5: mean 0.6667, sd 1/6 = 0.1667; wall-clock ratios mean 4/3, sd 1/3.
        assertTrue(table.contains("| token ratio | 0.833 | 0.667 | 0.500 | 0.667 ± 0.167 | 0.500–0.833 |"), table);
        assertTrue(table.contains("| wall-clock ratio | 1.667 | 1.333 | 1.000 | 1.333 ± 0.333 | 1.000–1.667 |"), table);
        assertTrue(table.contains("| Muon wall-clock to target | 5.0 s | 4.0 s | 3.0 s | 4.0 s ± 1.0 s | 3.0 s–5.0 s |"), table);
        assertTrue(table.contains("|  | seed 7 | seed 8 | seed 9 | mean ± sd | min–max |"), table);
        String verdict = CompareReport.verdict(pairs);
        assertTrue(verdict.contains("token ratio 0.667 ± 0.167 (0.500–0.833), wall-clock ratio 1.333 ± 0.333 (1.000–1.667)"), verdict);
        assertTrue(verdict.contains("Muon ran at 0.500 × AdamW's tokens/s"), verdict);

        // The plot: each seed thin without a legend entry, the mean bold, the target dashed, the marker where the mean crosses.
        String svg = CompareReport.lossPlot(pairs).render();
        assertEquals(6, count(svg, "stroke-opacity=\"0.45\""), "three thin lines per optimizer");
        assertTrue(svg.contains(">AdamW, mean of 3 seeds<") && svg.contains(">Muon (hybrid, Moonlight scale), mean of 3 seeds<"), svg);
        assertTrue(svg.contains(">target: AdamW's final loss, mean of seeds, 2.0000<"), svg);
        // Muon's mean curve: 2.8333, 1.9, 1.6667; it reaches 2.0 at 100 + (2.8333 − 2)/(2.8333 − 1.9)·100 = 189 tokens.
        assertTrue(svg.contains("Muon's mean reaches the target at 189 tokens, 0.631 of AdamW's"), svg);
    }

    private static int count(String text, String part) {
        return text.split(java.util.regex.Pattern.quote(part), -1).length - 1;
    }

    /**
     * The committed default report (docs/results/compare-moe-tiny-gamma0.01), computed again from the metrics it keeps:
     * the same final losses, tokens/s, training times, token ratio, expert-load table and validation curves, and the
     * wall-clock to the target worked out from the same lines' times outside muon4j.
     */
    @Test
    void theCommittedReportsNumbersComeBackFromItsMetrics() throws IOException {
        Path committed = Path.of("..", "docs", "results", "compare-moe-tiny-gamma0.01");
        assertTrue(Files.isDirectory(committed), committed.toAbsolutePath() + " is missing");
        CompareReport.Pair pair = new CompareReport.Pair(1, CompareRun.read(committed.resolve("adamw")), CompareRun.read(committed.resolve("muon")));
        CompareReport.Inputs in = new CompareReport.Inputs("./muon4j compare", "machine", "backend", "data", "model", "training",
                List.of(pair), 1);
        String report = CompareReport.markdown(in);
        String old = Files.readString(committed.resolve("report.md"));

        assertTrue(report.contains("| AdamW | 2.3956 | 245,760 | 9,468 | 26.0 s | 26.7 s | 245,760 | 26.7 s |"), report);
        assertTrue(report.contains("| Muon | 2.2389 | 245,760 | 7,956 | 30.9 s | 31.1 s | 147,158 | 19.0 s |"), report);
        assertTrue(report.contains("| Muon / AdamW |  |  | 0.840 |  |  | **0.599** | **0.710** |"), report);
        assertTrue(report.contains("Muon reached AdamW's final validation loss (2.3956) after 147,158 tokens, 59.9% of the 245,760 AdamW "
                + "needed (token ratio 0.599), and after 19.0 s of training wall-clock, 71.0% of AdamW's 26.7 s (wall-clock ratio 0.710)."),
                report);
        assertTrue(old.contains("| AdamW | 2.3956 | 245,760 | 9,468 | 26.0 s |") && old.contains("| Muon | 2.2389 | 245,760 | 7,956 | 30.9 s |")
                && old.contains("after 147,158 tokens: 59.9% of AdamW's 245,760 tokens (token ratio 0.599)"), old);
        // The expert-load rows and the validation curves, line for line as the committed report has them.
        List<String> oldRows = old.lines().filter(l -> l.matches("\\| (AdamW|Muon|[0-9]+) \\|.*")).toList();
        assertEquals(2 + 2 + 10, oldRows.size(), oldRows.stream().collect(Collectors.joining("\n")));
        List<String> newLines = report.lines().toList();
        for (String row : oldRows.subList(2, oldRows.size())) {
            assertTrue(newLines.contains(row), "committed row " + row + " is not in\n" + report);
        }
        // Wall-clock: AdamW's 120 steps span 26.717 s of the lines' times with validations out; Muon reaches 2.3956 at
        // step 71.854, 18.959 s in (computed from the same lines with Python's datetime).
        assertEquals(26.7174, pair.adamwWallToTarget(), 1e-3);
        assertEquals(18.9586, pair.muonWallToTarget(), 1e-3);
        assertEquals(0.59879, pair.tokenRatio(), 1e-5);
    }
}
