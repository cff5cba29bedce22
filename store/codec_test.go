package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// The dictionaries are part of the file format: a packed value can be
// read only with the dictionary it was packed with. This test fails when
// one changes; add a new mark and file instead.
func TestDictionariesUnchanged(t *testing.T) {
	for _, tt := range []struct {
		file string
		got  []byte
		want string
	}{
		{"dict/events-v1.json", dictEventsV1, "34e8e289f4747b8f100fec94a2bdd4bf8cd099639a4bedba37487f3afd1056df"},
		{"dict/projection-v1.json", dictProjectionV1, "11669739d52520a9bc9ee61f5697eb3ee8eb8fbf876636bfda22ad783b1d393b"},
	} {
		sum := sha256.Sum256(tt.got)
		if got := hex.EncodeToString(sum[:]); got != tt.want {
			t.Errorf("%s has SHA-256 %s, want %s: released dictionaries never change", tt.file, got, tt.want)
		}
	}
}

func TestPackRoundTrip(t *testing.T) {
	db := mustOpen(t)
	chainOfFour(t, db)
	var values [][]byte
	err := db.bolt.View(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketEvents, bucketEscalations} {
			if err := tx.Bucket(name).ForEach(func(k, v []byte) error {
				values = append(values, bytes.Clone(v))
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(values) != 6 {
		t.Fatalf("%d values, want 4 events and 2 projections", len(values))
	}
	for _, v := range values {
		if v[0] == '{' {
			t.Errorf("a value is stored unpacked (%d bytes): %.80s", len(v), v)
			continue
		}
		js, err := unpack(v)
		if err != nil {
			t.Fatal(err)
		}
		if js[0] != '{' || len(js) <= len(v) {
			t.Errorf("packed %d bytes into %d", len(js), len(v))
		}
		for _, p := range []*packer{eventPacker, projectionPacker} {
			again, err := unpack(p.pack(js))
			if err != nil || !bytes.Equal(again, js) {
				t.Errorf("mark %d: round trip gives %.80s, %v", p.mark, again, err)
			}
		}
	}
	// JSON passes as it is, and what would not shrink stays JSON.
	for _, js := range []string{`{}`, `{"a":1}`} {
		if got := eventPacker.pack([]byte(js)); string(got) != js {
			t.Errorf("pack(%s) = %q, want it as is", js, got)
		}
		if got, err := unpack([]byte(js)); err != nil || string(got) != js {
			t.Errorf("unpack(%s) = %q, %v", js, got, err)
		}
	}
}

// A store written before packing (every value plain JSON) reads and
// verifies as before, and new commits to it are packed.
func TestPlainValuesStayReadable(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir, NoSync())
	chainOfFour(t, db)
	db = tamper(t, dir, db, func(*bolt.Tx) error { return nil }) // unpackAll
	ctx := context.Background()
	if n, err := db.Verify(ctx); err != nil || n != 4 {
		t.Fatalf("Verify = %d, %v; want 4, nil", n, err)
	}
	evs, err := db.Events(ctx, "ESC-1")
	if err != nil || len(evs) != 2 {
		t.Fatalf("Events(ESC-1) = %d, %v", len(evs), err)
	}
	if _, err := db.FindEscalation(ctx, "ESC-2"); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, db, openCommit("acme/api", 3, t0, t0))
	if n, err := db.Verify(ctx); err != nil || n != 5 {
		t.Fatalf("Verify after a new commit = %d, %v; want 5, nil", n, err)
	}
	err = db.bolt.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketEvents).Get(u64(5)); v[0] != markEventsV1 {
			t.Errorf("the new event is stored as %.20q, want it packed", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Tampering with a packed value, as an attacker who edits the file would,
// is found by Verify and refused by readers; nothing panics.
func TestPackedTamperingFound(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(v []byte) []byte
	}{
		{"a bit flipped in the stream", func(v []byte) []byte { v = bytes.Clone(v); v[len(v)/2] ^= 0x10; return v }},
		{"truncated", func(v []byte) []byte { return bytes.Clone(v[:len(v)-3]) }},
		{"bytes appended", func(v []byte) []byte { return append(bytes.Clone(v), 0, 1, 2) }},
		{"length changed", func(v []byte) []byte { v = bytes.Clone(v); v[1]++; return v }},
		{"unknown mark", func(v []byte) []byte { v = bytes.Clone(v); v[0] = 0x7f; return v }},
		{"packed with the other dictionary", func(v []byte) []byte {
			js, _ := unpack(v)
			return projectionPacker.pack(js)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := packedChainEdited(t, func(tx *bolt.Tx) error {
				b := tx.Bucket(bucketEvents)
				return b.Put(u64(2), tt.edit(b.Get(u64(2))))
			})
			ctx := context.Background()
			_, err := db.Verify(ctx)
			var ce *ChainError
			if tt.name == "packed with the other dictionary" {
				// Same JSON, other packing: the record is what was
				// hashed, so the chain holds.
				if err != nil {
					t.Errorf("Verify = %v, want nil (the JSON is unchanged)", err)
				}
				return
			}
			if !errors.As(err, &ce) || ce.Seq != 2 {
				t.Fatalf("Verify = %v, want a *ChainError at event 2", err)
			}
			db.Events(ctx, "ESC-1") // reads without checking hashes; must not panic
			if _, err := db.Audit(ctx, nil); err == nil {
				t.Error("Audit passed over the damaged record")
			}
		})
	}
}

func TestDamagedProjectionRefused(t *testing.T) {
	db := packedChainEdited(t, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEscalations)
		v := bytes.Clone(b.Get([]byte("ESC-1")))
		v[len(v)-2] ^= 0xff
		return b.Put([]byte("ESC-1"), v)
	})
	if _, err := db.FindEscalation(context.Background(), "ESC-1"); err == nil {
		t.Error("FindEscalation read a damaged projection without an error")
	}
}

// packedChainEdited commits chainOfFour (packed), runs edit on the closed
// file through bbolt directly (no unpacking first, unlike tamper), and
// opens it again without the cleanup's chain check.
func packedChainEdited(t *testing.T, edit func(tx *bolt.Tx) error) *DB {
	t.Helper()
	dir := t.TempDir()
	db := mustOpenDir(t, dir, NoSync())
	chainOfFour(t, db)
	mustClose(t, db)
	raw, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Update(edit); err != nil {
		t.Fatal(err)
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = Open(dir, NoSync()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// FuzzUnpack: no input makes unpack panic or return more than it claims.
func FuzzUnpack(f *testing.F) {
	f.Add([]byte(`{"seq":1}`))
	f.Add(eventPacker.pack(bytes.Repeat([]byte(`{"kind":"opened","actor":"bob"}`), 4)))
	f.Add(projectionPacker.pack(bytes.Repeat([]byte(`{"id":"ESC-1","state":"approved"}`), 4)))
	f.Add([]byte{markEventsV1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{markProjectionV1, 5, 0x01, 0x05, 0x00, 0xfa, 0xff, 'h', 'e', 'l', 'l', 'o'})
	f.Fuzz(func(t *testing.T, v []byte) {
		js, err := unpack(v)
		if err != nil {
			return
		}
		if len(v) > 0 && v[0] != '{' && len(js) > maxUnpacked {
			t.Fatalf("unpacked %d bytes", len(js))
		}
		if len(js) > 0 && js[0] == '{' {
			again, err := unpack(eventPacker.pack(js))
			if err != nil || !bytes.Equal(again, js) {
				t.Fatalf("round trip of %q: %q, %v", js, again, err)
			}
		}
	})
}

// The dictionaries are the files in dict/, read as the reader of a file
// would; the embedded copies are those bytes.
func TestDictionaryFilesEmbedded(t *testing.T) {
	for name, got := range map[string][]byte{"dict/events-v1.json": dictEventsV1, "dict/projection-v1.json": dictProjectionV1} {
		want, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the embedded dictionary", name)
		}
	}
}

// A packed value that claims far more than its stream holds is refused
// without allocating what it claims.
func TestUnpackClaimedLengthNotAllocated(t *testing.T) {
	js := []byte(`{"seq":1,"kind":"opened","actor":"bob","data":{}}`)
	v := eventPacker.pack(bytes.Repeat(js, 3))
	var n [10]byte
	forged := append([]byte{markEventsV1}, n[:binary.PutUvarint(n[:], maxUnpacked)]...)
	_, w := binary.Uvarint(v[1:])
	forged = append(forged, v[1+w:]...)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := unpack(forged)
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("a value claiming 64 MiB unpacked")
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Errorf("refusing it allocated %d bytes", got)
	}
}
