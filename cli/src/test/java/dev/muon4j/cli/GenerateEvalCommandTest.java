package dev.muon4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.io.JsonCodec;
import dev.muon4j.train.CheckpointStore;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code muon4j generate} and {@code muon4j eval} on run directories that {@code muon4j train} wrote in
 * the test: eval gives back the validation loss the trainer logged, generate streams the tokens asked
 * for (flushing as it goes), the same seed gives the same text, and bad flags or checkpoints end in one line.
 */
class GenerateEvalCommandTest {
    @TempDir
    static Path tmp;

    static Path data;
    static Path dense;   // trained 6 steps, validated at steps 3 and 6
    static Path moe;

    /** A writer that counts how often it is flushed after text arrived: one flush per streamed piece. */
    static final class FlushCounter extends Writer {
        final StringBuilder text = new StringBuilder();
        int flushesWithNewText;
        private int flushedLength;

        @Override
        public void write(char[] buffer, int offset, int length) {
            text.append(buffer, offset, length);
        }

        @Override
        public void flush() {
            if (text.length() > flushedLength) {
                flushesWithNewText++;
                flushedLength = text.length();
            }
        }

        @Override
        public void close() {
        }
    }

    record Outcome(int code, String out, String err, int flushes) {
    }

    static Outcome run(String... args) {
        FlushCounter out = new FlushCounter();
        StringWriter err = new StringWriter();
        picocli.CommandLine cli = Main.commandLine();
        cli.setOut(new PrintWriter(out));
        cli.setErr(new PrintWriter(err));
        int code = cli.execute(args);
        return new Outcome(code, out.text.toString(), err.toString(), out.flushesWithNewText);
    }

    @BeforeAll
    static void trainTwoModels() throws Exception {
        data = tmp.resolve("data.txt");
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < 60; i++) {
            text.append("Line ").append(i).append(": the quick brown fox jumps over the lazy dog, ").append(i * 7 % 13).append(" times.\n");
        }
        Files.writeString(data, text);
        dense = tmp.resolve("dense");
        Outcome d = run("train", "--layers", "2", "--width", "32", "--heads", "2", "--mlp-width", "64", "--context", "16",
                "--batch", "4", "--steps", "6", "--warmup", "2", "--eval-every", "3", "--eval-batches", "2", "--checkpoint-every", "3",
                "--seed", "3", "--data", data.toString(), "--run-dir", dense.toString(), "--backend", "VECTOR", "--threads", "1");
        assertEquals(0, d.code(), d.out() + d.err());
        moe = tmp.resolve("moe");
        Outcome m = run("train", "--model", "deepseek", "--layers", "2", "--width", "32", "--heads", "2", "--mlp-width", "64",
                "--experts", "4", "--active-experts", "2", "--expert-width", "16", "--context", "16", "--batch", "4", "--steps", "4",
                "--eval-every", "2", "--eval-batches", "2", "--router-bias-rate", "0.01", "--data", data.toString(),
                "--run-dir", moe.toString(), "--backend", "VECTOR", "--threads", "1");
        assertEquals(0, m.code(), m.out() + m.err());
    }

    /** The validation losses metrics.jsonl holds, in order. */
    static List<Double> loggedValidationLosses(Path runDir) throws Exception {
        List<Double> losses = new ArrayList<>();
        for (String line : Files.readAllLines(runDir.resolve("metrics.jsonl"))) {
            Map<String, Object> m = JsonCodec.parseObject(line);
            if (m.get("val_loss") instanceof Number v) {
                losses.add(v.doubleValue());
            }
        }
        return losses;
    }

    static double number(String output, String label) {
        Matcher m = Pattern.compile(label + " ([0-9.]+)").matcher(output);
        assertTrue(m.find(), label + " in: " + output);
        return Double.parseDouble(m.group(1));
    }

    static void assertOneLineError(Outcome o, String... parts) {
        assertEquals(2, o.code(), () -> "exit code; out: " + o.out() + " err: " + o.err());
        String err = o.err().strip();
        assertFalse(err.contains("\n"), "one line: " + err);
        assertTrue(err.startsWith("muon4j: "), err);
        for (String part : parts) {
            assertTrue(err.contains(part), "'" + part + "' in: " + err);
        }
    }

    // ------------------------------------------------------------------------------------------ eval

    @Test
    void evalGivesBackTheValidationLossTheTrainerLogged() throws Exception {
        List<Double> logged = loggedValidationLosses(dense);
        assertEquals(2, logged.size(), logged.toString());
        Outcome latest = run("eval", "--run-dir", dense.toString(), "--backend", "VECTOR", "--threads", "1");
        assertEquals(0, latest.code(), latest.err());
        assertEquals(logged.get(1), number(latest.out(), "loss"), 1e-5, latest.out());
        assertTrue(latest.out().contains("(step 6)") && latest.out().contains("the tokens the run validated on")
                && latest.out().contains("2 batches of up to 4 x 16 tokens, 128 tokens"), latest.out());
        assertEquals(Math.exp(logged.get(1)), number(latest.out(), "perplexity"), 1e-4);
        assertEquals(logged.get(1) / Math.log(2), number(latest.out(), "bits per byte"), 1e-5, "one byte per token");

        // one checkpoint directory: the validation of step 3, given as the run's flags explicitly
        Outcome step3 = run("eval", "--checkpoint", dense.resolve("step-00000003").toString(), "--data", data.toString(),
                "--batches", "2", "--batch", "4", "--validation-fraction", "0.05", "--backend", "VECTOR", "--threads", "1");
        assertEquals(0, step3.code(), step3.err());
        assertEquals(logged.get(0), number(step3.out(), "loss"), 1e-5, step3.out());
        assertTrue(step3.out().contains("the tokens the run validated on"), step3.out());

        // deterministic: the same command prints the same
        assertEquals(latest.out(), run("eval", "--run-dir", dense.toString(), "--backend", "VECTOR", "--threads", "1").out());
    }

    @Test
    void evalOfTheMixtureOfExpertsModelGivesBackItsLoggedLoss() throws Exception {
        List<Double> logged = loggedValidationLosses(moe);
        Outcome o = run("eval", "--run-dir", moe.toString(), "--backend", "VECTOR", "--threads", "1");
        assertEquals(0, o.code(), o.err());
        assertEquals(logged.getLast(), number(o.out(), "loss"), 1e-5, o.out());
        assertTrue(o.out().contains("experts") && o.out().contains("(step 4)"), o.out());
    }

    @Test
    void evalOnTextOfItsOwnAndOnEveryWindow() throws Exception {
        Path other = Files.writeString(tmp.resolve("other.txt"), "A different text, with other words in it. ".repeat(20));
        Outcome all = run("eval", "--run-dir", dense.toString(), "--data", other.toString(), "--split", "all", "--batches", "0",
                "--backend", "VECTOR", "--threads", "1");
        assertEquals(0, all.code(), all.err());
        // 42 × 20 = 840 bytes: (840 - 1) / 16 = 52 windows of 16, in 13 batches of 4
        assertTrue(all.out().contains("all of it: 840 tokens") && all.out().contains("13 batches of up to 4 x 16 tokens, 832 tokens"),
                all.out());
        assertEquals(number(all.out(), "loss") / Math.log(2), number(all.out(), "bits per byte"), 1e-5);
        Outcome validation = run("eval", "--run-dir", dense.toString(), "--data", other.toString(), "--backend", "VECTOR",
                "--threads", "1");
        assertEquals(0, validation.code(), validation.err());
        assertTrue(validation.out().contains("not the run's validation data"), validation.out());
    }

    // ------------------------------------------------------------------------------------------ generate

    @Test
    void generateStreamsTheTokensAskedForFlushingAsItGoes() {
        Outcome o = run("generate", "--run-dir", dense.toString(), "--prompt", "Line 7", "--max-tokens", "40", "--temperature", "0",
                "--backend", "VECTOR", "--threads", "1");
        assertEquals(0, o.code(), o.err());
        assertTrue(o.out().startsWith("Line 7"), o.out());
        assertFalse(o.out().contains("\uFFFD"), "greedy text of a model trained on ASCII is ASCII: " + o.out());
        // 40 byte tokens after the prompt, then the closing newline
        assertEquals("Line 7".length() + 40 + 1, o.out().getBytes(StandardCharsets.UTF_8).length, o.out());
        assertTrue(o.flushes() >= 40, "flushed per token: " + o.flushes());
        assertTrue(o.err().contains("generated 40 tokens") && o.err().contains("greedy"), o.err());
        assertTrue(o.err().contains("step-00000006"), o.err());
        // greedy ignores the seed
        assertEquals(o.out(), run("generate", "--run-dir", dense.toString(), "--prompt", "Line 7", "--max-tokens", "40",
                "--temperature", "0", "--seed", "5", "--backend", "VECTOR", "--threads", "1").out());
    }

    @Test
    void theSameSeedGivesTheSameTextAndAnotherSeedOtherText() {
        String[] base = {"generate", "--run-dir", moe.toString(), "--max-tokens", "60", "--temperature", "1.0", "--top-k", "0",
                "--backend", "VECTOR", "--threads", "1", "--seed"};
        Outcome a = run(concat(base, "21"));
        Outcome b = run(concat(base, "21"));
        Outcome c = run(concat(base, "22"));
        assertEquals(0, a.code(), a.err());
        assertTrue(a.err().contains("generated 60 tokens"), a.err());
        assertEquals(a.out(), b.out());
        assertNotEquals(a.out(), c.out());
        Outcome two = run("generate", "--run-dir", moe.toString(), "--max-tokens", "10", "--samples", "2", "--prompt", "Line",
                "--backend", "VECTOR", "--threads", "1");
        assertEquals(0, two.code(), two.err());
        assertTrue(two.out().startsWith("Line") && two.out().contains("\n---------------\nLine"), two.out());
        assertTrue(two.err().contains("generated 20 tokens"), two.err());
    }

    private static String[] concat(String[] a, String... b) {
        String[] all = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, all, a.length, b.length);
        return all;
    }

    @Test
    void badFlagsAreOneLineNamingTheFlagAndTheValue() throws Exception {
        String run = dense.toString();
        assertOneLineError(run("generate", "--run-dir", run, "--temperature", "-1"), "--temperature", "-1.0");
        assertOneLineError(run("generate", "--run-dir", run, "--temperature", "abc"), "--temperature", "abc", "generate --help");
        assertOneLineError(run("generate", "--run-dir", run, "--top-k", "-3"), "--top-k must be >= 0", "-3");
        assertOneLineError(run("generate", "--run-dir", run, "--top-p", "0"), "--top-p must lie in (0, 1]", "0.0");
        assertOneLineError(run("generate", "--run-dir", run, "--top-p", "1.5"), "--top-p", "1.5");
        assertOneLineError(run("generate", "--run-dir", run, "--max-tokens", "-2"), "--max-tokens must be >= 0", "-2");
        assertOneLineError(run("generate", "--run-dir", run, "--samples", "0"), "--samples", "0");
        assertOneLineError(run("generate", "--run-dir", run, "--tempreture", "1"), "--tempreture", "did you mean --temperature");
        assertOneLineError(run("generate", "--run-dir", run, "--prompt", "x".repeat(17)),
                "--prompt is 17 tokens (byte), longer than the model's context of 16 tokens");
        Path longPrompt = Files.writeString(tmp.resolve("long-prompt.txt"), "y".repeat(20));
        assertOneLineError(run("generate", "--run-dir", run, "--prompt-file", longPrompt.toString()), "--prompt-file", "20 tokens");
        assertOneLineError(run("generate", "--run-dir", run, "--prompt", "a", "--prompt-file", longPrompt.toString()), "not both");
        assertOneLineError(run("generate", "--run-dir", run, "--prompt-file", tmp.resolve("none.txt").toString()),
                "--prompt-file", "none.txt", "does not exist");
        assertOneLineError(run("generate"), "give --run-dir");
        assertOneLineError(run("eval", "--run-dir", run, "--batches", "-1"), "--batches", "-1");
        assertOneLineError(run("eval", "--run-dir", run, "--batch", "0"), "--batch must be at least 1, got 0");
        assertOneLineError(run("eval", "--run-dir", run, "--validation-fraction", "1.5"), "--validation-fraction", "1.5");
        assertOneLineError(run("eval", "--run-dir", run, "--split", "test"), "--split", "test");
        assertOneLineError(run("eval", "--run-dir", run, "--data", tmp.resolve("gone.txt").toString()), "gone.txt", "does not exist");
    }

    @Test
    void missingAndDamagedCheckpointsAreOneLine() throws Exception {
        for (String command : new String[] {"generate", "eval"}) {
            assertOneLineError(run(command, "--run-dir", tmp.resolve("nowhere").toString()), "no run directory or checkpoint at",
                    "nowhere");
            Path empty = Files.createDirectories(tmp.resolve("empty-" + command));
            assertOneLineError(run(command, "--run-dir", empty.toString()), "holds no checkpoint");
            assertOneLineError(run(command, "--run-dir", data.toString()), "is a file");
        }
        // a copy of the dense run whose latest checkpoint is damaged
        Path copy = tmp.resolve("damaged");
        try (var files = Files.walk(dense)) {
            for (Path p : files.toList()) {
                Path to = copy.resolve(dense.relativize(p).toString());
                if (Files.isDirectory(p)) {
                    Files.createDirectories(to);
                } else {
                    Files.copy(p, to);
                }
            }
        }
        Path weights = copy.resolve("step-00000006").resolve(CheckpointStore.MODEL_FILE);
        byte[] bytes = Files.readAllBytes(weights);
        bytes[bytes.length / 2] ^= 1;
        Files.write(weights, bytes);
        assertOneLineError(run("generate", "--run-dir", copy.resolve("step-00000006").toString(), "--max-tokens", "3"),
                "model.safetensors", "damaged");
        // the run directory falls back to the checkpoint before, and says so
        Outcome fallback = run("eval", "--run-dir", copy.toString(), "--backend", "VECTOR", "--threads", "1");
        assertEquals(0, fallback.code(), fallback.err());
        assertTrue(fallback.out().contains("(step 3)"), fallback.out());
        assertTrue(fallback.err().startsWith("muon4j: warning: ") && fallback.err().contains("step-00000006"), fallback.err());
    }
}
