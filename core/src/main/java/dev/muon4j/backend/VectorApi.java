package dev.muon4j.backend;

import java.lang.System.Logger.Level;

/**
 * Whether this JVM has the incubating Vector API ({@code jdk.incubator.vector}), which a plain
 * {@code java} command leaves out: it is present only when the process was started with
 * {@code --add-modules jdk.incubator.vector} (or runs in a module layer that reads it).
 *
 * <p>Code that uses the Vector API lives in classes of its own ({@code VectorKernels},
 * {@code VectorMicroKernel}) that are touched only when {@link #PRESENT} is true; without the
 * module muon4j runs the same arithmetic as plain loops ({@code PlainKernels},
 * {@code PlainMicroKernel}) and says so once, through the {@code dev.muon4j.backend} logger, with
 * the flag that turns the Vector API on.
 */
public final class VectorApi {
    /** The module's name, as given to {@code --add-modules}. */
    public static final String MODULE = "jdk.incubator.vector";

    /** True when {@link #MODULE} is in the boot layer; decided once, when this class initializes. */
    static final boolean PRESENT = detect();

    private VectorApi() {
    }

    /** Whether muon4j's pure-Java kernels use the Vector API in this JVM. */
    public static boolean present() {
        return PRESENT;
    }

    private static boolean detect() {
        boolean present = ModuleLayer.boot().findModule(MODULE).isPresent();
        if (!present) {
            System.getLogger("dev.muon4j.backend").log(Level.INFO, MODULE + " is not in this JVM, so muon4j's"
                    + " pure-Java kernels run as plain loops; start Java with --add-modules " + MODULE
                    + " to run them on the Vector API");
        }
        return present;
    }
}
