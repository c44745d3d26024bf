package dev.muon4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/** The demo command runs end to end and both optimizers lower the validation loss. */
class DemoCommandTest {

    private static String run(String... args) {
        CommandLine cli = Main.commandLine();
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        cli.setOut(new PrintWriter(out));
        cli.setErr(new PrintWriter(err));
        int code = cli.execute(args);
        assertEquals(0, code, () -> "exit code; stderr: " + err);
        return out.toString();
    }

    @Test
    void bothOptimizersLowerTheLoss() {
        String out = run("demo", "--steps", "60", "--every", "20", "--batch", "64");
        Matcher first = Pattern.compile("\\n\\s+0\\s+([0-9.]+)\\s+([0-9.]+)").matcher(out);
        Matcher last = Pattern.compile("final validation loss: AdamW ([0-9.]+), Muon ([0-9.]+)").matcher(out);
        assertTrue(first.find(), out);
        assertTrue(last.find(), out);
        double adamStart = Double.parseDouble(first.group(1));
        double muonStart = Double.parseDouble(first.group(2));
        assertEquals(adamStart, muonStart, 1e-9, "both runs start from the same weights");
        assertTrue(Double.parseDouble(last.group(1)) < 0.5 * adamStart, out);
        assertTrue(Double.parseDouble(last.group(2)) < 0.5 * muonStart, out);
    }

    @Test
    void rejectsNonPositiveSteps() {
        CommandLine cli = Main.commandLine();
        StringWriter err = new StringWriter();
        cli.setErr(new PrintWriter(err));
        cli.setOut(new PrintWriter(new StringWriter()));
        int code = cli.execute("demo", "--steps", "0");
        assertEquals(2, code);
        assertTrue(err.toString().contains("--steps"), err.toString());
    }
}
