package dev.muon4j.bench;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.OptionalLong;

/**
 * How much memory this process has held: the peak resident set and the Java heap's peaks. The
 * resident peak is what the machine had to give the process (heap, the JVM's own memory, native
 * libraries' buffers), the number to hold against another framework's; the heap's figures tell how
 * much of it the heap was and how much of that was in use.
 *
 * <p>The resident peak is the kernel's high-water mark, {@code VmHWM} in {@code /proc/self/status};
 * only Linux has it, elsewhere it is unknown rather than guessed from a sample.
 *
 * @param peakResidentBytes the most bytes resident at once since the process started; empty where unknown
 * @param heapCommittedBytes the heap's committed bytes now (the pools' committed peaks are no help: a young
 *                           generation's peak and an old generation's come at different times, and
 *                           their sum can be many times the heap's)
 * @param heapUsedBytes      the sum over the heap's pools of each one's most used bytes: the heap's used
 *                           peak when the pools peak together, above it otherwise
 * @param heapMaxBytes       the most the heap may grow to ({@link Runtime#maxMemory()})
 */
public record MemoryReport(OptionalLong peakResidentBytes, long heapCommittedBytes, long heapUsedBytes, long heapMaxBytes) {
    private static final Path STATUS = Path.of("/proc/self/status");
    private static final double GIB = 1L << 30;

    /** The figures of this process now. */
    public static MemoryReport current() {
        long used = 0;
        for (MemoryPoolMXBean pool : ManagementFactory.getMemoryPoolMXBeans()) {
            if (pool.getType() == MemoryType.HEAP && pool.getPeakUsage() != null) {
                used += pool.getPeakUsage().getUsed();
            }
        }
        long committed = ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getCommitted();
        return new MemoryReport(peakResident(), committed, used, Runtime.getRuntime().maxMemory());
    }

    /** This process's {@code VmHWM}, empty where {@code /proc/self/status} is missing or has none. */
    static OptionalLong peakResident() {
        if (!Files.isReadable(STATUS)) {
            return OptionalLong.empty();
        }
        try {
            return highWaterMark(Files.readAllLines(STATUS));
        } catch (IOException | RuntimeException e) {
            return OptionalLong.empty();
        }
    }

    /**
     * The {@code VmHWM} line of a {@code /proc/<pid>/status} text in bytes ("VmHWM:   123456 kB";
     * the kernel writes kB for KiB).
     *
     * @param lines the file's lines
     * @return the bytes, or empty when no line is a well-formed {@code VmHWM}
     */
    static OptionalLong highWaterMark(List<String> lines) {
        for (String line : lines) {
            if (!line.startsWith("VmHWM:")) {
                continue;
            }
            String[] words = line.substring("VmHWM:".length()).trim().split("\\s+");
            if (words.length == 2 && words[1].equals("kB")) {
                try {
                    return OptionalLong.of(Math.multiplyExact(Long.parseLong(words[0]), 1024L));
                } catch (NumberFormatException | ArithmeticException e) {
                    return OptionalLong.empty();
                }
            }
        }
        return OptionalLong.empty();
    }

    /**
     * One line: "peak resident memory 1.32 GiB (VmHWM); heap: 1.20 GiB committed, peak used 1.10 GiB,
     * limit 17.2 GiB".
     */
    public String describe() {
        String resident = peakResidentBytes.isPresent() ? gib(peakResidentBytes.getAsLong()) + " (VmHWM)"
                : "unknown (no /proc/self/status on this system)";
        return String.format(Locale.ROOT, "peak resident memory %s; heap: %s committed, peak used %s, limit %s",
                resident, gib(heapCommittedBytes), gib(heapUsedBytes), gib(heapMaxBytes));
    }

    private static String gib(long bytes) {
        return String.format(Locale.ROOT, "%.2f GiB", bytes / GIB);
    }
}
