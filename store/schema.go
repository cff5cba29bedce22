package store

import (
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Bucket names; doc.go says what each holds.
var (
	bucketMeta           = []byte("meta")
	bucketEvents         = []byte("events")
	bucketEventsByEsc    = []byte("events_by_esc")
	bucketEscalations    = []byte("escalations")
	bucketByMR           = []byte("by_mr")
	bucketOpenByDeadline = []byte("open_by_deadline")
	bucketByApprover     = []byte("by_approver")
	bucketOutbox         = []byte("outbox")
	bucketOutboxDue      = []byte("outbox_due")
	bucketIdempotency    = []byte("idempotency")
	bucketQuota          = []byte("quota")
	bucketInbox          = []byte("inbox")
	bucketInboxKeys      = []byte("inbox_keys")
	// Schema 2 (outbox.go): delivery queues per (sink, escalation).
	bucketOutboxQueue  = []byte("outbox_queue")
	bucketOutboxLatest = []byte("outbox_latest")
	bucketThreads      = []byte("threads")
	bucketDeferred     = []byte("deferred_until")
	// Schema 3 (inbox.go): the inbox's due-time index.
	bucketInboxDue = []byte("inbox_due")
	// Schema 4 (deadletter.go): items set aside.
	bucketDeadLetters = []byte("dead_letters")
	// Schema 5 (tick.go): when the sweep must next look at each open
	// escalation.
	bucketTickDue = []byte("tick_due")
)

// buckets lists every bucket the current schema has; Open checks they
// exist after migrating.
var buckets = [][]byte{
	bucketMeta, bucketEvents, bucketEventsByEsc, bucketEscalations,
	bucketByMR, bucketOpenByDeadline, bucketByApprover,
	bucketOutbox, bucketOutboxDue, bucketIdempotency, bucketQuota,
	bucketInbox, bucketInboxKeys,
	bucketOutboxQueue, bucketOutboxLatest, bucketThreads, bucketDeferred,
	bucketInboxDue,
	bucketDeadLetters,
	bucketTickDue,
	bucketAway,
	bucketRetentionDue,
	bucketPayloads,
	bucketList,
	bucketIncidents,
	bucketAggregates,
	bucketFirstResponse,
	bucketUnescalated,
	bucketProjects,
}

// Keys in the meta bucket.
const (
	metaSchemaVersion  = "schema_version"
	metaHeadSeq        = "head_seq"
	metaHeadHash       = "head_hash"
	metaNextEscalation = "next_escalation"
	metaNextQuiet      = "next_quiet"
)

// A migration brings the file from one schema version to the next, inside
// the transaction that also records the new version.
type migration func(tx *bolt.Tx) error

// migrations are the schema's history: migrations[i] takes a file from
// version i to version i+1. Append only; never edit or reorder a released
// one. The binary's schema version is len(migrations).
var migrations = []migration{
	// 1: the initial layout.
	func(tx *bolt.Tx) error {
		for _, name := range buckets[:13] {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	},
	// 2: delivery queues per (sink, escalation), thread references.
	migrate2OutboxQueues,
	// 3: the inbox's due-time index.
	migrate3InboxDue,
	// 4: dead letters.
	migrate4DeadLetters,
	// 5: the sweep's tick index.
	migrate5TickIndex,
	// 6: who is away (away.go).
	migrate6Away,
	// 7: closed escalations for retention (retention.go).
	migrate7Retention,
	// 8: event payloads beside the chain (retention.go).
	migrate8Payloads,
	// 9: the whole record's index and the cursor key (list.go,
	// list_migration.go).
	migrateListIndex,
	// 10: each incident's events (incident.go).
	migrate10Incidents,
	// 11: the read side's counters and the first-response index
	// (aggregate.go).
	migrate11Aggregates,
	// 12: event records and projections may be packed (codec.go). Nothing
	// to convert: values written before stay readable as they are; the
	// version keeps an older threatgate, which cannot read a packed value,
	// from opening the file.
	func(*bolt.Tx) error { return nil },
	// 13: open MRs classified into no tier, projects seen
	// (unescalated.go).
	migrate13Unescalated,
}

// createBuckets makes the named buckets (a migration's new ones).
func createBuckets(tx *bolt.Tx, names ...[]byte) error {
	for _, name := range names {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	return nil
}

// schemaVersion reads the stored version: 0 for a new file.
func schemaVersion(tx *bolt.Tx) uint64 {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return 0
	}
	return getU64(meta, metaSchemaVersion)
}

// migrate runs the migrations the file lacks, each in its own transaction,
// and checks the result has every bucket.
func (d *DB) migrate(ms []migration) error {
	var v uint64
	if err := d.bolt.View(func(tx *bolt.Tx) error { v = schemaVersion(tx); return nil }); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	known := uint64(len(ms))
	if v > known {
		return fmt.Errorf("the file has schema version %d but this threatgate knows only versions up to %d; run a newer threatgate (or restore a backup made by this version)", v, known)
	}
	for ; v < known; v++ {
		err := d.bolt.Update(func(tx *bolt.Tx) error {
			if err := ms[v](tx); err != nil {
				return err
			}
			meta, err := tx.CreateBucketIfNotExists(bucketMeta)
			if err != nil {
				return err
			}
			return putU64(meta, metaSchemaVersion, v+1)
		})
		if err != nil {
			return fmt.Errorf("migrate schema to version %d: %w", v+1, err)
		}
		d.log.Info("schema migrated", logSchemaVersion, v+1)
	}
	if v < uint64(len(migrations)) {
		return nil // an older layout, opened on purpose (tests of migrations)
	}
	return d.bolt.View(func(tx *bolt.Tx) error {
		for _, name := range buckets {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("schema version %d lacks bucket %s", v, name)
			}
		}
		return nil
	})
}

// checkReadable checks, for a read-only open, that the file is a store
// this binary can read: schema version 1 to known (an older one is read as
// it is; its log, escalations and events are in the version 1 layout).
func (d *DB) checkReadable(known int) error {
	return d.bolt.View(func(tx *bolt.Tx) error {
		v := schemaVersion(tx)
		switch {
		case v == 0:
			return errors.New("not a threatgate store (no schema version)")
		case v > uint64(known):
			return fmt.Errorf("the file has schema version %d but this threatgate knows only versions up to %d; run a newer threatgate", v, known)
		}
		for _, name := range buckets[:13] {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("the file lacks bucket %s: not a threatgate store, or damaged", name)
			}
		}
		return nil
	})
}
