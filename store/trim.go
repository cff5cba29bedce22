package store

import (
	"context"
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"
)

// TrimMapped gives the kernel back the file pages the process has mapped
// while reading: bbolt reads the file through a read-only shared mapping,
// and every page a read touches (with its neighbours: Linux maps the
// folio a fault lands in, or 64 KB around it) stays counted in the
// process's resident memory until the kernel reclaims it. Those pages are
// clean page cache, but a resident size that follows what was ever read
// misleads monitoring and weighs in the OOM killer's choice. TrimMapped
// unmaps them (madvise MADV_DONTNEED over the mapped file); the page cache
// keeps them, so the next read of one is a minor fault, not I/O. Nothing
// read is changed: a read-only shared mapping always shows the file.
//
// It runs inside a read transaction, which keeps bbolt from remapping the
// file meanwhile (a remap waits for every read transaction to end), so it
// never advises memory that is not the file's mapping. It is a no-op
// where madvise is not available.
func (d *DB) TrimMapped(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := d.bolt.View(func(tx *bolt.Tx) error {
		// The meta page's high-water mark (tx.Size) is not checked
		// against the file by bbolt: in a file cut short it runs past the
		// mapping, which covers the file. Advising past the mapping would
		// discard whatever memory lies there, so the length is the
		// smaller of the two.
		fi, err := os.Stat(d.bolt.Path())
		if err != nil {
			return err
		}
		n := min(tx.Size(), fi.Size())
		if n <= 0 {
			return nil
		}
		return dontNeed(d.bolt.Info().Data, uintptr(n))
	})
	if err != nil {
		return fmt.Errorf("trim mapped pages: %w", err)
	}
	return nil
}
