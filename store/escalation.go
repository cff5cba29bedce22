package store

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

// FindEscalation returns the escalation with id, or bot.ErrNotFound.
func (d *DB) FindEscalation(ctx context.Context, id string) (*bot.Escalation, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("find %s: %w", id, err)
	}
	var e *bot.Escalation
	err := d.bolt.View(func(tx *bolt.Tx) error {
		var err error
		e, err = getEscalation(tx, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("find %s: %w", id, err)
	}
	if e == nil {
		return nil, bot.ErrNotFound
	}
	return e, nil
}

// FindByMR returns the escalation of an MR, or bot.ErrNotFound.
func (d *DB) FindByMR(ctx context.Context, project string, iid int64) (*bot.Escalation, error) {
	key := mrKey(project, iid)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("find escalation of %s: %w", key, err)
	}
	var e *bot.Escalation
	err := d.bolt.View(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketByMR).Get([]byte(key))
		if id == nil {
			return nil
		}
		var err error
		e, err = mustGetEscalation(tx, string(id), "by_mr")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("find escalation of %s: %w", key, err)
	}
	if e == nil {
		return nil, bot.ErrNotFound
	}
	return e, nil
}

// FindOpen returns the active escalations (State.Active), earliest
// DecisionDue first; those without a deadline come last.
func (d *DB) FindOpen(ctx context.Context) ([]*bot.Escalation, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("find open escalations: %w", err)
	}
	var out []*bot.Escalation
	err := d.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketOpenByDeadline).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(k) <= 8 {
				return malformedKey(bucketOpenByDeadline, k)
			}
			e, err := mustGetEscalation(tx, string(k[8:]), "open_by_deadline")
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find open escalations: %w", err)
	}
	return out, nil
}

// FindWaitingOn returns the active escalations whose Waiting lists
// person, earliest DecisionDue first.
func (d *DB) FindWaitingOn(ctx context.Context, person string) ([]*bot.Escalation, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("find escalations waiting on %s: %w", person, err)
	}
	var out []*bot.Escalation
	err := d.bolt.View(func(tx *bolt.Tx) error {
		prefix := append([]byte(person), 0)
		c := tx.Bucket(bucketByApprover).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			e, err := mustGetEscalation(tx, string(k[len(prefix):]), "by_approver")
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find escalations waiting on %s: %w", person, err)
	}
	slices.SortFunc(out, func(a, b *bot.Escalation) int {
		return cmp.Or(bytes.Compare(timeKey(a.DecisionDue), timeKey(b.DecisionDue)), compareIDs(a.ID, b.ID))
	})
	return out, nil
}

// List returns every escalation, ESC-1 first.
func (d *DB) List(ctx context.Context) ([]*bot.Escalation, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list escalations: %w", err)
	}
	var out []*bot.Escalation
	err := d.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEscalations).ForEach(func(k, v []byte) error {
			var e bot.Escalation
			if err := decodeProjection(v, &e); err != nil {
				return fmt.Errorf("decode %s: %w", k, err)
			}
			out = append(out, &e)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list escalations: %w", err)
	}
	slices.SortFunc(out, func(a, b *bot.Escalation) int { return compareIDs(a.ID, b.ID) })
	return out, nil
}

// getEscalation loads a projection, nil when missing.
func getEscalation(tx *bolt.Tx, id string) (*bot.Escalation, error) {
	v := tx.Bucket(bucketEscalations).Get([]byte(id))
	if v == nil {
		return nil, nil
	}
	var e bot.Escalation
	if err := decodeProjection(v, &e); err != nil {
		return nil, fmt.Errorf("decode %s: %w", id, err)
	}
	return &e, nil
}

// mustGetEscalation loads a projection an index names; a missing one is a
// broken index.
func mustGetEscalation(tx *bolt.Tx, id, index string) (*bot.Escalation, error) {
	e, err := getEscalation(tx, id)
	if err == nil && e == nil {
		err = fmt.Errorf("index %s names %s, which is missing", index, id)
	}
	return e, err
}

// mrKey is the by_mr key of an MR: "group/project!12", the path in lower
// case (GitLab's paths are not case-sensitive: Shop/API!12 is shop/api!12).
func mrKey(project string, iid int64) string {
	return strings.ToLower(project) + "!" + strconv.FormatInt(iid, 10)
}

// idNumber returns n of "ESC-n".
func idNumber(id string) (uint64, bool) {
	s, ok := strings.CutPrefix(id, "ESC-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// compareIDs orders ESC-2 before ESC-10, and ids of another form after
// all ESC-n, by text.
func compareIDs(a, b string) int {
	na, oka := idNumber(a)
	nb, okb := idNumber(b)
	switch {
	case oka && okb:
		return cmp.Compare(na, nb)
	case oka:
		return -1
	case okb:
		return 1
	}
	return strings.Compare(a, b)
}

// deadlineKey is the open_by_deadline key of e.
func deadlineKey(e *bot.Escalation) []byte { return append(timeKey(e.DecisionDue), e.ID...) }

// approverKey is the by_approver key of person for escalation id.
func approverKey(person, id string) []byte {
	k := make([]byte, 0, len(person)+1+len(id))
	k = append(k, person...)
	k = append(k, 0)
	return append(k, id...)
}

// unindex removes the index entries of a stored projection.
func unindex(tx *bolt.Tx, e *bot.Escalation) error {
	byMR := tx.Bucket(bucketByMR)
	mk := []byte(mrKey(e.Project, e.MRIID))
	if string(byMR.Get(mk)) == e.ID {
		if err := byMR.Delete(mk); err != nil {
			return err
		}
	}
	if err := tx.Bucket(bucketOpenByDeadline).Delete(deadlineKey(e)); err != nil {
		return err
	}
	if err := tx.Bucket(bucketDeferred).Delete(deferredKey(e)); err != nil {
		return err
	}
	if err := tx.Bucket(bucketTickDue).Delete(tickKey(e)); err != nil {
		return err
	}
	if rk := retentionKey(e); rk != nil {
		if err := tx.Bucket(bucketRetentionDue).Delete(rk); err != nil {
			return err
		}
	}
	byApprover := tx.Bucket(bucketByApprover)
	for _, p := range e.Waiting {
		if err := byApprover.Delete(approverKey(p, e.ID)); err != nil {
			return err
		}
	}
	return unindexList(tx, e)
}

// index adds the index entries of a projection about to be stored.
func index(tx *bolt.Tx, e *bot.Escalation) error {
	if err := tx.Bucket(bucketByMR).Put([]byte(mrKey(e.Project, e.MRIID)), []byte(e.ID)); err != nil {
		return err
	}
	if err := indexList(tx, e); err != nil {
		return err
	}
	if !e.NextTick.IsZero() {
		// Open escalations, and closed ones with an action item still
		// to remind of.
		if err := tx.Bucket(bucketTickDue).Put(tickKey(e), nil); err != nil {
			return err
		}
	}
	if rk := retentionKey(e); rk != nil {
		if err := tx.Bucket(bucketRetentionDue).Put(rk, nil); err != nil {
			return err
		}
	}
	if !e.State.Active() {
		return nil
	}
	if err := tx.Bucket(bucketOpenByDeadline).Put(deadlineKey(e), nil); err != nil {
		return err
	}
	if e.State == bot.StateDeferred {
		if err := tx.Bucket(bucketDeferred).Put(deferredKey(e), nil); err != nil {
			return err
		}
	}
	byApprover := tx.Bucket(bucketByApprover)
	for _, p := range e.Waiting {
		if strings.IndexByte(p, 0) >= 0 {
			return fmt.Errorf("waiting person %q contains a NUL byte", p)
		}
		if err := byApprover.Put(approverKey(p, e.ID), nil); err != nil {
			return err
		}
	}
	return nil
}

// deferredKey is the deferred_until key of e: the time key of the end of
// its deferral and its id.
func deferredKey(e *bot.Escalation) []byte { return append(timeKey(e.DeferredUntil), e.ID...) }

// DeferralsDue returns the ids of deferred escalations whose deferral has
// ended at now, earliest first, at most limit (<= 0: all). It reads only
// those (the deferred_until index).
func (d *DB) DeferralsDue(ctx context.Context, now time.Time, limit int) ([]string, error) {
	return d.dueIDs(ctx, bucketDeferred, "deferrals", now, limit)
}

// dueIDs reads a time-keyed index (time key + id) up to now: the ids of
// the entries due, earliest first, at most limit (<= 0: all).
func (d *DB) dueIDs(ctx context.Context, bucket []byte, what string, now time.Time, limit int) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read %s due: %w", what, err)
	}
	var out []string
	until := string(timeKey(now))
	err := d.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		for k, _ := c.First(); k != nil && string(k[:min(len(k), 8)]) <= until; k, _ = c.Next() {
			if len(k) <= 8 {
				return malformedKey(bucket, k)
			}
			if limit > 0 && len(out) == limit {
				break
			}
			out = append(out, string(k[8:]))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s due: %w", what, err)
	}
	return out, nil
}

// CountOpen returns how many escalations wait on people: the keys of the
// open_by_deadline index less those of the deferral index, from the
// buckets' stats.
// It decodes no escalation; its cost follows the index's pages, not the
// escalations' size.
func (d *DB) CountOpen(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("count open escalations: %w", err)
	}
	var n int
	err := d.bolt.View(func(tx *bolt.Tx) error {
		// Open, less the deferred: a deferred escalation waits on nobody,
		// so it does not make the backlog's peak.
		n = tx.Bucket(bucketOpenByDeadline).Stats().KeyN - tx.Bucket(bucketDeferred).Stats().KeyN
		n = max(n, 0)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count open escalations: %w", err)
	}
	return n, nil
}

// malformedKey is the error for a key of a time-keyed index (time key +
// id) too short to hold both: the file was damaged or edited.
func malformedKey(bucket, k []byte) error {
	return fmt.Errorf("index %s has a malformed key %x; run threatgate audit verify, or restore a backup", bucket, k)
}
