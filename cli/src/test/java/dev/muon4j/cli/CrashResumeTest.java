package dev.muon4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.muon4j.io.JsonCodec;
import dev.muon4j.io.SafeTensors;
import dev.muon4j.io.TensorData;
import dev.muon4j.train.CheckpointStore;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A real crash test: {@code muon4j train} runs in its own JVM, checkpointing after every step, and
 * is killed with SIGKILL at random moments, then relaunched with {@code --resume-or-start} (the
 * first kill may come before any checkpoint). After every
 * kill the run directory must hold a loadable checkpoint (or none yet) and a metrics.jsonl whose
 * lines parse (but for a last line cut short); the finished run must end with weights bit for bit
 * equal to an uninterrupted run's, and the same metrics.
 */
class CrashResumeTest {
    static final int STEPS = 20;
    static final int KILLS = 5;

    @TempDir
    Path tmp;

    private List<String> trainArgs(Path data, Path runDir) {
        return List.of("train", "--optimizer", "muon", "--layers", "2", "--width", "32", "--heads", "2", "--mlp-width", "64",
                "--context", "16", "--batch", "4", "--accumulate", "2", "--steps", Integer.toString(STEPS), "--warmup", "5",
                "--eval-every", "10", "--eval-batches", "2", "--checkpoint-every", "1", "--keep", "2", "--seed", "5",
                "--data", data.toString(), "--run-dir", runDir.toString(), "--backend", "OPENBLAS_BUNDLED", "--threads", "1");
    }

    private static Optional<String> javaCommand() {
        return ProcessHandle.current().info().command().filter(c -> Files.isExecutable(Path.of(c)));
    }

    private Process launch(String java, List<String> args, Path log) throws IOException {
        List<String> command = new ArrayList<>(List.of(java, "--add-modules", "jdk.incubator.vector",
                "--enable-native-access=ALL-UNNAMED", "-Xmx512m", "-XX:+UseSerialGC",
                "-cp", System.getProperty("java.class.path"), "dev.muon4j.cli.Main"));
        command.addAll(args);
        return new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()))
                .start();
    }

    /** Every complete line of metrics.jsonl parses; only a last line without its newline may not. */
    private static List<Map<String, Object>> checkMetrics(Path file, String when) throws IOException {
        List<Map<String, Object>> lines = new ArrayList<>();
        if (!Files.exists(file)) {
            return lines;
        }
        String text = Files.readString(file, StandardCharsets.UTF_8);
        String[] parts = text.split("\n", -1);
        for (int i = 0; i < parts.length; i++) {
            boolean last = i == parts.length - 1; // the text after the final newline: "" or a cut line
            if (last && parts[i].isEmpty()) {
                break;
            }
            try {
                Map<String, Object> m = JsonCodec.parseObject(parts[i]);
                Map<String, Object> copy = new HashMap<>(m);
                copy.remove("seconds");
                copy.remove("time");
                lines.add(copy);
            } catch (IllegalArgumentException e) {
                if (!last) {
                    fail(when + ": metrics.jsonl line " + (i + 1) + " is damaged: '" + parts[i] + "': " + e.getMessage());
                }
            }
        }
        return lines;
    }

    private static Map<String, TensorData> finalWeights(Path runDir) throws IOException {
        CheckpointStore.Checkpoint cp = new CheckpointStore(runDir).latest().orElseThrow();
        assertEquals(STEPS, cp.step(), "the final checkpoint's step");
        return SafeTensors.read(cp.dir().resolve(CheckpointStore.MODEL_FILE)).tensors();
    }

    @Test
    void killedAndResumedRunEndsBitForBitLikeAnUninterruptedOne() throws Exception {
        Optional<String> java = javaCommand();
        assumeTrue(java.isPresent(), "the java command of this JVM cannot be found");
        Path data = tmp.resolve("data.txt");
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < 40; i++) {
            text.append("Line ").append(i).append(": the quick brown fox jumps over the lazy dog, ").append(i * 7 % 13)
                    .append(" times.\n");
        }
        Files.writeString(data, text);

        // The reference: the same arguments, uninterrupted, in this JVM.
        Path reference = tmp.resolve("reference");
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        picocli.CommandLine cli = Main.commandLine();
        cli.setOut(new PrintWriter(out));
        cli.setErr(new PrintWriter(err));
        long t0 = System.nanoTime();
        assertEquals(0, cli.execute(trainArgs(data, reference).toArray(String[]::new)), () -> "reference run: " + out + err);
        double referenceSeconds = (System.nanoTime() - t0) / 1e9;
        assertTrue(finalWeights(reference).size() > 0);

        Path runDir = tmp.resolve("crashed");
        Path log = tmp.resolve("child.log");
        SplittableRandom random = new SplittableRandom(System.nanoTime());
        List<String> report = new ArrayList<>();
        long lastStep = -1;
        for (int kill = 0; kill < KILLS; kill++) {
            List<String> args = new ArrayList<>(trainArgs(data, runDir));
            if (kill > 0) {
                // The same command restarted, as a job scheduler would: continue a checkpoint if one was written.
                args.add("--resume-or-start");
            }
            Process p = launch(java.get(), args, log);
            long delay;
            if (kill == 0) {
                // Somewhere in start-up or the first steps: before or while the first checkpoint is written.
                delay = 200 + random.nextLong(1500);
            } else {
                // Once this process has saved a new checkpoint, at a random moment of the following steps
                // (each saves a checkpoint, so the kill may land in the middle of one).
                waitForCheckpointAfter(runDir, lastStep, p);
                delay = random.nextLong(400);
            }
            boolean exited = p.waitFor(delay, TimeUnit.MILLISECONDS);
            if (!exited) {
                p.destroyForcibly();
                assertTrue(p.waitFor(20, TimeUnit.SECONDS), "the killed process ended");
            }
            if (exited && p.exitValue() != 0) {
                fail("child exited with " + p.exitValue() + ":\n" + Files.readString(log));
            }
            Optional<CheckpointStore.Checkpoint> latest;
            try {
                latest = new CheckpointStore(runDir).latest();
            } catch (IOException e) {
                throw new AssertionError("after kill " + (kill + 1) + " (" + delay + " ms) the checkpoint does not load: "
                        + e.getMessage() + "\n" + Files.readString(log), e);
            }
            long step = latest.map(CheckpointStore.Checkpoint::step).orElse(0L);
            assertTrue(step >= Math.max(lastStep, 0), "checkpoints never go back: " + lastStep + " then " + step);
            lastStep = step;
            List<Map<String, Object>> lines = checkMetrics(runDir.resolve("metrics.jsonl"), "after kill " + (kill + 1));
            report.add((exited ? "finished" : "killed") + " (+" + delay + " ms) at checkpoint step " + step + ", "
                    + lines.size() + " metrics lines");
        }
        List<String> resume = new ArrayList<>(trainArgs(data, runDir));
        resume.add("--resume-or-start");
        Process finish = launch(java.get(), resume, log);
        assertTrue(finish.waitFor(60, TimeUnit.SECONDS), "the final resume finished");
        assertEquals(0, finish.exitValue(), () -> "final resume:\n" + readQuietly(log));
        System.out.println("crash test (reference " + String.format("%.1f", referenceSeconds) + " s): " + String.join("; ", report));

        Map<String, TensorData> expected = finalWeights(reference);
        Map<String, TensorData> actual = finalWeights(runDir);
        assertEquals(expected.keySet(), actual.keySet());
        for (String name : expected.keySet()) {
            float[] x = expected.get(name).data();
            float[] y = actual.get(name).data();
            assertEquals(x.length, y.length, name);
            for (int i = 0; i < x.length; i++) {
                if (Float.floatToRawIntBits(x[i]) != Float.floatToRawIntBits(y[i])) {
                    fail(name + "[" + i + "] differs after the crashes: " + x[i] + " vs " + y[i] + " (" + report + ")");
                }
            }
        }
        assertEquals(checkMetrics(reference.resolve("metrics.jsonl"), "reference"),
                checkMetrics(runDir.resolve("metrics.jsonl"), "final"), "metrics.jsonl apart from seconds");
    }

    /** Waits until the run directory's latest pointer names a step after {@code step}, or the process ends. */
    private static void waitForCheckpointAfter(Path runDir, long step, Process p) throws Exception {
        Path latest = runDir.resolve(CheckpointStore.LATEST_FILE);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(40);
        while (p.isAlive() && System.nanoTime() < deadline) {
            try {
                String name = Files.readString(latest).trim();
                if (name.startsWith("step-") && Long.parseLong(name.substring(5)) > step) {
                    return;
                }
            } catch (IOException | NumberFormatException e) {
                // not written yet, or being replaced
            }
            Thread.sleep(10);
        }
    }

    private static String readQuietly(Path file) {
        try {
            return Files.readString(file);
        } catch (IOException e) {
            return "(" + e.getMessage() + ")";
        }
    }
}
