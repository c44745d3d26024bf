package dev.muon4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * The two commands at the top of README.md stay true: CI runs exactly README's test command,
 * {@code ./build.sh} runs Maven through the wrapper, and the wrapper pins a Maven release from
 * Maven Central with its SHA-256, so a machine needs only a JDK.
 */
class BuildScriptsTest {
    private static final Path ROOT = Path.of("").toAbsolutePath().getParent();

    /** The commands of README.md's first code block, comments dropped. */
    private static List<String> readmeCommands() throws IOException {
        Matcher block = Pattern.compile("(?ms)^```bash\\n(.*?)^```").matcher(Files.readString(ROOT.resolve("README.md")));
        assertTrue(block.find(), "a bash block in README.md");
        return block.group(1).lines().map(line -> line.replaceFirst("#.*", "").strip()).filter(line -> !line.isEmpty()).toList();
    }

    @Test
    void ciRunsReadmesTestCommand() throws IOException {
        List<String> commands = readmeCommands();
        assertEquals(List.of("./muon4j compare", "./build.sh test"), commands, "README.md's first commands");
        List<String> ci = Files.readAllLines(ROOT.resolve(".ci/run")).stream().map(String::strip)
                .filter(line -> !line.isEmpty() && !line.startsWith("#")).toList();
        assertEquals(commands.get(1), ci.getLast(), "the last command of .ci/run");
        String script = Files.readString(ROOT.resolve(".ci/run"));
        assertFalse(Pattern.compile("need\\+=\\([^)]*\\bmaven\\b").matcher(script).find() || script.contains("command -v mvn"),
                ".ci/run neither installs nor looks for a system Maven: ./mvnw brings it");
    }

    @Test
    void buildShRunsTheWrapperWithAPinnedMaven() throws IOException {
        String buildSh = Files.readString(ROOT.resolve("build.sh"));
        assertTrue(buildSh.contains("exec ./mvnw "), "build.sh runs ./mvnw");
        assertFalse(Pattern.compile("(?m)^[^#]*\\bmvn ").matcher(buildSh).find(), "build.sh runs no system mvn");
        assertTrue(Files.isExecutable(ROOT.resolve("mvnw")), "mvnw is executable");
        String properties = Files.readString(ROOT.resolve(".mvn/wrapper/maven-wrapper.properties"));
        assertTrue(Pattern.compile("(?m)^distributionUrl=https://repo\\.maven\\.apache\\.org/maven2/org/apache/maven/apache-maven/"
                + "(\\d+\\.\\d+\\.\\d+)/apache-maven-\\1-bin\\.zip$").matcher(properties).find(),
                "the wrapper downloads a Maven release from Maven Central:\n" + properties);
        assertTrue(Pattern.compile("(?m)^distributionSha256Sum=[0-9a-f]{64}$").matcher(properties).find(),
                "the wrapper checks the download's SHA-256:\n" + properties);
    }

    /**
     * muon4j as a Maven dependency: {@code scripts/consumer-check.sh} installs the parent and core with
     * {@code ./mvnw}, builds {@code examples/consumer} (a project of its own naming
     * {@code dev.muon4j:muon4j-core} by its coordinates) and runs its Muon steps on a plain {@code java}.
     */
    @Test
    void aSeparateMavenProjectBuildsAgainstTheInstalledCoreAndRunsMuon() throws Exception {
        Process p = new ProcessBuilder("bash", ROOT.resolve("scripts/consumer-check.sh").toString())
                .directory(ROOT.toFile()).redirectErrorStream(true).start();
        String output = new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
        assertTrue(p.waitFor(10, java.util.concurrent.TimeUnit.MINUTES), "the check ended within 10 minutes:\n" + output);
        assertEquals(0, p.exitValue(), output);
        Matcher m = Pattern.compile("muon4j-core from the local repository, .*: loss ([0-9.]+) -> ([0-9.]+) after 50 Muon steps")
                .matcher(output);
        assertTrue(m.find(), output);
        assertTrue(Double.parseDouble(m.group(2)) < 0.5 * Double.parseDouble(m.group(1)), m.group());
        assertTrue(output.contains("jdk.incubator.vector is not in this JVM"), "a plain java, without the Vector API flag:\n" + output);
    }
}
