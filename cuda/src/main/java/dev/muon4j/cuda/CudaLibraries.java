package dev.muon4j.cuda;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.SymbolLookup;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Stream;

/**
 * Finds and opens the machine's CUDA libraries: the runtime ({@code libcudart}), cuBLAS (with
 * {@code libcublasLt}, which it needs), NVRTC and the driver ({@code libcuda.so.1}). muon4j ships none
 * of them; they come with a CUDA toolkit or with the {@code nvidia-*} Python wheels that PyTorch
 * installs, and the driver with the GPU's driver.
 *
 * <p>Where each is looked for, in order: the folders of {@code -Dmuon4j.cuda.path} or the environment's
 * {@code MUON4J_CUDA_PATH} (separated by {@code :}); the dynamic linker's own search (by soname:
 * {@code LD_LIBRARY_PATH}, the linker cache); the toolkit's usual folders; the {@code nvidia} folders
 * of Python's site-packages under {@code /opt}, {@code /usr/lib}, {@code /usr/local/lib} and the
 * user's {@code ~/.local/lib}. The newest major version found wins (13 before 12).
 */
final class CudaLibraries {
    /** Sonames tried by the linker's own search, newest first. */
    private static final int[] MAJORS = {13, 12};

    final SymbolLookup runtime;
    final SymbolLookup cublas;
    final SymbolLookup cublasLt;
    final SymbolLookup nvrtc;
    final SymbolLookup driver;
    /** Where each came from, for the log line and error messages. */
    final String description;

    private CudaLibraries(SymbolLookup runtime, SymbolLookup cublas, SymbolLookup cublasLt, SymbolLookup nvrtc, SymbolLookup driver,
                          String description) {
        this.runtime = runtime;
        this.cublas = cublas;
        this.cublasLt = cublasLt;
        this.nvrtc = nvrtc;
        this.driver = driver;
        this.description = description;
    }

    /**
     * Opens all four libraries.
     *
     * @throws CudaException naming the library that was not found and every place searched
     */
    static CudaLibraries open() {
        List<Path> folders = searchFolders();
        List<String> found = new ArrayList<>();
        Arena global = Arena.global();
        SymbolLookup driver = openDriver(global, found);
        SymbolLookup runtime = openOne("cudart", folders, global, found);
        // cuBLAS needs cuBLASLt: loading it first from the same folder lets the linker resolve cuBLAS's dependency.
        SymbolLookup cublasLt = openOne("cublasLt", folders, global, found);
        SymbolLookup cublas = openOne("cublas", folders, global, found);
        SymbolLookup nvrtc = openOne("nvrtc", folders, global, found);
        return new CudaLibraries(runtime, cublas, cublasLt, nvrtc, driver, String.join(", ", found));
    }

    private static SymbolLookup openDriver(Arena arena, List<String> found) {
        List<String> tried = new ArrayList<>();
        for (String candidate : List.of("libcuda.so.1", "/usr/local/nvidia/lib64/libcuda.so.1", "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
                "/usr/lib64/libcuda.so.1", "/usr/local/cuda/compat/libcuda.so.1")) {
            tried.add(candidate);
            try {
                SymbolLookup lookup = candidate.startsWith("/") ? SymbolLookup.libraryLookup(Path.of(candidate), arena)
                        : SymbolLookup.libraryLookup(candidate, arena);
                found.add(candidate);
                return lookup;
            } catch (IllegalArgumentException e) {
                // not there: try the next
            }
        }
        throw new CudaException("no CUDA driver (libcuda.so.1) on this machine: an NVIDIA GPU and its driver are needed; tried " + tried);
    }

    private static SymbolLookup openOne(String name, List<Path> folders, Arena arena, List<String> found) {
        return openOptional(name, folders, arena, found).orElseThrow(() -> new CudaException("no lib" + name + ".so (CUDA "
                + MAJORS[0] + " or " + MAJORS[1] + ") found: searched the linker's path and " + folders
                + "; set MUON4J_CUDA_PATH (or -Dmuon4j.cuda.path) to the folder holding it, e.g. a CUDA toolkit's lib64 or"
                + " site-packages/nvidia/cu13/lib of a Python with PyTorch's CUDA wheels"));
    }

    private static Optional<SymbolLookup> openOptional(String name, List<Path> folders, Arena arena, List<String> found) {
        // Explicit folders first; then, newest major first, the linker's search and the usual folders.
        for (Path folder : explicitFolders()) {
            Optional<Path> file = newest(folder, name);
            if (file.isPresent()) {
                return Optional.of(load(file.get(), arena, found));
            }
        }
        for (int major : MAJORS) {
            String soname = "lib" + name + ".so." + major;
            try {
                SymbolLookup lookup = SymbolLookup.libraryLookup(soname, arena);
                found.add(soname);
                return Optional.of(lookup);
            } catch (IllegalArgumentException e) {
                // not on the linker's path
            }
            for (Path folder : folders) {
                Optional<Path> file = newest(folder, name).filter(f -> major(f, name) == major);
                if (file.isPresent()) {
                    return Optional.of(load(file.get(), arena, found));
                }
            }
        }
        return Optional.empty();
    }

    /**
     * Opens {@code file}. For NVRTC, first its {@code libnvrtc-builtins} from the same folder: NVRTC loads that by
     * name when it compiles, which finds it only on the linker's path, unless a library of that name is loaded already.
     */
    private static SymbolLookup load(Path file, Arena arena, List<String> found) {
        if (file.getFileName().toString().startsWith("libnvrtc.")) {
            for (Path builtins : files(file.getParent(), "libnvrtc-builtins\\.so(\\.\\d+)*")) {
                try {
                    SymbolLookup.libraryLookup(builtins, arena);
                    found.add(builtins.toString());
                } catch (IllegalArgumentException e) {
                    // a builtins library of another version: NVRTC names the one it needs if it fails
                }
            }
        }
        SymbolLookup lookup = SymbolLookup.libraryLookup(file, arena);
        found.add(file.toString());
        return lookup;
    }

    private static List<Path> files(Path folder, String regex) {
        if (folder == null || !Files.isDirectory(folder)) {
            return List.of();
        }
        try (Stream<Path> files = Files.list(folder)) {
            return files.filter(f -> f.getFileName().toString().matches(regex)).sorted().toList();
        } catch (IOException e) {
            return List.of();
        }
    }

    /** The newest {@code lib<name>.so.<major>} (or plain {@code .so}) in {@code folder}. */
    private static Optional<Path> newest(Path folder, String name) {
        if (!Files.isDirectory(folder)) {
            return Optional.empty();
        }
        try (Stream<Path> files = Files.list(folder)) {
            return files.filter(f -> f.getFileName().toString().matches("lib" + name + "\\.so(\\.\\d+)*"))
                    .max(Comparator.comparingInt((Path f) -> major(f, name)).thenComparing(f -> -f.getFileName().toString().length()));
        } catch (IOException e) {
            return Optional.empty();
        }
    }

    /** The major version in a file name {@code lib<name>.so.<major>[...]}, or 0 for a plain {@code .so}. */
    private static int major(Path file, String name) {
        String rest = file.getFileName().toString().substring(("lib" + name + ".so").length());
        if (rest.isEmpty()) {
            return 0;
        }
        String[] parts = rest.substring(1).split("\\.");
        try {
            return Integer.parseInt(parts[0]);
        } catch (NumberFormatException e) {
            return 0;
        }
    }

    private static List<Path> explicitFolders() {
        String value = System.getProperty("muon4j.cuda.path");
        if (value == null || value.isBlank()) {
            value = System.getenv("MUON4J_CUDA_PATH");
        }
        List<Path> out = new ArrayList<>();
        if (value != null && !value.isBlank()) {
            for (String part : value.split(":")) {
                if (!part.isBlank()) {
                    out.add(Path.of(part));
                }
            }
        }
        return out;
    }

    /** The usual folders: explicit ones, the toolkit's, and every {@code nvidia/<package>/lib} of a site-packages found. */
    static List<Path> searchFolders() {
        Set<Path> out = new LinkedHashSet<>(explicitFolders());
        for (String folder : List.of("/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib", "/usr/lib/x86_64-linux-gnu")) {
            out.add(Path.of(folder));
        }
        List<Path> roots = new ArrayList<>(List.of(Path.of("/opt"), Path.of("/usr/lib"), Path.of("/usr/local/lib")));
        String home = System.getProperty("user.home");
        if (home != null) {
            roots.add(Path.of(home, ".local", "lib"));
        }
        for (Path root : roots) {
            for (Path sitePackages : sitePackages(root)) {
                Path nvidia = sitePackages.resolve("nvidia");
                for (Path pkg : children(nvidia)) {
                    Path lib = pkg.resolve("lib");
                    if (Files.isDirectory(lib)) {
                        out.add(lib);
                    }
                }
            }
        }
        return List.copyOf(out);
    }

    /** {@code root/python3*\/(site|dist)-packages} and {@code root/*\/[.]venv|*\/lib/python3*\/...}, a few levels down. */
    private static List<Path> sitePackages(Path root) {
        List<Path> out = new ArrayList<>();
        collectSitePackages(root, 0, out);
        return out;
    }

    private static void collectSitePackages(Path folder, int depth, List<Path> out) {
        if (depth > 4) {
            return;
        }
        for (Path child : children(folder)) {
            String name = child.getFileName().toString();
            if (name.equals("site-packages") || name.equals("dist-packages")) {
                out.add(child);
            } else if (name.startsWith("python3") || name.equals("lib") || name.equals(".venv") || name.equals("venv") || depth < 2) {
                collectSitePackages(child, depth + 1, out);
            }
        }
    }

    private static List<Path> children(Path folder) {
        if (!Files.isDirectory(folder)) {
            return List.of();
        }
        List<Path> out = new ArrayList<>();
        try (DirectoryStream<Path> stream = Files.newDirectoryStream(folder)) {
            for (Path p : stream) {
                if (Files.isDirectory(p)) {
                    out.add(p);
                }
            }
        } catch (IOException | SecurityException e) {
            return List.of();
        }
        out.sort(Comparator.naturalOrder());
        return out;
    }
}
