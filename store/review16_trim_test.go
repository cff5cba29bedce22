package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	bolt "go.etcd.io/bbolt"
)

// review16ShrinkableFile writes a store whose live pages all lie in its
// first pages while its high-water mark (the meta's pgid) lies megabytes
// further: a 4 MB bucket written, then dropped, then a few commits that
// reuse the low free pages. It returns the size the file can be cut to
// with every live page kept.
func review16ShrinkableFile(t *testing.T, dir string) int64 {
	t.Helper()
	mustClose(t, mustOpenDir(t, dir, NoSync()))
	path := filepath.Join(dir, FileName)
	b, err := bolt.Open(path, 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	val := make([]byte, 4000)
	if err := b.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucket([]byte("review16-filler"))
		if err != nil {
			return err
		}
		for i := range 1000 {
			if err := bk.Put(fmt.Appendf(nil, "%06d", i), val); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("review16-filler")) }); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if err := b.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put([]byte("review16"), []byte("x"))
		}); err != nil {
			t.Fatal(err)
		}
	}
	var cut int64
	if err := b.View(func(tx *bolt.Tx) error {
		hwm := int(tx.Size() / int64(b.Info().PageSize))
		for id := hwm - 1; id >= 0; id-- {
			pi, err := tx.Page(id)
			if err != nil {
				return err
			}
			if pi != nil && pi.Type != "free" {
				cut = int64((id + pi.OverflowCount + 1) * b.Info().PageSize)
				return nil
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	return cut
}

// review16PlugHolesAbove maps PROT_NONE placeholders over the holes
// between the mappings above addr (up to the stack), so that the kernel's
// top-down search finds no room there; it returns them, [address, length].
func review16PlugHolesAbove(t *testing.T, addr uintptr) [][2]uintptr {
	t.Helper()
	m, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skip("needs /proc/self/maps")
	}
	var plugs [][2]uintptr
	prev := addr
	for line := range strings.Lines(string(m)) {
		if strings.Contains(line, "[stack]") {
			break
		}
		rng, _, _ := strings.Cut(line, " ")
		a, b, _ := strings.Cut(rng, "-")
		lo, err1 := strconv.ParseUint(a, 16, 64)
		hi, err2 := strconv.ParseUint(b, 16, 64)
		if err1 != nil || err2 != nil || uintptr(hi) <= addr {
			continue
		}
		if uintptr(lo) > prev {
			const mapFixedNoReplace = 0x100000
			n := uintptr(lo) - prev
			got, _, errno := syscall.Syscall6(syscall.SYS_MMAP, prev, n, syscall.PROT_NONE,
				syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE|mapFixedNoReplace, ^uintptr(0), 0)
			if errno == 0 && got == prev {
				plugs = append(plugs, [2]uintptr{prev, n})
			} else if errno == 0 {
				syscall.Syscall(syscall.SYS_MUNMAP, got, n, 0)
			}
		}
		prev = max(prev, uintptr(hi))
	}
	return plugs
}

// TestReview16TrimMappedAdvisesPastTheMapping: TrimMapped advises
// MADV_DONTNEED over tx.Size() bytes from the mapping's start, the meta
// page's high-water mark, which bbolt never checks against the file's
// size or its mapping (mmap maps max(file size, InitialMmapSize) rounded
// up; Open validates only the meta pages' checksums). A file cut short
// with its live pages intact (a copy that ran out of space, a restore
// from a truncated backup) opens and reads fine, read-write or
// read-only, but its meta says megabytes more than is mapped: TrimMapped
// then discards whatever the process has mapped past bbolt's mapping (in
// a plain run that is the Go runtime's anonymous memory, and the process
// soon dies of a segmentation fault). Anonymous private memory advised
// MADV_DONTNEED reads back as zeros.
//
// To see it without harming the runtime, the test reserves an anonymous
// region, frees its first megabyte and opens the store (whose mapping of
// the 1 MB file the kernel puts in that hole, once the holes above are
// plugged for the while; it tries again when not): the rest of the
// region, filled with 0xa5, lies right after bbolt's mapping and takes
// the damage.
func TestReview16TrimMappedAdvisesPastTheMapping(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("madvise is Linux-only here")
	}
	const mapSize = 1 << 20 // the cut file's size: bbolt maps exactly this
	const guard = 16 << 20
	for _, ro := range []bool{false, true} {
		t.Run(fmt.Sprintf("readOnly=%v", ro), func(t *testing.T) {
			dir := t.TempDir()
			if live := review16ShrinkableFile(t, dir); live > mapSize {
				t.Fatalf("setup: live pages up to %d", live)
			}
			if err := os.Truncate(filepath.Join(dir, FileName), mapSize); err != nil {
				t.Fatal(err)
			}
			var opts []Option
			if ro {
				opts = append(opts, ReadOnly())
			}
			var db *DB
			var rest []byte
			var restAt uintptr
			for attempt := 0; db == nil; attempt++ {
				if attempt == 50 {
					t.Skip("setup: the kernel never put bbolt's mapping in the hole")
				}
				region, err := syscall.Mmap(-1, 0, mapSize+guard, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
				if err != nil {
					t.Fatal(err)
				}
				base := uintptr(unsafe.Pointer(&region[0]))
				if _, _, errno := syscall.Syscall(syscall.SYS_MUNMAP, base, mapSize, 0); errno != 0 {
					t.Fatal(errno)
				}
				plugs := review16PlugHolesAbove(t, base+mapSize+guard)
				d, err := Open(dir, opts...)
				for _, p := range plugs {
					syscall.Syscall(syscall.SYS_MUNMAP, p[0], p[1], 0)
				}
				if err != nil {
					t.Fatalf("open the cut file: %v", err)
				}
				if d.bolt.Info().Data == base {
					db, rest, restAt = d, region[mapSize:], base+mapSize
					break
				}
				d.Close()
				syscall.Syscall(syscall.SYS_MUNMAP, base+mapSize, guard, 0)
			}
			t.Cleanup(func() {
				db.Close()
				syscall.Syscall(syscall.SYS_MUNMAP, restAt, guard, 0)
			})
			if _, err := db.InboxDepth(context.Background()); err != nil {
				t.Fatalf("the cut file reads: %v", err)
			}
			var size int64
			if err := db.bolt.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil }); err != nil {
				t.Fatal(err)
			}
			if size <= mapSize || size > mapSize+guard {
				t.Fatalf("setup: tx.Size() %d", size)
			}
			for i := range rest {
				rest[i] = 0xA5
			}

			terr := db.TrimMapped(context.Background())

			zeroed := 0
			for _, b := range rest {
				if b != 0xA5 {
					zeroed++
				}
			}
			if zeroed > 0 {
				t.Errorf("TrimMapped (err %v) discarded %d bytes of memory past the store's mapping of %d bytes: it advised tx.Size() = %d bytes, the cut file's high-water mark", terr, zeroed, mapSize, size)
			}
		})
	}
}
