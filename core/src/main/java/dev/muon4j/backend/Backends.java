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
 * Opens a {@link Backend}. For {@link BackendKind#AUTO} the order is: the system's libopenblas, the
 * libopenblas bundled in Maven's {@code org.bytedeco:openblas} jar, the pure-Java Vector API
 * backend. The choice (and why earlier ones were skipped) is logged once per open.
 *
 * <p>Overrides: system property {@code muon4j.openblas.path} or environment variable
 * {@code MUON4J_OPENBLAS} names a libopenblas file to use as the system library.
 */
public final class Backends {
    private static final System.Logger LOG = System.getLogger("dev.muon4j.backend");

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

    private Backends() {
    }

    /** Opens the backend described by {@code config}; never returns null. */
    public static Backend open(BackendConfig config) {
        return switch (config.kind()) {
            case VECTOR -> logged(new VectorBackend(config.threads()), "requested");
            case OPENBLAS_SYSTEM -> logged(openSystem(config.threads()), "requested");
            case OPENBLAS_BUNDLED -> logged(openBundled(config.threads()), "requested");
            case AUTO -> openAuto(config.threads());
        };
    }

    private static Backend openAuto(int threads) {
        List<String> skipped = new ArrayList<>();
        try {
            return logged(openSystem(threads), "auto");
        } catch (RuntimeException e) {
            skipped.add("system OpenBLAS: " + e.getMessage());
        }
        try {
            return logged(openBundled(threads), "auto; skipped " + String.join("; ", skipped));
        } catch (RuntimeException e) {
            skipped.add("bundled OpenBLAS: " + e.getMessage());
        }
        return logged(new VectorBackend(threads), "auto; skipped " + String.join("; ", skipped));
    }

    private static Backend logged(Backend backend, String why) {
        LOG.log(Level.INFO, "compute backend: {0} ({1})", backend.description(), why);
        return backend;
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
        Path dir = bundledDirectory();
        try {
            Files.createDirectories(dir);
            for (String file : BUNDLED_FILES) {
                extract(BUNDLED_RESOURCE_DIR + file, dir.resolve(file));
            }
        } catch (IOException e) {
            throw new IllegalStateException("cannot extract bundled OpenBLAS into " + dir + ": " + e.getMessage(), e);
        }
        return OpenBlasBackend.open(BackendKind.OPENBLAS_BUNDLED, dir.resolve("libopenblas.so.0"), threads);
    }

    private static Path bundledDirectory() {
        String base = System.getProperty("muon4j.cache.dir");
        if (base == null || base.isBlank()) {
            String xdg = System.getenv("XDG_CACHE_HOME");
            base = (xdg != null && !xdg.isBlank()) ? xdg + "/muon4j" : System.getProperty("user.home") + "/.cache/muon4j";
        }
        String version = "unknown";
        try (InputStream in = Backends.class.getClassLoader()
                .getResourceAsStream("META-INF/maven/org.bytedeco/openblas/pom.properties")) {
            if (in != null) {
                var props = new java.util.Properties();
                props.load(in);
                version = props.getProperty("version", version);
            }
        } catch (IOException e) {
            // keep "unknown": files are still compared by size before reuse
        }
        return Path.of(base, "openblas-" + version);
    }

    /** Copies a class-path resource to {@code target} unless a file of the same size is already there; atomic. */
    private static void extract(String resource, Path target) throws IOException {
        ClassLoader loader = Backends.class.getClassLoader();
        var url = loader.getResource(resource);
        if (url == null) {
            throw new IOException("resource " + resource + " not on the class path (is org.bytedeco:openblas:linux-x86_64 a dependency?)");
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
