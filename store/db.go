package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

// FileName is the name of the bbolt file inside the data directory.
const FileName = "threatgate.db"

const (
	defaultLockTimeout = 2 * time.Second
	defaultKeyTTL      = 72 * time.Hour
)

// ErrInUse is returned by Open when another process (or another Open in
// this one) holds the data directory's file.
var ErrInUse = errors.New("the data directory is in use by another threatgate process")

// Log attribute keys.
const (
	logComponent     = "component"
	logPath          = "path"
	logSchemaVersion = "schema_version"
	logCount         = "count"
	logMode          = "mode"
)

var _ bot.Store = (*DB)(nil)

// DB is the store over one bbolt file. Its methods are safe for
// concurrent use; writes are serialised by bbolt.
type DB struct {
	bolt   *bolt.DB
	log    *slog.Logger
	keyTTL time.Duration
	inbox  inboxCommits // Enqueue's group commit
}

// Option configures Open.
type Option func(*options)

type options struct {
	log         *slog.Logger
	lockTimeout time.Duration
	keyTTL      time.Duration
	noSync      bool
	readOnly    bool
	migrations  []migration
}

// Logger sets the logger; by default the store logs nothing.
func Logger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// LockTimeout sets how long Open waits for another process to release the
// file before it fails with ErrInUse (default 2s; at least 1ms).
func LockTimeout(d time.Duration) Option {
	return func(o *options) { o.lockTimeout = max(d, time.Millisecond) }
}

// KeyTTL sets how long an idempotency key is remembered (default 72h).
func KeyTTL(d time.Duration) Option { return func(o *options) { o.keyTTL = d } }

// NoSync skips fsync after each commit. A crash or power loss can then
// lose or corrupt data: for tests and benchmarks only, never production.
func NoSync() Option { return func(o *options) { o.noSync = true } }

// ReadOnly opens an existing file for reading only: nothing is written to
// it, not even a schema migration, so an older copy (a backup) is read as
// it is. Readers of the audit log, the escalations and their events (audit
// verify, export, retro, backup) work on every schema version; a write
// fails with bbolt's ErrDatabaseReadOnly.
func ReadOnly() Option { return func(o *options) { o.readOnly = true } }

// withMigrations replaces the schema migrations, for tests.
func withMigrations(ms []migration) Option { return func(o *options) { o.migrations = ms } }

// Open opens the store in dir, creating the directory (0700) and the file
// (0600) when missing, and brings the file's schema up to date. It fails
// with ErrInUse when another process holds the file past the lock timeout,
// and when the file's schema is newer than this binary knows.
func Open(dir string, opts ...Option) (*DB, error) {
	o := options{
		log:         slog.New(slog.DiscardHandler),
		lockTimeout: defaultLockTimeout,
		keyTTL:      defaultKeyTTL,
		migrations:  migrations,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if !o.readOnly {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
	}
	log := o.log.With(logComponent, "store")
	if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("data directory is open to other users; chmod 700 it", logPath, dir, logMode, fi.Mode().Perm().String())
	}
	path := filepath.Join(dir, FileName)
	if o.readOnly {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("open %s read-only: %w", path, err)
		}
	}
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: o.lockTimeout, NoSync: o.noSync, ReadOnly: o.readOnly})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("open %s: %w (waited %s for its lock; stop the other process or use another data directory)", dir, ErrInUse, o.lockTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	d := &DB{bolt: bdb, log: log, keyTTL: o.keyTTL}
	if o.readOnly {
		if err := d.checkReadable(len(o.migrations)); err != nil {
			bdb.Close()
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
		return d, nil
	}
	if err := d.migrate(o.migrations); err != nil {
		bdb.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	d.log.Debug("store opened", logPath, path, logSchemaVersion, len(o.migrations))
	return d, nil
}

// Close closes the file. Enqueue calls already waiting are committed
// first (Close waits for their rounds, not for a timer); later ones fail
// with bbolt's ErrDatabaseNotOpen. Calling it again does nothing.
func (d *DB) Close() error {
	d.inbox.close()
	if err := d.bolt.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// u64 encodes n as 8 big-endian bytes.
func u64(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// getU64 reads a big-endian integer, 0 when missing.
func getU64(b *bolt.Bucket, key string) uint64 {
	v := b.Get([]byte(key))
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func putU64(b *bolt.Bucket, key string, n uint64) error {
	return b.Put([]byte(key), u64(n))
}

var (
	minNanoTime = time.Unix(0, math.MinInt64)
	maxNanoTime = time.Unix(0, math.MaxInt64)
)

// timeKey encodes t in 8 bytes that sort like t; the zero time sorts last.
func timeKey(t time.Time) []byte {
	var u uint64
	switch {
	case t.IsZero():
		u = math.MaxUint64
	case t.Before(minNanoTime):
		u = 0
	case t.After(maxNanoTime):
		u = math.MaxUint64 - 1
	default:
		u = uint64(t.UnixNano()) ^ (1 << 63)
	}
	return u64(u)
}

// keyTime decodes a timeKey.
func keyTime(k []byte) time.Time {
	u := binary.BigEndian.Uint64(k)
	if u == math.MaxUint64 {
		return time.Time{}
	}
	return time.Unix(0, int64(u^(1<<63)))
}

// WriteTxs returns the id of the file's last committed write
// transaction. It grows by one with every write transaction committed
// (each one fsync, unless NoSync), so the difference between two readings
// counts them: what the tests and benchmarks of batching measure.
func (d *DB) WriteTxs() uint64 {
	var id int
	_ = d.bolt.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil })
	return uint64(id)
}
