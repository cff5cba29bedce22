package bot

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// DeadLetter is an item a background loop set aside because handling it
// panicked (or can never succeed): an inbox item, an outbox effect, an
// escalation being reconciled. It is kept where an operator sees it (the
// dashboard, /metrics) instead of crashing the process or replaying the
// same poison on every start.
type DeadLetter struct {
	ID         string    `json:"id"`   // assigned by the store when empty
	Kind       string    `json:"kind"` // what was set aside: "inbox", "effect", "reconcile"
	Ref        string    `json:"ref"`  // its id there: inbox item id, effect id, escalation id
	Escalation string    `json:"escalation,omitempty"`
	Reason     string    `json:"reason"` // the panic value or error, one line, no secrets
	Panic      bool      `json:"panic,omitempty"`
	At         time.Time `json:"at"`
	Payload    []byte    `json:"payload,omitempty"` // the item as it was, to replay once fixed
}

// DeadLetters keeps items set aside. store.DB implements it.
type DeadLetters interface {
	// SetAside records d. It is safe to call from any goroutine.
	SetAside(ctx context.Context, d DeadLetter) error
}

// maxReason bounds a dead letter's reason, in bytes.
const maxReason = 500

// PanicReason writes a recovered panic value as a dead letter's reason and
// a log line show it: one line, at most 500 bytes.
func PanicReason(v any) string {
	r := strings.Join(strings.Fields(fmt.Sprint(v)), " ")
	if len(r) > maxReason {
		r = strings.ToValidUTF8(r[:maxReason], "") + "…"
	}
	return r
}
