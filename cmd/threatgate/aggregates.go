package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/threatgate/threatgate/store"
)

// `threatgate aggregates rebuild` recomputes, on a stopped store, the
// counters the dashboard and /metrics read (kept by every commit) from
// the escalations' projections, and says which of those kept differed.

func (e *env) aggregates(args []string) int {
	if len(args) == 0 || args[0] != "rebuild" {
		return e.usage("aggregates needs a subcommand: rebuild")
	}
	flags := flag.NewFlagSet("aggregates rebuild", flag.ContinueOnError)
	configPath := flags.String("config", "", "config file, for data_dir (default: built-in defaults)")
	dataDir := flags.String("data", "", "data directory (default: data_dir of the config)")
	rest, code := e.parseFlags(flags, args[1:])
	if code != 0 {
		return max(code, 0)
	}
	if len(rest) > 0 {
		return e.usage("aggregates rebuild takes no arguments, got %q", rest[0])
	}
	cfg, err := e.loadConfig(*configPath)
	if err != nil {
		return e.printProblems(err)
	}
	dir := cmp.Or(*dataDir, cfg.DataDir)
	if _, err := os.Stat(filepath.Join(dir, store.FileName)); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(e.stderr, "threatgate: no store in %s (no %s there); --data names the data directory, data_dir in the config\n", dir, store.FileName)
		return exitFinding
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	db, err := store.Open(dir, store.LockTimeout(cliLockTimeout), store.Logger(log))
	if errors.Is(err, store.ErrInUse) {
		fmt.Fprintf(e.stderr, "threatgate: %s is held by a running threatgate (bbolt allows one process); stop it first: the rebuild writes the store\n", dir)
		return exitFinding
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "threatgate: %v\n", err)
		return exitFinding
	}
	defer db.Close()
	before, err := db.Counters(e.ctx)
	if err != nil {
		fmt.Fprintf(e.stderr, "threatgate: %v\n", err)
		return exitFinding
	}
	if err := db.RebuildAggregates(e.ctx); err != nil {
		fmt.Fprintf(e.stderr, "threatgate: %v\n", err)
		return exitFinding
	}
	after, err := db.Counters(e.ctx)
	if err != nil {
		fmt.Fprintf(e.stderr, "threatgate: %v\n", err)
		return exitFinding
	}
	keys := maps.Clone(before)
	maps.Copy(keys, after)
	var differ []string
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if before[k] != after[k] {
			differ = append(differ, fmt.Sprintf("  %s: kept %d, rebuilt %d", strings.ReplaceAll(k, "\x00", " "), before[k], after[k]))
		}
	}
	fmt.Fprintf(e.stdout, "rebuilt %d counters from the escalations", len(after))
	if len(differ) == 0 {
		fmt.Fprintln(e.stdout, "; all equal to those kept")
		return exitOK
	}
	fmt.Fprintf(e.stdout, "; %d differed and are now corrected:\n%s\n", len(differ), strings.Join(differ, "\n"))
	return exitOK
}
