package dev.muon4j.cli;

import dev.muon4j.nn.DeepSeekConfig;
import dev.muon4j.nn.LlamaConfig;
import dev.muon4j.nn.MlaConfig;
import dev.muon4j.nn.ModelConfig;
import dev.muon4j.nn.MoeConfig;
import picocli.CommandLine.Option;

/**
 * Flags that override a preset's model shape, shared by {@code train}, {@code compare} and
 * {@code bench distributed} (each command has its own {@code --preset}, with its own default).
 */
public final class ModelShapeOptions {
    /** How each layer attends. */
    enum AttentionKind {
        /** Grouped-query attention (Llama's). */
        GQA,
        /** Multi-head Latent Attention (DeepSeek-V2/V3's, Moonlight's). */
        MLA
    }

    @Option(names = "--model", paramLabel = "FAMILY",
            description = "Model family: ${COMPLETION-CANDIDATES} (default: deepseek for compare, llama for the other commands); "
                    + "deepseek is a DeepSeek-V3-style Mixture-of-Experts model with Moonlight's proportions (presets tiny and small).")
    ModelConfig.Family family;

    /** The family when {@code --model} is not given: llama, except where a command sets its own. */
    ModelConfig.Family defaultFamily = ModelConfig.Family.LLAMA;

    /** {@code --model}, or the command's default family. */
    ModelConfig.Family family() {
        return family != null ? family : defaultFamily;
    }

    @Option(names = "--experts", description = "deepseek: routed experts per MoE layer (default: the preset's).")
    Integer experts;

    @Option(names = "--active-experts", description = "deepseek: routed experts each token goes to (default: the preset's).")
    Integer activeExperts;

    @Option(names = "--expert-width", description = "deepseek: SwiGLU width of one expert (default: the preset's).")
    Integer expertWidth;

    @Option(names = "--shared-experts", description = "deepseek: experts every token goes through, 0 for none (default: the preset's).")
    Integer sharedExperts;

    @Option(names = "--dense-layers", description = "deepseek: first layers that keep the dense SwiGLU (default: the preset's).")
    Integer denseLayers;

    @Option(names = "--balance-loss", paramLabel = "ALPHA",
            description = "deepseek: α of DeepSeek-V3's sequence-wise balance loss added to the training objective "
                    + "(DeepSeek-V3: 0.0001); 0 for none, the bias balancing alone (default: 0).")
    Double balanceLoss;

    @Option(names = "--attention", paramLabel = "KIND",
            description = "deepseek: ${COMPLETION-CANDIDATES} (default: mla, as Moonlight; the MLA dimensions are the preset's).")
    AttentionKind attention;

    @Option(names = "--layers", description = "Decoder blocks (default: the preset's).")
    Integer layers;

    @Option(names = "--width", description = "Residual width C (default: the preset's).")
    Integer width;

    @Option(names = "--heads", description = "Query heads H; must divide the width (default: the preset's).")
    Integer heads;

    @Option(names = "--kv-heads", description = "Key/value heads; must divide --heads (default: the preset's).")
    Integer kvHeads;

    @Option(names = "--mlp-width", description = "SwiGLU hidden width (default: the preset's).")
    Integer mlpWidth;

    @Option(names = "--context", description = "Context length T (default: the preset's).")
    Integer context;

    @Option(names = "--init-std", description = "Standard deviation of the initial weights (default: the preset's).")
    Double initStd;

    @Option(names = "--tied", description = "Tie the output head to the embedding table.")
    boolean tied;

    /**
     * {@code preset} with any flags applied and the vocabulary set from the tokenizer.
     *
     * @throws IllegalArgumentException naming the flag and its value when a size is below 1, the heads do not
     *     divide the width or the key/value heads the heads, or a head's width is odd
     */
    LlamaConfig apply(ModelPreset preset, int vocabSize) {
        atLeastOne("--layers", layers);
        atLeastOne("--width", width);
        atLeastOne("--heads", heads);
        atLeastOne("--kv-heads", kvHeads);
        atLeastOne("--mlp-width", mlpWidth);
        atLeastOne("--context", context);
        if (initStd != null && !(initStd > 0 && Double.isFinite(initStd))) {
            throw new IllegalArgumentException("--init-std must be finite and > 0, got " + initStd);
        }
        LlamaConfig p = preset.config();
        int w = or(width, p.width());
        int h = or(heads, p.heads());
        int k = or(kvHeads, kvHeads == null && heads != null ? heads : p.kvHeads());
        if (w % h != 0) {
            throw new IllegalArgumentException("--heads " + h + " does not divide --width " + w + ": each head takes width / heads channels");
        }
        if (h % k != 0) {
            throw new IllegalArgumentException("--kv-heads " + k + " does not divide --heads " + h
                    + ": the query heads share the key/value heads in equal groups");
        }
        if ((w / h) % 2 != 0) {
            throw new IllegalArgumentException("--width " + w + " / --heads " + h + " = " + w / h
                    + " channels per head, but rotary position embeddings need an even number");
        }
        return new LlamaConfig(vocabSize, w, or(layers, p.layers()), h, k, or(mlpWidth, p.mlpWidth()),
                or(context, p.contextLength()), tied || p.tiedHead(), p.ropeTheta(), p.normEps(), initStd != null ? initStd : p.initStd());
    }

    /**
     * The model of {@link #family()}: {@link #apply}'s dense model, or the preset's Mixture-of-Experts model
     * over that trunk with any MoE flags applied.
     *
     * @throws IllegalArgumentException naming the flag and its value
     */
    ModelConfig model(ModelPreset preset, int vocabSize) {
        LlamaConfig trunk = apply(preset, vocabSize);
        if (family() == ModelConfig.Family.LLAMA) {
            for (Object[] f : new Object[][] {{"--experts", experts}, {"--active-experts", activeExperts}, {"--expert-width", expertWidth},
                    {"--shared-experts", sharedExperts}, {"--dense-layers", denseLayers}, {"--attention", attention},
                    {"--balance-loss", balanceLoss}}) {
                if (f[1] != null) {
                    throw new IllegalArgumentException(f[0] + " applies to --model deepseek only");
                }
            }
            return trunk;
        }
        DeepSeekConfig p = preset.deepSeek();
        atLeastOne("--experts", experts);
        atLeastOne("--active-experts", activeExperts);
        atLeastOne("--expert-width", expertWidth);
        if (sharedExperts != null && sharedExperts < 0) {
            throw new IllegalArgumentException("--shared-experts must be at least 0, got " + sharedExperts);
        }
        if (denseLayers != null && (denseLayers < 0 || denseLayers > trunk.layers())) {
            throw new IllegalArgumentException("--dense-layers must be in 0.." + trunk.layers() + " (the layers), got " + denseLayers);
        }
        int e = or(experts, p.moe().experts());
        int k = or(activeExperts, Math.min(e, p.moe().activeExperts()));
        if (k > e) {
            throw new IllegalArgumentException("--active-experts " + k + " is more than the " + e + " experts");
        }
        if (balanceLoss != null && !(balanceLoss >= 0 && Double.isFinite(balanceLoss))) {
            throw new IllegalArgumentException("--balance-loss must be finite and >= 0, got " + balanceLoss);
        }
        MoeConfig moe = new MoeConfig(e, k, or(expertWidth, p.moe().expertWidth()), or(sharedExperts, p.moe().sharedExperts()),
                p.moe().routedScale(), or(denseLayers, Math.min(trunk.layers(), p.moe().firstDenseLayers())),
                balanceLoss != null ? balanceLoss : p.moe().balanceLossAlpha());
        MlaConfig mla = null;
        if (attention != AttentionKind.GQA) {
            // The preset's latent shape, following the trunk's head dimension and width when they were changed.
            int d = trunk.headDim();
            MlaConfig base = p.mla();
            boolean reshaped = d != p.trunk().headDim() || trunk.width() != p.trunk().width();
            mla = reshaped ? new MlaConfig(0, Math.max(1, trunk.width() / 4), d, Math.max(2, d / 2 / 2 * 2), d) : base;
        }
        return new DeepSeekConfig(trunk, moe, mla);
    }

    /**
     * The model of a directory a run starts from ({@code --init-from}), after checking that every shape flag
     * given agrees with it; {@code --balance-loss}, a training setting, applies to it.
     *
     * @param model  the directory's model
     * @param source names the directory in errors
     * @throws IllegalArgumentException naming each flag whose value contradicts the directory's, with both values
     */
    ModelConfig agreeWith(ModelConfig model, String source) {
        LlamaConfig t = model.trunk();
        DeepSeekConfig d = model instanceof DeepSeekConfig ds ? ds : null;
        java.util.List<String> contradictions = new java.util.ArrayList<>();
        if (family != null && family != model.family()) {
            contradictions.add("--model " + family.key() + " (it holds a " + model.family().key() + " model)");
        }
        compare(contradictions, "--layers", layers, t.layers());
        compare(contradictions, "--width", width, t.width());
        compare(contradictions, "--heads", heads, t.heads());
        compare(contradictions, "--kv-heads", kvHeads, t.kvHeads());
        compare(contradictions, "--mlp-width", mlpWidth, t.mlpWidth());
        compare(contradictions, "--context", context, t.contextLength());
        if (initStd != null && initStd != t.initStd()) {
            contradictions.add("--init-std " + initStd + " (it has " + t.initStd() + ")");
        }
        if (tied && !t.tiedHead()) {
            contradictions.add("--tied (its head is not tied)");
        }
        if (d == null) {
            for (Object[] f : new Object[][] {{"--experts", experts}, {"--active-experts", activeExperts}, {"--expert-width", expertWidth},
                    {"--shared-experts", sharedExperts}, {"--dense-layers", denseLayers}, {"--attention", attention},
                    {"--balance-loss", balanceLoss}}) {
                if (f[1] != null) {
                    contradictions.add(f[0] + " (it holds a dense llama model)");
                }
            }
        } else {
            compare(contradictions, "--experts", experts, d.moe().experts());
            compare(contradictions, "--active-experts", activeExperts, d.moe().activeExperts());
            compare(contradictions, "--expert-width", expertWidth, d.moe().expertWidth());
            compare(contradictions, "--shared-experts", sharedExperts, d.moe().sharedExperts());
            compare(contradictions, "--dense-layers", denseLayers, d.moe().firstDenseLayers());
            AttentionKind has = d.mla() != null ? AttentionKind.MLA : AttentionKind.GQA;
            if (attention != null && attention != has) {
                contradictions.add("--attention " + attention.name().toLowerCase(java.util.Locale.ROOT) + " (it has "
                        + has.name().toLowerCase(java.util.Locale.ROOT) + ")");
            }
        }
        if (!contradictions.isEmpty()) {
            throw new IllegalArgumentException("--init-from " + source + " sets the model's shape, and " + String.join(", ", contradictions)
                    + " contradict" + (contradictions.size() == 1 ? "s" : "") + " it; leave the shape flags out or give its values");
        }
        if (d != null && balanceLoss != null) {
            if (!(balanceLoss >= 0 && Double.isFinite(balanceLoss))) {
                throw new IllegalArgumentException("--balance-loss must be finite and >= 0, got " + balanceLoss);
            }
            MoeConfig m = d.moe();
            return new DeepSeekConfig(d.trunk(), new MoeConfig(m.experts(), m.activeExperts(), m.expertWidth(), m.sharedExperts(),
                    m.routedScale(), m.firstDenseLayers(), balanceLoss), d.mla());
        }
        return model;
    }

    private static void compare(java.util.List<String> contradictions, String flag, Integer given, int has) {
        if (given != null && given != has) {
            contradictions.add(flag + " " + given + " (it has " + has + ")");
        }
    }

    private static void atLeastOne(String flag, Integer value) {
        if (value != null && value < 1) {
            throw new IllegalArgumentException(flag + " must be at least 1, got " + value);
        }
    }

    private static int or(Integer v, int fallback) {
        return v != null ? v : fallback;
    }
}
