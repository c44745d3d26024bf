package dev.muon4j.djl.example;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import org.junit.jupiter.api.Test;

/** The IDX reader on small files made here: values, and each kind of damage named with the file. */
class MnistTest {
    static byte[] idx(int magic, int[] dims, byte[] data) {
        ByteBuffer b = ByteBuffer.allocate(4 + 4 * dims.length + data.length);
        b.putInt(magic);
        for (int d : dims) {
            b.putInt(d);
        }
        return b.put(data).array();
    }

    @Test
    void readsImagesAndLabels() {
        byte[] pixels = new byte[2 * Mnist.PIXELS];
        pixels[0] = (byte) 255;
        pixels[Mnist.PIXELS + 1] = (byte) 51;
        float[] images = Mnist.images(new Mnist.Named("imgs", idx(0x803, new int[] {2, 28, 28}, pixels)));
        assertEquals(2 * Mnist.PIXELS, images.length);
        assertEquals(1f, images[0]);
        assertEquals(0.2f, images[Mnist.PIXELS + 1]);
        assertArrayEquals(new int[] {7, 0, 9}, Mnist.labels(new Mnist.Named("labs", idx(0x801, new int[] {3}, new byte[] {7, 0, 9}))));
    }

    @Test
    void damagedFilesAreNamed() {
        var e = assertThrows(IllegalStateException.class,
                () -> Mnist.labels(new Mnist.Named("t10k-labels-idx1-ubyte", idx(0x803, new int[] {1}, new byte[] {1}))));
        assertTrue(e.getMessage().contains("t10k-labels-idx1-ubyte") && e.getMessage().contains("magic number 0x803"), e.getMessage());
        e = assertThrows(IllegalStateException.class,
                () -> Mnist.labels(new Mnist.Named("labs", idx(0x801, new int[] {3}, new byte[] {1, 2}))));
        assertTrue(e.getMessage().contains("3 labels") && e.getMessage().contains("10 bytes"), e.getMessage());
        e = assertThrows(IllegalStateException.class,
                () -> Mnist.labels(new Mnist.Named("labs", idx(0x801, new int[] {2}, new byte[] {1, 12}))));
        assertTrue(e.getMessage().contains("label 1 (byte offset 9) is 12"), e.getMessage());
        e = assertThrows(IllegalStateException.class,
                () -> Mnist.images(new Mnist.Named("imgs", idx(0x803, new int[] {1, 32, 32}, new byte[32 * 32]))));
        assertTrue(e.getMessage().contains("1 images of 32 × 32"), e.getMessage());
        e = assertThrows(IllegalStateException.class, () -> Mnist.images(new Mnist.Named("imgs", new byte[5])));
        assertTrue(e.getMessage().contains("shorter than its 16-byte IDX header"), e.getMessage());
    }
}
