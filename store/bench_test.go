package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
)

// BenchmarkCommit measures one Commit transaction, with and without fsync:
// "open" creates an escalation (an event, a queued MR note, a reply);
// "update" appends an approval to an existing one, with an idempotency key
// and a queued thread post.
func BenchmarkCommit(b *testing.B) {
	for _, sync := range []bool{false, true} {
		open := func(b *testing.B) *DB {
			if !sync {
				return mustOpen(b)
			}
			db, err := Open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { db.Close() })
			return db
		}
		mode := "nosync"
		if sync {
			mode = "sync"
		}
		b.Run("open/"+mode, func(b *testing.B) {
			db := open(b)
			i := int64(0)
			for b.Loop() {
				i++
				at := t0.Add(time.Duration(i) * time.Second)
				mustCommit(b, db, openCommit("acme/api", i, at, at.Add(48*time.Hour), "bob", "carol"))
			}
		})
		b.Run("update/"+mode, func(b *testing.B) {
			db := open(b)
			esc := mustCommit(b, db, openCommit("acme/api", 1, t0, t0.Add(48*time.Hour), "bob", "carol"))
			for b.Loop() {
				at := t0.Add(time.Duration(esc.Version) * time.Second)
				c := change(esc, bot.Event{Kind: bot.EventApproved, Actor: "bob", At: at, SHA: "c0ffee", Data: bot.EventData{Group: "appsec", Text: "ok"}}, func(e *bot.Escalation) {
					e.Approvals = append(e.Approvals[:0:0], bot.Decision{By: "bob", SHA: "c0ffee", At: at})
					e.Waiting = []string{"carol"}
				})
				c.Key = fmt.Sprintf("slack:%d", esc.Version)
				c.Effects = []bot.Effect{{Kind: bot.EffectThreadPost, Text: "approved by bob"}}
				esc = mustCommit(b, db, c)
			}
		})
	}
}
