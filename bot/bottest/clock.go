// Package bottest holds test helpers that several packages share: a fake
// clock and an in-memory chat that records what it was sent. It is
// imported only by tests.
package bottest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/threatgate/threatgate/bot"
)

// Clock is a bot.Clock that moves only when told to.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

var _ bot.Clock = (*Clock)(nil)

// NewClock returns a clock stopped at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// Chat is a bot.Chat that records every message. Set Err, or Fail (for a
// decision per message; set it before use), to make Post fail.
type Chat struct {
	mu   sync.Mutex
	Sent []bot.Message
	Err  error
	Fail func(bot.Message) error
}

var _ bot.Chat = (*Chat)(nil)

// Post records m.
func (c *Chat) Post(_ context.Context, m bot.Message) (bot.MessageRef, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Err != nil {
		return bot.MessageRef{}, c.Err
	}
	if c.Fail != nil {
		if err := c.Fail(m); err != nil {
			return bot.MessageRef{}, err
		}
	}
	c.Sent = append(c.Sent, m)
	return bot.MessageRef{Channel: "test", TS: fmt.Sprint(len(c.Sent))}, nil
}

// Messages returns a copy of what was posted.
func (c *Chat) Messages() []bot.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]bot.Message(nil), c.Sent...)
}
