package dev.muon4j.cuda;

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
 * README.md's "Muon on an NVIDIA GPU" code, taken from the file: the {@code java cuda} block compiles
 * against this module's class path and runs, printing its plan everywhere and three steps where a
 * GPU is found.
 */
class ReadmeCudaCodeTest {
    private static final Pattern FENCE = Pattern.compile("(?ms)^```([^\\n]*)\\n(.*?)^```");

    @TempDir
    Path dir;

    private static List<String> blocks(String info) throws IOException {
        Path here = Path.of("").toAbsolutePath();
        while (!Files.exists(here.resolve("README.md")) || !Files.exists(here.resolve("cuda"))) {
            here = here.getParent();
        }
        List<String> out = new ArrayList<>();
        Matcher m = FENCE.matcher(Files.readString(here.resolve("README.md")));
        while (m.find()) {
            if (m.group(1).equals(info)) {
                out.add(m.group(2));
            }
        }
        return out;
    }

    @Test
    void theGpuExampleCompilesAndRuns() throws Exception {
        List<String> java = blocks("java cuda");
        assertEquals(1, java.size(), "README.md's java cuda blocks");
        Path source = Files.writeString(Files.createDirectories(dir.resolve("src")).resolve("GpuMuon.java"), java.getFirst());
        Path classes = Files.createDirectories(dir.resolve("classes"));
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        if (javac == null) {
            // a reduced JDK without the compiler (the GPU machine's): the build machine compiles it
            return;
        }
        DiagnosticCollector<JavaFileObject> diagnostics = new DiagnosticCollector<>();
        try (StandardJavaFileManager files = javac.getStandardFileManager(diagnostics, Locale.ROOT, null)) {
            boolean compiled = javac.getTask(null, files, diagnostics, List.of("--release", "25", "-d", classes.toString(),
                    "-classpath", System.getProperty("java.class.path")), null, files.getJavaFileObjects(source)).call();
            assertTrue(compiled, "README.md's CUDA block does not compile: " + diagnostics.getDiagnostics());
        }
        PrintStream out = System.out;
        ByteArrayOutputStream printed = new ByteArrayOutputStream();
        try (URLClassLoader loader = new URLClassLoader(new URL[] {classes.toUri().toURL()}, getClass().getClassLoader())) {
            System.setOut(new PrintStream(printed, true, StandardCharsets.UTF_8));
            loader.loadClass("GpuMuon").getMethod("main", String[].class).invoke(null, (Object) new String[0]);
        } finally {
            System.setOut(out);
        }
        String text = printed.toString(StandardCharsets.UTF_8);
        System.out.print(text);
        assertTrue(text.startsWith("groups: 2"), text);
        if (CudaDevice.unavailableReason().isPresent()) {
            assertTrue(text.contains("no GPU here: "), text);
        } else {
            assertEquals(3, text.split("StepResult\\[", -1).length - 1, text);
        }
    }
}
