package store

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

// The whole record's index (doc.go, "esc_list"): one bucket, one entry per
// (dimension, value) an escalation has, each ordered by creation time
// within its value, so that every filter of a bot.ListQuery is a walk of
// one key range, newest first.
var bucketList = []byte("esc_list")

// metaListKey is the meta key of the secret that signs list cursors.
const metaListKey = "list_key"

// Dimensions of the esc_list index: the first byte of every key.
const (
	dimCreated = 'c' // every escalation; value ""
	dimState   = 's' // bot.StatesOf: its state, "open" or "closed", "bypassed"
	dimTier    = 't' // its tier id
	dimProject = 'p' // its project path, lower case
	dimPerson  = 'u' // bot.PeopleOf: everyone named on it, lower case
	dimFlag    = 'f' // bot.FlagsOf: urgent, manual, forged
)

// listBudget is how many index entries (and so projections) one page may
// read at most: ten per item asked for, at least 1000. A query whose walk
// meets fewer matches than that stops early and says where to go on.
func listBudget(limit int) int { return max(10*limit, 1000) }

// listPrefix is the key prefix of a value of a dimension.
func listPrefix(dim byte, value string) []byte {
	k := make([]byte, 0, 2+len(value))
	k = append(k, dim)
	k = append(k, value...)
	return append(k, 0)
}

// listKeys returns every esc_list key of e: dimension, value, 0x00, the
// time key of CreatedAt, the id. Values holding a NUL byte are left out
// (no query can name them).
func listKeys(e *bot.Escalation) [][]byte {
	pos := append(timeKey(e.CreatedAt), e.ID...)
	var out [][]byte
	add := func(dim byte, value string) {
		if strings.IndexByte(value, 0) >= 0 || (dim != dimCreated && value == "") {
			return
		}
		out = append(out, append(listPrefix(dim, value), pos...))
	}
	add(dimCreated, "")
	for _, s := range bot.StatesOf(e) {
		add(dimState, s)
	}
	add(dimTier, e.Tier)
	add(dimProject, strings.ToLower(e.Project))
	for _, p := range bot.PeopleOf(e) {
		add(dimPerson, p)
	}
	for _, f := range bot.FlagsOf(e) {
		add(dimFlag, f)
	}
	return out
}

// indexList adds e's esc_list entries; unindexList removes them. Commit
// calls both (through index and unindex), so the index follows every
// projection in the same transaction. A file at a schema before the
// index (only ever opened so by tests of migrations: Open migrates every
// file to the full schema) has no bucket: nothing is written, and the
// migration builds the entries from the projections later.
func indexList(tx *bolt.Tx, e *bot.Escalation) error {
	b := tx.Bucket(bucketList)
	if b == nil {
		return nil
	}
	for _, k := range listKeys(e) {
		if err := b.Put(k, nil); err != nil {
			return err
		}
	}
	return nil
}

func unindexList(tx *bolt.Tx, e *bot.Escalation) error {
	b := tx.Bucket(bucketList)
	if b == nil {
		return nil
	}
	for _, k := range listKeys(e) {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// listFilters returns the esc_list prefixes of every filter of q that
// the index can answer: each escalation q selects has an entry under each.
// Overdue and late (a matter of the time) and since/until (the range)
// are not among them.
func listFilters(q bot.ListQuery) [][]byte {
	var out [][]byte
	if q.State != "" {
		out = append(out, listPrefix(dimState, q.State))
	}
	if q.Person != "" {
		out = append(out, listPrefix(dimPerson, strings.ToLower(q.Person)))
	}
	if q.Project != "" {
		out = append(out, listPrefix(dimProject, strings.ToLower(q.Project)))
	}
	if q.Flag != "" && !bot.TimeFlag(q.Flag) {
		out = append(out, listPrefix(dimFlag, q.Flag))
	}
	if q.Tier != "" {
		out = append(out, listPrefix(dimTier, q.Tier))
	}
	if q.Open != nil {
		if *q.Open {
			out = append(out, listPrefix(dimState, bot.StateOpen))
		} else {
			out = append(out, listPrefix(dimState, bot.StateClosed))
		}
	} else if bot.TimeFlag(q.Flag) {
		out = append(out, listPrefix(dimState, bot.StateOpen))
	}
	return out
}

// listPlan picks the index range a query walks: the most selective
// filter it has, by rule of thumb (bypassed merges are rare; a person or
// a project names few escalations of the whole record; flags, states and
// tiers name more). The other filters are checked first against their
// own index entries, then on the projection.
func listPlan(q bot.ListQuery) []byte {
	switch {
	case q.State == bot.StateBypassed:
		return listPrefix(dimState, q.State)
	case q.Person != "":
		return listPrefix(dimPerson, strings.ToLower(q.Person))
	case q.Project != "":
		return listPrefix(dimProject, strings.ToLower(q.Project))
	case q.Flag != "" && !bot.TimeFlag(q.Flag):
		return listPrefix(dimFlag, q.Flag)
	case q.State != "":
		return listPrefix(dimState, q.State)
	case q.Tier != "":
		return listPrefix(dimTier, q.Tier)
	case q.Open != nil && !*q.Open:
		return listPrefix(dimState, bot.StateClosed)
	case q.Open != nil || bot.TimeFlag(q.Flag):
		return listPrefix(dimState, bot.StateOpen)
	}
	return listPrefix(dimCreated, "")
}

// ListPage returns a page of the escalations q selects, newest first
// (CreatedAt, then id), and the cursor of the next page.
//
// It walks one range of the esc_list index (listPlan) from q.Cursor's
// position, checks each entry against the other filters' own index
// entries (one lookup each), and decodes only the projections that pass,
// where ListQuery.Match has the last word (overdue is judged there). It
// returns at most q.Limit matches (clamped to 1..bot.MaxListLimit, 0 is
// bot.DefaultListLimit) and walks at most listBudget(limit) entries,
// whatever the size of the store: a page costs at most that many walked
// entries, that many lookups per other filter, and (but for flag=overdue
// and flag=late, judged on the projection) limit decoded projections. When the budget
// runs out first the page is short (maybe empty) and Next goes on from
// where it stopped.
//
// The cursor is opaque: the position of the last entry read, signed with
// a secret kept in the file (meta list_key) together with q.Key(), so a
// cursor made up, changed or given for other filters is refused with a
// *bot.Problem (field "cursor"). Positions are creation times and ids,
// which never change, so paging while escalations are added or change
// state neither skips nor repeats one that matches throughout: new ones
// are newer than every position already handed out (one opened in the
// very nanosecond of a position may show on a later page, ordered by id).
func (d *DB) ListPage(ctx context.Context, q bot.ListQuery) (bot.ListPage, error) {
	page, _, err := d.listPage(ctx, q)
	return page, err
}

// listCost is what one page read: entries of the walked range, and
// projections decoded.
type listCost struct{ walked, decoded int }

// listPage is ListPage that also says what it read.
func (d *DB) listPage(ctx context.Context, q bot.ListQuery) (bot.ListPage, listCost, error) {
	if err := ctx.Err(); err != nil {
		return bot.ListPage{}, listCost{}, fmt.Errorf("list escalations: %w", err)
	}
	limit := q.Limit
	switch {
	case limit <= 0:
		limit = bot.DefaultListLimit
	case limit > bot.MaxListLimit:
		limit = bot.MaxListLimit
	}
	var page bot.ListPage
	read, decoded := 0, 0
	err := d.bolt.View(func(tx *bolt.Tx) error {
		secret := tx.Bucket(bucketMeta).Get([]byte(metaListKey))
		if len(secret) == 0 || tx.Bucket(bucketList) == nil {
			return errors.New("the store predates the list index (esc_list): open it read-write once to migrate it")
		}
		prefix := listPlan(q)
		upper := append(bytes.Clone(prefix[:len(prefix)-1]), 1) // just past the value's range
		if !q.Until.IsZero() {
			upper = append(bytes.Clone(prefix), timeKey(q.Until)...)
		}
		if q.Cursor != "" {
			pos, err := openCursor(secret, q, q.Cursor)
			if err != nil {
				return err
			}
			upper = append(bytes.Clone(prefix), pos...)
		}
		lower := prefix
		if !q.Since.IsZero() {
			lower = append(bytes.Clone(prefix), timeKey(q.Since)...)
		}
		budget := listBudget(limit)
		var others [][]byte // the other filters' prefixes, checked by lookup
		for _, f := range listFilters(q) {
			if !bytes.Equal(f, prefix) {
				others = append(others, f)
			}
		}
		check := tx.Bucket(bucketList).Cursor()
		indexed := func(pos []byte) bool {
			for _, f := range others {
				k := append(append(make([]byte, 0, len(f)+len(pos)), f...), pos...)
				if got, _ := check.Seek(k); !bytes.Equal(got, k) {
					return false
				}
			}
			return true
		}
		c := tx.Bucket(bucketList).Cursor()
		k, _ := c.Seek(upper)
		if k == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Prev()
		}
		var last []byte // the position of the last entry read
		for ; k != nil && bytes.HasPrefix(k, prefix) && bytes.Compare(k, lower) >= 0; k, _ = c.Prev() {
			if len(page.Items) == limit || read == budget {
				// There is more in range: go on from the last entry read.
				page.Next = sealCursor(secret, q, last)
				return nil
			}
			read++
			pos := k[len(prefix):]
			if len(pos) <= 8 {
				return fmt.Errorf("esc_list key %q is too short", k)
			}
			last = bytes.Clone(pos)
			if !indexed(pos) {
				continue
			}
			e, err := mustGetEscalation(tx, string(pos[8:]), "esc_list")
			if err != nil {
				return err
			}
			decoded++
			if q.Match(e) {
				page.Items = append(page.Items, e)
			}
		}
		return nil
	})
	if err != nil {
		if _, ok := bot.IsProblem(err); ok {
			return bot.ListPage{}, listCost{read, decoded}, err
		}
		return bot.ListPage{}, listCost{read, decoded}, fmt.Errorf("list escalations: %w", err)
	}
	return page, listCost{read, decoded}, nil
}

// Cursors: base64url of version 1, the position (time key + id) and the
// first 16 bytes of HMAC-SHA256(secret, q.Key() 0x00 position).
const (
	cursorVersion = 1
	cursorMAC     = 16
	maxCursor     = 512 // characters; an id is at most a few dozen
)

func cursorSum(secret []byte, q bot.ListQuery, pos []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(q.Key()))
	m.Write([]byte{0})
	m.Write(pos)
	return m.Sum(nil)[:cursorMAC]
}

func sealCursor(secret []byte, q bot.ListQuery, pos []byte) string {
	raw := append([]byte{cursorVersion}, pos...)
	raw = append(raw, cursorSum(secret, q, pos)...)
	return base64.RawURLEncoding.EncodeToString(raw)
}

// errBadCursor is what a cursor this server did not give for these
// filters gets.
var errBadCursor = &bot.Problem{Field: "cursor", Msg: "not a cursor this server gave for these filters; start again from the first page, without cursor (a cursor is only valid with the filters of the page that gave it)"}

func openCursor(secret []byte, q bot.ListQuery, s string) ([]byte, error) {
	if len(s) > maxCursor {
		return nil, errBadCursor
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(raw) < 1+8+1+cursorMAC || raw[0] != cursorVersion {
		return nil, errBadCursor
	}
	pos, sum := raw[1:len(raw)-cursorMAC], raw[len(raw)-cursorMAC:]
	if !hmac.Equal(sum, cursorSum(secret, q, pos)) {
		return nil, errBadCursor
	}
	return pos, nil
}

// ListWatched returns the escalations reconcile compares with GitLab
// (bot.Escalation.Watched: every one not merged), read through the state
// entries of the esc_list index: merged escalations, most of a year's
// record, are never decoded. Ordered by id.
func (d *DB) ListWatched(ctx context.Context) ([]*bot.Escalation, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list watched escalations: %w", err)
	}
	var out []*bot.Escalation
	err := d.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketList).Cursor()
		for _, st := range bot.AllStates {
			if st == bot.StateMerged {
				continue
			}
			prefix := listPrefix(dimState, string(st))
			for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
				id := string(k[len(prefix)+8:])
				e, err := getEscalation(tx, id)
				if err != nil {
					return err
				}
				if e == nil {
					return fmt.Errorf("index esc_list names %s, which is missing", id)
				}
				if e.Watched() {
					out = append(out, e)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list watched escalations: %w", err)
	}
	slices.SortFunc(out, func(a, b *bot.Escalation) int { return compareIDs(a.ID, b.ID) })
	return out, nil
}
