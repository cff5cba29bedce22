package store

import (
	"context"
	"fmt"
	"io"

	bolt "go.etcd.io/bbolt"
)

// Backup writes a consistent copy of the whole file to w while writers
// continue, and returns the bytes written. The copy opens as a store:
// restoring is starting threatgate with it as FileName in the data
// directory. It is WriteBackup without a start.
func (d *DB) Backup(ctx context.Context, w io.Writer) (int64, error) {
	return d.WriteBackup(ctx, w, nil)
}

// BackupStart is told, before the first byte of a backup is written, the
// exact size of the copy in bytes and the head of its audit chain (seq 0
// and "" when its log is empty); an HTTP handler sets its headers from
// them. An error it returns stops the backup before anything is written.
type BackupStart func(size int64, headSeq uint64, headHash string) error

// WriteBackup writes a consistent copy of the whole file to w, as it is
// when the call begins, while writers continue (bbolt's Tx.WriteTo in one
// read transaction), and returns the bytes written. start, when not nil,
// is called first, inside the same transaction, so the size and head it
// gets are the copy's. On success exactly size bytes were written; on an
// error w may hold part of a copy, which must be thrown away.
//
// The read transaction lasts until w has taken the whole copy. Meanwhile
// a commit that has to grow the file beyond its memory map waits for it,
// and pages freed by commits are not reused, so w should be fast: a local
// file, or a client close to the server.
func (d *DB) WriteBackup(ctx context.Context, w io.Writer, start BackupStart) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	var n int64
	err := d.bolt.View(func(tx *bolt.Tx) error {
		if start != nil {
			seq, hash := headOf(tx)
			if err := start(tx.Size(), seq, hash); err != nil {
				return err
			}
		}
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("backup: %w", err)
	}
	return n, nil
}
