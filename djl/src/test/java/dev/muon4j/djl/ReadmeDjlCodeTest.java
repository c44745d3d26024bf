package dev.muon4j.djl;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.tools.DiagnosticCollector;
import javax.tools.JavaCompiler;
import javax.tools.JavaFileObject;
import javax.tools.StandardJavaFileManager;
import javax.tools.ToolProvider;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * README.md's "Muon in DJL" code, taken from the file: the {@code java djl} block compiles against
 * this module's class path and trains (loss falling, the routes it prints), and the {@code xml djl}
 * block names this build's versions.
 */
class ReadmeDjlCodeTest {
    private static final Pattern FENCE = Pattern.compile("(?ms)^```([^\\n]*)\\n(.*?)^```");

    @TempDir
    Path dir;

    static String readme() throws IOException {
        Path here = Path.of("").toAbsolutePath();
        while (!Files.exists(here.resolve("README.md")) || !Files.exists(here.resolve("djl"))) {
            here = here.getParent();
        }
        return Files.readString(here.resolve("README.md"));
    }

    static List<String> blocks(String info) throws IOException {
        List<String> out = new ArrayList<>();
        Matcher m = FENCE.matcher(readme());
        while (m.find()) {
            if (m.group(1).equals(info)) {
                out.add(m.group(2));
            }
        }
        return out;
    }

    @Test
    void theDjlExampleCompilesAndTrains() throws Exception {
        List<String> java = blocks("java djl");
        assertEquals(1, java.size(), "README.md's java djl blocks");
        Path source = Files.writeString(Files.createDirectories(dir.resolve("src")).resolve("DjlMuon.java"), java.getFirst());
        Path classes = Files.createDirectories(dir.resolve("classes"));
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        DiagnosticCollector<JavaFileObject> diagnostics = new DiagnosticCollector<>();
        try (StandardJavaFileManager files = javac.getStandardFileManager(diagnostics, Locale.ROOT, null)) {
            boolean compiled = javac.getTask(null, files, diagnostics, List.of("--release", "25", "-d", classes.toString(),
                    "-classpath", System.getProperty("java.class.path")), null, files.getJavaFileObjects(source)).call();
            assertTrue(compiled, "README.md's DJL block does not compile: " + diagnostics.getDiagnostics());
        }
        PrintStream out = System.out;
        ByteArrayOutputStream printed = new ByteArrayOutputStream();
        try (URLClassLoader loader = new URLClassLoader(new URL[] {classes.toUri().toURL()}, getClass().getClassLoader())) {
            System.setOut(new PrintStream(printed, true, StandardCharsets.UTF_8));
            loader.loadClass("DjlMuon").getMethod("main", String[].class).invoke(null, (Object) new String[0]);
        } finally {
            System.setOut(out);
        }
        String text = printed.toString(StandardCharsets.UTF_8);
        System.out.print(text);
        Matcher loss = Pattern.compile("(?m)^step (\\d+): loss (\\S+)$").matcher(text);
        List<Double> losses = new ArrayList<>();
        while (loss.find()) {
            losses.add(Double.parseDouble(loss.group(2)));
        }
        assertEquals(4, losses.size(), "a loss every 25 of 100 steps:\n" + text);
        assertTrue(losses.getLast() < losses.getFirst() / 2, "the loss fell: " + losses);
        for (String route : List.of("01Linear_weight=MUON", "03Linear_weight=MUON", "05Linear_weight=ADAMW", "01Linear_bias=ADAMW")) {
            assertTrue(text.contains(route), "prints " + route + ":\n" + text);
        }
    }

    @Test
    void theMavenSnippetNamesThisBuildsVersions() throws IOException {
        List<String> xml = blocks("xml djl");
        assertEquals(1, xml.size(), "README.md's xml djl blocks");
        Path root = Path.of("").toAbsolutePath();
        String pom = Files.readString(root.resolve("pom.xml"));   // surefire runs in the module's directory
        assertTrue(xml.getFirst().contains("<artifactId>muon4j-djl</artifactId>\n  <version>" + version(pom, "<parent>", "<version>")
                + "</version>"), "muon4j-djl's version in README.md");
        assertTrue(xml.getFirst().contains("<artifactId>pytorch-engine</artifactId>\n  <version>" + version(pom, "<properties>", "<djl.version>")
                + "</version>"), "DJL's version in README.md");
    }

    private static String version(String pom, String after, String tag) {
        int from = pom.indexOf(tag, pom.indexOf(after)) + tag.length();
        return pom.substring(from, pom.indexOf('<', from));
    }
}
