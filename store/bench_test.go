package store

import (
	"fmt"
	"strings"
	"sync"
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

// BenchmarkVerifyChain checks a chain of 1,000 or 100,000 events: "full"
// is Verify, the walk of the whole log; "checkpoint" is VerifyFrom with
// nothing new since the last call, "checkpoint+1" with one event committed
// before each call (outside the timing), which it checks and records as
// the new checkpoint, with fsync as in production.
func BenchmarkVerifyChain(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		db, err := Open(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		mustCommit(b, db, openCommit("acme/api", 1, t0, t0.Add(48*time.Hour)))
		for left := n - 1; left > 0; left -= 1000 {
			fillEvents(b, db, min(left, 1000))
		}
		if v, _, err := db.VerifyFrom(ctx); err != nil || v != uint64(n) {
			b.Fatalf("VerifyFrom = %d, %v; want %d", v, err, n)
		}
		b.Run(fmt.Sprintf("events=%d/full", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := db.Verify(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
		for _, add := range []int{0, 1} {
			name := "checkpoint"
			if add > 0 {
				name += "+1"
			}
			b.Run(fmt.Sprintf("events=%d/%s", n, name), func(b *testing.B) {
				for b.Loop() {
					if add > 0 {
						b.StopTimer()
						fillEvents(b, db, add)
						b.StartTimer()
					}
					if _, checked, err := db.VerifyFrom(ctx); err != nil || checked != add {
						b.Fatalf("VerifyFrom checked %d, %v; want %d", checked, err, add)
					}
				}
			})
		}
	}
}

// fillEvents commits k dissent events about 1,000 escalations in one
// commit.
func fillEvents(tb testing.TB, db *DB, k int) {
	tb.Helper()
	evs := make([]bot.Event, k)
	for i := range evs {
		evs[i] = bot.Event{
			Escalation: fmt.Sprintf("ESC-%d", 2+i%1000), Kind: bot.EventDissent, Actor: "bob", At: t0,
			Data: bot.EventData{Text: "the token lives in local storage; an XSS anywhere on the origin reads it"},
		}
	}
	mustCommit(tb, db, &bot.Commit{Events: evs, At: t0})
}

// BenchmarkInboxPass is one worker pass (InboxDue with the worker's limit
// of 500) over an inbox of 3,000 or 30,000 items that all wait for a later
// attempt: nothing is due. Each item is a webhook of about 8 KB that was
// recorded and then failed once (GitLab down).
func BenchmarkInboxPass(b *testing.B) {
	body := webhookBody(8 << 10)
	for _, n := range []int{3_000, 30_000} {
		b.Run(fmt.Sprintf("waiting=%d", n), func(b *testing.B) {
			db := mustOpen(b)
			var wg sync.WaitGroup
			work := make(chan int)
			for range 100 {
				wg.Go(func() {
					for i := range work {
						if _, err := db.Enqueue(ctx, fmt.Sprintf("uuid-%d", i), "Merge Request Hook", body, t0); err != nil {
							b.Error(err)
						}
					}
				})
			}
			for i := range n {
				work <- i
			}
			close(work)
			wg.Wait()
			for id := range uint64(n) {
				if err := db.InboxFailed(ctx, id+1, t0.Add(time.Hour), "gitlab: 502 Bad Gateway"); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				items, err := db.InboxDue(ctx, t0.Add(time.Minute), 500)
				if err != nil || len(items) != 0 {
					b.Fatalf("InboxDue = %d items, %v; want none", len(items), err)
				}
			}
		})
	}
}

// webhookBody is a Merge Request Hook-like JSON body of about size bytes.
func webhookBody(size int) []byte {
	head := `{"object_kind":"merge_request","event_type":"merge_request","user":{"id":7,"username":"ann"},` +
		`"project":{"id":42,"path_with_namespace":"shop/api"},"object_attributes":{"iid":17,"action":"update",` +
		`"last_commit":{"id":"c0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ff"},"description":"`
	tail := `"},"labels":[{"title":"security"}]}`
	const unit = "Rotate the session token on login and drop the legacy cookie. "
	n := max(0, size-len(head)-len(tail))
	return []byte(head + strings.Repeat(unit, n/len(unit)+1)[:n] + tail)
}
