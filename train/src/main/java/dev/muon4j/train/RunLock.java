package dev.muon4j.train;

import java.io.IOException;
import java.net.InetAddress;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Consumer;

/**
 * The one-writer lock of a run directory: an operating-system file lock on
 * {@code runDir/}{@value #FILE}, held for as long as a run trains, so that a second process that
 * would write the same checkpoints and metrics refuses to start instead.
 *
 * <p>The lock file also says who holds it (process id, host, start time, command line), so that the
 * refusal can name the holder. The operating system drops the lock when its process ends, however it
 * ends ({@code kill -9} included): a lock file that still names a holder but is not locked was left
 * by a process that died, and the next run takes it over with a warning. The file is never deleted
 * (deleting it would let two processes lock two different files of the same name); releasing empties
 * it.
 *
 * <p>Within one JVM a run directory can be locked once: a second attempt is refused as well.
 */
public final class RunLock implements AutoCloseable {
    /** Name of the lock file in a run directory. */
    public static final String FILE = "run.lock";

    private final Path file;
    private final FileChannel channel;
    private final FileLock lock;

    private RunLock(Path file, FileChannel channel, FileLock lock) {
        this.file = file;
        this.channel = channel;
        this.lock = lock;
    }

    /**
     * Locks {@code runDir} (created if missing) for this process.
     *
     * @param warnings told when a stale lock of a process that died is taken over
     * @throws IllegalArgumentException when {@code runDir} exists and is not a directory
     * @throws IllegalStateException    when another process (or this one) holds the lock; the message
     *                                  names the holder's process id and command line
     * @throws IOException              when the directory or the lock file cannot be created or written
     */
    public static RunLock acquire(Path runDir, Consumer<String> warnings) throws IOException {
        Path dir = runDir.toAbsolutePath().normalize();
        if (Files.exists(dir) && !Files.isDirectory(dir)) {
            throw new IllegalArgumentException("run directory " + dir + " is not a directory (a file of that name exists)");
        }
        if (Files.isSymbolicLink(dir.resolve(FILE)) || (Files.exists(dir.resolve(FILE), LinkOption.NOFOLLOW_LINKS)
                && !Files.isRegularFile(dir.resolve(FILE), LinkOption.NOFOLLOW_LINKS))) {
            throw new IllegalArgumentException(dir.resolve(FILE) + " is not a regular file; remove it");
        }
        Files.createDirectories(dir);
        Path file = dir.resolve(FILE);
        FileChannel channel = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.READ, StandardOpenOption.WRITE);
        try {
            FileLock lock;
            try {
                lock = channel.tryLock();
            } catch (OverlappingFileLockException e) {
                throw new IllegalStateException("run directory " + dir + " is already in use by this process (PID "
                        + ProcessHandle.current().pid() + "): only one run may write it at a time");
            }
            String previous = read(channel);
            if (lock == null) {
                throw new IllegalStateException("run directory " + dir + " is in use by " + describe(parse(previous))
                        + "; only one process may write a run directory: wait for that run to end or stop it");
            }
            if (!previous.isBlank()) {
                warnings.accept("took over the lock of run directory " + dir + " from " + describe(parse(previous))
                        + ", which ended without releasing it");
            }
            byte[] holder = holderText().getBytes(StandardCharsets.UTF_8);
            channel.truncate(0);
            channel.write(ByteBuffer.wrap(holder), 0);
            channel.force(true);
            return new RunLock(file, channel, lock);
        } catch (IOException | RuntimeException | Error e) {
            try {
                channel.close();
            } catch (IOException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
    }

    /** The lock file. */
    public Path file() {
        return file;
    }

    /** Empties the lock file and releases the lock. */
    @Override
    public void close() throws IOException {
        try (channel) {
            if (lock.isValid()) {
                channel.truncate(0);
                channel.force(true);
                lock.release();
            }
        }
    }

    private static String read(FileChannel channel) throws IOException {
        long size = Math.min(channel.size(), 64 * 1024);
        ByteBuffer buf = ByteBuffer.allocate((int) size);
        while (buf.hasRemaining() && channel.read(buf, buf.position()) > 0) {
            // keep reading
        }
        return new String(buf.array(), 0, buf.position(), StandardCharsets.UTF_8);
    }

    private static String holderText() {
        ProcessHandle self = ProcessHandle.current();
        StringBuilder sb = new StringBuilder();
        sb.append("pid=").append(self.pid()).append('\n');
        sb.append("host=").append(hostName()).append('\n');
        sb.append("started=").append(self.info().startInstant().orElse(Instant.now())).append('\n');
        sb.append("command=").append(self.info().commandLine().orElse(self.info().command().orElse("unknown"))
                .replace('\n', ' ')).append('\n');
        return sb.toString();
    }

    private static String hostName() {
        try {
            return InetAddress.getLocalHost().getHostName();
        } catch (IOException e) {
            return "unknown";
        }
    }

    private static Map<String, String> parse(String text) {
        Map<String, String> m = new LinkedHashMap<>();
        for (String line : text.split("\n")) {
            int eq = line.indexOf('=');
            if (eq > 0) {
                m.put(line.substring(0, eq), line.substring(eq + 1));
            }
        }
        return m;
    }

    /** "PID 123 on host h (started …): command…", from what the holder wrote. */
    private static String describe(Map<String, String> holder) {
        if (!holder.containsKey("pid")) {
            return "another process (it has not written its process id yet)";
        }
        StringBuilder sb = new StringBuilder("PID " + holder.get("pid"));
        if (holder.containsKey("host")) {
            sb.append(" on ").append(holder.get("host"));
        }
        if (holder.containsKey("started")) {
            sb.append(", started ").append(holder.get("started"));
        }
        String command = holder.getOrDefault("command", "");
        // The part after the main class is what the user typed; the JVM's options and class path are noise.
        int main = command.indexOf("dev.muon4j.cli.Main");
        if (main >= 0) {
            command = "muon4j" + command.substring(main + "dev.muon4j.cli.Main".length());
        }
        if (command.length() > 300) {
            command = command.substring(0, 300) + "…";
        }
        if (!command.isBlank()) {
            sb.append(", command: ").append(command.strip());
        }
        return sb.toString();
    }
}
