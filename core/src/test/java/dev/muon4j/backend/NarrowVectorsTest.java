package dev.muon4j.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.muon4j.tensor.BFloat16;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The bfloat16 conversions on JVMs whose vectors are narrower than this machine's: a child JVM with the
 * Vector API and {@code -XX:MaxVectorSize} of 8, 16 and 32 bytes (2, 4 and 8 floats: a JVM without C2's
 * wide vectors, an SSE and an AVX2 processor) writes and reads back the same bits as
 * {@link BFloat16#toBits} and {@link BFloat16#fromBits}.
 */
class NarrowVectorsTest {
    @TempDir
    Path dir;

    @ParameterizedTest
    @ValueSource(ints = {8, 16, 32})
    void bfloat16ConversionsGiveTheSameBitsAtAnyVectorWidth(int maxVectorBytes) throws Exception {
        List<String> classPath = new ArrayList<>(ChildJvm.coreClassPath());
        classPath.add(ChildJvm.location(NarrowVectorsMain.class));
        ChildJvm.Result child = ChildJvm.run(List.of("--add-modules", VectorApi.MODULE, "--enable-native-access=ALL-UNNAMED",
                "-XX:MaxVectorSize=" + maxVectorBytes), classPath, NarrowVectorsMain.class.getName(), dir, 120);
        String context = child.describe();
        assertEquals(0, child.exitValue(), "exit status of the child JVM" + context);
        List<String> lines = child.stdout().lines().toList();
        assertEquals(3, lines.size(), "lines of output" + context);
        int lanes = Integer.parseInt(lines.get(0).substring("lanes ".length()));
        assertTrue(lanes >= 2 && lanes <= maxVectorBytes / Float.BYTES, "the child's float vector: " + lanes + " lanes" + context);
        float[] x = NarrowVectorsMain.input();
        String[] got = lines.get(1).split(" ");
        assertEquals(x.length, got.length, "patterns written" + context);
        for (int i = 0; i < x.length; i++) {
            int want = BFloat16.toBits(x[i] * NarrowVectorsMain.SCALE) & 0xffff;
            assertEquals(want, Integer.parseInt(got[i], 16), "element " + i + " (" + x[i] + ") at " + lanes + " lanes");
        }
        assertEquals("fromBFloat16 mismatches 0", lines.get(2), context);
    }
}
