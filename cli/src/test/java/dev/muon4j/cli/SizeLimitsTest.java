package dev.muon4j.cli;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.nn.LlamaConfig;
import dev.muon4j.train.OptimizerChoice;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import picocli.CommandLine;

/**
 * Sizes too large for a Java array or for the heap, and integer flags out of range, end in one
 * line naming the flag, its value and the limit, with exit code 2, before anything is allocated
 * (nothing is printed to standard output); sizes that work are let through. A run the checks
 * miss could train for hours, hence the time limit.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
class SizeLimitsTest {
    @TempDir
    Path tmp;

    /** Exit code, standard output and standard error of one command. */
    private record Run(int code, String out, String err) {
        /** The single line on standard error, after checking that there is exactly one and no stack trace. */
        String line() {
            List<String> lines = err.lines().toList();
            assertEquals(1, lines.size(), () -> "one line on standard error, got:\n" + err);
            assertTrue(!err.contains("Exception") && !err.contains("\tat "), err);
            return lines.getFirst();
        }
    }

    private static Run run(String... args) {
        CommandLine cli = Main.commandLine();
        StringWriter stdout = new StringWriter();
        StringWriter stderr = new StringWriter();
        cli.setOut(new PrintWriter(stdout));
        cli.setErr(new PrintWriter(stderr));
        int code = cli.execute(args);
        return new Run(code, stdout.toString(), stderr.toString());
    }

    /** A refused run: exit code 2, nothing on standard output, and the one line on standard error. */
    private static String refused(String... args) {
        Run r = run(args);
        assertEquals(2, r.code(), () -> "exit code; stdout:\n" + r.out() + "\nstderr:\n" + r.err());
        assertEquals("", r.out(), "nothing loaded or printed before the check");
        return r.line();
    }

    private Path data() throws Exception {
        Path data = tmp.resolve("data.txt");
        Files.writeString(data, "Sphinx of black quartz, judge my vow. Pack my box with five dozen liquor jugs!\n".repeat(400));
        return data;
    }

    /** {@code train} on the tiny preset with {@code flags}, a small corpus and a step limit. */
    private String[] train(String... flags) throws Exception {
        List<String> args = new ArrayList<>(List.of("train"));
        args.addAll(List.of(flags));
        args.addAll(List.of("--steps", "1", "--eval-batches", "1", "--data", data().toString(), "--run-dir", tmp.resolve("run").toString()));
        return args.toArray(String[]::new);
    }

    @Test
    void contextBeyondTheArrayLimit() throws Exception {
        assertEquals("muon4j: --context 100000 is too large: the attention scores need batch × heads × context² = "
                        + "16 × 4 × 100000² = 640,000,000,000 floats in one array, more than a Java array holds (2,147,483,647); "
                        + "with --batch 16 and --heads 4 the largest --context is 5792",
                refused(train("--context", "100000")));
    }

    @Test
    void widthBeyondTheArrayLimit() throws Exception {
        assertEquals("muon4j: --width 1000000 is too large: the attention projections need width² = 1000000² = "
                        + "1,000,000,000,000 floats in one array, more than a Java array holds (2,147,483,647); the largest --width is 46340",
                refused(train("--width", "1000000")));
    }

    @Test
    void batchBeyondTheArrayLimit() throws Exception {
        String expected = "muon4j: --batch 100000 is too large: the MLP activations need batch × context × mlp width = "
                + "100000 × 128 × 512 = 6,553,600,000 floats in one array, more than a Java array holds (2,147,483,647); "
                + "with --context 128 and --mlp-width 512 the largest --batch is 32767";
        assertEquals(expected, refused(train("--batch", "100000")));
        assertEquals(expected, refused("compare", "--batch", "100000", "--data", data().toString(), "--out", tmp.resolve("c").toString()));
    }

    @Test
    void batchSplitOverRanks() throws Exception {
        assertEquals("muon4j: --batch 100000 is too large: split over 2 ranks a micro-batch has 50000 sequences, and the MLP "
                        + "activations need batch × context × mlp width = 50000 × 128 × 512 = 3,276,800,000 floats in one array, "
                        + "more than a Java array holds (2,147,483,647); with --context 128 and --mlp-width 512 the largest --batch "
                        + "on 2 ranks is 65534",
                refused(train("--batch", "100000", "--ranks", "2", "--launcher", "threads")));
    }

    @Test
    void benchSubcommandsCheckTheirSizes() throws Exception {
        assertEquals("muon4j: --batch 100000 is too large: the attention scores need batch × heads × context² = "
                        + "100000 × 6 × 256² = 39,321,600,000 floats in one array, more than a Java array holds (2,147,483,647); "
                        + "with heads 6 and context 256 the largest --batch is 5461",
                refused("bench", "training", "--batch", "100000"));
        assertEquals("muon4j: --context 100000 is too large: the attention scores need batch × heads × context² = "
                        + "16 × 6 × 100000² = 960,000,000,000 floats in one array, more than a Java array holds (2,147,483,647); "
                        + "with --batch 16 and --heads 6 the largest --context is 4729",
                refused("bench", "distributed", "--context", "100000", "--data", data().toString()));
    }

    @Test
    void demoChecksItsSizes() {
        assertEquals("muon4j: --batch 2000000 is too large: the training set of 64 batches needs 64 × batch × 32 inputs = "
                        + "4,096,000,000 floats in one array, more than a Java array holds (2,147,483,647); the largest --batch is 1048575",
                refused("demo", "--batch", "2000000"));
        assertEquals("muon4j: --steps 2147483647 is too many: each loss curve keeps steps + 1 values in one array, and a Java "
                + "array holds at most 2,147,483,647", refused("demo", "--steps", "2147483647"));
    }

    @Test
    void heapBeyondTheJvmLimit() throws Exception {
        // Fits every array (the scores are 512 × 12 × 512² = 1,610,612,736 floats) but not the heap.
        String line = refused(train("--preset", "large", "--batch", "512"));
        Matcher m = Pattern.compile("^muon4j: this run needs at least ([0-9.]+) GiB of heap, more than the ([0-9.]+) GiB the JVM "
                + "may use: parameters and gradients .*, optimizer state .* and activations of 512 sequences of 512 tokens .*; "
                + "the largest --batch that fits is ([0-9]+); raise the JVM's limit, e\\.g\\. MUON4J_JAVA_OPTS=-Xmx([0-9]+)g .*").matcher(line);
        assertTrue(m.matches(), line);
        double needed = Double.parseDouble(m.group(1));
        assertEquals(String.format(Locale.ROOT, "%.1f", Runtime.getRuntime().maxMemory() / (double) (1L << 30)), m.group(2));
        assertTrue(needed > 78, "13 × 1.6e9 floats of attention scores (12 layers' probabilities and one dP) alone are 78 GiB: " + line);
        assertTrue(Integer.parseInt(m.group(3)) < 512 && Integer.parseInt(m.group(4)) >= needed, line);
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "--layers|0|muon4j: --layers must be at least 1, got 0",
            "--heads|5|muon4j: --heads 5 does not divide --width 32: each head takes width / heads channels",
            "--kv-heads|3|muon4j: --kv-heads 3 does not divide --heads 2: the query heads share the key/value heads in equal groups",
            "--mlp-width|-1|muon4j: --mlp-width must be at least 1, got -1",
            "--batch|0|muon4j: --batch must be at least 1, got 0",
            "--accumulate|0|muon4j: --accumulate must be at least 1, got 0",
            "--accumulate|1000000000|muon4j: --batch 4 × --accumulate 1000000000 = 4,000,000,000 sequences per step, more than the trainer counts (2,147,483,647)",
            "--steps|0|muon4j: --steps must be at least 1, got 0",
            "--steps|9000000000000000000|muon4j: --steps 9000000000000000000 is too many: with 64 tokens per step (--batch 4 × --accumulate 1 × context 16) the run's token count exceeds 9,223,372,036,854,775,807; the most steps are 144,115,188,075,855,871",
            "--tokens|-5|muon4j: --tokens must be at least 1, got -5",
            "--warmup|-1|muon4j: --warmup must be at least 0, got -1",
            "--eval-every|0|muon4j: --eval-every must be at least 1, got 0",
            "--eval-batches|0|muon4j: --eval-batches must be at least 1, got 0",
            "--checkpoint-every|-1|muon4j: --checkpoint-every must be at least 0, got -1",
            "--keep|0|muon4j: --keep must be at least 1, got 0",
            "--threads|0|muon4j: --threads must be at least 1, got 0"})
    void integerFlagsOutOfRange(String flag, String value, String expected) throws Exception {
        Map<String, String> flags = new LinkedHashMap<>(Map.of("--layers", "1", "--width", "32", "--heads", "2", "--mlp-width", "64",
                "--context", "16", "--batch", "4", "--steps", "2", "--eval-batches", "1"));
        flags.put(flag, value);
        List<String> args = new ArrayList<>(List.of("train", "--stop-after", "1", "--data", data().toString(),
                "--run-dir", tmp.resolve("run").toString()));
        flags.forEach((k, v) -> args.addAll(List.of(k, v)));
        Run r = run(args.toArray(String[]::new));
        assertEquals(2, r.code(), () -> "exit code; stdout:\n" + r.out() + "\nstderr:\n" + r.err());
        assertEquals(expected, r.line());
    }

    @Test
    void aSmallRunStillTrains() throws Exception {
        Run r = run(train("--layers", "1", "--width", "32", "--heads", "2", "--mlp-width", "64", "--context", "16", "--batch", "4"));
        assertEquals(0, r.code(), () -> "exit code; stdout:\n" + r.out() + "\nstderr:\n" + r.err());
        assertTrue(r.out().contains("done: final validation loss"), r.out());
    }

    @Test
    void thePresetsAtTheirDefaultsAreAccepted() {
        for (String preset : List.of("tiny", "small")) {
            TrainCommand command = new TrainCommand();
            new CommandLine(command).setCaseInsensitiveEnumValuesAllowed(true).parseArgs("--preset", preset);
            assertDoesNotThrow(() -> command.options.checkSizes(OptimizerChoice.MUON, 1), preset);
            assertDoesNotThrow(() -> command.options.checkSizes(OptimizerChoice.ADAMW, 4), preset);
        }
    }

    @Test
    void heapNeedByHand() {
        LlamaConfig tiny = ModelPreset.TINY.config();
        // One sequence of 128 tokens holds 2,829,440 floats in the pool at the peak (1 more for the loss); the parameters
        // and their gradients 2 × 1,869,504 floats, AdamW's moments as many. At 1 GiB = 268,435,456 floats:
        // ⌊(268,435,456 − 7,478,016 − 1) / 2,829,440⌋ = 92 sequences.
        long oneGib = 1L << 30;
        assertEquals(4L * (4 * 1_869_504 + 2_829_440L * 92 + 1), SizeLimits.trainingHeap(tiny, OptimizerChoice.ADAMW, 92, 1, false).total());
        assertDoesNotThrow(() -> SizeLimits.checkHeap(b -> SizeLimits.trainingHeap(tiny, OptimizerChoice.ADAMW, b, 1, false), 92, oneGib, "--batch"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> SizeLimits.checkHeap(b -> SizeLimits.trainingHeap(tiny, OptimizerChoice.ADAMW, b, 1, false), 107, oneGib, "--batch"));
        // 4 × (7,478,017 + 2,829,440 × 107) = 1,240,912,388 bytes = 1.2 GiB, of which the activations 1,210,998,084 = 1.1 GiB
        assertTrue(e.getMessage().startsWith("this run needs at least 1.2 GiB of heap, more than the 1.0 GiB the JVM may use: "
                + "parameters and gradients 14.3 MiB, optimizer state 14.3 MiB and activations of 107 sequences of 128 tokens 1.1 GiB; "
                + "the largest --batch that fits is 92; raise the JVM's limit, e.g. MUON4J_JAVA_OPTS=-Xmx2g"), e.getMessage());
        // Muon: one momentum per hidden-matrix element (1,769,472), two moments for the other 100,032 parameters,
        // and a scratch copy of the largest matrix (512 × 192); on 2 ranks half of the moments, and half the batch.
        assertEquals(4L * (2 * 1_869_504 + 1_769_472 + 2 * 100_032 + 512 * 192 + 2_829_440L * 32 + 1),
                SizeLimits.trainingHeap(tiny, OptimizerChoice.MUON, 32, 1, false).total());
        assertEquals(4L * (2 * 1_869_504 + (1_769_472 + 2 * 100_032) / 2 + 512 * 192 + 2_829_440L * 16 + 1),
                SizeLimits.trainingHeap(tiny, OptimizerChoice.MUON, 31, 2, false).total());
        // 4 ranks as threads of one process: 4 models, all of the moments (and 4 scratch matrices), passes over all 8 sequences
        assertEquals(4L * (8 * 1_869_504 + 2 * 1_869_504 + 2_829_440L * 8 + 1),
                SizeLimits.trainingHeap(tiny, OptimizerChoice.ADAMW, 8, 4, true).total());
        assertEquals(4L * (8 * 1_869_504 + 1_769_472 + 2 * 100_032 + 4 * 512 * 192 + 2_829_440L * 8 + 1),
                SizeLimits.trainingHeap(tiny, OptimizerChoice.MUON, 8, 4, true).total());
    }

    /**
     * The small preset at the default batch (16 × 256), the run the benchmark's memory is measured on:
     * 10,818,432 parameters, their gradients and AdamW's two moments, and 271,257,601 floats of
     * activations at the peak of a step (4 × 10,818,432 + 271,257,601 floats = 1.17 GiB), against
     * 1.82 GiB of activations alone while every intermediate gradient was held to the end of the step.
     */
    @Test
    void smallPresetAtTheDefaultBatch() {
        LlamaConfig small = ModelPreset.SMALL.config();
        assertEquals(10_818_432L, small.parameterCount());
        assertEquals(271_257_601L, small.trainingStepFloats(16));
        long heap = SizeLimits.trainingHeap(small, OptimizerChoice.ADAMW, 16, 1, false).total();
        assertEquals(4L * (4 * 10_818_432L + 271_257_601L), heap);
        assertTrue(heap < 1.2 * (1L << 30), heap + " bytes");
    }
}
