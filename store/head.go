package store

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

var _ bot.ChainHead = (*DB)(nil)

// HeadOf returns where the audit chain ends, as recorded in meta by the
// last Commit that appended events: that event's seq and hash; 0 and ""
// while the log is empty. It reads two keys, so it costs the same on any
// log, and checks nothing: Verify, VerifyFrom and Audit do. Kept outside
// the store (a digest in chat, GET /api/audit/head), a head is an anchor
// that Audit checks the log against later.
func (d *DB) HeadOf(ctx context.Context) (seq uint64, hash string, err error) {
	if err := ctx.Err(); err != nil {
		return 0, "", fmt.Errorf("read chain head: %w", err)
	}
	err = d.bolt.View(func(tx *bolt.Tx) error {
		seq, hash = headOf(tx)
		return nil
	})
	if err != nil {
		return 0, "", fmt.Errorf("read chain head: %w", err)
	}
	return seq, hash, nil
}

// headOf reads the chain head recorded in meta.
func headOf(tx *bolt.Tx) (uint64, string) {
	meta := tx.Bucket(bucketMeta)
	seq := getU64(meta, metaHeadSeq)
	if seq == 0 {
		return 0, ""
	}
	return seq, string(meta.Get([]byte(metaHeadHash)))
}
