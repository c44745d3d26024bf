package dev.muon4j.autograd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.muon4j.backend.VectorBackend;
import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * muon4j-nn's kernels use the Vector API directly: on a plain {@code java} (a child JVM without
 * {@code --add-modules jdk.incubator.vector}) a {@link Graph} refuses to start with a message that
 * names the flag, rather than a {@code NoClassDefFoundError} from the first kernel.
 */
class GraphWithoutVectorApiTest {
    @TempDir
    Path dir;

    /** Run in the child: makes a graph and prints what happened. */
    public static void main(String[] args) {
        try (Graph graph = new Graph(new VectorBackend(1))) {
            System.out.println("made " + graph);
        } catch (IllegalStateException e) {
            System.out.println("refused: " + e.getMessage());
        }
    }

    @Test
    void aPlainJavaIsToldWhichFlagToAdd() throws Exception {
        String classPath = String.join(File.pathSeparator, List.of(
                Path.of(Graph.class.getProtectionDomain().getCodeSource().getLocation().toURI()).toString(),
                Path.of(VectorBackend.class.getProtectionDomain().getCodeSource().getLocation().toURI()).toString(),
                Path.of(GraphWithoutVectorApiTest.class.getProtectionDomain().getCodeSource().getLocation().toURI()).toString()));
        Path out = dir.resolve("out.txt");
        ProcessBuilder builder = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp", classPath, GraphWithoutVectorApiTest.class.getName()).redirectErrorStream(true).redirectOutput(out.toFile());
        builder.environment().remove("JAVA_TOOL_OPTIONS");
        builder.environment().remove("JDK_JAVA_OPTIONS");
        builder.environment().remove("_JAVA_OPTIONS");
        Process child = builder.start();
        if (!child.waitFor(120, TimeUnit.SECONDS)) {
            child.destroyForcibly().waitFor();
            fail("the child JVM did not finish in 120 s:\n" + Files.readString(out));
        }
        String output = Files.readString(out);
        assertEquals(0, child.exitValue(), output);
        assertTrue(output.contains("refused: muon4j-nn computes on the Vector API: start Java with --add-modules jdk.incubator.vector"),
                output);
        assertFalse(output.contains("NoClassDefFoundError"), output);
    }
}
