package bot

import (
	"context"
	"errors"
	"time"
)

// Store persists escalations, the audit log, the outbox and idempotency
// keys. store.DB implements it over bbolt.
type Store interface {
	// FindEscalation returns the escalation with id, or ErrNotFound.
	FindEscalation(ctx context.Context, id string) (*Escalation, error)
	// FindByMR returns the escalation of an MR, or ErrNotFound.
	FindByMR(ctx context.Context, project string, iid int64) (*Escalation, error)
	// FindOpen returns the escalations that still wait on people
	// (State.Active), oldest deadline first.
	FindOpen(ctx context.Context) ([]*Escalation, error)
	// DeferralsDue returns the ids of deferred escalations whose deferral
	// has ended at now, earliest first, at most limit (<= 0: all).
	DeferralsDue(ctx context.Context, now time.Time, limit int) ([]string, error)
	// FindWaitingOn returns the active escalations whose Waiting lists
	// person (the by_approver index).
	FindWaitingOn(ctx context.Context, person string) ([]*Escalation, error)
	// TicksDue returns the ids of active escalations whose NextTick has
	// come at now, earliest first, at most limit (<= 0: all).
	TicksDue(ctx context.Context, now time.Time, limit int) ([]string, error)
	// CountOpen returns how many escalations wait on people (open, not
	// deferred),
	// without reading them.
	CountOpen(ctx context.Context) (int, error)
	// Away returns the people who said they are away (/threatgate away)
	// and still are at now: person id -> the day they are back. The
	// policy's away_until is not in it (AwayAt reads both).
	Away(ctx context.Context, now time.Time) (map[string]time.Time, error)
	// Quota returns a person's manual escalations and cap overrides in a
	// quarter ("2026Q4").
	Quota(ctx context.Context, person, quarter string) (Quota, error)
	// SeenKey reports whether an input with this idempotency key was
	// committed and the key has not expired at now.
	SeenKey(ctx context.Context, key string, now time.Time) (bool, error)
	// Commit appends the events to the audit log, saves the projection,
	// updates the indexes and enqueues the effects in one transaction. It
	// returns the projection as saved (with its id when it was new).
	// It returns ErrConflict when the escalation's version is no longer
	// c.Expect, and ErrDuplicate when c.Key was committed before; in both
	// cases nothing is written.
	Commit(ctx context.Context, c *Commit) (*Escalation, error)
}

// Commit is what one decision writes.
type Commit struct {
	// Escalation is the projection after the events, nil when the events
	// belong to no escalation. An empty ID asks the store for a new one,
	// which it stamps on the projection, the events and the effects.
	Escalation *Escalation
	Expect     uint64 // the version the decision was made on; 0 for a new escalation
	Events     []Event
	Effects    []Effect
	Key        string // idempotency key of the input, "" for none
	// KeyTTL is how long Key is remembered; 0 for the store's default
	// (a few days: long enough for any redelivery). A scheduled job's
	// slot is remembered longer, so a restart never runs it twice.
	KeyTTL time.Duration
	At     time.Time
	// Inbox is an inbox item this decision finishes (Input.Inbox), 0 for
	// none: the store removes it in the same transaction, so it is gone
	// exactly when the decision is durable. One already gone is no error.
	Inbox uint64
	// TickMark is TickMark of the policy and binary the projection was
	// computed under ("" when unknown). A store that keeps a tick mark
	// (TickMarks) clears it in the same transaction when a projection is
	// saved under another: the open escalations are then no longer all
	// computed under the mark, and the next start must recompute them.
	TickMark string
}

// Quota is what counts against a person's quarterly cap.
type Quota struct {
	Manual    int `json:"manual"`    // manual escalations filed
	Overrides int `json:"overrides"` // extra escalations granted by cap overrides
}

// Errors the Store returns that callers branch on.
var (
	ErrNotFound  = errors.New("not found")
	ErrConflict  = errors.New("escalation changed since it was read")
	ErrDuplicate = errors.New("input already processed")
)

// Clock tells the time; tests drive a fake one.
type Clock interface{ Now() time.Time }

// Chat posts into an escalation's thread on a chat surface.
type Chat interface {
	Post(ctx context.Context, m Message) (MessageRef, error)
}

// Message is a chat post. Key is the idempotency key of the effect that
// asked for it.
type Message struct {
	Key        string
	Escalation string
	Thread     MessageRef // zero to open the escalation's thread
	Text       string
	Mention    []string
	Security   bool // also post to the security channel
	// Summary marks the thread's parent message: the adapter edits it in
	// place (posting it, and so opening the thread, the first time).
	Summary bool
}

// MessageRef locates a posted message on its surface.
type MessageRef struct {
	Channel string `json:"channel,omitempty"`
	TS      string `json:"ts,omitempty"`
}

// Forge acts on the merge request: the gate's commit status, notes and
// labels. Each call gets the whole effect: e.ID is the idempotency key (a
// retried call must not act twice), e.Body() the text. An error that has a
// RetryAfter() time.Duration method asks the dispatcher to wait that long;
// one with Permanent() bool returning true is not retried.
type Forge interface {
	SetStatus(ctx context.Context, e Effect) error
	PostNote(ctx context.Context, e Effect) error
	AddLabels(ctx context.Context, e Effect) error
}

// Pager pages on-call when a deadline lapses.
type Pager interface {
	Trigger(ctx context.Context, dedupKey, summary string) error
	Resolve(ctx context.Context, dedupKey string) error
}
