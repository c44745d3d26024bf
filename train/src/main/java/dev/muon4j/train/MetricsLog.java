package dev.muon4j.train;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.annotation.JsonNaming;
import dev.muon4j.io.JsonCodec;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Training metrics as JSON lines: one object per optimizer step
 * ({@code {"step","tokens","loss","lr","muon_lr","grad_norm","seconds","time"}}: {@code lr} is AdamW's learning rate
 * after the schedule (the embeddings, head and norms under Muon), {@code muon_lr} Muon's (only with Muon),
 * {@code time} when the step ended, ISO-8601 in UTC; with QK-clip also {@code "max_logit"} and
 * {@code "clipped_heads"}; for a Mixture-of-Experts model also, per MoE layer, {@code "expert_load_max_mean"}
 * (the largest expert's load over the mean), {@code "expert_share"} (each expert's share of the routed tokens)
 * and {@code "router_bias"} (each expert's choice bias after the step)) and one per validation
 * ({@code {"step","tokens","val_loss","time"}}), with a {@link StepObserver} its fields in the lines of the steps it
 * measured, and event lines ({@code {"step","event",…}}: a resume that
 * changed settings, with {@code "changed": {name: {"from", "to"}}}). Each line is flushed as written. On resume the file is
 * cut back (atomically) to the lines of steps up to the checkpoint, so it reads as if the run had
 * never stopped.
 */
public final class MetricsLog {
    private final Path file;

    public MetricsLog(Path file) {
        this.file = file;
    }

    public Path file() {
        return file;
    }

    /**
     * Every line of a metrics file as a JSON object, in order, blank lines skipped (none for a missing
     * file): for tools that read a run's metrics.
     *
     * @throws IOException naming the file and line of a line that is not a JSON object
     */
    public static List<Map<String, Object>> readLines(Path file) throws IOException {
        List<Map<String, Object>> lines = new ArrayList<>();
        if (!Files.exists(file)) {
            return lines;
        }
        int number = 0;
        for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
            number++;
            if (line.isBlank()) {
                continue;
            }
            try {
                lines.add(JsonCodec.parseObject(line));
            } catch (IllegalArgumentException e) {
                throw new IOException(file + " line " + number + " is not a JSON object: " + e.getMessage(), e);
            }
        }
        return lines;
    }

    /** Keeps only lines with step ≤ {@code step} and returns the validation points among them. */
    public List<Trainer.EvalPoint> truncateAfter(long step) throws IOException {
        List<Trainer.EvalPoint> evals = new ArrayList<>();
        List<String> kept = new ArrayList<>();
        if (Files.exists(file)) {
            int number = 0;
            for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
                number++;
                if (line.isBlank()) {
                    continue;
                }
                Map<String, Object> m;
                try {
                    m = JsonCodec.parseObject(line);
                } catch (IllegalArgumentException e) {
                    // A line cut short by a crash mid-write: everything after it is dropped too.
                    break;
                }
                if (!(m.get("step") instanceof Number s)) {
                    throw new IOException(file + " line " + number + " has no step");
                }
                if (s.longValue() > step) {
                    continue;
                }
                kept.add(line);
                if (m.get("val_loss") instanceof Number v) {
                    evals.add(new Trainer.EvalPoint(s.longValue(), ((Number) m.get("tokens")).longValue(), v.doubleValue()));
                }
            }
        }
        Files.createDirectories(file.toAbsolutePath().getParent());
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        Files.write(tmp, kept, StandardCharsets.UTF_8);
        Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        return evals;
    }

    /** A step's line; the QK-clip and expert fields are left out when absent. */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    @JsonInclude(JsonInclude.Include.NON_NULL)
    record StepLine(long step, long tokens, double loss, double lr, Double muonLr, double gradNorm, double seconds, String time,
                    Double maxLogit, Integer clippedHeads, double[] expertLoadMaxMean, double[][] expertShare, double[][] routerBias) {
        static StepLine of(Trainer.StepPoint p, Double muonLr, java.time.Instant time) {
            Trainer.QkClipPoint clip = p.qkClip();
            Trainer.ExpertLoadPoint experts = p.experts();
            return new StepLine(p.step(), p.tokens(), p.loss(), p.lr(), muonLr, p.gradNorm(), p.seconds(), time.toString(),
                    clip != null && Double.isFinite(clip.maxLogit()) ? clip.maxLogit() : null, clip == null ? null : clip.clippedHeads(),
                    experts == null ? null : experts.maxOverMean(), experts == null ? null : experts.shares(),
                    experts == null ? null : experts.biases());
        }
    }

    /** A validation's line. */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    record EvalLine(long step, long tokens, double valLoss, String time) {
    }

    /** A step's line; {@code muonLr} is Muon's learning rate after the schedule, null without Muon. */
    void step(Trainer.StepPoint p, Double muonLr) {
        append(StepLine.of(p, muonLr, java.time.Instant.now()));
    }

    /**
     * A step's line with a {@link StepObserver}'s fields after the trainer's own.
     *
     * @throws IllegalArgumentException when an observed field has the name of one of the trainer's
     */
    void step(Trainer.StepPoint p, Double muonLr, Map<String, Object> observed) {
        if (observed.isEmpty()) {
            step(p, muonLr);
            return;
        }
        Map<String, Object> line = JsonCodec.toObject(StepLine.of(p, muonLr, java.time.Instant.now()));
        for (Map.Entry<String, Object> e : observed.entrySet()) {
            if (line.containsKey(e.getKey()) || TRAINER_FIELDS.contains(e.getKey())) {
                throw new IllegalArgumentException("observed field '" + e.getKey() + "' of step " + p.step()
                        + " has the name of one of the trainer's own metrics");
            }
            line.put(e.getKey(), e.getValue());
        }
        append(line);
    }

    /** Names of the trainer's own fields, also those a line leaves out when they do not apply. */
    private static final java.util.Set<String> TRAINER_FIELDS = java.util.Set.of("step", "tokens", "loss", "lr", "muon_lr", "grad_norm",
            "seconds", "time", "max_logit", "clipped_heads", "expert_load_max_mean", "expert_share", "router_bias", "val_loss", "event");

    /** An event line, {@code {"step": step, "event": name, ...details}}, e.g. a resume with changed settings. */
    void event(long step, String name, Map<String, Object> details) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("step", step);
        m.put("event", name);
        m.putAll(details);
        append(m);
    }

    void eval(Trainer.EvalPoint p) {
        append(new EvalLine(p.step(), p.tokens(), p.loss(), java.time.Instant.now().toString()));
    }

    /** Appends the line (a record or a map) and flushes it. */
    private void append(Object line) {
        try (BufferedWriter w = Files.newBufferedWriter(file, StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                StandardOpenOption.APPEND)) {
            w.write(JsonCodec.write(line));
            w.newLine();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot append to " + file + ": " + e.getMessage(), e);
        }
    }
}
