package dev.muon4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.muon4j.io.Json;
import dev.muon4j.train.CheckpointStore;
import dev.muon4j.train.RunLock;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code muon4j train} as a user meets the run-directory rules: one writer per run directory (a
 * second process is refused, naming the first), {@code --resume} only where there is something to
 * resume and only with the same settings (QK-clip's threshold and the Newton–Schulz method among them), a run directory that is a file named as such, and a
 * collapsing run stopped with its last good checkpoint named by {@code latest}. Errors are one line.
 */
class RunSafetyCommandTest {
    @TempDir
    Path tmp;

    record Outcome(int code, String out, String err) {
    }

    static Outcome run(List<String> args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        picocli.CommandLine cli = Main.commandLine();
        cli.setOut(new PrintWriter(out));
        cli.setErr(new PrintWriter(err));
        int code = cli.execute(args.toArray(String[]::new));
        return new Outcome(code, out.toString(), err.toString());
    }

    private Path data() throws Exception {
        Path data = tmp.resolve("data.txt");
        if (!Files.exists(data)) {
            StringBuilder text = new StringBuilder();
            for (int i = 0; i < 60; i++) {
                text.append("Line ").append(i).append(": the quick brown fox jumps over the lazy dog, ").append(i * 7 % 13)
                        .append(" times.\n");
            }
            Files.writeString(data, text);
        }
        return data;
    }

    /** A small model's train command; {@code extra} flags replace the defaults of the same name. */
    private List<String> train(Path runDir, long steps, String... extra) throws Exception {
        java.util.LinkedHashMap<String, String> flags = new java.util.LinkedHashMap<>();
        String[] defaults = {"--layers", "2", "--width", "32", "--heads", "2", "--mlp-width", "64", "--context", "16", "--batch", "4",
                "--steps", Long.toString(steps), "--warmup", "2", "--eval-every", "5", "--eval-batches", "1", "--checkpoint-every", "2",
                "--seed", "3", "--data", data().toString(), "--run-dir", runDir.toString(), "--backend", "OPENBLAS_BUNDLED",
                "--threads", "1"};
        for (int i = 0; i < defaults.length; i += 2) {
            flags.put(defaults[i], defaults[i + 1]);
        }
        for (int i = 0; i < extra.length; i++) {
            boolean hasValue = i + 1 < extra.length && !extra[i + 1].startsWith("--");
            flags.put(extra[i], hasValue ? extra[++i] : null);
        }
        List<String> args = new ArrayList<>(List.of("train"));
        flags.forEach((flag, value) -> {
            args.add(flag);
            if (value != null) {
                args.add(value);
            }
        });
        return args;
    }

    private static void assertOneLineError(Outcome o, String... parts) {
        assertEquals(2, o.code(), () -> "exit code; out: " + o.out() + " err: " + o.err());
        String err = o.err().strip();
        assertFalse(err.contains("\n"), "one line: " + err);
        assertTrue(err.startsWith("muon4j: "), err);
        for (String part : parts) {
            assertTrue(err.contains(part), "'" + part + "' in: " + err);
        }
    }

    @Test
    void aSecondTrainProcessOnTheSameRunDirectoryIsRefusedNamingTheFirst() throws Exception {
        Optional<String> java = ProcessHandle.current().info().command().filter(c -> Files.isExecutable(Path.of(c)));
        assumeTrue(java.isPresent(), "the java command of this JVM cannot be found");
        Path runDir = tmp.resolve("run");
        List<String> command = new ArrayList<>(List.of(java.get(), "--add-modules", "jdk.incubator.vector",
                "--enable-native-access=ALL-UNNAMED", "-Xmx512m", "-XX:+UseSerialGC", "-cp", System.getProperty("java.class.path"),
                Main.class.getName()));
        command.addAll(train(runDir, 60));
        Path log = tmp.resolve("first.log");
        Process first = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        try {
            // Wait until the first process holds the lock (it wrote its PID into the lock file).
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            Path lockFile = runDir.resolve(RunLock.FILE);
            while (first.isAlive() && System.nanoTime() < deadline
                    && !(Files.exists(lockFile) && Files.readString(lockFile).contains("pid=" + first.pid()))) {
                Thread.sleep(20);
            }
            assertTrue(first.isAlive(), () -> "the first run is still running: " + readQuietly(log));

            for (String mode : new String[] {null, "--resume-or-start"}) {
                Outcome second = mode == null ? run(train(runDir, 60, "--seed", "4")) : run(train(runDir, 60, mode));
                assertOneLineError(second, "is in use by PID " + first.pid(), "muon4j train", "only one process may write");
            }
            assertTrue(first.waitFor(120, TimeUnit.SECONDS), "the first run finished");
            assertEquals(0, first.exitValue(), () -> readQuietly(log));
        } finally {
            first.destroyForcibly();
        }
        // The first run's metrics are whole: each step once, in order.
        List<Long> steps = new ArrayList<>();
        for (String line : Files.readAllLines(runDir.resolve("metrics.jsonl"))) {
            Map<String, Object> m = Json.parseObject(line);
            if (m.containsKey("loss")) {
                steps.add((Long) m.get("step"));
            }
        }
        assertEquals(60, steps.size(), steps.toString());
        for (int i = 0; i < steps.size(); i++) {
            assertEquals(i + 1, steps.get(i));
        }
        assertEquals(60, new CheckpointStore(runDir).latest().orElseThrow().step());
    }

    private static String readQuietly(Path p) {
        try {
            return Files.readString(p);
        } catch (Exception e) {
            return "(" + e + ")";
        }
    }

    @Test
    void resumeNeedsACheckpointAndTheSameSettings() throws Exception {
        Path missing = tmp.resolve("missing");
        assertOneLineError(run(train(missing, 6, "--resume")), "nothing to resume", "does not exist");
        assertFalse(Files.exists(missing));
        Path empty = Files.createDirectories(tmp.resolve("empty"));
        assertOneLineError(run(train(empty, 6, "--resume")), "nothing to resume", "holds no checkpoint");

        Path runDir = tmp.resolve("run");
        assertEquals(0, run(train(runDir, 8, "--stop-after", "4")).code());
        Outcome changed = run(train(runDir, 8, "--resume", "--lr", "6e-3", "--batch", "8"));
        assertOneLineError(changed, "--lr is 0.006, the checkpoint's 0.003", "--batch is 8, the checkpoint's 4",
                "--allow-changed lr,muon-lr,batch");
        // --muon-lr follows --lr (4 x) unless given, so it changed too.
        Outcome allowed = run(train(runDir, 8, "--resume", "--lr", "6e-3", "--allow-changed", "lr,muon-lr"));
        assertEquals(0, allowed.code(), allowed::err);
        assertTrue(allowed.out().contains("learning_rate 0.003 -> 0.006"), allowed.out());
        assertOneLineError(run(train(runDir, 8, "--resume", "--allow-changed", "lrr")), "--allow-changed: unknown setting 'lrr'");
    }

    @Test
    void qkClipIsShownRecordedPerStepAndASettingOfTheRun() throws Exception {
        Path runDir = tmp.resolve("clipped");
        // This small model starts with std 0.02: its logits are a few hundredths, τ = 0.01 clips.
        Outcome o = run(train(runDir, 4, "--qk-clip", "0.01", "--stop-after", "2"));
        assertEquals(0, o.code(), o::err);
        assertTrue(o.out().contains("training: MUON (moonlight), QK-clip at tau 0.01, 4 steps"), o.out());
        int clipped = 0;
        for (String line : Files.readAllLines(runDir.resolve("metrics.jsonl"))) {
            Map<String, Object> m = Json.parseObject(line);
            if (m.containsKey("loss")) {
                assertTrue(((Number) m.get("max_logit")).doubleValue() > 0, line);
                clipped += ((Number) m.get("clipped_heads")).intValue();
            }
        }
        assertTrue(clipped > 0, "no head clipped in 2 steps");
        assertOneLineError(run(train(runDir, 4, "--resume")), "--qk-clip is 0.0, the checkpoint's 0.01", "--allow-changed qk-clip");
        assertEquals(0, run(train(runDir, 4, "--resume", "--qk-clip", "0.01")).code());
        assertOneLineError(run(train(tmp.resolve("negative"), 4, "--qk-clip", "-1")), "--qk-clip must be a finite threshold > 0", "-1");
        Outcome off = run(train(tmp.resolve("off"), 1));
        assertFalse(off.out().contains("QK-clip"), off.out());
        assertFalse(Files.readString(tmp.resolve("off/metrics.jsonl")).contains("clipped_heads"));
    }

    @Test
    void nsMethodIsShownRecordedAndASettingOfTheRun() throws Exception {
        Path runDir = tmp.resolve("gram");
        Outcome o = run(train(runDir, 4, "--ns-method", "gram", "--stop-after", "2"));
        assertEquals(0, o.code(), o::err);
        assertTrue(o.out().contains("training: MUON (moonlight, Gram Newton-Schulz), 4 steps"), o.out());
        CheckpointStore.Checkpoint saved = new CheckpointStore(runDir, 3).latest().orElseThrow();
        @SuppressWarnings("unchecked")
        Map<String, Object> train = (Map<String, Object>) saved.config().get("train");
        assertEquals("GRAM", train.get("ns_method"), train.toString());
        assertOneLineError(run(train(runDir, 4, "--resume")), "--ns-method is STANDARD, the checkpoint's GRAM",
                "--allow-changed ns-method");
        Outcome resumed = run(train(runDir, 4, "--resume", "--ns-method", "GRAM"));
        assertEquals(0, resumed.code(), resumed::err);

        Outcome standard = run(train(tmp.resolve("standard"), 1));
        assertFalse(standard.out().contains("Gram"), standard.out());
        assertOneLineError(run(train(tmp.resolve("torch"), 1, "--ns-method", "gram", "--muon-variant", "torch")),
                "--ns-method gram does not combine with --muon-variant torch");
        Outcome unknown = run(train(tmp.resolve("unknown"), 1, "--ns-method", "fast"));
        assertEquals(2, unknown.code(), unknown::out);
        assertTrue(unknown.err().contains("--ns-method") && unknown.err().contains("fast")
                && unknown.err().contains("GRAM"), unknown.err());
    }

    @Test
    void nsPrecisionIsShownRecordedAndASettingOfTheRun() throws Exception {
        Path runDir = tmp.resolve("bf16");
        Outcome o = run(train(runDir, 4, "--ns-precision", "bf16", "--stop-after", "2"));
        assertEquals(0, o.code(), o::err);
        assertTrue(o.out().contains("training: MUON (moonlight, Newton-Schulz in bf16), 4 steps"), o.out());
        CheckpointStore.Checkpoint saved = new CheckpointStore(runDir, 3).latest().orElseThrow();
        @SuppressWarnings("unchecked")
        Map<String, Object> train = (Map<String, Object>) saved.config().get("train");
        assertEquals("BF16", train.get("ns_precision"), train.toString());
        assertOneLineError(run(train(runDir, 4, "--resume")), "--ns-precision is F32, the checkpoint's BF16",
                "--allow-changed ns-precision");
        Outcome resumed = run(train(runDir, 4, "--resume", "--ns-precision", "BF16"));
        assertEquals(0, resumed.code(), resumed::err);

        Outcome torch = run(train(tmp.resolve("torch-bf16"), 1, "--muon-variant", "torch"));
        assertEquals(0, torch.code(), torch::err);
        assertFalse(torch.out().contains("Newton-Schulz in"), "torch's own bfloat16 is not news: " + torch.out());
        assertOneLineError(run(train(tmp.resolve("torch"), 1, "--ns-precision", "f32", "--muon-variant", "torch")),
                "--ns-precision F32 does not combine with --muon-variant torch");
        assertOneLineError(run(train(tmp.resolve("gram"), 1, "--ns-precision", "bf16", "--ns-method", "gram")),
                "--ns-method gram does not combine with --ns-precision BF16");
    }

    @Test
    void aRunDirectoryThatIsAFileIsNamed() throws Exception {
        Path file = Files.writeString(tmp.resolve("file"), "not a directory");
        assertOneLineError(run(train(file, 4)), file + " is not a directory");
    }

    @Test
    void aCollapseStopsWithTheLastGoodCheckpointNamedByLatest() throws Exception {
        Path runDir = tmp.resolve("run");
        Outcome o = run(train(runDir, 200, "--lr", "30", "--clip", "0", "--checkpoint-every", "1"));
        assertOneLineError(o, "training collapsed", "is intact");
        CheckpointStore.Checkpoint latest = new CheckpointStore(runDir).latest().orElseThrow();
        assertTrue(o.err().contains(CheckpointStore.dirName(latest.step()) + ", is intact"), o.err());
        assertTrue(o.out().contains("put off"), o.out());
        // The switch turns it off: the same run then ends on a NaN gradient, also with a one-line error.
        Outcome off = run(train(tmp.resolve("off"), 200, "--lr", "30", "--clip", "0", "--collapse-steps", "0"));
        assertOneLineError(off, "non-finite gradient in step");
    }
}
