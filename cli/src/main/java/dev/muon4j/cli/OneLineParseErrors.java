package dev.muon4j.cli;

/**
 * Marks a command whose flags, when they do not parse (an unknown flag, a value of the wrong type), are
 * answered with one line naming the flag and the value, and a pointer to {@code --help}, instead of
 * the message followed by the whole usage text.
 */
interface OneLineParseErrors {
}
