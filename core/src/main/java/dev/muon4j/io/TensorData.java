package dev.muon4j.io;

import java.util.Arrays;
import java.util.Objects;

/**
 * A dense row-major tensor as stored in a safetensors file: its dtype, its shape and its values as
 * floats. The dtype says how the values are (or were) stored: {@code "F32"} exactly, {@code "BF16"}
 * and {@code "F16"} rounded to nearest-even on writing and widened exactly on reading.
 *
 * <p>The record shares the {@code data} array (weights can be large, so it is not copied) but
 * copies the shape. {@link #equals} compares shapes and values element by element ({@code
 * Arrays.equals} semantics: bit patterns, all NaNs alike).
 *
 * @param dtype a dtype name that {@link SafeTensors} can write: F32, BF16 or F16
 * @param shape the dimensions, each ≥ 0; an empty shape is a scalar of one element
 * @param data  the values, row-major, exactly as many as the shape has elements
 */
public record TensorData(String dtype, int[] shape, float[] data) {
    /** Checks the dtype, the shape and that {@code data} has as many elements as the shape. */
    public TensorData {
        Objects.requireNonNull(dtype, "dtype");
        Objects.requireNonNull(shape, "shape");
        Objects.requireNonNull(data, "data");
        if (SafeTensors.dtypeBytes(dtype) < 0 || !SafeTensors.CONVERTIBLE.contains(dtype)) {
            throw new IllegalArgumentException("dtype " + dtype + " is not one of " + SafeTensors.CONVERTIBLE);
        }
        shape = shape.clone();
        long n = elementCount(shape);
        if (n != data.length) {
            throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " has " + n + " elements but data has " + data.length);
        }
    }

    /** A float32 tensor. */
    public static TensorData f32(int[] shape, float[] data) {
        return new TensorData("F32", shape, data);
    }

    /** A copy of the shape. */
    @Override
    public int[] shape() {
        return shape.clone();
    }

    /** Number of elements (the product of the shape). */
    public int size() {
        return data.length;
    }

    /** The product of the dimensions; -1 if a dimension is negative, Long.MAX_VALUE on overflow. */
    static long elementCount(int[] shape) {
        long n = 1;
        for (int d : shape) {
            if (d < 0) {
                return -1;
            }
            try {
                n = Math.multiplyExact(n, d);
            } catch (ArithmeticException e) {
                return Long.MAX_VALUE;
            }
        }
        return n;
    }

    /** Equal dtype, shape and values ({@code Arrays.equals} on the data). */
    @Override
    public boolean equals(Object o) {
        return o instanceof TensorData t && dtype.equals(t.dtype) && Arrays.equals(shape, t.shape) && Arrays.equals(data, t.data);
    }

    /** A hash of dtype, shape and values, consistent with {@link #equals}. */
    @Override
    public int hashCode() {
        return Objects.hash(dtype, Arrays.hashCode(shape), Arrays.hashCode(data));
    }

    /** The dtype and shape (not the values). */
    @Override
    public String toString() {
        return "TensorData[" + dtype + " " + Arrays.toString(shape) + "]";
    }
}
