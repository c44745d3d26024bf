package dev.muon4j.cli;

import dev.muon4j.tensor.DType;
import dev.muon4j.train.HuggingFaceExport;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code muon4j export RUN_DIR --out DIR}: a checkpoint as a directory Hugging Face's from_pretrained opens. */
@Command(name = "export", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Write the latest checkpoint of RUN_DIR (or the checkpoint directory RUN_DIR) as a directory that Hugging Face's "
                + "AutoModelForCausalLM.from_pretrained opens: config.json, model.safetensors, generation_config.json and the "
                + "tokenizer's files. The directory is written whole and then renamed into place.")
public final class ExportCommand implements Callable<Integer>, OneLineParseErrors {
    @Parameters(index = "0", paramLabel = "RUN_DIR", description = "A run directory (its latest checkpoint) or one checkpoint directory.")
    Path from;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "The directory to write (created with its parents).")
    Path out;

    @Option(names = "--dtype", defaultValue = "F32", paramLabel = "DTYPE",
            description = "The weights' type: f32 (as trained) or bf16 (rounded to nearest even) (default: f32).")
    DType dtype;

    @Option(names = "--force", description = "Replace DIR when it is not empty (never a directory holding muon4j checkpoints).")
    boolean force;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        HuggingFaceExport.Result r = HuggingFaceExport.export(from, this.out, dtype, force, warning -> {
            err.println("muon4j: warning: " + warning);
            err.flush();
        });
        out.printf(Locale.ROOT, "exported %s (step %d) to %s: %s, %,d parameters, %s%n", r.source(), r.step(), r.out(), r.architecture(),
                r.model().parameterCount(), r.dtype() == DType.BF16 ? "bfloat16" : "float32");
        out.println("files: " + String.join(", ", r.files()));
        if (r.files().contains("vocab.json")) {
            out.println("tokenizer: GPT-2's byte-pair encoding (GPT2TokenizerFast), the ids muon4j trained with");
        } else if (r.files().contains("tokenizer.json")) {
            out.println("tokenizer: one token per UTF-8 byte, id = the byte's value; Hugging Face has no tokenizer class for it, so "
                    + "tokenizer.json describes it for PreTrainedTokenizerFast (AutoTokenizer loads it)");
        }
        r.tokenizerNote().ifPresent(note -> out.println("tokenizer: " + note));
        out.println("load it in Python: AutoModelForCausalLM.from_pretrained(\"" + r.out() + "\")");
        out.flush();
        return 0;
    }
}
