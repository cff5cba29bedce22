package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

var _ bot.IncidentStore = (*DB)(nil)

// metaNextIncident is the meta key of the last incident number allocated
// (INC-n); no schema change: the meta bucket has always existed.
const metaNextIncident = "next_incident"

// NextIncident allocates the next incident id, INC-n, in a transaction of
// its own: ids are never reused, and one allocated for a decision that is
// then refused or not committed is skipped.
func (d *DB) NextIncident(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("allocate an incident id: %w", err)
	}
	var n uint64
	err := d.bolt.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		n = getU64(meta, metaNextIncident) + 1
		return putU64(meta, metaNextIncident, n)
	})
	if err != nil {
		return "", fmt.Errorf("allocate an incident id: %w", err)
	}
	return "INC-" + strconv.FormatUint(n, 10), nil
}

// incidentEvent is the part of a stored event FindIncident reads before
// decoding the whole of a match.
type incidentEvent struct {
	Kind bot.EventKind `json:"kind"`
	Data struct {
		Incident string `json:"incident"`
	} `json:"data"`
}

// Schema 10 (incident.go): each incident's events, so FindIncident reads
// them and nothing else.
var bucketIncidents = []byte("incident_events")

// incidentKey is the incident_events key of event seq of incident id.
func incidentKey(id string, seq uint64) []byte {
	k := append([]byte(id), 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

// recordIncident files a bot.EventIncident or bot.EventIncidentFixed under
// its incident, inside Commit's transaction; other events are ignored.
func recordIncident(tx *bolt.Tx, ev bot.Event) error {
	if ev.Kind != bot.EventIncident && ev.Kind != bot.EventIncidentFixed {
		return nil
	}
	id := ev.Data.Incident
	if id == "" || strings.IndexByte(id, 0) >= 0 {
		return fmt.Errorf("event %d (%s): incident id %q", ev.Seq, ev.Kind, id)
	}
	b := tx.Bucket(bucketIncidents)
	if b == nil {
		return fmt.Errorf("bucket %s is missing (schema migration 10)", bucketIncidents)
	}
	return b.Put(incidentKey(id, ev.Seq), nil)
}

// migrate10Incidents builds the incident index from the log (one walk,
// once).
func migrate10Incidents(tx *bolt.Tx) error {
	if err := createBuckets(tx, bucketIncidents); err != nil {
		return err
	}
	return tx.Bucket(bucketEvents).ForEach(func(k, v []byte) error {
		var head incidentEvent
		v, err := unpack(v)
		if err != nil {
			return fmt.Errorf("decode event %d: %w", binary.BigEndian.Uint64(k), err)
		}
		if err := json.Unmarshal(v, &head); err != nil {
			return fmt.Errorf("decode event %d: %w", binary.BigEndian.Uint64(k), err)
		}
		if head.Kind != bot.EventIncident && head.Kind != bot.EventIncidentFixed {
			return nil
		}
		return recordIncident(tx, bot.Event{Seq: binary.BigEndian.Uint64(k), Kind: head.Kind, Data: bot.EventData{Incident: head.Data.Incident}})
	})
}

// FindIncident returns the incident id (INC-n, as NextIncident gave it):
// the event that recorded it and the first that recorded its remediation;
// bot.ErrNotFound when there is none. It reads the incident's own events
// through the incident_events index.
func (d *DB) FindIncident(ctx context.Context, id string) (*bot.IncidentRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("find incident %s: %w", id, err)
	}
	want, ok := strings.CutPrefix(id, "INC-")
	n, err := strconv.ParseUint(want, 10, 64)
	if !ok || err != nil || n == 0 {
		return nil, fmt.Errorf("find incident %q: %w", id, bot.ErrNotFound)
	}
	var rec *bot.IncidentRecord
	err = d.bolt.View(func(tx *bolt.Tx) error {
		events, payloads := tx.Bucket(bucketEvents), tx.Bucket(bucketPayloads)
		prefix := append([]byte(id), 0)
		c := tx.Bucket(bucketIncidents).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			seq := binary.BigEndian.Uint64(k[len(prefix):])
			v := events.Get(k[len(prefix):])
			if v == nil {
				return fmt.Errorf("index incident_events names event %d, which is missing", seq)
			}
			ev, err := decodeEvent(payloads, seq, v)
			if err != nil {
				return err
			}
			if ev.Data.Incident != id {
				return fmt.Errorf("index incident_events files event %d of %q under %s; run threatgate audit verify", seq, ev.Data.Incident, id)
			}
			switch {
			case ev.Kind == bot.EventIncident && rec == nil:
				rec = &bot.IncidentRecord{Recorded: ev}
			case ev.Kind == bot.EventIncidentFixed && rec != nil && rec.Fixed == nil:
				fixed := ev
				rec.Fixed = &fixed
			}
		}
		if rec == nil {
			return bot.ErrNotFound
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, bot.ErrNotFound) {
			return nil, fmt.Errorf("find incident %s: %w", id, bot.ErrNotFound)
		}
		return nil, fmt.Errorf("find incident %s: %w", id, err)
	}
	return rec, nil
}
