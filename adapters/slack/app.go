package slack

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	sl "github.com/slack-go/slack"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
)

// SinkName is the name the Slack sink has in the outbox (Engine.SetSinks)
// and in the threads bucket.
const SinkName = "slack"

// Engine is what the Slack surface needs of bot.Engine: deciding on an
// input, and the policy in force (to map people and build modals).
type Engine interface {
	Handle(ctx context.Context, in bot.Input) (bot.Reply, error)
	Policy() *policies.Policy
}

// Store is what the Slack surface reads: escalations (a modal needs the
// tier's checklist, App Home the viewer's queue) and threads (a reply in a
// thread acts on its escalation; a group's message is edited in place).
type Store interface {
	FindEscalation(ctx context.Context, id string) (*bot.Escalation, error)
	FindOpen(ctx context.Context) ([]*bot.Escalation, error)
	EscalationOfThread(ctx context.Context, sink string, ref bot.MessageRef) (string, error)
	bot.Threads
}

// App is threatgate's Slack app: it turns slash commands, button clicks,
// modal submissions and thread replies into bot inputs (Handler over HTTP,
// RunSocket over Socket Mode: both call the same methods), and delivers
// effects to Slack as a bot.Sink (Deliver). It decides nothing: every rule
// is the engine's.
type App struct {
	Client *sl.Client // the Web API, with the bot token
	Engine Engine
	Store  Store
	Clock  bot.Clock
	Log    *slog.Logger

	TeamID          string     // the workspace; requests from any other are refused
	SigningSecret   bot.Secret // HTTP mode: verifies each request; empty turns the HTTP endpoints off
	Channel         string     // where escalation threads open
	SecurityChannel string     // where security notices are copied; "" for none
	// BotUserID is the app's own user (auth.test); its own messages are
	// never read as commands.
	BotUserID string
	// ResponseHosts are the hosts a response_url may point to (Slack's
	// hooks.slack.com and the API host); a response_url elsewhere is not
	// called.
	ResponseHosts []string
	// AckWithin bounds how long a command or interaction waits for the
	// engine before it is acknowledged ("working on it") and answered
	// later, through its response_url or in its thread (default 2s: Slack
	// gives up at 3s).
	AckWithin time.Duration
	// HTTPClient calls response_urls (default: a client with a 10s
	// timeout).
	HTTPClient *http.Client

	mu   sync.Mutex
	seen map[string]time.Time // recently handled event ids
	bg   sync.WaitGroup       // answers being sent in the background

	marks sinkMarkSet // the sink's memory of what it posted (sink.go)
}

// maxSeen bounds the ids App remembers.
const maxSeen = 10000

// NewApp fills in the defaults of a.
func NewApp(a *App) *App {
	if a.Log == nil {
		a.Log = slog.New(slog.DiscardHandler)
	}
	if a.ResponseHosts == nil {
		a.ResponseHosts = []string{"hooks.slack.com"}
	}
	a.seen = map[string]time.Time{}
	return a
}

// users maps a person of the policy to their Slack user id.
func (a *App) users(pol *policies.Policy) UserIDs {
	return func(person string) string {
		if p := pol.Person("id", person); p != nil {
			return p.Slack
		}
		return ""
	}
}

// identity is the identity of a Slack user: the person the policy maps
// their user id to ("" when none).
func (a *App) identity(pol *policies.Policy, userID string) bot.Identity {
	id := bot.Identity{Surface: "slack", ExternalID: userID}
	if p := pol.Person("slack", userID); p != nil && userID != "" {
		id.Person = p.ID
	}
	return id
}

// responseURLAllowed reports whether u may be called to answer a command
// later: https (or the test API's scheme) on one of ResponseHosts.
func (a *App) responseURLAllowed(u string) bool {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" || p.User != nil {
		return false
	}
	for _, h := range a.ResponseHosts {
		if strings.EqualFold(p.Host, h) && (p.Scheme == "https" || p.Scheme == "http" && h != "hooks.slack.com") {
			return true
		}
	}
	return false
}

// once reports whether key is new (and remembers it for an hour): Slack
// retries an event it thinks was not acknowledged, with the same id.
func (a *App) once(key string) bool {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.seen == nil {
		a.seen = map[string]time.Time{}
	}
	if t, ok := a.seen[key]; ok && now.Sub(t) < time.Hour {
		return false
	}
	if len(a.seen) >= maxSeen {
		for k, t := range a.seen {
			if now.Sub(t) >= time.Hour {
				delete(a.seen, k)
			}
		}
		if len(a.seen) >= maxSeen {
			// A flood: forget. What changes state is deduplicated by
			// the engine's idempotency keys all the same.
			clear(a.seen)
		}
	}
	a.seen[key] = now
	return true
}

// writtenKey carries, in a request's context, when Slack says the request
// was made (its signed timestamp).
type writtenKey struct{}

// withWritten records t as when the input in ctx was written.
func withWritten(ctx context.Context, t time.Time) context.Context {
	return context.WithValue(ctx, writtenKey{}, t)
}

// writtenAt is when the input in ctx was written: the signed timestamp of
// its HTTP request, else now (Socket Mode, where it has just arrived).
func (a *App) writtenAt(ctx context.Context) time.Time {
	if t, ok := ctx.Value(writtenKey{}).(time.Time); ok && !t.IsZero() {
		return t
	}
	return a.now()
}

// slackTime reads a Slack timestamp ("1700000005.000100", seconds and
// microseconds); zero when it is not one.
func slackTime(ts string) time.Time {
	sec, frac, _ := strings.Cut(ts, ".")
	s, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || s <= 0 {
		return time.Time{}
	}
	var us int64
	if frac != "" {
		if len(frac) > 6 {
			frac = frac[:6]
		}
		for len(frac) < 6 {
			frac += "0"
		}
		if us, err = strconv.ParseInt(frac, 10, 64); err != nil {
			return time.Time{}
		}
	}
	return time.Unix(s, us*1000)
}

// forget drops key from what once remembers.
func (a *App) forget(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.seen, key)
}

func (a *App) now() time.Time {
	if a.Clock != nil {
		return a.Clock.Now()
	}
	return time.Now()
}
