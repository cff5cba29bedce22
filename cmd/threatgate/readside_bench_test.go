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
	"path/filepath"
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
	type site struct {
		name string
		db   *store.DB
		eng  *bot.Engine
		mux  *http.ServeMux
		now  time.Time
		agg  bot.Aggregates
		rng  *rand.Rand
		// at and due: the sweeps with some due; notes: per request kind.
		at    time.Time
		due   []int
		notes map[string]string
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var sites []*site
	for _, named := range strings.Split(spec, ",") {
		name, dir, _ := strings.Cut(named, "=")
		db, err := store.Open(dir, store.Logger(quiet))
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		agg, err := db.Aggregates(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		now := headTime(b, dir)
		clk := bottest.NewClock(now)
		eng := bot.NewEngine(db, pol, clk, quiet)
		// As serve does (executableDigest), under a name that stays the
		// same between runs: a second run is a restart of the same build.
		eng.SetBuild("readside-bench")
		eng.SetSinks(map[string][]string{})
		srv := &web.Server{Store: db, Policy: eng.Policy, Clock: clk, Log: quiet, Engine: eng}
		mux := http.NewServeMux()
		mux.Handle("/", srv.Handler())
		mux.Handle("/metrics", promhttp.HandlerFor(newMetrics(db).reg, promhttp.HandlerOpts{}))
		sites = append(sites, &site{name: name, db: db, eng: eng, mux: mux, now: now, agg: agg, rng: rand.New(rand.NewPCG(1, 2)), at: now, notes: map[string]string{}})
		b.Logf("%s: %d escalations, %d open, now %s; opened: %s", name, agg.Total, agg.Open(), now.Format(time.RFC3339), procStatus(b))
	}
	get := func(x *site, path string) (time.Duration, int) {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, path, nil)
		t0 := time.Now()
		x.mux.ServeHTTP(w, r)
		d := time.Since(t0)
		if w.Code != http.StatusOK {
			b.Fatalf("%s %s: status %d: %.300s", x.name, path, w.Code, w.Body)
		}
		return d, w.Body.Len()
	}
	// Once per store, not timed: the first escalation page after the
	// store was built checks the whole chain (no verified checkpoint yet),
	// and the first sweep after a start recomputes every open
	// escalation's next tick and holders.
	for _, x := range sites {
		t0 := time.Now()
		get(x, "/escalations/ESC-1")
		first := time.Since(t0)
		t0 = time.Now()
		if _, err := x.eng.Tick(context.Background(), x.now); err != nil {
			b.Fatal(err)
		}
		b.Logf("%s: first escalation page after the build %s, first sweep after the start %s; then %s", x.name, first.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond), procStatus(b))
	}
	kinds := []struct {
		what string
		f    func(x *site, i int) time.Duration
	}{
		{"GET /", func(x *site, _ int) time.Duration {
			d, size := get(x, "/")
			x.notes["GET /"] = fmt.Sprintf("%d KB", size/1024)
			return d
		}},
		{"GET /api/escalations (page of 100)", func(x *site, _ int) time.Duration {
			d, size := get(x, "/api/escalations")
			x.notes["GET /api/escalations (page of 100)"] = fmt.Sprintf("%d KB", size/1024)
			return d
		}},
		{"GET /escalations/ESC-n (random n)", func(x *site, _ int) time.Duration {
			d, _ := get(x, fmt.Sprintf("/escalations/ESC-%d", 1+x.rng.IntN(x.agg.Total)))
			return d
		}},
		{"GET /metrics", func(x *site, _ int) time.Duration {
			d, size := get(x, "/metrics")
			x.notes["GET /metrics"] = fmt.Sprintf("%d KB", size/1024)
			return d
		}},
		{"sweep, nothing due", func(x *site, _ int) time.Duration {
			t0 := time.Now()
			k, err := x.eng.Tick(context.Background(), x.now)
			if err != nil || k != 0 {
				b.Fatalf("sweep: %d due, %v", k, err)
			}
			return time.Since(t0)
		}},
		{"sweep, some due (+10 min each)", func(x *site, _ int) time.Duration {
			x.at = x.at.Add(10 * time.Minute)
			t0 := time.Now()
			k, err := x.eng.Tick(context.Background(), x.at)
			if err != nil {
				b.Fatal(err)
			}
			d := time.Since(t0)
			x.due = append(x.due, k)
			return d
		}},
	}
	b.Logf("%-8s %-36s %10s %10s  %s", "store", "request", "p50", "p99", "")
	for _, k := range kinds {
		// Each request kind in turn on every store, interleaved, so that
		// the machine's other load weighs on both alike.
		ds := make([][]time.Duration, len(sites))
		for i := range n {
			for j, x := range sites {
				ds[j] = append(ds[j], k.f(x, i))
			}
		}
		for j, x := range sites {
			slices.Sort(ds[j])
			note := x.notes[k.what]
			if x.due != nil && k.what != "sweep, nothing due" {
				due := slices.Clone(x.due)
				slices.Sort(due)
				sum := 0
				for _, v := range due {
					sum += v
				}
				note = fmt.Sprintf("%d due in %d sweeps; per sweep median %d, max %d", sum, len(due), due[len(due)/2], due[len(due)-1])
			}
			b.Logf("%-8s %-36s %10s %10s  %s", x.name, k.what, ds[j][n/2].Round(time.Microsecond), ds[j][min(n-1, n*99/100)].Round(time.Microsecond), note)
		}
	}
	runtime.GC()
	rss := procStatus(b)
	b.Logf("after them: %s", rss)
	// What serve's trim pass (trimLoop, every trimEvery) does next.
	for _, x := range sites {
		trimOnce(context.Background(), x.db, trimOver, quiet)
	}
	b.Logf("after serve's next trim pass: %s", procStatus(b))
	b.ReportMetric(0, "ns/op")
}

// readSideRan makes BenchmarkReadSide run once per process.
var readSideRan bool

// headTime is the end of the generated history, when the pages are
// read: internal/loadgen writes it to the data directory (EndFile).
func headTime(b *testing.B, dir string) time.Time {
	b.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "loadgen-end.txt"))
	if err != nil {
		b.Fatalf("%v (a store built by go run ./internal/loadgen store)", err)
	}
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(raw)))
	if err != nil {
		b.Fatal(err)
	}
	return t
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
