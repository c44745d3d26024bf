/** Tokenizers, corpora and batches. */
package dev.muon4j.data;
