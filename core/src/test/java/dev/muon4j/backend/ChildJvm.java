package dev.muon4j.backend;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.File;
import java.io.IOException;
import java.net.MalformedURLException;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Runs a Java program in a child JVM started the plain way: {@code java -cp CLASSPATH MAIN}, no
 * {@code --add-modules}, no other flag, and no {@code JAVA_TOOL_OPTIONS}, {@code JDK_JAVA_OPTIONS}
 * or {@code _JAVA_OPTIONS} passed on to it.
 */
public final class ChildJvm {
    private ChildJvm() {
    }

    /**
     * What a child printed.
     *
     * @param command the command line it ran
     * @param exitValue its exit status
     * @param stdout its standard output
     * @param stderr its standard error
     */
    public record Result(List<String> command, int exitValue, String stdout, String stderr) {
        /** The command and both outputs, for a failure message. */
        public String describe() {
            return "\ncommand: " + String.join(" ", command) + "\nexit status: " + exitValue
                    + "\nstdout:\n" + stdout + "\nstderr:\n" + stderr;
        }
    }

    /**
     * muon4j-core's compiled classes, its run-time dependencies (Jackson's three jars), and the
     * org.bytedeco openblas and dnnl jars where this JVM has them on its class path: what a library
     * user's class path holds.
     */
    public static List<String> coreClassPath() {
        List<String> classPath = new ArrayList<>();
        classPath.add(location(Kernels.class.getProtectionDomain().getCodeSource().getLocation()));
        for (Class<?> dependency : List.of(com.fasterxml.jackson.databind.ObjectMapper.class,
                com.fasterxml.jackson.core.JsonParser.class, com.fasterxml.jackson.annotation.JsonProperty.class)) {
            classPath.add(location(dependency.getProtectionDomain().getCodeSource().getLocation()));
        }
        for (String resource : List.of("org/bytedeco/openblas/linux-x86_64/libopenblas.so.0",
                "org/bytedeco/dnnl/linux-x86_64/libdnnl.so.3")) {
            URL url = Backends.class.getClassLoader().getResource(resource);
            if (url != null && url.getProtocol().equals("jar")) {
                String file = url.getPath();
                try {
                    classPath.add(location(new URL(file.substring(0, file.indexOf("!/")))));
                } catch (MalformedURLException e) {
                    throw new IllegalStateException("cannot read the jar of " + url, e);
                }
            }
        }
        return classPath;
    }

    /** The directory or jar a class was loaded from. */
    public static String location(Class<?> type) {
        return location(type.getProtectionDomain().getCodeSource().getLocation());
    }

    private static String location(URL url) {
        try {
            return Path.of(url.toURI()).toString();
        } catch (URISyntaxException e) {
            throw new IllegalStateException("not a file: " + url, e);
        }
    }

    /**
     * Runs {@code mainClass} with this class path in {@code directory} (its working directory, which
     * also receives the two output files); fails the test if it runs longer than {@code seconds}.
     */
    public static Result run(List<String> classPath, String mainClass, Path directory, int seconds)
            throws IOException, InterruptedException {
        return run(List.of(), classPath, mainClass, directory, seconds);
    }

    /** {@link #run(List, String, Path, int)} with {@code jvmOptions} before the class path. */
    public static Result run(List<String> jvmOptions, List<String> classPath, String mainClass, Path directory, int seconds)
            throws IOException, InterruptedException {
        List<String> command = new java.util.ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        command.addAll(jvmOptions);
        command.addAll(List.of("-cp", String.join(File.pathSeparator, classPath), mainClass));
        Path out = directory.resolve(mainClass + ".stdout");
        Path err = directory.resolve(mainClass + ".stderr");
        ProcessBuilder builder = new ProcessBuilder(command).directory(directory.toFile())
                .redirectOutput(out.toFile()).redirectError(err.toFile());
        builder.environment().remove("JAVA_TOOL_OPTIONS");
        builder.environment().remove("JDK_JAVA_OPTIONS");
        builder.environment().remove("_JAVA_OPTIONS");
        Process child = builder.start();
        if (!child.waitFor(seconds, TimeUnit.SECONDS)) {
            child.destroyForcibly().waitFor();
            fail("the child JVM did not finish in " + seconds + " s: " + command + "\nstderr:\n" + Files.readString(err));
        }
        return new Result(command, child.exitValue(), Files.readString(out), Files.readString(err));
    }
}
