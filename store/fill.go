package store

import bolt "go.etcd.io/bbolt"

// appendOnly are the buckets whose keys only grow: the audit log and its
// payloads (big-endian seq), dead letters (seq). bbolt splits a page at
// its bucket's FillPercent, half full by default, which suits keys
// inserted anywhere; keys that only grow would leave every page but the
// last half empty for ever. Filled to the brim, each page is written
// once, full.
var appendOnly = [][]byte{bucketEvents, bucketPayloads, bucketDeadLetters}

// fillAppendOnly sets FillPercent 1.0 on the append-only buckets for the
// rest of tx. bbolt keeps FillPercent per transaction (a Bucket opened in
// a new transaction starts at the default), and a writable transaction
// hands out the same *Bucket for every tx.Bucket call, so each write
// transaction that appends calls this before its first put.
func fillAppendOnly(tx *bolt.Tx) {
	for _, name := range appendOnly {
		if b := tx.Bucket(name); b != nil {
			b.FillPercent = 1.0
		}
	}
}
