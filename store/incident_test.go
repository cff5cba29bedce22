package store

import (
	"errors"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

func incidentCommit(kind bot.EventKind, id string, at time.Time) *bot.Commit {
	return &bot.Commit{Events: []bot.Event{{Kind: kind, Actor: "alice", At: at, Data: bot.EventData{Incident: id, Project: "g/p", MRIID: 1, Text: "token logged"}}}, At: at}
}

// TestFindIncidentThroughItsIndex: FindIncident reads the incident's own
// events (the first fix counts), for incidents committed before the index
// existed (migration 10) and after.
func TestFindIncidentThroughItsIndex(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir, withMigrations(migrations[:9]))
	// Written as schema 9 did: appended to the log, no index.
	if err := db.bolt.Update(func(tx *bolt.Tx) error {
		for _, c := range []*bot.Commit{
			incidentCommit(bot.EventIncident, "INC-1", t0),
			incidentCommit(bot.EventIncident, "INC-2", t0.Add(time.Minute)),
			incidentCommit(bot.EventIncidentFixed, "INC-1", t0.Add(time.Hour)),
		} {
			if err := appendEvent(tx, &c.Events[0]); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mustClose(t, db)

	db = mustOpenDir(t, dir)
	for i := range 50 { // history the lookup must not read
		at := t0.Add(2*time.Hour + time.Duration(i)*time.Minute)
		mustCommit(t, db, &bot.Commit{Events: []bot.Event{{Kind: bot.EventAway, Actor: "bob", At: at, Data: bot.EventData{Until: at.Add(time.Hour)}}}, At: at})
	}
	mustCommit(t, db, incidentCommit(bot.EventIncidentFixed, "INC-1", t0.Add(5*time.Hour)))
	mustCommit(t, db, incidentCommit(bot.EventIncident, "INC-3", t0.Add(6*time.Hour)))

	inc, err := db.FindIncident(ctx, "INC-1")
	if err != nil || inc.Recorded.Data.Incident != "INC-1" || inc.Fixed == nil || !inc.Fixed.At.Equal(t0.Add(time.Hour)) {
		t.Fatalf("INC-1 = %+v, %v; want recorded, fixed at the first fix", inc, err)
	}
	if inc, err := db.FindIncident(ctx, "INC-2"); err != nil || inc.Fixed != nil {
		t.Errorf("INC-2 = %+v, %v; want recorded, not fixed", inc, err)
	}
	if inc, err := db.FindIncident(ctx, "INC-3"); err != nil || inc.Recorded.Seq == 0 {
		t.Errorf("INC-3 (after the migration) = %+v, %v", inc, err)
	}
	for _, id := range []string{"INC-4", "INC-0", "INC-x", "ESC-1", ""} {
		if _, err := db.FindIncident(ctx, id); !errors.Is(err, bot.ErrNotFound) {
			t.Errorf("FindIncident(%q) = %v, want ErrNotFound", id, err)
		}
	}
	if n := keyCount(t, db, bucketIncidents); n != 5 {
		t.Errorf("incident_events has %d entries, want 5 (3 recorded, 2 fixes)", n)
	}
}

// TestAuditChecksTheIncidentIndex: the index is not under the chain, so
// audit verify checks it: a fix removed from it, or an entry filing an
// event under another incident, is found.
func TestAuditChecksTheIncidentIndex(t *testing.T) {
	for name, fn := range map[string]func(tx *bolt.Tx) error{
		"fix removed": func(tx *bolt.Tx) error { return tx.Bucket(bucketIncidents).Delete(incidentKey("INC-1", 2)) },
		"entry added": func(tx *bolt.Tx) error { return tx.Bucket(bucketIncidents).Put(incidentKey("INC-2", 2), nil) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			db := mustOpenDir(t, dir)
			mustCommit(t, db, incidentCommit(bot.EventIncident, "INC-1", t0))
			mustCommit(t, db, incidentCommit(bot.EventIncidentFixed, "INC-1", t0.Add(time.Hour)))
			if _, err := db.Audit(ctx, nil); err != nil {
				t.Fatalf("Audit before: %v", err)
			}
			db = tamper(t, dir, db, fn)
			var ce *ChainError
			if _, err := db.Audit(ctx, nil); !errors.As(err, &ce) {
				t.Errorf("Audit after %s: %v, want a ChainError", name, err)
			}
		})
	}
}
