package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/threatgate/threatgate/store"
)

// reconcile runs reconciliation once: through the running server when it
// holds the data directory, else directly.
func (e *env) reconcile(args []string) int {
	fs := flag.NewFlagSet("reconcile", flag.ContinueOnError)
	configPath := fs.String("config", "", "config file (default: built-in defaults)")
	rest, code := e.parseFlags(fs, args)
	if code != 0 {
		return max(code, 0)
	}
	if len(rest) > 0 {
		return e.usage("reconcile takes no arguments, got %q", rest[0])
	}
	cfg, err := e.loadConfig(*configPath)
	if err != nil {
		return e.printProblems(err)
	}
	if cfg.GitLab == nil || cfg.GitLab.URL == "" {
		fmt.Fprintln(e.stderr, "threatgate: reconcile needs gitlab.url in the config: it compares escalations with GitLab")
		return exitFinding
	}
	sec, _, err := cfg.LoadSecrets(os.Getenv)
	if err != nil {
		return e.printProblems(err)
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	db, err := store.Open(cfg.DataDir, store.LockTimeout(500*time.Millisecond), store.Logger(log))
	if errors.Is(err, store.ErrInUse) {
		return e.reconcileRemote(cfg, sec)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "threatgate: %v\n", err)
		return exitFinding
	}
	defer db.Close()
	pol, err := loadPolicy(cfg.Policy)
	if err != nil {
		return e.printProblems(err)
	}
	s, err := newServer(cfg, sec, pol, db, wallClock{}, log, extras{})
	if err != nil {
		fmt.Fprintf(e.stderr, "threatgate: %v\n", err)
		return exitFinding
	}
	n, err := s.worker.Reconcile(e.ctx)
	if err != nil {
		fmt.Fprintf(e.stderr, "threatgate: reconcile: %v\n", err)
		return exitFinding
	}
	delivered, err := s.dispatcher.DeliverDue(e.ctx)
	if err != nil {
		fmt.Fprintf(e.stderr, "threatgate: deliver: %v\n", err)
		return exitFinding
	}
	fmt.Fprintf(e.stdout, "reconciled %d merge requests; delivered %d effects (the rest stay queued for serve)\n", n, delivered)
	return exitOK
}

// reconcileRemote asks the running server (which holds the database) to
// reconcile.
func (e *env) reconcileRemote(cfg Config, sec Secrets) int {
	url := cfg.PublicURL() + "/api/reconcile"
	req, err := http.NewRequestWithContext(e.ctx, http.MethodPost, url, nil)
	if err != nil {
		fmt.Fprintf(e.stderr, "threatgate: %v\n", err)
		return exitFinding
	}
	if sec.DashboardToken != "" {
		req.Header.Set("Authorization", "Bearer "+sec.DashboardToken.Reveal())
	}
	resp, err := (&http.Client{Timeout: 10 * time.Minute}).Do(req)
	if err != nil {
		fmt.Fprintf(e.stderr, "threatgate: the data directory %s is in use by a running threatgate, and asking it at %s failed: %v\n", cfg.DataDir, url, err)
		return exitFinding
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(e.stderr, "threatgate: the running server answered %s: %s\n", resp.Status, body)
		return exitFinding
	}
	fmt.Fprintf(e.stdout, "asked the running server: %s", body)
	return exitOK
}
