package dev.muon4j.optim;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.muon4j.backend.ChildJvm;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.tools.Diagnostic;
import javax.tools.DiagnosticCollector;
import javax.tools.JavaCompiler;
import javax.tools.JavaFileObject;
import javax.tools.StandardJavaFileManager;
import javax.tools.ToolProvider;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * README.md's code, taken from the file itself: every fenced {@code java} block is a whole source
 * file that must compile against muon4j-core alone, and run on a plain {@code java} (no flags,
 * core's classes and the org.bytedeco jars on the class path) doing what the README says it does;
 * the Maven snippet must name the versions this build has.
 */
class ReadmeCodeTest {
    /** A fenced block and its whole info string: {@code java}, or {@code java djl} for muon4j-djl's (its own test compiles those). */
    private static final Pattern FENCE = Pattern.compile("(?ms)^```([^\\n]*)\\n(.*?)^```");
    private static final Pattern PUBLIC_CLASS = Pattern.compile("(?m)^public (?:final )?class (\\w+)");

    @TempDir
    static Path dir;

    static Path root;
    static String readme;
    static Path classes;

    @BeforeAll
    static void compileTheJavaBlocks() throws IOException {
        root = repositoryRoot();
        readme = Files.readString(root.resolve("README.md"));
        Path sources = Files.createDirectories(dir.resolve("src"));
        classes = Files.createDirectories(dir.resolve("classes"));
        List<Path> files = new ArrayList<>();
        for (String block : blocks("java")) {
            Matcher name = PUBLIC_CLASS.matcher(block);
            if (!name.find()) {
                fail("a java block of README.md declares no public class, so it is no source file:\n" + block);
            }
            Path file = sources.resolve(name.group(1) + ".java");
            if (Files.exists(file)) {
                fail("two java blocks of README.md declare class " + name.group(1));
            }
            files.add(Files.writeString(file, block));
        }
        assertEquals(List.of("FitTeacher.java", "CustomRule.java"), files.stream().map(p -> p.getFileName().toString()).toList(),
                "README.md's java blocks");

        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        DiagnosticCollector<JavaFileObject> diagnostics = new DiagnosticCollector<>();
        try (StandardJavaFileManager fileManager = javac.getStandardFileManager(diagnostics, Locale.ROOT, null)) {
            List<String> options = List.of("--release", "25", "-Xlint:all", "-d", classes.toString(),
                    "-classpath", ChildJvm.location(Parameter.class));   // muon4j-core and nothing else
            boolean compiled = javac.getTask(null, fileManager, diagnostics, options, null,
                    fileManager.getJavaFileObjectsFromPaths(files)).call();
            StringBuilder report = new StringBuilder();
            for (Diagnostic<? extends JavaFileObject> d : diagnostics.getDiagnostics()) {
                report.append('\n').append(d.getKind()).append(' ').append(d.getSource() == null ? "" : d.getSource().getName())
                        .append(':').append(d.getLineNumber()).append(": ").append(d.getMessage(Locale.ROOT));
            }
            assertTrue(compiled, "README.md's java blocks do not compile:" + report);
            assertTrue(diagnostics.getDiagnostics().isEmpty(), "README.md's java blocks compile with warnings:" + report);
        }
    }

    @Test
    void theTrainingLoopLearnsTheTeacherAndSavesItsState() throws Exception {
        Path work = Files.createDirectories(dir.resolve("fit"));
        ChildJvm.Result run = run("FitTeacher", work);
        Matcher loss = Pattern.compile("^step (\\d+): loss (\\S+), gradient norm (\\S+)$", Pattern.MULTILINE).matcher(run.stdout());
        List<Double> losses = new ArrayList<>();
        long lastStep = 0;
        while (loss.find()) {
            lastStep = Long.parseLong(loss.group(1));
            losses.add(Double.parseDouble(loss.group(2)));
        }
        assertTrue(losses.size() >= 2, "loss lines printed" + run.describe());
        assertEquals(300, lastStep, "the last step printed" + run.describe());
        assertTrue(losses.getLast() < losses.getFirst() * 1e-3,
                "the loss fell from " + losses.getFirst() + " to " + losses.getLast() + ", less than 1000-fold" + run.describe());
        OptimizerState state = OptimizerState.read(work.resolve("optimizer.safetensors"));
        assertEquals(300, state.step(), "steps in the saved state");
        assertEquals(Route.MUON, state.entries().get("layer.weight").route(), "the matrix's route");
        assertEquals(Route.ADAMW, state.entries().get("layer.bias").route(), "the bias's route");
    }

    @Test
    void theCustomRuleRunsWhereItsPatternMatches() throws Exception {
        ChildJvm.Result run = run("CustomRule", Files.createDirectories(dir.resolve("custom")));
        // The README quotes these after the block.
        for (String line : List.of("model.layers.0.mlp.up_proj.weight: muon_with_trace [trace]",
                "model.layers.0.self_attn.q_proj.weight: muon [momentum]",
                "model.layers.0.input_layernorm.weight: adamw [exp_avg, exp_avg_sq]")) {
            assertTrue(run.stdout().lines().anyMatch(line::equals), "prints '" + line + "'" + run.describe());
            String quoted = line.substring(line.indexOf(": ") + 2);
            assertTrue(readme.contains("`" + quoted + "`"), "README.md quotes `" + quoted + "`");
        }
    }

    @Test
    void theMavenSnippetNamesThisBuildsVersions() throws IOException {
        String pom = Files.readString(root.resolve("pom.xml"));
        String xml = String.join("\n", blocks("xml"));
        assertEquals(projectVersion(pom), dependencyVersion(xml, "dev.muon4j", "muon4j-core"), "muon4j-core's version in README.md");
        assertEquals(property(pom, "openblas.version"), dependencyVersion(xml, "org.bytedeco", "openblas"), "openblas's version in README.md");
        assertEquals(property(pom, "dnnl.version"), dependencyVersion(xml, "org.bytedeco", "dnnl"), "dnnl's version in README.md");
    }

    private static ChildJvm.Result run(String mainClass, Path work) throws Exception {
        List<String> classPath = new ArrayList<>(ChildJvm.coreClassPath());
        classPath.add(classes.toString());
        ChildJvm.Result run = ChildJvm.run(classPath, mainClass, work, 180);
        assertEquals(0, run.exitValue(), mainClass + " from README.md failed" + run.describe());
        return run;
    }

    /** The contents of README.md's fenced blocks of one language, in order. */
    private static List<String> blocks(String language) {
        List<String> out = new ArrayList<>();
        Matcher m = FENCE.matcher(readme);
        while (m.find()) {
            if (m.group(1).equals(language)) {
                out.add(m.group(2));
            }
        }
        return out;
    }

    static String projectVersion(String pom) {
        Matcher m = Pattern.compile("<artifactId>muon4j-parent</artifactId>\\s*<version>([^<]+)</version>").matcher(pom);
        assertTrue(m.find(), "the parent POM's version");
        return m.group(1);
    }

    private static String property(String pom, String name) {
        Matcher m = Pattern.compile("<" + Pattern.quote(name) + ">([^<]+)</").matcher(pom);
        assertTrue(m.find(), "property " + name + " in pom.xml");
        return m.group(1);
    }

    private static String dependencyVersion(String xml, String groupId, String artifactId) {
        Matcher m = Pattern.compile("<groupId>" + Pattern.quote(groupId) + "</groupId>\\s*<artifactId>" + Pattern.quote(artifactId)
                + "</artifactId>\\s*<version>([^<]+)</version>").matcher(xml);
        assertTrue(m.find(), groupId + ":" + artifactId + " in README.md's xml block");
        return m.group(1);
    }

    /** The directory with README.md and the parent pom.xml, found upwards from the working directory. */
    static Path repositoryRoot() {
        for (Path p = Path.of("").toAbsolutePath(); p != null; p = p.getParent()) {
            if (Files.isRegularFile(p.resolve("README.md")) && Files.isRegularFile(p.resolve("pom.xml"))
                    && Files.isDirectory(p.resolve("core"))) {
                return p;
            }
        }
        throw new IllegalStateException("no README.md with pom.xml and core/ above " + Path.of("").toAbsolutePath());
    }
}
