package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/threatgate/threatgate/adapters/gitlab"
	"github.com/threatgate/threatgate/adapters/pagerduty"
	"github.com/threatgate/threatgate/adapters/slack"
	"github.com/threatgate/threatgate/adapters/web"
	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
	"github.com/threatgate/threatgate/store"
)

// wallClock is the real clock.
type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// server is threatgate's running parts. newServer builds it; run serves
// until its context ends.
type server struct {
	cfg        Config
	log        *slog.Logger
	clock      bot.Clock
	db         *store.DB
	engine     *bot.Engine
	dispatcher *bot.Dispatcher
	worker     *gitlab.Worker
	web        *web.Server
	console    *web.Console   // nil unless web.console is on (always in the demo)
	slack      *slack.App     // nil without a slack section
	slackToken bot.Secret     // the app-level token: Socket Mode when set
	client     *gitlab.Client // nil without gitlab.url (also read only in a dry run)
	dry        *gitlab.DryRun // set in a dry run: the forge that records what it would have done
	health     *gitlab.Health // nil without gitlab.url: whether GitLab answers, for /readyz
	metrics    *metrics
	handler    http.Handler
	ready      atomic.Bool
	open       bool         // no dashboard token: the pages are guarded by the Host check
	backups    atomic.Int32 // GET /admin/backup copies being taken (at most maxBackups)

	// poll is how often the worker and dispatcher look for work they were
	// not woken for (retries coming due).
	poll time.Duration
}

// extras are the parts only some commands add to the server: the demo's
// simulated GitLab as the forge and its sample MRs for the console, and a
// banner on every page.
type extras struct {
	Forge   bot.Forge
	Samples web.Samples
	Banner  string
}

func newServer(cfg Config, sec Secrets, pol *policies.Policy, db *store.DB, clock bot.Clock, log *slog.Logger, x extras) (*server, error) {
	s := &server{cfg: cfg, log: log, clock: clock, db: db, poll: time.Second}
	s.engine = bot.NewEngine(db, pol, clock, log)
	s.engine.SetBuild(executableDigest())
	s.metrics = newMetrics(db)
	forge := x.Forge
	if g := cfg.GitLab; g != nil && forge == nil {
		if g.URL != "" {
			// In a dry run the client only reads (MRs, diffs, commits,
			// notes): it refuses every write before sending anything.
			s.health = &gitlab.Health{Clock: clock}
			c, err := gitlab.New(gitlab.Config{
				BaseURL: g.URL, Token: sec.GitLabToken, StatusName: g.StatusName, Gate: g.Gate,
				StatusCheckName: g.StatusCheckName, DashboardURL: cfg.PublicURL(), Timeout: g.Timeout,
				Log: log.With(bot.LogComponent, "gitlab"), Health: s.health, ReadOnly: g.DryRun(),
				MaxRequestsPerMinute: g.RequestsPerMinute(), OnRequest: s.metrics.gitlabRequest,
			})
			if err != nil {
				return nil, fmt.Errorf("gitlab client: %w", err)
			}
			s.metrics.watchLimiter(c.Limiter())
			s.client, forge = c, c
		}
		if g.DryRun() {
			// What the gate would set goes to the log, /api/dry-run and
			// the pages' banner; nothing goes to GitLab.
			s.dry = &gitlab.DryRun{Log: log.With(bot.LogComponent, "gitlab-dry-run"), Clock: clock}
			forge = s.dry
		}
	}

	s.web = &web.Server{Store: db, Policy: s.engine.Policy, Clock: clock, Log: log, DashboardToken: sec.DashboardToken, Banner: x.Banner,
		HTTPS: strings.HasPrefix(cfg.PublicURL(), "https://"), Engine: s.engine}
	if cfg.Web != nil {
		s.web.TrustedProxies = cfg.Web.Proxies()
	}
	if s.dry != nil {
		s.web.BannerFor = s.dryRunBanner
	}
	s.web.DryRun = cfg.GitLab != nil && cfg.GitLab.DryRun()
	var chat bot.Chat
	if cfg.Web != nil && cfg.Web.Console {
		s.console = &web.Console{Web: s.web, Samples: x.Samples, Log: log.With(bot.LogComponent, "console")}
		s.web.Console = s.console
		chat = s.console
	}
	s.dispatcher = bot.NewDispatcher(db, forge, chat, nil, clock, log)
	// Each class of effect goes to every sink of its class, each with its
	// own queues: chat effects to the console (when on) and Slack, pages
	// to PagerDuty; an outage of one holds up no other.
	routes := map[string][]string{bot.SinkForge: {bot.SinkForge}, bot.SinkPager: {bot.SinkPager}, bot.SinkChat: {bot.SinkChat}}
	if cfg.Slack != nil {
		app, err := newSlack(cfg.Slack, sec, s.engine, db, clock, log)
		if err != nil {
			return nil, err
		}
		s.slack, s.slackToken = app, sec.SlackAppToken
		s.dispatcher.AddSink(slack.SinkName, app)
		routes[bot.SinkChat] = []string{slack.SinkName}
		if chat != nil {
			routes[bot.SinkChat] = []string{bot.SinkChat, slack.SinkName}
		}
	}
	if p := cfg.PagerDuty; p != nil {
		pager, err := newPagerDuty(p, sec, cfg.PublicURL(), log)
		if err != nil {
			return nil, err
		}
		s.dispatcher.AddSink(pagerduty.SinkName, pager)
		routes[bot.SinkPager] = []string{pagerduty.SinkName}
	}
	s.engine.SetSinks(routes)
	s.dispatcher.OnResult = s.metrics.delivered
	// A delivery that panics is set aside; each chat thread's reference is
	// kept per escalation and sink.
	s.dispatcher.DeadLetters, s.dispatcher.Threads = db, db
	// Effects go out as soon as they are committed.
	s.engine.OnCommit = s.dispatcher.Wake
	eng := s.engine
	if s.console != nil {
		s.console.Engine = eng
	}
	s.worker = &gitlab.Worker{Inbox: db, Engine: eng, Store: db, Clock: clock,
		Log: log.With(bot.LogComponent, "gitlab-worker"), OnProcessed: s.metrics.processed, DeadLetters: db}
	if s.client != nil {
		// A dry run reads MRs like the gate and answers no comment.
		s.worker.Fetch, s.worker.Answer = s.client, s.dry == nil
		s.worker.FullEvery = cfg.GitLab.FullEvery()
		s.worker.Projects = cfg.GitLab.Projects
	}
	// A manual escalation asks for its MR through the worker, as a webhook
	// would (nothing to read in a dry run; the demo sets its simulator).
	s.dispatcher.Refresher = s.worker

	mux := http.NewServeMux()
	// The webhooks take POST only. Every other method gets 405 here,
	// whichever handler would have been reached; without this route, a GET
	// would fall through to the web UI's "/".
	var intake, statusCheck http.Handler
	if g := cfg.GitLab; g != nil {
		intake = &gitlab.Intake{Secret: sec.GitLabWebhookSecret, Inbox: db, Clock: clock,
			MaxBody: cfg.MaxBodyBytes, Log: log.With(bot.LogComponent, "gitlab-intake"), Wake: s.worker.Wake, Observe: s.metrics.webhook("gitlab")}
		if g.Gate == GateExternalStatusCheck {
			statusCheck = &gitlab.StatusCheck{Secret: sec.GitLabStatusCheckSecret, Inbox: db, Clock: clock,
				MaxBody: cfg.MaxBodyBytes, Log: log.With(bot.LogComponent, "gitlab-status-check"), Wake: s.worker.Wake, Observe: s.metrics.webhook("gitlab_status_check")}
		}
	}
	webhook(mux, "/webhooks/gitlab", intake, "the gitlab section is not in the config")
	webhook(mux, "/webhooks/gitlab/status-check", statusCheck, "gitlab.gate is not external_status_check")
	var slackHTTP http.Handler
	slackOff := "the slack section is not in the config"
	if s.slack != nil {
		if s.slack.SigningSecret != "" {
			slackHTTP = s.slack.Handler()
		} else {
			slackOff = "Slack is connected over Socket Mode and no signing secret is set"
		}
	}
	for _, p := range []string{slack.PathCommands, slack.PathInteractions, slack.PathEvents} {
		webhook(mux, p, slackHTTP, slackOff)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		if _, err := db.OutboxDepth(r.Context()); err != nil {
			http.Error(w, "store unavailable", http.StatusServiceUnavailable)
			return
		}
		if s.health != nil {
			if ok, reason := s.health.Ready(); !ok {
				http.Error(w, "not ready: "+reason, http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ready")
	})
	s.open = sec.DashboardToken == ""
	// /metrics: public only when the config says so; otherwise it needs the
	// dashboard token when there is one, and the pages' Host check when
	// there is none.
	metrics := promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})
	if cfg.Web != nil && cfg.Web.MetricsPublic {
		mux.Handle("GET /metrics", metrics)
	} else {
		mux.Handle("GET /metrics", s.local(s.web.RequireToken(metrics)))
	}
	guard := func(h http.Handler) http.Handler { return s.local(s.web.RequireToken(h)) }
	mux.Handle("POST /api/reconcile", guard(http.HandlerFunc(s.reconcileHandler)))
	mux.Handle("GET /api/audit/head", guard(http.HandlerFunc(s.auditHeadHandler)))
	mux.Handle("GET /admin/backup", guard(http.HandlerFunc(s.backupHandler)))
	if s.dry != nil {
		mux.Handle("GET /api/dry-run", guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, s.dry.Actions())
		})))
	}
	// Everything else is the web UI: dashboard, escalation pages,
	// /api/escalations, login, and the console when it is on.
	mux.Handle("/", s.local(s.web.Handler()))
	s.handler = mux
	return s, nil
}

// local protects the pages when no dashboard token is set: they are then
// open to whoever reaches the listener, which is loopback by default, and
// a Host check keeps a web page in the user's browser from reaching them
// through DNS rebinding. Only loopback names and addresses, the listen
// host and the host of the public URL are accepted.
func (s *server) local(h http.Handler) http.Handler {
	if !s.open {
		return h
	}
	allowed := map[string]bool{"localhost": true}
	if u, err := url.Parse(s.cfg.PublicURL()); err == nil && u.Hostname() != "" {
		allowed[strings.ToLower(u.Hostname())] = true
	}
	if host, _, err := net.SplitHostPort(s.cfg.Listen); err == nil && host != "" {
		allowed[strings.ToLower(host)] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.ToLower(strings.Trim(host, "[]"))
		if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || allowed[host] {
			h.ServeHTTP(w, r)
			return
		}
		http.Error(w, "threatgate does not answer to the host name "+strconv.Quote(r.Host)+" without a dashboard token; set web.public_url to the name people use, or set web.dashboard_token_env", http.StatusMisdirectedRequest)
	})
}

// webhook routes path: POST to h, any other method 405 with "Allow:
// POST". When h is nil (that webhook is not configured) every method
// gets 404 saying why.
func webhook(mux *http.ServeMux, path string, h http.Handler, off string) {
	if h == nil {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "this webhook is off: "+off, http.StatusNotFound)
		})
		return
	}
	mux.Handle("POST "+path, h)
	mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
	})
}

func (s *server) reconcileHandler(w http.ResponseWriter, r *http.Request) {
	n, err := s.worker.Reconcile(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, map[string]int{"reconciled": n})
}

// run serves on ln and runs the background work until ctx ends, then
// shuts down gracefully: no new connections, in-flight requests finish,
// background loops stop between items (every item is committed or left
// in the inbox/outbox for the next start).
func (s *server) run(ctx context.Context, ln net.Listener) error {
	// The background parts run together: each until the context ends;
	// one that fails stops the others (and the server).
	bg, stopBG := context.WithCancel(context.Background())
	parts := newGroup(bg)
	parts.Go("gitlab-worker", func(ctx context.Context) error { return s.worker.Run(ctx, s.poll) })
	parts.Go("dispatcher", func(ctx context.Context) error { return s.dispatcher.Run(ctx, s.poll) })
	if s.client != nil && s.cfg.GitLab != nil {
		parts.Go("reconcile", func(ctx context.Context) error { s.reconcileLoop(ctx, s.cfg.GitLab.ReconcileEvery); return nil })
		parts.Go("gitlab-health", func(ctx context.Context) error { s.healthLoop(ctx, healthProbeEvery); return nil })
	}
	sch := newSchedule(s.engine.Policy().Schedule, s.jobs(), s.clock, s.log.With(bot.LogComponent, "schedule"))
	parts.Go("schedule", sch.run)
	parts.Go("housekeeping", func(ctx context.Context) error { s.housekeeping(ctx); return nil })
	parts.Go("trim-mapped", func(ctx context.Context) error {
		trimLoop(ctx, s.db, trimEvery, s.log.With(bot.LogComponent, "store"))
		return nil
	})
	if s.slack != nil && s.slackToken != "" {
		parts.Go("slack-socket-mode", func(ctx context.Context) error { return s.slack.RunSocket(ctx, s.slackToken) })
	}

	hs := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	s.ready.Store(true)
	s.log.Info("threatgate is serving", "listen", ln.Addr().String(), "url", s.cfg.PublicURL())

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	case <-parts.Done():
		err = parts.Err()
	}
	s.ready.Store(false)
	s.log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if serr := hs.Shutdown(shutdownCtx); serr != nil {
		s.log.Warn("http shutdown", bot.LogErr, serr)
	}
	stopBG()
	if perr := parts.Wait(); perr != nil && err == nil {
		err = perr
	}
	if s.slack != nil {
		s.slack.Drain()
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func (s *server) reconcileLoop(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = 10 * time.Minute
	}
	for {
		n, err := s.worker.Reconcile(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("reconcile failed", bot.LogErr, err)
		} else if ctx.Err() == nil {
			s.log.Info("reconciled", "merge_requests", n)
		}
		s.dispatcher.Wake()
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// healthProbeEvery is how often GitLab is asked (GET /user) while its
// last answer was a failure, so that /readyz turns ready again without
// waiting for a webhook or the next reconciliation.
const healthProbeEvery = 30 * time.Second

// healthLoop probes GitLab every period while the client's last request
// failed; the outcome reaches s.health through the client itself.
func (s *server) healthLoop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s.health.Failing() {
			pctx, cancel := context.WithTimeout(ctx, s.cfg.GitLab.Timeout)
			if _, err := s.client.Check(pctx); err == nil {
				s.log.Info("gitlab answers again")
			}
			cancel()
		}
	}
}

// checkGitLab asks GitLab who the token is (GET /user) before serving.
// A wrong URL or token is an error that stops serve, saying what to fix
// and where the token came from (never the token). GitLab not answering
// is logged: serve goes on, webhooks are recorded and handled once it
// answers, and /readyz says not ready after a minute of it.
func (s *server) checkGitLab(ctx context.Context) error {
	if s.client == nil {
		return nil
	}
	g := s.cfg.GitLab
	ctx, cancel := context.WithTimeout(ctx, g.Timeout)
	defer cancel()
	user, err := s.client.Check(ctx)
	var ce *gitlab.CheckError
	switch {
	case err == nil:
		s.log.Info("gitlab connected", "url", redactURL(g.URL), "user", user, "mode", g.Mode, "gate", g.Gate)
		return nil
	case errors.As(err, &ce) && ce.Unreachable:
		s.log.Error("gitlab does not answer; serving anyway: webhooks are recorded and handled once it answers, and /readyz reports not ready after a minute of this", bot.LogErr, err)
		return nil
	}
	return fmt.Errorf("gitlab: %w (the token is read from %s)", err, gitlabTokenSource(g))
}

// gitlabTokenSource names where the GitLab token was read from.
func gitlabTokenSource(g *GitLabConfig) string {
	if g.TokenFile != "" {
		return "the file " + g.TokenFile + " (gitlab.token_file)"
	}
	return "the environment variable " + g.TokenEnv
}

// startNotes are what serve says at start about the gitlab section: how
// MRs are gated, or that nothing is.
func (c Config) startNotes() []string {
	if c.GitLab == nil {
		return []string{"no gitlab section in the config: no webhook endpoint is served (POST /webhooks/gitlab answers 404) and no merge request is gated; add a gitlab section (docs/GITLAB.md)"}
	}
	return nil
}

// dryRunBanner is the pages' banner in a dry run: on an escalation's page,
// the status the gate would have set for it; elsewhere, that nothing is
// written to GitLab.
func (s *server) dryRunBanner(r *http.Request) string {
	g := s.cfg.GitLab
	if id := r.PathValue("id"); id != "" {
		if a, ok := s.dry.LatestStatus(id); ok {
			return fmt.Sprintf("Dry run: threatgate would have set %s to %q on %s at %s (%s); nothing was written to GitLab.",
				g.StatusName, a.Status, bot.ShortSHA(a.SHA), a.At.UTC().Format("2006-01-02 15:04 UTC"), a.Text)
		}
	}
	if g.URL == "" {
		return "Dry run from the webhooks alone (no gitlab.url): nothing is written to GitLab, and without diffs, signals on paths and added lines never fire. What the gate would have set: /api/dry-run."
	}
	return "Dry run (gitlab.mode: dry_run): threatgate reads GitLab and writes nothing to it. What the gate would have set: on each escalation's page, and /api/dry-run."
}

// jobs are what the schedule runs: the engine's sweep, digest and report.
func (s *server) jobs() jobs {
	return engineJobs(s.engine, s.cfg.PublicURL(), s.cfg.Retention.Closed())
}

// housekeeping prunes expired idempotency keys hourly.
func (s *server) housekeeping(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			now := s.clock.Now()
			s.db.PruneKeys(ctx, now)
			s.db.PruneInboxKeys(ctx, now)
		}
	}
}

func (e *env) serve(args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	configPath := fs.String("config", "", "config file (default: built-in defaults)")
	rest, code := e.parseFlags(fs, args)
	if code != 0 {
		return max(code, 0)
	}
	if len(rest) > 0 {
		return e.usage("serve takes no arguments, got %q", rest[0])
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	// Every problem of the file, its values and its secrets, at once.
	cfg, sec, warnings, err := loadChecked(*configPath, os.Getenv)
	for _, name := range cfg.unavailable() {
		fmt.Fprintf(e.stderr, "threatgate: the %s integration is configured but not available in this build yet; remove its section to start\n", name)
		return exitFinding
	}
	if err != nil {
		return e.printProblems(err)
	}
	for _, w := range append(cfg.Warnings(), warnings...) {
		log.Warn(w)
	}
	if cfg.Web == nil && sec.DashboardToken == "" && !loopback(cfg.Listen) {
		log.Warn("listen is not a loopback address and no dashboard token is set: anyone who can reach " + cfg.Listen + " can read the dashboard and /api and trigger reconciliation; add web.dashboard_token_env")
	}
	pol, err := loadPolicy(cfg.Policy)
	if err != nil {
		return e.printProblems(err)
	}
	db, err := store.Open(cfg.DataDir, store.Logger(log))
	if err != nil {
		fmt.Fprintf(e.stderr, "threatgate: %v\n", err)
		return exitFinding
	}
	defer db.Close()
	s, err := newServer(cfg, sec, pol, db, wallClock{}, log, extras{})
	if err != nil {
		fmt.Fprintf(e.stderr, "threatgate: %v\n", err)
		return exitFinding
	}
	for _, n := range cfg.startNotes() {
		log.Warn(n)
	}
	if err := s.checkGitLab(e.ctx); err != nil {
		fmt.Fprintf(e.stderr, "threatgate: %v\n", err)
		return exitFinding
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		fmt.Fprintf(e.stderr, "threatgate: listen on %s: %v\n", cfg.Listen, err)
		return exitFinding
	}
	if err := s.run(e.ctx, ln); err != nil {
		fmt.Fprintf(e.stderr, "threatgate: %v\n", err)
		return exitFinding
	}
	return exitOK
}

// loadConfig reads the config file, or the defaults when path is "", and
// validates it, reporting every problem at once (loadChecked).
func (e *env) loadConfig(path string) (Config, error) {
	cfg, _, _, err := loadChecked(path, nil)
	return cfg, err
}

// unavailable names the configured integrations this build cannot run.
func (c *Config) unavailable() []string {
	var out []string
	if c.Discord != nil {
		out = append(out, "discord")
	}
	return out
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// group runs background parts together, like errgroup: the first part to
// fail (or panic) cancels the others' context; Wait waits for all.
type group struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	err    error
}

func newGroup(parent context.Context) *group {
	ctx, cancel := context.WithCancel(parent)
	return &group{ctx: ctx, cancel: cancel}
}

// Go runs part f under the group's context.
func (g *group) Go(name string, f func(context.Context) error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer func() {
			if r := recover(); r != nil {
				g.fail(fmt.Errorf("%s panicked: %s", name, bot.PanicReason(r)))
			}
		}()
		if err := f(g.ctx); err != nil && g.ctx.Err() == nil {
			g.fail(fmt.Errorf("%s: %w", name, err))
		}
	}()
}

func (g *group) fail(err error) {
	g.once.Do(func() { g.err = err; g.cancel() })
}

// Done is closed when a part failed (or the parent context ended).
func (g *group) Done() <-chan struct{} { return g.ctx.Done() }

// Err is the first part's failure, nil when none failed.
func (g *group) Err() error {
	g.wg.Wait()
	return g.err
}

// Wait waits for every part and returns the first failure.
func (g *group) Wait() error {
	g.wg.Wait()
	g.cancel()
	return g.err
}
