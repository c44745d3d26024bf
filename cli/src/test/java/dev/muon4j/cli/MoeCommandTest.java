package dev.muon4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.io.JsonCodec;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * {@code train --model deepseek}: the Mixture-of-Experts model trains from the command line with
 * its flags, records its family and shape so that a resume checks them, and bad combinations of
 * flags end in one line naming the flag.
 */
class MoeCommandTest {
    @TempDir
    Path tmp;

    private record Run(int code, String out, String err) {
    }

    private static Run run(String... args) {
        CommandLine cli = Main.commandLine();
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        cli.setOut(new PrintWriter(out));
        cli.setErr(new PrintWriter(err));
        return new Run(cli.execute(args), out.toString(), err.toString());
    }

    private String[] train(Path dir, String... flags) throws Exception {
        Path data = tmp.resolve("data.txt");
        Files.writeString(data, "Sphinx of black quartz, judge my vow. Pack my box with five dozen liquor jugs!\n".repeat(400));
        List<String> args = new java.util.ArrayList<>(List.of("train", "--model", "deepseek", "--batch", "2",
                "--context", "16", "--eval-batches", "1", "--data", data.toString(), "--run-dir", dir.toString()));
        args.addAll(List.of(flags));
        if (!args.contains("--steps")) {
            args.addAll(List.of("--steps", "2"));
        }
        return args.toArray(String[]::new);
    }

    @Test
    void theMoeModelTrainsFromTheCommandLineAndItsShapeIsPartOfTheRun() throws Exception {
        Path dir = tmp.resolve("run");
        Run r = run(train(dir, "--experts", "6", "--active-experts", "3", "--expert-width", "32", "--shared-experts", "1",
                "--router-bias-rate", "0.01", "--balance-loss", "0.0001"));
        assertEquals(0, r.code(), r.out() + r.err());
        assertTrue(r.out().contains("then 6 experts of 32") && r.out().contains("3 of 6 + 1 shared") && r.out().contains("attention     latent,"),
                r.out());
        Map<?, ?> config = JsonCodec.parseObject(Files.readString(dir.resolve("step-00000002/muon4j.json")));
        Map<?, ?> model = (Map<?, ?>) config.get("model");
        Map<?, ?> huggingFace = JsonCodec.parseObject(Files.readString(dir.resolve("step-00000002/config.json")));
        assertEquals("deepseek_v3", huggingFace.get("model_type"));
        assertEquals(6L, huggingFace.get("n_routed_experts"));
        assertEquals("deepseek", model.get("model"));
        assertEquals(6L, ((Map<?, ?>) model.get("moe")).get("experts"));
        assertEquals(1e-4, ((Number) ((Map<?, ?>) model.get("moe")).get("balance_loss_alpha")).doubleValue());
        assertEquals(0.01, ((Number) ((Map<?, ?>) config.get("train")).get("router_bias_rate")).doubleValue());
        String metrics = Files.readString(dir.resolve("metrics.jsonl"));
        assertTrue(metrics.contains("\"expert_load_max_mean\""), metrics);
        // Resuming with another expert count is another model: refused, naming the checkpoint.
        Run other = run(train(dir, "--experts", "8", "--active-experts", "3", "--expert-width", "32", "--shared-experts", "1",
                "--router-bias-rate", "0.01", "--balance-loss", "0.0001", "--steps", "3", "--resume"));
        assertEquals(2, other.code(), other.out() + other.err());
        assertTrue(other.err().contains("is from another model"), other.err());
        // Grouped-query attention on request.
        Run gqa = run(train(tmp.resolve("gqa"), "--attention", "gqa"));
        assertEquals(0, gqa.code(), gqa.out() + gqa.err());
        assertTrue(gqa.out().contains("attention     4 heads of 48 (4 key/value)"), gqa.out());
    }

    @Test
    void badFlagsAreNamed() throws Exception {
        Run medium = run(train(tmp.resolve("m"), "--preset", "medium"));
        assertEquals(2, medium.code());
        assertTrue(medium.err().contains("--preset medium has no Mixture-of-Experts model"), medium.err());
        Run tooMany = run(train(tmp.resolve("k"), "--experts", "4", "--active-experts", "5"));
        assertEquals(2, tooMany.code());
        assertTrue(tooMany.err().contains("--active-experts 5 is more than the 4 experts"), tooMany.err());
        Run llama = run("train", "--experts", "4", "--steps", "1", "--run-dir", tmp.resolve("l").toString());
        assertEquals(2, llama.code());
        assertTrue(llama.err().contains("--experts applies to --model deepseek only"), llama.err());
        Run huge = run(train(tmp.resolve("h"), "--experts", "100000"));
        assertEquals(2, huge.code());
        assertTrue(huge.err().contains("--experts 100000 × --expert-width 128 × --width 192 = 2,457,600,000 floats in one stack of experts")
                && huge.err().contains("the most experts of this width are 87,381"), huge.err());
        // latent attention's keys and values (2 × 48 columns per head) are the widest rows at context 64
        String[] wide = train(tmp.resolve("m"), "--mlp-width", "64", "--active-experts", "1", "--expert-width", "16");
        wide[java.util.Arrays.asList(wide).indexOf("--batch") + 1] = "100000";
        wide[java.util.Arrays.asList(wide).indexOf("--context") + 1] = "64";
        Run latent = run(wide);
        assertEquals(2, latent.code());
        assertTrue(latent.err().contains("100000 sequences × context 64 × 4 heads × 96 = 2,457,600,000 floats of latent-attention")
                && latent.err().contains("at most 87,381 sequences"), latent.err());
        Run dense = run(train(tmp.resolve("d"), "--dense-layers", "9"));
        assertEquals(2, dense.code());
        assertTrue(dense.err().contains("--dense-layers must be in 0..4 (the layers), got 9"), dense.err());
    }
}
