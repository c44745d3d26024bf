package dev.muon4j.optim;

import java.util.Arrays;
import java.util.Objects;
import java.util.regex.Pattern;

/**
 * A named trainable tensor as the optimizers see it: a name, a shape, a role, its values and its
 * gradient, both dense row-major {@code float[]} of the same length. The optimizer modifies
 * {@link #value()} (and, when clipping, {@link #gradient()}); the training code owns both arrays,
 * fills the gradient before each step and zeroes it when it wants to.
 *
 * <p>Hidden matrices carry a {@link MatrixLayout} that gives Muon its fan-out and fan-in.
 */
public final class Parameter {
    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9_.:/\\[\\]-]+");

    private final String name;
    private final ParamRole role;
    private final int[] shape;
    private final float[] value;
    private final float[] gradient;
    private final MatrixLayout layout;

    private Parameter(String name, ParamRole role, int[] shape, float[] value, float[] gradient, MatrixLayout layout) {
        Objects.requireNonNull(name, "name");
        if (!NAME.matcher(name).matches() || name.length() > 512) {
            throw new IllegalArgumentException("parameter name '" + name
                    + "' must be 1 to 512 characters of letters, digits and _ . : / [ ] -");
        }
        this.name = name;
        this.role = Objects.requireNonNull(role, "role of " + name);
        this.shape = shape.clone();
        long n = 1;
        for (int d : shape) {
            if (d < 1) {
                throw new IllegalArgumentException("parameter " + name + ": shape " + Arrays.toString(shape) + " has a non-positive dimension");
            }
            n *= d;
        }
        if (n > Integer.MAX_VALUE - 16) {
            throw new IllegalArgumentException("parameter " + name + ": " + n + " elements exceed one Java array");
        }
        Objects.requireNonNull(value, "value of " + name);
        Objects.requireNonNull(gradient, "gradient of " + name);
        if (value.length != n) {
            throw new IllegalArgumentException("parameter " + name + ": value has " + value.length
                    + " elements but shape " + Arrays.toString(shape) + " has " + n);
        }
        if (gradient.length != n) {
            throw new IllegalArgumentException("parameter " + name + ": gradient has " + gradient.length
                    + " elements but shape " + Arrays.toString(shape) + " has " + n);
        }
        if (value == gradient) {
            throw new IllegalArgumentException("parameter " + name + ": value and gradient must be different arrays");
        }
        if (layout != null && layout.elementCount() != n) {
            throw new IllegalArgumentException("parameter " + name + ": matrix layout " + layout
                    + " covers " + layout.elementCount() + " elements, shape has " + n);
        }
        this.value = value;
        this.gradient = gradient;
        this.layout = layout;
    }

    /**
     * A parameter of any role. For {@link ParamRole#HIDDEN_MATRIX} the shape must have rank ≥ 2
     * and is read as {@code (out, in, rest…)}: a weight of a linear layer {@code (out, in)}, or a
     * convolution kernel {@code (out, in, kh, kw)} flattened to {@code (out, in·kh·kw)}. Use
     * {@link #stackedMatrices} for a stack of matrices, or {@link #withLayout} to state any other layout.
     */
    public static Parameter of(String name, ParamRole role, int[] shape, float[] value, float[] gradient) {
        MatrixLayout layout = null;
        if (role == ParamRole.HIDDEN_MATRIX) {
            if (shape.length < 2) {
                throw new IllegalArgumentException("parameter " + name + ": a hidden matrix needs rank >= 2, got shape "
                        + Arrays.toString(shape) + " (give it role NORM, BIAS or SCALAR)");
            }
            long in = 1;
            for (int i = 1; i < shape.length; i++) {
                in *= shape[i];
            }
            layout = new MatrixLayout(1, shape[0], Math.toIntExact(in));
        }
        return new Parameter(name, role, shape, value, gradient, layout);
    }

    /** A hidden weight matrix {@code (fanOut, fanIn)} with fresh zero arrays for value and gradient. */
    public static Parameter matrix(String name, int fanOut, int fanIn) {
        int n = Math.multiplyExact(fanOut, fanIn);
        return of(name, ParamRole.HIDDEN_MATRIX, new int[] {fanOut, fanIn}, new float[n], new float[n]);
    }

    /** A parameter of any role with fresh zero arrays for value and gradient. */
    public static Parameter zeros(String name, ParamRole role, int... shape) {
        long n = 1;
        for (int d : shape) {
            n *= d;
        }
        int size = Math.toIntExact(n);
        return of(name, role, shape, new float[size], new float[size]);
    }

    /**
     * {@code count} hidden matrices of {@code fanOut × fanIn} stored one after another, shape
     * {@code (count, fanOut, fanIn)}: the expert weights of an MoE layer. Muon orthogonalises each
     * matrix on its own.
     */
    public static Parameter stackedMatrices(String name, int count, int fanOut, int fanIn, float[] value, float[] gradient) {
        return new Parameter(name, ParamRole.HIDDEN_MATRIX, new int[] {count, fanOut, fanIn}, value, gradient,
                new MatrixLayout(count, fanOut, fanIn));
    }

    /** This parameter with an explicitly stated matrix layout (any role), sharing the same arrays. */
    public Parameter withLayout(MatrixLayout newLayout) {
        return new Parameter(name, role, shape, value, gradient, Objects.requireNonNull(newLayout, "layout"));
    }

    public String name() {
        return name;
    }

    public ParamRole role() {
        return role;
    }

    /** A copy of the shape. */
    public int[] shape() {
        return shape.clone();
    }

    /** Number of elements. */
    public int size() {
        return value.length;
    }

    /** The values, modified in place by optimizer steps. */
    public float[] value() {
        return value;
    }

    /** The gradient, read by optimizer steps (and scaled in place by gradient clipping). */
    public float[] gradient() {
        return gradient;
    }

    /** The matrix view Muon uses, or null for a parameter that is not a matrix. */
    public MatrixLayout layout() {
        return layout;
    }

    @Override
    public String toString() {
        return name + Arrays.toString(shape) + " " + role;
    }
}
