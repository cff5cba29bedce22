package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/threatgate/threatgate/adapters/web"
	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/bot/bottest"
	"github.com/threatgate/threatgate/policies"
	"github.com/threatgate/threatgate/store"
)

// BenchmarkReadSide measures the read side on stores built by
// internal/loadgen (issue 14): GET /, a page of /api/escalations, an
// escalation page, /metrics, and a sweep with nothing due and with a few
// due, THREATGATE_READSIDE_N times (default 200) per store, in the order given, in this one
// process; it reports p50 and p99 per request and store, and the
// process's resident memory after them. The stores are named in
// THREATGATE_READSIDE_STORES ("small=DIR,big=DIR"); without it the
// benchmark is skipped. The sweeps with some due commit what they do, so
// run it on a copy of a generated store. docs/BENCHMARKS.md has the
// command and the figures.
func BenchmarkReadSide(b *testing.B) {
	spec := os.Getenv("THREATGATE_READSIDE_STORES")
	if spec == "" {
		b.Skip("THREATGATE_READSIDE_STORES not set (name=DIR,...: stores built by go run ./internal/loadgen store)")
	}
	if readSideRan {
		return // once per process: the go test runner calls it again
	}
	readSideRan = true
	n := 200
	if v, err := strconv.Atoi(os.Getenv("THREATGATE_READSIDE_N")); err == nil && v > 0 {
		n = v
	}
	b.StopTimer()
	pol, err := policies.Default()
	if err != nil {
		b.Fatal(err)
	}
	type result struct {
		store, what string
		p50, p99    time.Duration
		note        string
	}
	var results []result
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, named := range strings.Split(spec, ",") {
		name, dir, _ := strings.Cut(named, "=")
		db, err := store.Open(dir, store.Logger(quiet))
		if err != nil {
			b.Fatal(err)
		}
		agg, err := db.Aggregates(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		now := headTime(b, db)
		clk := bottest.NewClock(now)
		eng := bot.NewEngine(db, pol, clk, quiet)
		eng.SetSinks(map[string][]string{})
		srv := &web.Server{Store: db, Policy: eng.Policy, Clock: clk, Log: quiet, Engine: eng}
		mux := http.NewServeMux()
		mux.Handle("/", srv.Handler())
		mux.Handle("/metrics", promhttp.HandlerFor(newMetrics(db).reg, promhttp.HandlerOpts{}))
		rng := rand.New(rand.NewPCG(1, 2))
		get := func(path string) (time.Duration, int) {
			w := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodGet, path, nil)
			t0 := time.Now()
			mux.ServeHTTP(w, r)
			d := time.Since(t0)
			if w.Code != http.StatusOK {
				b.Fatalf("%s %s: status %d: %.300s", name, path, w.Code, w.Body)
			}
			return d, w.Body.Len()
		}
		measure := func(what string, f func(i int) (time.Duration, string)) {
			ds := make([]time.Duration, n)
			var note string
			for i := range n {
				ds[i], note = f(i)
			}
			slices.Sort(ds)
			results = append(results, result{name, what, ds[n/2], ds[min(n-1, n*99/100)], note})
		}
		page := func(path string) func(int) (time.Duration, string) {
			return func(int) (time.Duration, string) {
				d, size := get(path)
				return d, fmt.Sprintf("%d KB", size/1024)
			}
		}
		// The first escalation page after the store was built checks the
		// whole chain once (no verified checkpoint yet): not a steady state.
		t0 := time.Now()
		get("/escalations/ESC-1")
		first := time.Since(t0)
		measure("GET /", page("/"))
		measure("GET /api/escalations (page of 100)", page("/api/escalations"))
		measure("GET /escalations/ESC-n (random n)", func(int) (time.Duration, string) {
			d, size := get(fmt.Sprintf("/escalations/ESC-%d", 1+rng.IntN(agg.Total)))
			return d, fmt.Sprintf("%d KB; first page after the build %s", size/1024, first.Round(time.Millisecond))
		})
		measure("GET /metrics", page("/metrics"))
		// The first sweep after a start recomputes every open
		// escalation's next tick and holders: once, not timed.
		t0 = time.Now()
		if _, err := eng.Tick(context.Background(), now); err != nil {
			b.Fatal(err)
		}
		retick := time.Since(t0)
		measure("sweep, nothing due", func(int) (time.Duration, string) {
			t0 := time.Now()
			k, err := eng.Tick(context.Background(), now)
			if err != nil || k != 0 {
				b.Fatalf("sweep: %d due, %v", k, err)
			}
			return time.Since(t0), fmt.Sprintf("first sweep after start %s", retick.Round(time.Millisecond))
		})
		due := 0
		at := now
		measure("sweep, a few due (+30 min each)", func(i int) (time.Duration, string) {
			at = at.Add(30 * time.Minute)
			t0 := time.Now()
			k, err := eng.Tick(context.Background(), at)
			if err != nil {
				b.Fatal(err)
			}
			due += k
			return time.Since(t0), fmt.Sprintf("%d due in %d sweeps", due, i+1)
		})
		db.Close()
		b.Logf("%s: %d escalations, %d open, now %s", name, agg.Total, agg.Open(), now.Format(time.RFC3339))
	}
	runtime.GC()
	rss := procStatus(b)
	b.Logf("%-8s %-40s %10s %10s  %s", "store", "request", "p50", "p99", "")
	for _, r := range results {
		b.Logf("%-8s %-40s %10s %10s  %s", r.store, r.what, r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.note)
	}
	b.Logf("after them: %s", rss)
	b.ReportMetric(0, "ns/op")
}

// readSideRan makes BenchmarkReadSide run once per process.
var readSideRan bool

// headTime is the time of the newest event in db: the generated history's
// end, when the pages are read.
func headTime(b *testing.B, db *store.DB) time.Time {
	b.Helper()
	seq, _, err := db.HeadOf(context.Background())
	if err != nil || seq == 0 {
		b.Fatalf("head of the log: %d, %v", seq, err)
	}
	// Day by day back from 2028: each empty window costs a binary
	// search of the log; the first that has events holds the newest.
	for day := time.Date(2028, 1, 1, 0, 0, 0, 0, time.UTC); day.Year() > 2000; day = day.AddDate(0, 0, -1) {
		evs, err := db.EventsBetween(context.Background(), day.AddDate(0, 0, -1), day)
		if err != nil {
			b.Fatal(err)
		}
		var last time.Time
		for _, ev := range evs {
			if ev.At.After(last) {
				last = ev.At
			}
		}
		if !last.IsZero() {
			return last
		}
	}
	b.Fatal("no event found")
	return time.Time{}
}

// procStatus returns the process's resident memory lines from
// /proc/self/status.
func procStatus(b *testing.B) string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "no /proc/self/status"
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		for _, k := range []string{"VmHWM", "VmRSS", "RssAnon", "RssFile"} {
			if v, ok := strings.CutPrefix(sc.Text(), k+":"); ok {
				out = append(out, k+" "+strings.Join(strings.Fields(v), " "))
			}
		}
	}
	return strings.Join(out, ", ")
}
