package dev.muon4j.io;

import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.SecureRandom;

/**
 * Durable, atomic file writes: a reader sees the old file or the complete new one, never a part. A
 * file written here gets the permissions of any new file (read and write for all, less the umask:
 * 0644 under the usual umask 022), not the owner-only 0600 of {@link Files#createTempFile}.
 */
public final class AtomicFiles {
    private static final int BUFFER = 1 << 16;
    private static final SecureRandom RANDOM = new SecureRandom();
    private static final int NAME_ATTEMPTS = 100;

    private AtomicFiles() {
    }

    /** Writes a file's bytes to a stream (buffered; the caller neither flushes nor closes it). */
    @FunctionalInterface
    public interface Content {
        void writeTo(OutputStream out) throws IOException;
    }

    /**
     * Writes {@code file} atomically: into a temporary file in the same directory, fsynced, renamed
     * over {@code file}, and the directory fsynced.
     *
     * @throws IOException if writing fails, or the file system cannot rename atomically; {@code file}
     *                     is then left as it was
     */
    public static void write(Path file, Content content) throws IOException {
        Path dir = file.toAbsolutePath().getParent();
        Files.createDirectories(dir);
        Path tmp = createSibling(dir, file.getFileName().toString());
        try {
            try (FileChannel channel = FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
                OutputStream out = new BufferedOutputStream(Channels.newOutputStream(channel), BUFFER);
                content.writeTo(out);
                out.flush();
                channel.force(true);
            }
            try {
                Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                throw new IOException("cannot atomically replace " + file + ": the file system does not support atomic moves", e);
            }
            fsyncDirectory(dir);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    /**
     * Creates a new empty file {@code .NAME.RANDOM.tmp} in {@code dir} with the permissions of any new
     * file (the umask applies), for writing and then renaming over {@code NAME}.
     */
    public static Path createSibling(Path dir, String name) throws IOException {
        for (int attempt = 1; ; attempt++) {
            Path tmp = dir.resolve("." + name + "." + Long.toUnsignedString(RANDOM.nextLong(), 36) + ".tmp");
            try {
                return Files.createFile(tmp);
            } catch (FileAlreadyExistsException e) {
                if (attempt == NAME_ATTEMPTS) {
                    throw new IOException("cannot create a temporary file for " + name + " in " + dir + ": " + NAME_ATTEMPTS
                            + " random names were all taken", e);
                }
            }
        }
    }

    /**
     * Fsyncs a directory so that renames and creations in it are durable. Platforms that cannot
     * open a directory for syncing (Windows) are skipped silently.
     */
    public static void fsyncDirectory(Path dir) throws IOException {
        FileChannel channel;
        try {
            channel = FileChannel.open(dir, StandardOpenOption.READ);
        } catch (IOException | UnsupportedOperationException e) {
            return; // not supported here; nothing better can be done
        }
        try (channel) {
            channel.force(true);
        } catch (IOException e) {
            if (!System.getProperty("os.name", "").startsWith("Windows")) {
                throw e;
            }
        }
    }
}
