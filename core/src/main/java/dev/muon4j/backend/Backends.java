package dev.muon4j.backend;

import java.io.IOException;
import java.io.InputStream;
import java.lang.System.Logger.Level;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;

/**
 * Opens a {@link Backend}. For {@link BackendKind#AUTO}: oneDNN when its kernels run AVX-512 on
 * this processor; otherwise the system's libopenblas, the libopenblas bundled in Maven's
 * {@code org.bytedeco:openblas} jar, oneDNN, and the pure-Java Vector API backend, in that order.
 * A native backend is taken only after it multiplies a small product within float rounding of a
 * scalar float64 one. The choice, and why earlier ones were skipped, is logged once per open.
 *
 * <p>Why this order (measured on a 2-core AMD Zen 5 with AVX-512, docs/BENCHMARKS.md): with
 * AVX-512, oneDNN's GEMM runs about twice as fast as OpenBLAS's, which the environment pins to its
 * AVX2 kernels there ({@code OPENBLAS_CORETYPE=Haswell}); with AVX2 only (oneDNN limited to it by
 * {@code DNNL_MAX_CPU_ISA=AVX2}) neither is faster on every shape muon4j multiplies, so the
 * OpenBLAS that muon4j always used stays first there.
 *
 * <p>Overrides: system property {@code muon4j.openblas.path} or environment variable
 * {@code MUON4J_OPENBLAS} names a libopenblas file to use as the system library.
 */
public final class Backends {
    private static final System.Logger LOG = System.getLogger("dev.muon4j.backend");
    private static volatile boolean waitPolicyTold;

    /** Where Debian/Ubuntu/Fedora put libopenblas; the first that exists is used. */
    private static final List<String> SYSTEM_OPENBLAS_PATHS = List.of(
            "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
            "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
            "/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0",
            "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0",
            "/usr/lib/aarch64-linux-gnu/libopenblas.so.0",
            "/usr/lib64/libopenblas.so.0",
            "/usr/lib/libopenblas.so.0",
            "/usr/local/lib/libopenblas.so.0");

    /** Files of the bundled OpenBLAS, all extracted into one directory (libopenblas finds the others via RUNPATH $ORIGIN). */
    private static final String BUNDLED_RESOURCE_DIR = "org/bytedeco/openblas/linux-x86_64/";
    private static final List<String> BUNDLED_FILES = List.of(
            "libopenblas.so.0", "libgfortran.so.5", "libquadmath.so.0", "libgcc_s.so.1");

    /** Files of oneDNN from org.bytedeco:dnnl: the library and the GNU OpenMP runtime it was built with. */
    private static final String ONEDNN_RESOURCE_DIR = "org/bytedeco/dnnl/linux-x86_64/";
    private static final List<String> ONEDNN_FILES = List.of("libdnnl.so.3", "libgomp.so.1");

    private Backends() {
    }

    /**
     * Opens the backend described by {@code config} and logs which it is and why, once (INFO on the
     * {@code dev.muon4j.backend} logger); never returns null.
     */
    public static Backend open(BackendConfig config) {
        Choice choice = choose(config);
        LOG.log(Level.INFO, "compute backend: {0} ({1})", choice.backend().description(), choice.reason());
        return choice.backend();
    }

    /**
     * An opened backend and why it was taken: {@code "requested"}, or AUTO's reason with what it
     * skipped before it.
     */
    public record Choice(Backend backend, String reason) {
        public Choice {
            java.util.Objects.requireNonNull(backend, "backend");
            java.util.Objects.requireNonNull(reason, "reason");
        }
    }

    /**
     * Opens the backend described by {@code config} like {@link #open} but logs nothing about the
     * choice: for an application that reports it itself (muon4j's command line prints it with its
     * other settings).
     */
    public static Choice choose(BackendConfig config) {
        return switch (config.kind()) {
            case VECTOR -> chosen(new VectorBackend(config.threads()), "requested");
            case OPENBLAS_SYSTEM -> chosen(openSystem(config.threads()), "requested");
            case OPENBLAS_BUNDLED -> chosen(openBundled(config.threads()), "requested");
            case ONEDNN -> {
                if (flightRecordingRuns()) {
                    LOG.log(Level.WARNING, "oneDNN requested while " + JFR_CRASH
                            + "; disable jdk.ExecutionSample in the recording's settings");
                }
                yield chosen(openOneDnn(config.threads()), "requested");
            }
            case AUTO -> openAuto(config.threads());
        };
    }

    private static Choice openAuto(int threads) {
        List<String> skipped = new ArrayList<>();
        OneDnnBackend oneDnn = null;
        try {
            if (flightRecordingRuns()) {
                throw new IllegalStateException(JFR_CRASH);
            }
            oneDnn = checked(openOneDnn(threads));
            if (oneDnn.isa().startsWith("AVX-512")) {
                return chosen(oneDnn, "auto: its kernels use " + oneDnn.isa() + " on this processor");
            }
            skipped.add("oneDNN: " + oneDnn.isa() + " only, OpenBLAS first");
        } catch (RuntimeException e) {
            skipped.add("oneDNN: " + e.getMessage());
        }
        try {
            return chosen(checked(openSystem(threads)), auto(skipped));
        } catch (RuntimeException e) {
            skipped.add("system OpenBLAS: " + e.getMessage());
        }
        try {
            return chosen(checked(openBundled(threads)), auto(skipped));
        } catch (RuntimeException e) {
            skipped.add("bundled OpenBLAS: " + e.getMessage());
        }
        if (oneDnn != null) {
            return chosen(oneDnn, auto(skipped));
        }
        return chosen(new VectorBackend(threads), auto(skipped));
    }

    /**
     * Why AUTO leaves oneDNN while a flight recording runs: seen on JDK 25.0.3 (2026-11-27), with the
     * {@code profile} settings a recording aborted the JVM within seconds of the first oneDNN calls
     * (SIGSEGV in {@code JfrTraceIdKlassQueue::enqueue}, glibc heap corruption, or a hang), every
     * time, and never with execution sampling disabled, with OpenBLAS, or without a recording. The
     * calls run as critical downcalls (heap arrays passed in place, the thread counted as in Java)
     * and oneDNN's kernels are generated at run time: the sampler walks a stack it cannot read.
     */
    private static final String JFR_CRASH = "a flight recording is running: JFR's execution sampler crashes the JVM "
            + "inside oneDNN's calls (JDK 25, docs/BENCHMARKS.md)";

    /** Whether a Java Flight Recorder recording exists in this JVM; never starts the recorder itself. */
    static boolean flightRecordingRuns() {
        try {
            return jdk.jfr.FlightRecorder.isInitialized()
                    && !jdk.jfr.FlightRecorder.getFlightRecorder().getRecordings().isEmpty();
        } catch (RuntimeException | LinkageError e) {
            return false;
        }
    }

    private static String auto(List<String> skipped) {
        return skipped.isEmpty() ? "auto" : "auto; skipped " + String.join("; ", skipped);
    }

    /**
     * Returns {@code backend} if a 37×29×41 product with both operands transposed in turn, and a
     * SYRK and a SYMM of the same sizes, agree with a float64 computation to 1e-5 relative to the
     * operands' scale; closes it and throws naming the largest error otherwise. A library that
     * loads but computes wrong on this processor (as older OpenBLAS builds did on some) is not used.
     */
    static <B extends Backend> B checked(B backend) {
        int m = 37;
        int n = 29;
        int k = 41;
        var random = new java.util.Random(20261127);
        float[] a = new float[m * k];
        float[] b = new float[k * n];
        float[] s = new float[m * m];
        for (float[] x : new float[][] {a, b, s}) {
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) (random.nextDouble() * 2 - 1);
            }
        }
        double worst = 0;
        for (int variant = 0; variant < 4; variant++) {
            boolean ta = (variant & 1) != 0;
            boolean tb = (variant & 2) != 0;
            float[] c = new float[m * n];
            backend.gemm(ta, tb, m, n, k, 1f, ta ? transpose(a, m, k) : a, 0, ta ? m : k,
                    tb ? transpose(b, k, n) : b, 0, tb ? k : n, 0f, c, 0, n);
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n; j++) {
                    double ref = 0;
                    for (int l = 0; l < k; l++) {
                        ref += (double) a[i * k + l] * b[l * n + j];
                    }
                    worst = Math.max(worst, Math.abs(c[i * n + j] - ref));
                }
            }
        }
        float[] upper = new float[m * m];
        backend.syrk(false, m, k, 1f, a, 0, k, 0f, upper, 0, m);
        for (int i = 0; i < m; i++) {
            for (int j = i; j < m; j++) {
                double ref = 0;
                for (int l = 0; l < k; l++) {
                    ref += (double) a[i * k + l] * a[j * k + l];
                }
                worst = Math.max(worst, Math.abs(upper[i * m + j] - ref));
            }
        }
        float[] sb = new float[m * n];
        float[] bm = java.util.Arrays.copyOf(b, m * n);
        backend.symm(m, n, 1f, s, 0, m, bm, 0, n, 0f, sb, 0, n);
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double ref = 0;
                for (int l = 0; l < m; l++) {
                    ref += (double) s[Math.min(i, l) * m + Math.max(i, l)] * bm[l * n + j];
                }
                worst = Math.max(worst, Math.abs(sb[i * n + j] - ref));
            }
        }
        // each entry sums at most 41 products of numbers in [-1, 1]: float rounding stays far below 1e-4
        if (!(worst <= 1e-4)) {
            backend.close();
            throw new IllegalStateException("computes wrong results on this processor (largest error " + worst
                    + " on a 37×29×41 check against float64)");
        }
        return backend;
    }

    private static float[] transpose(float[] x, int rows, int cols) {
        float[] t = new float[x.length];
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < cols; j++) {
                t[j * rows + i] = x[i * cols + j];
            }
        }
        return t;
    }

    private static Choice chosen(Backend backend, String why) {
        return new Choice(backend, why);
    }

    /** Opens the system's libopenblas; throws {@link IllegalStateException} naming the paths tried if there is none. */
    public static OpenBlasBackend openSystem(int threads) {
        String override = System.getProperty("muon4j.openblas.path", System.getenv("MUON4J_OPENBLAS"));
        if (override != null && !override.isBlank()) {
            Path p = Path.of(override);
            if (!Files.isRegularFile(p)) {
                throw new IllegalStateException("OpenBLAS path " + override + " (muon4j.openblas.path / MUON4J_OPENBLAS) is not a file");
            }
            return OpenBlasBackend.open(BackendKind.OPENBLAS_SYSTEM, p, threads);
        }
        for (String candidate : SYSTEM_OPENBLAS_PATHS) {
            Path p = Path.of(candidate);
            if (Files.isRegularFile(p)) {
                return OpenBlasBackend.open(BackendKind.OPENBLAS_SYSTEM, p, threads);
            }
        }
        throw new IllegalStateException("no system libopenblas.so.0 in the " + SYSTEM_OPENBLAS_PATHS.size()
                + " usual places (set MUON4J_OPENBLAS to name one)");
    }

    /** Extracts (once) and opens the libopenblas from the org.bytedeco:openblas jar on the class path. */
    public static OpenBlasBackend openBundled(int threads) {
        return OpenBlasBackend.open(BackendKind.OPENBLAS_BUNDLED, bundledOpenBlasLibrary(), threads);
    }

    /**
     * The libopenblas file of the org.bytedeco:openblas jar on the class path, extracted (once) with the
     * libraries it needs beside it; it carries LAPACK as well as BLAS ({@code dev.muon4j.linalg.Lapack} calls it).
     *
     * @throws IllegalStateException when the jar's natives for this platform are not on the class path or cannot be extracted
     */
    public static Path bundledOpenBlasLibrary() {
        return extractAll("openblas", BUNDLED_RESOURCE_DIR, BUNDLED_FILES).resolve("libopenblas.so.0");
    }

    /**
     * Extracts (once) and opens oneDNN from the org.bytedeco:dnnl jar on the class path.
     *
     * <p>OpenMP reads how its idle workers wait when it loads, from {@code OMP_WAIT_POLICY} or
     * {@code GOMP_SPINCOUNT}. muon4j wants a short spin ({@code GOMP_SPINCOUNT=10000}, the launcher's
     * setting): a worker that sleeps at once pays a wake-up on every one of the many small products of
     * a forward and backward pass, and one that spins long (GNU OpenMP's default, or {@code ACTIVE})
     * takes the cores from muon4j's own threads, which run the element-wise work between products
     * (both measured on 2 cores: docs/BENCHMARKS.md). The build's test runs use {@code PASSIVE}. A
     * process with neither variable is told so once, and runs, slower. The variables are not set from
     * here: changing the environment of a running multi-threaded process races with any thread
     * reading it.
     */
    public static OneDnnBackend openOneDnn(int threads) {
        Path dir = extractAll("dnnl", ONEDNN_RESOURCE_DIR, ONEDNN_FILES);
        if (System.getenv("OMP_WAIT_POLICY") == null && System.getenv("GOMP_SPINCOUNT") == null && !waitPolicyTold) {
            waitPolicyTold = true;
            LOG.log(Level.INFO, "neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT is set: oneDNN's OpenMP workers will spin long between"
                    + " products and compete with muon4j's own threads; set GOMP_SPINCOUNT=10000 before starting Java (the muon4j"
                    + " launcher does)");
        }
        return OneDnnBackend.open(dir.resolve("libdnnl.so.3"), threads);
    }

    /** Extracts {@code files} of the org.bytedeco artifact into the cache directory named after its version. */
    private static Path extractAll(String artifact, String resourceDir, List<String> files) {
        Path dir = cacheDirectory(artifact);
        try {
            Files.createDirectories(dir);
            for (String file : files) {
                extract(resourceDir + file, dir.resolve(file), artifact);
            }
        } catch (IOException e) {
            throw new IllegalStateException("cannot extract bundled " + artifact + " into " + dir + ": " + e.getMessage(), e);
        }
        return dir;
    }

    private static Path cacheDirectory(String artifact) {
        String base = System.getProperty("muon4j.cache.dir");
        if (base == null || base.isBlank()) {
            String xdg = System.getenv("XDG_CACHE_HOME");
            base = (xdg != null && !xdg.isBlank()) ? xdg + "/muon4j" : System.getProperty("user.home") + "/.cache/muon4j";
        }
        String version = "unknown";
        try (InputStream in = Backends.class.getClassLoader()
                .getResourceAsStream("META-INF/maven/org.bytedeco/" + artifact + "/pom.properties")) {
            if (in != null) {
                var props = new java.util.Properties();
                props.load(in);
                version = props.getProperty("version", version);
            }
        } catch (IOException e) {
            // keep "unknown": files are still compared by size before reuse
        }
        return Path.of(base, artifact + "-" + version);
    }

    /** Copies a class-path resource to {@code target} unless a file of the same size is already there; atomic. */
    private static void extract(String resource, Path target, String artifact) throws IOException {
        ClassLoader loader = Backends.class.getClassLoader();
        var url = loader.getResource(resource);
        if (url == null) {
            throw new IOException("resource " + resource + " not on the class path (is org.bytedeco:" + artifact + ":linux-x86_64 a dependency?)");
        }
        long size = url.openConnection().getContentLengthLong();
        if (Files.isRegularFile(target) && size >= 0 && Files.size(target) == size) {
            return;
        }
        Path tmp = Files.createTempFile(target.getParent(), target.getFileName().toString(), ".part");
        try (InputStream in = url.openStream()) {
            Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }
}
