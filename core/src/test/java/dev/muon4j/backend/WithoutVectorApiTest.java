package dev.muon4j.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * muon4j-core on a plain {@code java}: a child JVM started with only a class path (core's classes,
 * {@link WithoutVectorApiMain}, and the org.bytedeco jars), no {@code --add-modules
 * jdk.incubator.vector}, no other flag, runs hybrid-optimizer steps on the pure-Java backend and on
 * AUTO's. It must exit normally, say once how to turn the Vector API on, and end with the
 * parameters this JVM computes with the Vector API: the same bits on the pure-Java backend where
 * the preferred vector holds 8 floats (the plain loops keep 8 running sums in {@code sumOfSquares}),
 * within 1e-6 otherwise and on AUTO's backend.
 */
class WithoutVectorApiTest {
    private static final String MESSAGE = VectorApi.MODULE + " is not in this JVM";

    @TempDir
    Path dir;

    @Test
    void optimizerStepsRunOnAPlainJavaAndSayHowToTurnOnTheVectorApi() throws Exception {
        List<String> classPath = new ArrayList<>(ChildJvm.coreClassPath());
        classPath.add(ChildJvm.location(WithoutVectorApiMain.class));
        ChildJvm.Result child = ChildJvm.run(classPath, WithoutVectorApiMain.class.getName(), dir, 180);
        String context = child.describe();
        assertEquals(0, child.exitValue(), "exit status of the child JVM" + context);
        assertFalse(child.stderr().contains("NoClassDefFoundError") || child.stderr().contains("Exception"),
                "errors in the child" + context);

        int told = child.stderr().split(MESSAGE, -1).length - 1;
        assertEquals(1, told, "times the child said '" + MESSAGE + "'" + context);
        assertTrue(child.stderr().contains("--add-modules " + VectorApi.MODULE), "the message names the flag" + context);

        List<String> lines = child.stdout().lines().toList();
        assertEquals(3, lines.size(), "lines of output" + context);
        assertEquals("vector-api false", lines.get(0), context);

        boolean sameLanes = VectorKernels.S.length() == PlainKernels.LANES;
        float[] vectorApi = WithoutVectorApiMain.run(new VectorBackend(1, true));
        String[] pure = lines.get(1).split(" ");
        assertEquals("VECTOR", pure[0], context);
        assertEquals("VECTOR", pure[1], "the backend opened for VECTOR" + context);
        compare(vectorApi, pure, sameLanes ? 0 : 1e-6, "pure-Java backend");

        String[] auto = lines.get(2).split(" ");
        assertEquals("AUTO", auto[0], context);
        try (Backend backend = Backends.open(new BackendConfig(BackendKind.AUTO, 1))) {
            assertEquals(backend.kind().name(), auto[1], "the backend AUTO picked in the child and here" + context);
            compare(WithoutVectorApiMain.run(backend), auto, 1e-6, "AUTO's backend " + auto[1]);
        }
    }

    private static void compare(float[] want, String[] line, double tolerance, String what) {
        assertEquals(want.length + 2, line.length, what + ": values printed");
        for (int i = 0; i < want.length; i++) {
            float got = Float.intBitsToFloat(Integer.parseUnsignedInt(line[i + 2], 16));
            boolean same = tolerance == 0 ? Float.floatToRawIntBits(got) == Float.floatToRawIntBits(want[i])
                    : Math.abs(got - want[i]) <= tolerance;
            if (!same) {
                fail(what + ": value " + i + " is " + got + " without the Vector API, " + want[i] + " with it"
                        + (tolerance == 0 ? " (must be the same bits)" : " (tolerance " + tolerance + ")"));
            }
        }
    }
}
