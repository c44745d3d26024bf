package dev.muon4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.OptionalLong;
import org.junit.jupiter.api.Test;

/** The peak resident memory read from the kernel, and the heap's peaks. */
class MemoryReportTest {
    @Test
    void readsTheHighWaterMarkInBytes() {
        List<String> status = List.of("Name:\tjava", "VmPeak:\t 9000000 kB", "VmHWM:\t  123456 kB", "VmRSS:\t  100000 kB");
        assertEquals(OptionalLong.of(123456L * 1024), MemoryReport.highWaterMark(status));
    }

    @Test
    void aMissingOrMalformedLineIsUnknown() {
        assertEquals(OptionalLong.empty(), MemoryReport.highWaterMark(List.of("Name:\tjava", "VmRSS:\t 100 kB")));
        assertEquals(OptionalLong.empty(), MemoryReport.highWaterMark(List.of("VmHWM:\t 12x kB")));
        assertEquals(OptionalLong.empty(), MemoryReport.highWaterMark(List.of("VmHWM:\t 12 MB")));
    }

    /**
     * On Linux the peak is at least what this test has just made resident (64 MiB touched) and
     * below the heap's limit plus the JVM's own memory; the heap holds at most its limit.
     */
    @Test
    void thePeakOnLinuxIsPlausible() {
        byte[] touched = new byte[64 << 20];
        for (int i = 0; i < touched.length; i += 4096) {
            touched[i] = 1;
        }
        MemoryReport report = MemoryReport.current();
        assertTrue(touched[touched.length - 4096] == 1);
        assertTrue(report.heapUsedBytes() >= touched.length, report.describe());
        assertTrue(report.heapCommittedBytes() <= report.heapMaxBytes(), report.describe());
        if (Files.isReadable(Path.of("/proc/self/status"))) {
            long peak = report.peakResidentBytes().orElseThrow();
            assertTrue(peak >= touched.length, report.describe());
            assertTrue(peak <= Runtime.getRuntime().maxMemory() + (8L << 30), report.describe());
            assertTrue(report.describe().contains("(VmHWM)"), report.describe());
        } else {
            assertTrue(report.peakResidentBytes().isEmpty());
            assertTrue(report.describe().contains("unknown"), report.describe());
        }
    }
}
