package web

import (
	"context"
	"time"

	"github.com/threatgate/threatgate/bot"
)

// Reader is what the pages read; store.DB is one.
type Reader interface {
	// ListPage reads a page of the whole record through the store's
	// indexes (GET /api/escalations, GET /escalations).
	Pager
	FindEscalation(ctx context.Context, id string) (*bot.Escalation, error)
	// The dashboard reads the counters kept at commit time, counts what
	// depends on the clock from the deadline indexes, and reads the most
	// urgent open escalations (bounded); store.DB documents the costs.
	Aggregates(ctx context.Context) (bot.Aggregates, error)
	CountOverdue(ctx context.Context, now time.Time) (int, error)
	CountPastFirstResponse(ctx context.Context, now time.Time, responded func(*bot.Escalation) bool) (int, error)
	MostUrgent(ctx context.Context, limit int) (open, deferred []*bot.Escalation, err error)
	Events(ctx context.Context, escalationID string) ([]bot.Event, error)
	// Verify walks the whole audit chain; it returns how many events it
	// checked, or an error naming the first broken link.
	Verify(ctx context.Context) (int, error)
	// DeadLetters returns up to limit items the background loops set
	// aside (limit <= 0: all), newest first; DeadLetterCount counts them
	// all, without reading them.
	DeadLetters(ctx context.Context, limit int) ([]bot.DeadLetter, error)
	DeadLetterCount(ctx context.Context) (int, error)
	// The weekly report (/reports/weekly) reads one week of the audit log
	// (EventsBetween), the escalations it names, the open ones and the
	// quotas.
	bot.ReportStore
}

// Handler decides on inputs; *bot.Engine is one.
type Handler interface {
	Handle(ctx context.Context, in bot.Input) (bot.Reply, error)
}

// Samples is the demo's simulated GitLab, driven from the console: it can
// open a few realistic merge requests.
type Samples interface {
	Samples() []Sample
	// OpenSample opens the sample MR with id as if GitLab had sent its
	// webhook, and returns the escalation it led to ("" when the MR needs
	// no review) and the engine's reply.
	OpenSample(ctx context.Context, id string) (escalation, reply string, err error)
}

// Sample is one merge request the simulated GitLab can open.
type Sample struct {
	ID          string
	Title       string
	Description string
	Tier        string // the tier the policy classifies it into; "" none
}
