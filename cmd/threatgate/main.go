// Command threatgate gates security-sensitive GitLab merge requests behind
// a formal threat assessment. This package only wires things together:
// flags, configuration, adapters.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	_ "time/tzdata" // people's time zones work on images without a zoneinfo database
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK      = 0
	exitFinding = 1 // a lint problem, a failed case, invalid input
	exitUsage   = 2
)

const usageText = `threatgate gates security-sensitive GitLab merge requests behind a threat assessment.

Usage:
  threatgate demo [--listen ADDR] [--data DIR]        try threatgate locally: simulated GitLab, seeded escalations, console
  threatgate serve [--config FILE]                    run the server (webhooks, gate, API, metrics)
  threatgate reconcile [--config FILE]                compare every open escalation with GitLab once
  threatgate policy lint FILE...                      check policy files; prints file:line:col: problem
  threatgate policy explain [--policy FILE] [--format text|json] [MR-CHANGES.json | -]
                                                      classify one MR (GitLab's MR-changes JSON)
  threatgate policy explain [--policy FILE] [--format text|json] --mr MR-URL [--config FILE]
                                                      classify a live MR (token from THREATGATE_GITLAB_TOKEN); changes nothing
  threatgate policy test [--policy FILE] FILE...      run policy test cases
  threatgate audit verify [--data DIR] [--expect-head HASH] [--anchors FILE]
                                                      check the whole audit log of a stopped store, and the anchors
                                                      kept outside it (lines "SEQ HASH", or a digest's head line)
  threatgate backup --out FILE [--data DIR] [--force] copy a stopped store (GET /admin/backup from a running one)
  threatgate export --from DATE --to DATE --out DIR [--format json|csv|md] [--data DIR] [--force]
                                                      evidence bundles of the escalations decided from DATE to DATE
                                                      (both included, UTC; docs/EXPORT.md)
  threatgate retro --quarter 2026Q4 [--format text|json] [--data DIR]
                                                      the quarter's retrospective: outcomes, breaches, tuning suggestions
  threatgate aggregates rebuild [--data DIR]          recompute the dashboard's and /metrics' counters of a stopped
                                                      store from its escalations; says which kept ones differed
  threatgate version                                  print the version

Without --policy the embedded default policy is used. audit, backup,
export, retro and aggregates take --config FILE for data_dir (default ./threatgate-data) and the
server's URL.
`

// env carries what a subcommand may touch.
type env struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// run executes the command line and returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usageText)
		return exitOK
	case "version", "--version":
		fmt.Fprintf(stdout, "threatgate %s\n", versionString())
		return exitOK
	case "policy":
		return e.policy(args[1:])
	case "serve":
		return e.serve(args[1:])
	case "reconcile":
		return e.reconcile(args[1:])
	case "demo":
		return e.demo(args[1:])
	case "audit":
		return e.audit(args[1:])
	case "backup":
		return e.backup(args[1:])
	case "export":
		return e.export(args[1:])
	case "retro":
		return e.retro(args[1:])
	case "aggregates":
		return e.aggregates(args[1:])
	}
	return e.usage("unknown command %q", args[0])
}

// usage reports a usage error in one line plus a hint and returns exitUsage.
func (e *env) usage(format string, args ...any) int {
	fmt.Fprintf(e.stderr, "threatgate: %s\nRun 'threatgate help' for usage.\n", fmt.Sprintf(format, args...))
	return exitUsage
}

func (e *env) policy(args []string) int {
	if len(args) == 0 {
		return e.usage("policy needs a subcommand: lint, explain or test")
	}
	switch args[0] {
	case "lint":
		return e.policyLint(args[1:])
	case "explain":
		return e.policyExplain(args[1:])
	case "test":
		return e.policyTest(args[1:])
	}
	return e.usage("unknown policy subcommand %q; want lint, explain or test", args[0])
}

// parseFlags parses flags anywhere among the arguments ("explain mr.json
// --format json" works) and returns the positional ones. A bad flag is a
// usage error: the returned code is non-zero.
func (e *env) parseFlags(fs *flag.FlagSet, args []string) ([]string, int) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(e.stdout, usageText)
				return nil, -1
			}
			return nil, e.usage("%s: %v", fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, 0
		}
		if args[0] == "-" || !strings.HasPrefix(args[0], "-") {
			pos = append(pos, args[0])
			args = args[1:]
			continue
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), 0
		}
	}
}

func versionString() string {
	v := version
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
		v += " " + info.GoVersion
	}
	if v == "" || strings.HasPrefix(v, " ") {
		v = "(devel)" + v
	}
	return v
}
