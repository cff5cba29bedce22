// Command loadgen builds large threatgate stores through the real engine,
// for the read side's benchmarks (docs/BENCHMARKS.md, issue 14):
//
//	go run ./internal/loadgen store --escalations 100000 --open 10000 --out DIR
//
// Every escalation is opened by a Merge Request Hook-like input through
// bot.Engine.Handle with the embedded default policy, into a store opened
// with store.NoSync; all but --open of them are then merged without
// approval (bypassed) or closed (withdrawn), also through the engine. The
// clock advances evenly over --days, so the escalations are spread over
// that time. Several goroutines work on distinct MRs (--workers). No sink
// is configured, so no effect is queued: the outbox stays empty, as on a
// server whose deliveries succeed. At the end the sweep (Engine.Tick)
// runs at the final time until nothing is due, and the audit chain is
// verified once (its checkpoint set), so that the store is what a running
// server would hold.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
	"github.com/threatgate/threatgate/store"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "store" {
		fmt.Fprintln(os.Stderr, "usage: loadgen store --escalations N --open M --out DIR [--workers W] [--days D]")
		os.Exit(2)
	}
	if err := run(context.Background(), os.Args[2:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// EndFile, in the data directory, holds the end of the generated history
// (RFC 3339): the time the benchmarks read the store at.
const EndFile = "loadgen-end.txt"

// Start is when the generated history begins.
var Start = time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC)

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("store", flag.ContinueOnError)
	n := fs.Int("escalations", 100000, "escalations to open")
	open := fs.Int("open", 10000, "how many of them stay open")
	dir := fs.String("out", "", "data directory to create the store in (must not hold one)")
	workers := fs.Int("workers", 4, "goroutines handling inputs, each on its own MRs")
	days := fs.Int("days", 365, "days the history spans")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || *open > *n || *workers < 1 {
		return errors.New("want --out DIR, --open <= --escalations, --workers >= 1")
	}
	if _, err := os.Stat(*dir + "/" + store.FileName); err == nil {
		return fmt.Errorf("%s already holds a store", *dir)
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	t0 := time.Now()
	_, end, err := Build(ctx, *dir, *n, *open, *workers, time.Duration(*days)*24*time.Hour)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*dir, EndFile), []byte(end.Format(time.RFC3339Nano)+"\n"), 0o600); err != nil {
		return err
	}
	fi, _ := os.Stat(filepath.Join(*dir, store.FileName))
	var size int64
	if fi != nil {
		size = fi.Size()
	}
	fmt.Fprintf(out, "built %d escalations (%d open) in %s with %d workers; history ends %s; %s is %.1f MB (%.1f KB per escalation)\n",
		*n, *open, time.Since(t0).Round(time.Millisecond), *workers, end.Format(time.RFC3339), store.FileName,
		float64(size)/1e6, float64(size)/1e3/float64(max(*n, 1)))
	return nil
}

// clock advances by step on every reading, from Start: the engine's
// decisions are spread evenly over the history.
type clock struct {
	n    atomic.Int64
	step time.Duration
}

func (c *clock) Now() time.Time { return Start.Add(time.Duration(c.n.Add(1)) * c.step) }

// paths the default policy tiers, one per MR in turn.
var paths = [][]string{
	{"internal/auth/session.go"},                                     // T2
	{"internal/auth/login.go", "internal/crypto/cipher.go", "x.pem"}, // T3
	{"services/billing/rbac/roles.go", "db/migrations/0042_roles.sql"},
	{"deploy/Dockerfile", "ci/.gitlab-ci.yml"},
}

// Build creates the store in dir with n escalations, open of them left
// open, through the engine with the default policy, and returns the
// final time of its history. It closes the store.
func Build(ctx context.Context, dir string, n, open, workers int, span time.Duration) (*policies.Policy, time.Time, error) {
	pol, err := policies.Default()
	if err != nil {
		return nil, time.Time{}, err
	}
	db, err := store.Open(dir, store.NoSync(), store.Logger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		return nil, time.Time{}, err
	}
	defer db.Close()
	// About 2.5 clock readings per input, 1.9 inputs per escalation.
	clk := &clock{step: max(span/time.Duration(n*4), time.Nanosecond)}
	eng := bot.NewEngine(db, pol, clk, slog.New(slog.NewTextHandler(io.Discard, nil)))
	eng.SetSinks(map[string][]string{}) // nothing is queued for delivery

	// Which MRs stay open: a random open of n, the same every run.
	rng := rand.New(rand.NewPCG(14, 14))
	stays := make([]bool, n)
	for _, i := range rng.Perm(n)[:open] {
		stays[i] = true
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	var done atomic.Int64
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				if err := one(ctx, eng, clk, i, stays[i]); err != nil {
					errs <- err
					return
				}
				if d := done.Add(1); d%10000 == 0 {
					fmt.Fprintf(os.Stderr, "loadgen: %d escalations\n", d)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, time.Time{}, err
	}
	end := clk.Now()
	for {
		k, err := eng.Tick(ctx, end)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("sweep at the end: %w", err)
		}
		if k == 0 {
			break
		}
	}
	// A running server checks the chain on its first escalation page and
	// keeps a checkpoint (VerifyFrom): do the same, so that the store is
	// in its steady state.
	if _, _, err := db.VerifyFrom(ctx); err != nil {
		return nil, time.Time{}, fmt.Errorf("verify the chain: %w", err)
	}
	return pol, end, db.Close()
}

// one opens MR i through the engine and, unless it stays open, merges or
// closes it.
func one(ctx context.Context, eng *bot.Engine, clk *clock, i int, stays bool) error {
	project := fmt.Sprintf("group-%d/svc-%d", i%20, i%200)
	iid := int64(i/200 + 1)
	mr := func(action bot.MRAction) bot.Input {
		m := &policies.MergeRequest{
			IID: iid, PathWithNamespace: project, Title: "change " + strconv.Itoa(i), TargetBranch: "main",
			SHA: fmt.Sprintf("%040x", i), UpdatedAt: clk.Now(),
			WebURL: "https://gitlab.example.com/" + project + "/-/merge_requests/" + strconv.FormatInt(iid, 10),
			Author: policies.User{Username: "dev-" + strconv.Itoa(i%300)},
		}
		for _, p := range paths[i%len(paths)] {
			m.Changes = append(m.Changes, policies.Change{OldPath: p, NewPath: p})
		}
		return bot.Input{Kind: bot.InputMR, MR: &bot.MRInput{Action: action, MR: m}}
	}
	rep, err := eng.Handle(ctx, mr(bot.MROpen))
	if err != nil {
		return fmt.Errorf("open %s!%d: %w", project, iid, err)
	}
	if rep.Escalation == "" {
		return fmt.Errorf("open %s!%d: the default policy escalated nothing: %s", project, iid, rep.Text)
	}
	if stays {
		return nil
	}
	action := bot.MRMerge
	if i%5 < 2 {
		action = bot.MRClose
	}
	if _, err := eng.Handle(ctx, mr(action)); err != nil {
		return fmt.Errorf("%s %s!%d: %w", action, project, iid, err)
	}
	return nil
}
