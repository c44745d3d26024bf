package dev.muon4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.io.JsonCodec;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** {@code muon4j export} and {@code muon4j train --init-from} from the command line: what they write, and one-line refusals. */
class ExportCommandTest {
    @TempDir
    static Path tmp;
    static Path data;
    static Path run;

    record Run(int code, String out, String err) {
    }

    static Run run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CommandLine cli = Main.commandLine();
        cli.setOut(new PrintWriter(out, true));
        cli.setErr(new PrintWriter(err, true));
        int code = cli.execute(args);
        return new Run(code, out.toString(), err.toString());
    }

    static List<String> train(Path dir, String... more) {
        List<String> args = new ArrayList<>(List.of("train", "--data", data.toString(), "--steps", "2", "--batch", "2",
                "--eval-batches", "1", "--backend", "vector", "--threads", "1", "--run-dir", dir.toString(),
                "--layers", "1", "--width", "32", "--heads", "2", "--mlp-width", "64", "--context", "16"));
        args.addAll(List.of(more));
        return args;
    }

    @BeforeAll
    static void trainOnce() throws Exception {
        data = tmp.resolve("text.txt");
        Files.writeString(data, "Sphinx of black quartz, judge my vow. ".repeat(200));
        run = tmp.resolve("run");
        Run r = run(train(run).toArray(String[]::new));
        assertEquals(0, r.code(), r.out() + r.err());
    }

    @Test
    void exportWritesWhatFromPretrainedOpensAndSaysHowToLoadIt() throws Exception {
        Path out = tmp.resolve("hf");
        Run r = run("export", run.toString(), "--out", out.toString(), "--dtype", "bf16");
        assertEquals(0, r.code(), r.out() + r.err());
        assertTrue(r.out().contains("LlamaForCausalLM") && r.out().contains("bfloat16"), r.out());
        assertTrue(r.out().contains("one token per UTF-8 byte"), r.out());
        assertTrue(r.out().contains("AutoModelForCausalLM.from_pretrained(\"" + out.toAbsolutePath() + "\")"), r.out());
        for (String file : List.of("config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                "special_tokens_map.json", "muon4j.json")) {
            assertTrue(Files.isRegularFile(out.resolve(file)), file);
        }
        Map<String, Object> config = JsonCodec.readObject(out.resolve("config.json"));
        assertEquals("bfloat16", config.get("torch_dtype"));
        assertEquals(32L, config.get("hidden_size"));

        Run again = run("export", run.toString(), "--out", out.toString());
        assertEquals(2, again.code());
        assertEquals(1, again.err().strip().lines().count(), again.err());
        assertTrue(again.err().startsWith("muon4j: --out " + out.toAbsolutePath() + " is not empty"), again.err());
        Run forced = run("export", run.toString(), "--out", out.toString(), "--force");
        assertEquals(0, forced.code(), forced.err());
        assertEquals("float32", JsonCodec.readObject(out.resolve("config.json")).get("torch_dtype"));

        Run badDtype = run("export", run.toString(), "--out", tmp.resolve("x").toString(), "--dtype", "f16");
        assertEquals(2, badDtype.code());
        assertEquals(1, badDtype.err().strip().lines().count(), badDtype.err());
        assertTrue(badDtype.err().contains("--dtype"), badDtype.err());
        Run missing = run("export", tmp.resolve("nothing").toString(), "--out", tmp.resolve("y").toString());
        assertEquals(2, missing.code());
        assertTrue(missing.err().startsWith("muon4j: there is no directory"), missing.err());
        assertFalse(Files.exists(tmp.resolve("y")));
    }

    @Test
    void trainInitFromStartsFromTheDirectorysWeightsAndRefusesAContradictingShape() throws Exception {
        Path out = tmp.resolve("hf-init");
        assertEquals(0, run("export", run.toString(), "--out", out.toString()).code());
        Path second = tmp.resolve("second");
        Run r = run("train", "--data", data.toString(), "--steps", "1", "--batch", "2", "--eval-batches", "1", "--backend", "vector",
                "--threads", "1", "--run-dir", second.toString(), "--init-from", out.toString());
        assertEquals(0, r.code(), r.out() + r.err());
        assertTrue(r.out().contains("initial weights: Hugging Face model " + out.toAbsolutePath()), r.out());
        assertTrue(r.out().contains("layers        1, width 32"), r.out());
        Map<String, Object> settings = JsonCodec.readObject(second.resolve("step-00000001/muon4j.json"));
        assertEquals("hugging_face", ((Map<?, ?>) settings.get("init_from")).get("kind"));

        Run contradicting = run("train", "--data", data.toString(), "--steps", "1", "--run-dir", tmp.resolve("third").toString(),
                "--init-from", out.toString(), "--width", "64", "--layers", "1");
        assertEquals(2, contradicting.code());
        assertEquals("muon4j: --init-from " + out + " sets the model's shape, and --width 64 (it has 32) contradicts it; leave the "
                + "shape flags out or give its values", contradicting.err().strip());
        Run preset = run("train", "--data", data.toString(), "--steps", "1", "--run-dir", tmp.resolve("fourth").toString(),
                "--init-from", run.toString(), "--preset", "small");
        assertEquals(2, preset.code());
        assertTrue(preset.err().startsWith("muon4j: --preset and --init-from both set the model's shape"), preset.err());
        Run tokenizer = run("train", "--data", data.toString(), "--steps", "1", "--run-dir", tmp.resolve("fifth").toString(),
                "--init-from", out.toString(), "--tokenizer", "gpt2");
        assertEquals(2, tokenizer.code());
        assertTrue(tokenizer.err().contains("was trained with tokenizer byte; give --tokenizer byte"), tokenizer.err());
        assertFalse(Files.exists(tmp.resolve("third")) || Files.exists(tmp.resolve("fourth")) || Files.exists(tmp.resolve("fifth")));
    }
}
