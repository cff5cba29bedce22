package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/store"
)

// retro prints the retrospective of a quarter (bot.BuildRetro) from the
// quarter's window of a stopped store's audit log, as text or JSON.
// Suggestions are printed, never applied. Exit 0 when printed; 1 when the
// store or the policy cannot be used; 2 for bad flags, every one named.
func (e *env) retro(args []string) int {
	fset := flag.NewFlagSet("retro", flag.ContinueOnError)
	quarterFlag := fset.String("quarter", "", "the quarter, such as 2026Q4 (UTC)")
	format := fset.String("format", "text", "output format: text or json")
	data := fset.String("data", "", "data directory of the store (default: data_dir of the config)")
	configPath := fset.String("config", "", "config file, for data_dir, the policy and the server's URL (default: built-in defaults)")
	rest, code := e.parseFlags(fset, args)
	if code != 0 {
		return max(code, 0)
	}
	now := time.Now()
	var problems []string
	if len(rest) > 0 {
		problems = append(problems, fmt.Sprintf("takes no arguments, got %q", rest[0]))
	}
	var year, quarter int
	if *quarterFlag == "" {
		problems = append(problems, `--quarter: want a quarter such as "2026Q4"`)
	} else if y, q, err := bot.ParseQuarter(*quarterFlag); err != nil {
		var p *bot.Problem
		if errors.As(err, &p) {
			problems = append(problems, "--quarter: "+p.Msg)
		} else {
			problems = append(problems, "--quarter: "+err.Error())
		}
	} else if bot.QuarterStart(y, q).After(now) {
		problems = append(problems, fmt.Sprintf("--quarter: %s has not begun yet; the current quarter is %s", bot.QuarterName(y, q), bot.Quarter(now)))
	} else {
		year, quarter = y, q
	}
	if *format != "text" && *format != "json" {
		problems = append(problems, fmt.Sprintf("--format: want text or json, got %q", *format))
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(e.stderr, "threatgate: retro: %s\n", p)
		}
		fmt.Fprintln(e.stderr, "Run 'threatgate help' for usage.")
		return exitUsage
	}

	cfg, err := e.loadConfig(*configPath)
	if err != nil {
		return e.printProblems(err)
	}
	pol, err := loadPolicy(cfg.Policy)
	if err != nil {
		return e.printProblems(err)
	}
	dataDir := cmp.Or(*data, cfg.DataDir)
	if _, err := os.Stat(filepath.Join(dataDir, store.FileName)); err != nil {
		fmt.Fprintf(e.stderr, "threatgate: retro: --data: no threatgate store in %s (want the data directory holding %s)\n", dataDir, store.FileName)
		return exitFinding
	}
	db, err := store.Open(dataDir, store.ReadOnly(), store.LockTimeout(500*time.Millisecond))
	if errors.Is(err, store.ErrInUse) {
		fmt.Fprintf(e.stderr, "threatgate: retro: the data directory %s is in use by a running threatgate (bbolt allows one process); see %s/reports/retro?quarter=%s instead\n", dataDir, cfg.PublicURL(), bot.QuarterName(year, quarter))
		return exitFinding
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "threatgate: retro: %v\n", err)
		return exitFinding
	}
	defer db.Close()
	r, err := bot.RetroOf(e.ctx, db, year, quarter, now, pol)
	if err != nil {
		fmt.Fprintf(e.stderr, "threatgate: retro: %v\n", err)
		return exitFinding
	}
	if *format == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			fmt.Fprintf(e.stderr, "threatgate: retro: %v\n", err)
			return exitFinding
		}
		return exitOK
	}
	fmt.Fprintln(e.stdout, bot.RenderRetroText(r))
	return exitOK
}
