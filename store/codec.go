package store

import (
	"bytes"
	"compress/flate"
	_ "embed"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/threatgate/threatgate/bot"
)

// How an event record or a projection is kept in the file (schema 12).
//
// A stored value is either its JSON as is (first byte '{': every value
// written before schema 12, and one that packing would not shrink), or
// packed: a mark byte naming the preset dictionary, the JSON's length as
// a uvarint, then the JSON compressed with raw DEFLATE (RFC 1951) against
// that dictionary. Packing changes only what sits in the file: the hash
// chain covers the JSON (the canonical form, as before), and every reader
// unpacks first. An auditor reads a packed value with any DEFLATE
// implementation given the dictionary (store/dict/), or with
// `threatgate audit verify`, which recomputes every hash from it.
//
// A dictionary is part of the file format: once released it never
// changes (TestDictionariesUnchanged pins their hashes). A better one
// takes a new mark.
const (
	markEventsV1     = 0x01 // an event record, dict/events-v1.json
	markProjectionV1 = 0x02 // a projection, dict/projection-v1.json
)

// maxUnpacked bounds the length a packed value may claim, so a damaged
// value cannot make a reader allocate without limit. Nothing threatgate
// stores comes near it (artifacts and evidence are bounded far below).
const maxUnpacked = 64 << 20

var (
	//go:embed dict/events-v1.json
	dictEventsV1 []byte
	//go:embed dict/projection-v1.json
	dictProjectionV1 []byte
)

// A packer compresses with one dictionary; its writers are pooled (a
// flate.Writer holds about 600 KB of state, reset for each value).
type packer struct {
	mark    byte
	dict    []byte
	writers sync.Pool
	readers sync.Pool
}

var (
	eventPacker      = &packer{mark: markEventsV1, dict: dictEventsV1}
	projectionPacker = &packer{mark: markProjectionV1, dict: dictProjectionV1}
)

// packerOf returns the packer of a mark, nil for none.
func packerOf(mark byte) *packer {
	switch mark {
	case markEventsV1:
		return eventPacker
	case markProjectionV1:
		return projectionPacker
	}
	return nil
}

// pack returns the value to store for js: packed when that is shorter,
// else js itself.
func (p *packer) pack(js []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(js)/2 + 16)
	buf.WriteByte(p.mark)
	var n [binary.MaxVarintLen64]byte
	buf.Write(n[:binary.PutUvarint(n[:], uint64(len(js)))])
	w, _ := p.writers.Get().(*flate.Writer)
	if w == nil {
		var err error
		// Level 2 and up use the dictionary (1 ignores it); past 4 the
		// records here gain nothing measurable.
		if w, err = flate.NewWriterDict(&buf, 4, p.dict); err != nil {
			return js // cannot happen: the level is valid
		}
	} else {
		w.Reset(&buf)
	}
	_, werr := w.Write(js)
	cerr := w.Close()
	p.writers.Put(w)
	if werr != nil || cerr != nil || buf.Len() >= len(js) {
		return js
	}
	return buf.Bytes()
}

// errPacked is wrapped by unpack's errors.
var errPacked = errors.New("damaged packed record")

// unpack returns the JSON of a stored value: v itself when it is JSON,
// else what its packing holds. It never panics on any input.
func unpack(v []byte) ([]byte, error) {
	if len(v) == 0 || v[0] == '{' {
		return v, nil
	}
	p := packerOf(v[0])
	if p == nil {
		return nil, fmt.Errorf("%w: neither JSON nor a packed record (first byte 0x%02x)", errPacked, v[0])
	}
	n, w := binary.Uvarint(v[1:])
	if w <= 0 || n == 0 || n > maxUnpacked {
		return nil, fmt.Errorf("%w: bad length", errPacked)
	}
	src := bytes.NewReader(v[1+w:])
	r, _ := p.readers.Get().(io.ReadCloser)
	if r == nil {
		r = flate.NewReaderDict(src, p.dict)
	} else if err := r.(flate.Resetter).Reset(src, p.dict); err != nil {
		return nil, fmt.Errorf("%w: %v", errPacked, err)
	}
	defer p.readers.Put(r)
	// Grown as the stream delivers, not sized from the claimed length: a
	// damaged length must not cost its allocation.
	out := make([]byte, 0, min(n, 64<<10))
	for uint64(len(out)) < n {
		if len(out) == cap(out) {
			out = slices.Grow(out, int(min(n-uint64(len(out)), uint64(cap(out)))))
		}
		k, err := r.Read(out[len(out):min(cap(out), int(n))])
		out = out[:len(out)+k]
		if err == io.EOF && uint64(len(out)) < n {
			return nil, fmt.Errorf("%w: %v", errPacked, io.ErrUnexpectedEOF)
		}
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("%w: %v", errPacked, err)
		}
	}
	// The stream must end exactly there, and nothing may follow it.
	var one [1]byte
	if k, err := r.Read(one[:]); k != 0 || err != io.EOF {
		return nil, fmt.Errorf("%w: longer than its length", errPacked)
	}
	if src.Len() != 0 {
		return nil, fmt.Errorf("%w: bytes after the end", errPacked)
	}
	return out, nil
}

// packEvent and packProjection are the values Commit stores.
func packEvent(rec []byte) []byte     { return eventPacker.pack(rec) }
func packProjection(js []byte) []byte { return projectionPacker.pack(js) }

// RecordJSON returns the JSON of a value stored in the events or the
// escalations bucket, packed or not: for tools and tests that read the
// file with bbolt directly.
func RecordJSON(v []byte) ([]byte, error) { return unpack(v) }

// PackEventRecord and PackProjection return what threatgate would store
// for an event record (its JSON with the hash member) or a projection's
// JSON: for tests and tools that write the file with bbolt directly.
func PackEventRecord(rec []byte) []byte { return packEvent(rec) }
func PackProjection(js []byte) []byte   { return packProjection(js) }

// decodeProjection decodes a value of the escalations bucket.
func decodeProjection(v []byte, e *bot.Escalation) error {
	js, err := unpack(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(js, e)
}
