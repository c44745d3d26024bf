/** The training loop, checkpoints, metrics and reports. */
package dev.muon4j.train;
