package dev.muon4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/** {@code bench optimizer --backend}: a CPU backend's name, CUDA, or a clear error; CUDA without a GPU says what is missing. */
class BenchOptimizerCommandTest {
    private record Result(int code, String err) {
    }

    private static Result run(String... args) {
        CommandLine cli = Main.commandLine();
        StringWriter stderr = new StringWriter();
        cli.setOut(new PrintWriter(new StringWriter()));
        cli.setErr(new PrintWriter(stderr));
        int code = cli.execute(args);
        return new Result(code, stderr.toString());
    }

    @Test
    void anUnknownBackendIsNamedWithTheChoices() {
        Result r = run("bench", "optimizer", "--backend", "tpu");
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().contains("no backend tpu") && r.err().contains("CUDA") && r.err().contains("VECTOR"), r.err());
    }

    @Test
    void cudaWithoutAGpuSaysWhatIsMissing() {
        if (dev.muon4j.cuda.CudaDevice.unavailableReason().isEmpty()) {
            return; // a GPU is here: the benchmark would run; the GPU machine's check runs it
        }
        Result r = run("bench", "optimizer", "--backend", "cuda", "--repetitions", "1");
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().startsWith("muon4j: ") && r.err().contains("libcuda"), r.err());
    }

    @Test
    void repetitionsBelowOneAreRefused() {
        Result r = run("bench", "optimizer", "--backend", "cuda", "--repetitions", "0");
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().contains("--repetitions"), r.err());
    }
}
