package dev.muon4j.data;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.GZIPInputStream;

/**
 * A small reader for the tar archives npm produces ({@code npm pack}: gzip-compressed ustar, with
 * pax or GNU long-name headers for long paths). Only regular files are returned; directories,
 * links and other entries are skipped. Entry names are returned as stored, never resolved against
 * a directory, so a name like {@code ../x} cannot escape anywhere by itself.
 */
public final class TarReader {

    /**
     * One regular file of an archive.
     *
     * @param name its path inside the archive, for example {@code package/README.md}
     * @param content its bytes
     */
    public record Entry(String name, byte[] content) {
    }

    private static final int BLOCK = 512;
    /** Refuse entries bigger than this: no corpus file comes near it. */
    private static final long MAX_ENTRY = 1L << 30;

    private TarReader() {
    }

    /**
     * Reads every regular file of a gzip-compressed tar archive.
     *
     * @param gzipped the {@code .tgz} stream (not closed)
     * @param what a name for the archive in error messages
     * @return the files, in archive order
     * @throws IOException if the stream is not gzip or the tar structure is damaged
     */
    public static List<Entry> readTarGz(InputStream gzipped, String what) throws IOException {
        return readTar(new GZIPInputStream(gzipped, 1 << 16), what);
    }

    /**
     * Reads every regular file of an uncompressed tar archive.
     *
     * @param in the tar stream (not closed)
     * @param what a name for the archive in error messages
     * @return the files, in archive order
     * @throws IOException if the tar structure is damaged
     */
    public static List<Entry> readTar(InputStream in, String what) throws IOException {
        List<Entry> out = new ArrayList<>();
        byte[] header = new byte[BLOCK];
        String pendingName = null;
        while (true) {
            int got = in.readNBytes(header, 0, BLOCK);
            if (got == 0) {
                break; // archive ended without the zero blocks; accept it
            }
            if (got < BLOCK) {
                throw new IOException(what + ": truncated tar header (" + got + " of 512 bytes)");
            }
            if (allZero(header)) {
                break; // end-of-archive marker
            }
            verifyChecksum(header, what);
            String name = string(header, 0, 100);
            String prefix = "ustar".equals(string(header, 257, 6).trim()) ? string(header, 345, 155) : "";
            if (!prefix.isEmpty()) {
                name = prefix + "/" + name;
            }
            long size = octal(header, 124, 12, what, name);
            if (size < 0 || size > MAX_ENTRY) {
                throw new IOException(what + ": entry " + name + " has an implausible size " + size);
            }
            char type = (char) header[156];
            byte[] content = in.readNBytes((int) size);
            if (content.length < size) {
                throw new IOException(what + ": entry " + name + " is truncated (" + content.length
                        + " of " + size + " bytes)");
            }
            long pad = (BLOCK - size % BLOCK) % BLOCK;
            if (in.readNBytes((int) pad).length < pad) {
                throw new IOException(what + ": archive ends inside the padding of " + name);
            }
            switch (type) {
                case 'x' -> { // pax extended header: records "LEN key=value\n"
                    String path = paxPath(content);
                    if (path != null) {
                        pendingName = path;
                    }
                }
                case 'L' -> pendingName = string(content, 0, content.length); // GNU long name
                case 'g' -> { } // global pax header: nothing we need
                case '0', '\0', '7' -> {
                    out.add(new Entry(pendingName != null ? pendingName : name, content));
                    pendingName = null;
                }
                default -> pendingName = null; // directory, link, device...: skipped
            }
        }
        return out;
    }

    private static boolean allZero(byte[] b) {
        for (byte x : b) {
            if (x != 0) {
                return false;
            }
        }
        return true;
    }

    private static void verifyChecksum(byte[] h, String what) throws IOException {
        long stored = octal(h, 148, 8, what, string(h, 0, 100));
        long sum = 0;
        for (int i = 0; i < BLOCK; i++) {
            sum += (i >= 148 && i < 156) ? ' ' : (h[i] & 0xFF);
        }
        if (sum != stored) {
            throw new IOException(what + ": tar header checksum mismatch for entry '" + string(h, 0, 100)
                    + "' (stored " + stored + ", computed " + sum + "): not a tar archive or damaged");
        }
    }

    private static String string(byte[] b, int off, int len) {
        int end = off;
        while (end < off + len && b[end] != 0) {
            end++;
        }
        return new String(b, off, end - off, StandardCharsets.UTF_8);
    }

    private static long octal(byte[] b, int off, int len, String what, String entry) throws IOException {
        long v = 0;
        boolean any = false;
        for (int i = off; i < off + len; i++) {
            int c = b[i];
            if (c == 0 || c == ' ') {
                if (any) {
                    break;
                }
                continue;
            }
            if (c < '0' || c > '7') {
                throw new IOException(what + ": bad octal field in the header of entry '" + entry + "'");
            }
            v = v * 8 + (c - '0');
            any = true;
        }
        return v;
    }

    private static String paxPath(byte[] content) {
        String s = new String(content, StandardCharsets.UTF_8);
        int i = 0;
        String path = null;
        while (i < s.length()) {
            int sp = s.indexOf(' ', i);
            if (sp < 0) {
                break;
            }
            int len;
            try {
                len = Integer.parseInt(s.substring(i, sp));
            } catch (NumberFormatException e) {
                break;
            }
            // LEN counts bytes; corpus archives use ASCII names, so bytes == chars here.
            int end = Math.min(s.length(), i + len);
            String rec = s.substring(sp + 1, end);
            if (rec.endsWith("\n")) {
                rec = rec.substring(0, rec.length() - 1);
            }
            if (rec.startsWith("path=")) {
                path = rec.substring(5);
            }
            if (len <= 0) {
                break;
            }
            i = end;
        }
        return path;
    }
}
