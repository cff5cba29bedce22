package gitlab

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	gl "gitlab.com/gitlab-org/api/client-go"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
)

// Gate modes: how threatgate blocks a merge request.
const (
	// GateStatus sets a commit status on the MR head, in its head
	// pipeline, so that "Pipelines must succeed" waits for it.
	GateStatus = "status"
	// GateExternalStatusCheck answers the project's external status check
	// (GitLab Ultimate), so that "Status checks must succeed" waits for it.
	GateExternalStatusCheck = "external_status_check"
)

// DefaultStatusName is the name of the gate's commit status.
const DefaultStatusName = "threatgate/security-review"

// Config configures a Client. BaseURL and Token are required.
type Config struct {
	BaseURL string     // https://gitlab.example.com; client-go appends /api/v4/
	Token   bot.Secret // a token with the api scope
	// StatusName names the gate's commit status; default
	// DefaultStatusName.
	StatusName string
	// Gate is GateStatus (default) or GateExternalStatusCheck.
	Gate string
	// StatusCheckName names the project's external status check that
	// threatgate answers in GateExternalStatusCheck mode; default
	// StatusName.
	StatusCheckName string
	// DashboardURL is threatgate's public dashboard; a status links to
	// DashboardURL + "/escalations/" + the escalation id. "" for no link.
	DashboardURL string
	Timeout      time.Duration // per HTTP request; default 10s
	// HTTPClient is optional (tests); its Timeout is set to Timeout when
	// zero.
	HTTPClient *http.Client
	Log        *slog.Logger
	// Health, when set, is told the outcome of every request the Client
	// makes (see Health): what /readyz reports.
	Health *Health
	// MaxRequestsPerMinute is the rate the client keeps under (every
	// request counts: reads, writes, each page of a list). It slows down
	// further as GitLab's RateLimit-Remaining nears zero, and waits out a
	// 429 (see Limiter). 0, without a Limiter: no limit at all (tests);
	// serve's config defaults it to DefaultMaxRequestsPerMinute.
	MaxRequestsPerMinute int
	// Limiter, when set, replaces the one built from
	// MaxRequestsPerMinute (tests give one with a fake clock).
	Limiter *Limiter
	// OnRequest, when set, is told of every request the client sends:
	// its method, its route template (Route: never an id or a path) and
	// its outcome (one of Outcomes). Not told of requests the caller
	// cancelled.
	OnRequest func(method, route, outcome string)
	// ReadOnly makes a Client that writes nothing to GitLab (gitlab.mode
	// dry_run): SetStatus, PostNote and AddLabels refuse without a
	// request, and FetchMR reads no gate status (its Status is nil). A
	// token with read_api is enough.
	ReadOnly bool
}

// Client is the GitLab side of threatgate: it reads merge requests
// (FetchMR) and acts on them as bot.Forge. It does not retry: the
// dispatcher's outbox owns retries, and every error tells it whether to
// wait (RetryAfter), give up (Permanent) or try again later. A Client is
// safe for concurrent use.
type Client struct {
	api     *gl.Client
	cfg     Config
	limiter *Limiter
	base    string // cfg.BaseURL checked, without a trailing slash
	log     *slog.Logger
	now     func() time.Time

	mu     sync.Mutex
	me     string               // the token's username, "" until known
	checks map[string]int64     // project → id of its external status check
	diffs  *lru                 // changes and commit authors per MR head
	users  map[string]userEntry // lower-case username → numeric id (UserID)

	// skew is GitLab's clock (the Date header of its last answer) less
	// ours, when known.
	skew     time.Duration
	haveSkew bool
}

// sawDate records the Date header of an answer: GitLab's clock.
func (c *Client) sawDate(d time.Time) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.skew, c.haveSkew = d.Sub(now), true
}

// GitLabNow returns the time on GitLab's clock as its last answer's Date
// header told it (less a second: the header has whole seconds), or
// threatgate's own clock before GitLab has answered. updated_at values
// are on GitLab's clock, so a watermark compared with them is too.
func (c *Client) GitLabNow() time.Time {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.haveSkew {
		return now
	}
	return now.Add(c.skew - time.Second)
}

// WatchesStatuses reports whether FetchMR reads the gate's commit status
// (status gate, not read only): only then do pipeline lists say anything
// reconcile needs.
func (c *Client) WatchesStatuses() bool { return !c.cfg.ReadOnly && c.cfg.Gate == GateStatus }

// SizeCache makes room in the cache of diffs and commit lists for n MR
// heads (reconcile passes the number of escalations it watches, plus a
// margin): at least diffCacheSize. The byte bound stays.
func (c *Client) SizeCache(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.diffs.resize(max(diffCacheSize, n))
}

var _ bot.Forge = (*Client)(nil)

// The cache of MR changes keeps at most this many MR heads and bytes.
const (
	diffCacheSize  = 500
	diffCacheBytes = 64 << 20
)

// New returns a Client for cfg. It makes no request.
func New(cfg Config) (*Client, error) {
	base, err := checkBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	if cfg.Token == "" {
		return nil, errors.New("gitlab: the token is empty; give a token with the api scope")
	}
	switch cfg.Gate {
	case "":
		cfg.Gate = GateStatus
	case GateStatus, GateExternalStatusCheck:
	default:
		return nil, fmt.Errorf("gitlab: gate: want %q or %q, got %q", GateStatus, GateExternalStatusCheck, cfg.Gate)
	}
	if cfg.StatusName == "" {
		cfg.StatusName = DefaultStatusName
	}
	if cfg.StatusCheckName == "" {
		cfg.StatusCheckName = cfg.StatusName
	}
	if cfg.DashboardURL != "" {
		u, err := url.Parse(cfg.DashboardURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			return nil, errors.New("gitlab: dashboard URL: want an http(s) URL without credentials, such as https://threatgate.example.com")
		}
		cfg.DashboardURL = strings.TrimRight(cfg.DashboardURL, "/")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	if hc.Timeout == 0 {
		hc.Timeout = cfg.Timeout
	}
	cfg.HTTPClient = hc
	// Redirects are not followed: net/http would send client-go's
	// PRIVATE-TOKEN header (it strips only Authorization and Cookie) to
	// wherever GitLab, or a proxy in front of it, points. A redirect is
	// an answer (Check names it). A copy, so that the caller's client is
	// left as it was.
	noRedirects := *hc
	noRedirects.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	hc = &noRedirects
	c := &Client{cfg: cfg, base: base, limiter: cfg.Limiter}
	if c.limiter == nil && cfg.MaxRequestsPerMinute > 0 {
		c.limiter = NewLimiter(cfg.MaxRequestsPerMinute, nil, nil)
	}
	{
		// Every request is metered and its rate-limit headers read, on a
		// copy so that the caller's client is left as it was.
		wrapped := *hc
		next := hc.Transport
		if next == nil {
			next = http.DefaultTransport
		}
		wrapped.Transport = &meterTransport{next: next, limiter: c.limiter, observe: cfg.OnRequest, client: c}
		hc = &wrapped
	}
	if cfg.Health != nil {
		// A copy, so that the caller's client is left as it was.
		wrapped := *hc
		next := hc.Transport
		if next == nil {
			next = http.DefaultTransport
		}
		wrapped.Transport = &healthTransport{next: next, health: cfg.Health, redact: c.redact}
		hc = &wrapped
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With(bot.LogComponent, "gitlab")
	opts := []gl.ClientOptionFunc{
		gl.WithBaseURL(base),
		gl.WithHTTPClient(hc),
		// The outbox retries; client-go's own retries (6 attempts, POST
		// included) would post notes twice and hide 429s.
		gl.WithoutRetries(),
		gl.WithURLWarningLogger(log),
	}
	if c.limiter != nil {
		// client-go waits for it before each request (each page of a
		// list), outside the HTTP client's timeout; it replaces
		// client-go's own limiter, which reads only RateLimit-Limit.
		opts = append(opts, gl.WithCustomLimiter(c.limiter))
	}
	api, err := gl.NewClient(cfg.Token.Reveal(), opts...)
	if err != nil {
		return nil, errors.New("gitlab: build the API client: invalid base URL")
	}
	c.api, c.log, c.now = api, log, time.Now
	c.checks = make(map[string]int64)
	c.diffs = newLRU(diffCacheSize, diffCacheBytes)
	c.users = make(map[string]userEntry)
	return c, nil
}

// checkBaseURL accepts http(s)://host[:port][/path] without credentials,
// query or fragment, and returns it without a trailing slash. Errors never
// repeat the URL, which might carry a password.
func checkBaseURL(raw string) (string, error) {
	const want = "want the GitLab URL such as https://gitlab.example.com"
	if raw == "" {
		return "", errors.New("gitlab: base URL is empty; " + want)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("gitlab: base URL is not a valid URL; " + want)
	}
	if u.User != nil {
		return "", errors.New("gitlab: base URL carries a user name or password; remove it, the token authenticates")
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.Opaque != "" {
		return "", errors.New("gitlab: base URL: " + want)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", errors.New("gitlab: base URL has a query or fragment; " + want)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// reqOpts returns the per-request options for ctx.
func reqOpts(ctx context.Context) gl.RequestOptionFunc { return gl.WithContext(ctx) }

// Limiter returns the limiter that spaces the client's requests (nil:
// none).
func (c *Client) Limiter() *Limiter { return c.limiter }

// whoAmI returns the token's username, asking GitLab once.
func (c *Client) whoAmI(ctx context.Context) (string, error) {
	c.mu.Lock()
	me := c.me
	c.mu.Unlock()
	if me != "" {
		return me, nil
	}
	u, _, err := c.api.Users.CurrentUser(reqOpts(ctx))
	if err != nil {
		return "", c.fail("find the token's user", err)
	}
	c.mu.Lock()
	c.me = u.Username
	c.mu.Unlock()
	return u.Username, nil
}

// fetched is what the cache keeps of an MR head.
type fetched struct {
	changes []policies.Change
	authors []string
	// partial: GitLab left text of some files out (too large, collapsed).
	partial bool
}

// size estimates the memory f holds.
func (f fetched) size() int {
	n := 0
	for _, c := range f.changes {
		n += len(c.OldPath) + len(c.NewPath) + len(c.Diff) + 64
	}
	for _, a := range f.authors {
		n += len(a) + 16
	}
	return n
}

// lru is a least-recently-used cache bounded by entries and bytes. An
// entry larger than a quarter of the bytes is not kept. Callers hold
// Client.mu.
type lru struct {
	max      int
	maxBytes int
	bytes    int
	order    *list.List // front = most recent; values are *lruEntry
	items    map[string]*list.Element
}

type lruEntry struct {
	key  string
	val  fetched
	size int
}

func newLRU(size, maxBytes int) *lru {
	return &lru{max: size, maxBytes: maxBytes, order: list.New(), items: make(map[string]*list.Element)}
}

func (l *lru) get(key string) (fetched, bool) {
	el, ok := l.items[key]
	if !ok {
		return fetched{}, false
	}
	l.order.MoveToFront(el)
	return el.Value.(*lruEntry).val, true
}

func (l *lru) put(key string, v fetched) {
	if el, ok := l.items[key]; ok {
		l.remove(el)
	}
	size := v.size()
	if size > l.maxBytes/4 {
		return
	}
	l.items[key] = l.order.PushFront(&lruEntry{key: key, val: v, size: size})
	l.bytes += size
	for l.order.Len() > l.max || l.bytes > l.maxBytes {
		l.remove(l.order.Back())
	}
}

func (l *lru) remove(el *list.Element) {
	e := el.Value.(*lruEntry)
	l.order.Remove(el)
	delete(l.items, e.key)
	l.bytes -= e.size
}

func (l *lru) len() int { return l.order.Len() }

// resize sets the number of entries kept, dropping the oldest when fewer.
func (l *lru) resize(n int) {
	l.max = n
	for l.order.Len() > l.max {
		l.remove(l.order.Back())
	}
}
