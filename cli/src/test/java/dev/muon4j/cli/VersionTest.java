package dev.muon4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * One version everywhere: the parent POM's is every module's parent version, what
 * {@code muon4j --version} prints, and in no launcher, script or README class path as a file name.
 */
class VersionTest {
    private static final Path ROOT = Path.of("").toAbsolutePath().getParent();

    private static String parentVersion() throws IOException {
        Matcher m = Pattern.compile("<artifactId>muon4j-parent</artifactId>\\s*<version>([^<]+)</version>")
                .matcher(Files.readString(ROOT.resolve("pom.xml")));
        assertTrue(m.find(), "muon4j-parent's version in " + ROOT.resolve("pom.xml"));
        return m.group(1);
    }

    @Test
    void everyModuleHasTheParentsVersion() throws IOException {
        String version = parentVersion();
        Matcher modules = Pattern.compile("<module>([^<]+)</module>").matcher(Files.readString(ROOT.resolve("pom.xml")));
        int count = 0;
        while (modules.find()) {
            Path pom = ROOT.resolve(modules.group(1)).resolve("pom.xml");
            Matcher parent = Pattern.compile("<parent>.*?<version>([^<]+)</version>.*?</parent>", Pattern.DOTALL)
                    .matcher(Files.readString(pom));
            assertTrue(parent.find(), "a parent in " + pom);
            assertEquals(version, parent.group(1), "the parent version in " + pom);
            count++;
        }
        assertEquals(9, count, "modules of the parent POM");
    }

    @Test
    void versionOptionPrintsTheBuildsVersion() throws IOException {
        StringWriter out = new StringWriter();
        int status = Main.commandLine().setOut(new PrintWriter(out, true)).execute("--version");
        assertEquals(0, status);
        assertEquals("muon4j " + parentVersion(), out.toString().strip());
        assertEquals(parentVersion(), Main.version());
    }

    @Test
    void noLauncherScriptOrReadmeNamesAVersionedJar() throws IOException {
        Pattern versionedJar = Pattern.compile("muon4j-[a-z]+-\\d[^\\s\"/*]*\\.jar");
        try (Stream<Path> scripts = Files.list(ROOT.resolve("scripts"))) {
            for (Path file : Stream.concat(Stream.of(ROOT.resolve("muon4j"), ROOT.resolve("build.sh"), ROOT.resolve("README.md")),
                    scripts.filter(Files::isRegularFile)).toList()) {
                Matcher m = versionedJar.matcher(Files.readString(file));
                if (m.find()) {
                    fail(file + " names a jar by its version: " + m.group() + " (cli/target/muon4j-cli.jar has none)");
                }
            }
        }
        assertTrue(Files.readString(ROOT.resolve("muon4j")).contains("cli/target/muon4j-cli.jar"), "the launcher's jar");
    }
}
