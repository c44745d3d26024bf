package dev.muon4j.experiments;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/** The machine a report was made on, in words, for the reader who wants to compare times. */
public final class Machine {
    private Machine() {
    }

    /** "2 processors (AMD EPYC, x86_64), Linux 6.1.0, Java 25+36-LTS". */
    public static String describe() {
        String cpu = cpuModel();
        return Runtime.getRuntime().availableProcessors() + " processors (" + (cpu.isEmpty() ? "" : cpu + ", ")
                + System.getProperty("os.arch") + "), " + System.getProperty("os.name") + " " + System.getProperty("os.version")
                + ", Java " + Runtime.version();
    }

    /** The processor's model name from /proc/cpuinfo; empty where there is none. */
    static String cpuModel() {
        Path info = Path.of("/proc/cpuinfo");
        try {
            if (Files.isReadable(info)) {
                List<String> lines = Files.readAllLines(info);
                for (String line : lines) {
                    if (line.startsWith("model name")) {
                        int colon = line.indexOf(':');
                        return colon < 0 ? "" : line.substring(colon + 1).strip();
                    }
                }
            }
        } catch (IOException | RuntimeException e) {
            return "";
        }
        return "";
    }
}
