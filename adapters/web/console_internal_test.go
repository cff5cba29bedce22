package web

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
)

type fixedClock struct{ t time.Time }

func (c *fixedClock) Now() time.Time { return c.t }

// TestConsoleMemoryIsBounded: a console that runs for a year keeps at
// most maxThreads threads, maxPosts posts in each and in General, and
// maxKeys effect keys, whatever it is sent.
func TestConsoleMemoryIsBounded(t *testing.T) {
	clock := &fixedClock{t: time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)}
	c := &Console{Web: &Server{Clock: clock}}
	ctx := context.Background()
	n := maxKeys + 3*maxThreads
	for i := range n {
		clock.t = clock.t.Add(time.Second)
		esc := fmt.Sprintf("ESC-%d", i)
		if _, err := c.Post(ctx, bot.Message{Key: fmt.Sprintf("k%d", i), Escalation: esc, Text: "hello"}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Post(ctx, bot.Message{Key: fmt.Sprintf("g%d", i), Text: "digest"}); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.threads) > maxThreads {
		t.Errorf("%d threads kept, want at most %d", len(c.threads), maxThreads)
	}
	if c.threads[fmt.Sprintf("ESC-%d", n-1)] == nil || c.threads["ESC-0"] != nil {
		t.Error("eviction kept the oldest thread or dropped the newest")
	}
	if len(c.keys) > maxKeys || len(c.keyRing) > maxKeys {
		t.Errorf("%d keys kept (ring %d), want at most %d", len(c.keys), len(c.keyRing), maxKeys)
	}
	if len(c.general) > maxPosts {
		t.Errorf("%d general posts kept, want at most %d", len(c.general), maxPosts)
	}
	// A recent key is still deduplicated.
	last := fmt.Sprintf("k%d", n-1)
	before := len(c.threads[fmt.Sprintf("ESC-%d", n-1)].Posts)
	c.Post(ctx, bot.Message{Key: last, Escalation: fmt.Sprintf("ESC-%d", n-1), Text: "hello"})
	if got := len(c.threads[fmt.Sprintf("ESC-%d", n-1)].Posts); got != before {
		t.Errorf("a recent key was posted again: %d posts, want %d", got, before)
	}
	// One thread's posts are bounded.
	for i := range maxPosts + 50 {
		c.Post(ctx, bot.Message{Key: fmt.Sprintf("t%d", i), Escalation: "ESC-hot", Text: "again"})
	}
	if got := len(c.threads["ESC-hot"].Posts); got != maxPosts {
		t.Errorf("%d posts in one thread, want %d", got, maxPosts)
	}
}
