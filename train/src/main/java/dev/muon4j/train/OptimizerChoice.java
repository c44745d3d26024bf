package dev.muon4j.train;

/** Which optimizer trains the model. */
public enum OptimizerChoice {
    /** AdamW on every parameter. */
    ADAMW,
    /** Muon on hidden matrices (Moonlight's variant: MATCH_RMS_ADAMW scale, so AdamW's lr applies), AdamW on the rest. */
    MUON
}
