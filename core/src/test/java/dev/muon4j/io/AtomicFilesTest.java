package dev.muon4j.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Atomic writes replace a file whole, leave nothing behind, and give the file the permissions of any new file. */
class AtomicFilesTest {
    @TempDir
    Path dir;

    /**
     * The permissions of a file created plainly in {@code dir}: read and write for all less the umask
     * (0644 under umask 022).
     */
    static Set<PosixFilePermission> newFilePermissions(Path dir) throws IOException {
        Path reference = Files.createFile(dir.resolve(".reference-" + System.nanoTime()));
        try {
            return Files.getPosixFilePermissions(reference);
        } finally {
            Files.delete(reference);
        }
    }

    @Test
    void writesReplaceTheFileWithTheUsualPermissions() throws IOException {
        assumeTrue(FileSystems.getDefault().supportedFileAttributeViews().contains("posix"), "POSIX permissions");
        Path file = dir.resolve("sub/report.md");
        AtomicFiles.write(file, out -> out.write("first".getBytes(StandardCharsets.UTF_8)));
        AtomicFiles.write(file, out -> out.write("second".getBytes(StandardCharsets.UTF_8)));
        assertEquals("second", Files.readString(file));
        Set<PosixFilePermission> expected = newFilePermissions(file.getParent());
        assertEquals(expected, Files.getPosixFilePermissions(file));
        try (Stream<Path> files = Files.list(file.getParent())) {
            assertEquals(List.of(file), files.toList(), "no temporary file is left");
        }
    }

    @Test
    void aFailedWriteLeavesTheOldFile() throws IOException {
        Path file = dir.resolve("state.bin");
        AtomicFiles.write(file, out -> out.write(new byte[] {1, 2, 3}));
        IOException e = assertThrows(IOException.class, () -> AtomicFiles.write(file, out -> {
            out.write(new byte[] {9, 9});
            throw new IOException("disk full");
        }));
        assertEquals("disk full", e.getMessage());
        assertArrayEquals(new byte[] {1, 2, 3}, Files.readAllBytes(file));
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(List.of(file), files.toList(), "the temporary file was removed");
        }
    }
}
