package main

import (
	"bufio"
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
	"github.com/threatgate/threatgate/store"
)

// `threatgate audit verify` walks the whole audit log of a stopped store
// and checks it against anchors kept outside it; GET /api/audit/head
// gives the running server's head, to keep as one.

// cliLockTimeout is how long a command waits for the data directory's
// lock before it says that a running threatgate holds it.
const cliLockTimeout = 500 * time.Millisecond

func (e *env) audit(args []string) int {
	if len(args) == 0 {
		return e.usage("audit needs a subcommand: verify")
	}
	switch args[0] {
	case "verify":
		return e.auditVerify(args[1:])
	}
	return e.usage("unknown audit subcommand %q; want verify", args[0])
}

func (e *env) auditVerify(args []string) int {
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	configPath := fs.String("config", "", "config file, for data_dir and the server's URL (default: built-in defaults)")
	dataDir := fs.String("data", "", "data directory (default: data_dir of the config)")
	expect := fs.String("expect-head", "", "a chain head hash seen earlier, which must still be the hash of some event")
	anchorsPath := fs.String("anchors", "", "file of anchors, one a line: \"SEQ HASH\" or a digest's \"Audit chain head: seq N, hash H\" line")
	rest, code := e.parseFlags(fs, args)
	if code != 0 {
		return max(code, 0)
	}
	if len(rest) > 0 {
		return e.usage("audit verify takes no arguments, got %q", rest[0])
	}
	var anchors []store.Anchor
	if *expect != "" {
		h, ok := parseHash(*expect)
		if !ok {
			return e.usage("--expect-head: want the 64 hex digits of a chain hash, got %q", *expect)
		}
		anchors = append(anchors, store.Anchor{Hash: h, Source: "--expect-head"})
	}
	if *anchorsPath != "" {
		as, err := readAnchors(*anchorsPath)
		if err != nil {
			return e.printProblems(err)
		}
		anchors = append(anchors, as...)
	}
	db, code := e.openLocal(*configPath, *dataDir, func(dir, url string) string {
		return fmt.Sprintf("verify a copy instead: GET %s/admin/backup (dashboard token) saved as %s in an empty directory, then audit verify --data on that directory; GET %s/api/audit/head gives the head", url, store.FileName, url)
	})
	if db == nil {
		return code
	}
	defer db.Close()

	res, err := db.Audit(e.ctx, anchors)
	var broken *store.ChainError
	if errors.As(err, &broken) {
		fmt.Fprintf(e.stderr, "threatgate: the audit chain is broken: %v\n", broken)
		return exitFinding
	}
	var failed []*store.AnchorError
	for _, err := range unjoin(err) {
		var ae *store.AnchorError
		if !errors.As(err, &ae) {
			fmt.Fprintf(e.stderr, "threatgate: %v\n", err)
			return exitFinding
		}
		failed = append(failed, ae)
	}
	if res.Events == 0 {
		fmt.Fprintln(e.stdout, "the audit log is empty")
	} else {
		fmt.Fprintf(e.stdout, "%d events: every hash and every link to the event before checked\n", res.Events)
		fmt.Fprintf(e.stdout, "head: seq %d, hash %s\n", res.HeadSeq, res.HeadHash)
		printCompactions(e.stdout, res.Compactions)
	}
	for _, a := range res.Held {
		fmt.Fprintf(e.stdout, "anchor %s: holds (event %d)\n", a.Source, a.Seq)
	}
	for _, ae := range failed {
		fmt.Fprintf(e.stderr, "threatgate: anchor %v\n", ae)
	}
	if len(failed) > 0 {
		return exitFinding
	}
	return exitOK
}

// unjoin returns the errors err joins (errors.Join), err alone when it
// joins none, nothing for nil.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err == nil {
		return nil
	}
	return []error{err}
}

// openLocal opens the store of the data directory (dataDir, else the
// config's data_dir) for a command that works on it alone, waiting
// cliLockTimeout for its lock. When a running threatgate holds it, it
// says so in one line ending with what to ask the server instead
// (remote(dir, the server's URL)). It refuses a directory without a store
// rather than create one. On failure it returns nil and the exit code.
func (e *env) openLocal(configPath, dataDir string, remote func(dir, url string) string) (*store.DB, int) {
	cfg, err := e.loadConfig(configPath)
	if err != nil {
		return nil, e.printProblems(err)
	}
	dir := cmp.Or(dataDir, cfg.DataDir)
	if _, err := os.Stat(filepath.Join(dir, store.FileName)); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(e.stderr, "threatgate: no store in %s (no %s there); --data names the data directory, data_dir in the config\n", dir, store.FileName)
		return nil, exitFinding
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	db, err := store.Open(dir, store.ReadOnly(), store.LockTimeout(cliLockTimeout), store.Logger(log))
	if errors.Is(err, store.ErrInUse) {
		fmt.Fprintf(e.stderr, "threatgate: %s is held by a running threatgate (bbolt allows one process); %s\n", dir, remote(dir, cfg.PublicURL()))
		return nil, exitFinding
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "threatgate: %v\n", err)
		return nil, exitFinding
	}
	return db, exitOK
}

// parseHash returns h as a chain hash (64 hex digits, lowercase).
func parseHash(h string) (string, bool) {
	h = strings.ToLower(strings.TrimSpace(h))
	return h, hashRE.MatchString(h)
}

var (
	hashRE = regexp.MustCompile(`^[0-9a-f]{64}$`)
	// anchorLineRE is an anchor as GET /api/audit/head's seq and hash
	// make one: "SEQ HASH".
	anchorLineRE = regexp.MustCompile(`^([0-9]+)[ \t]+([0-9a-fA-F]{64})$`)
	// digestAnchorRE finds an anchor in a digest's line, as the console
	// and Slack (hash in a code span) show it, or as audit verify prints
	// the head: "seq 42, hash 5e0c…".
	digestAnchorRE = regexp.MustCompile("\\bseq ([0-9]+), hash `?([0-9a-fA-F]{64})\\b")
)

// readAnchors reads an anchors file (parseAnchors).
func readAnchors(path string) ([]store.Anchor, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &policies.Problem{File: path, Msg: fmt.Sprintf("cannot read the anchors: %v", errors.Unwrap(err))}
	}
	defer f.Close()
	return parseAnchors(path, f)
}

// parseAnchors reads anchors, one a line: "SEQ HASH" (the seq and hash of
// GET /api/audit/head), or a line holding "seq N, hash H" (a digest's
// "Audit chain head: seq N, hash H (keep this as an anchor)", pasted from
// the console or Slack, or audit verify's "head:" line). Blank lines and
// lines starting with # are skipped. It returns every problem, each
// naming its line (policies.Problem), and a problem when there is no
// anchor at all.
func parseAnchors(name string, r io.Reader) ([]store.Anchor, error) {
	var out []store.Anchor
	var problems []error
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := anchorLineRE.FindStringSubmatch(line)
		if m == nil {
			m = digestAnchorRE.FindStringSubmatch(line)
		}
		if m == nil {
			problems = append(problems, &policies.Problem{File: name, Line: n, Col: 1,
				Msg: fmt.Sprintf(`want "SEQ HASH" (the hash in 64 hex digits) or a digest's "Audit chain head: seq N, hash H" line, got %q`, clipText(line, 80))})
			continue
		}
		seq, err := strconv.ParseUint(m[1], 10, 64)
		if err != nil || seq == 0 {
			problems = append(problems, &policies.Problem{File: name, Line: n, Col: 1,
				Msg: fmt.Sprintf("want an event's seq, 1 or more, got %q", m[1])})
			continue
		}
		out = append(out, store.Anchor{Seq: seq, Hash: strings.ToLower(m[2]), Source: fmt.Sprintf("%s:%d", name, n)})
	}
	if err := sc.Err(); err != nil {
		problems = append(problems, &policies.Problem{File: name, Line: n + 1, Col: 1, Msg: fmt.Sprintf("cannot read the anchors: %v", err)})
	}
	if len(problems) == 0 && len(out) == 0 {
		problems = append(problems, &policies.Problem{File: name, Msg: `no anchors in it; want lines "SEQ HASH"`})
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	return out, nil
}

// clipText keeps the first n runes of s.
func clipText(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// auditHead is the answer of GET /api/audit/head.
type auditHead struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// auditHeadHandler answers GET /api/audit/head with where the audit log
// ends now, {"seq":N,"hash":"..."} (0 and "" while it is empty): an
// anchor to keep outside threatgate, which audit verify --anchors checks
// the log against later (as the line "N HASH").
func (s *server) auditHeadHandler(w http.ResponseWriter, r *http.Request) {
	seq, hash, err := s.db.HeadOf(r.Context())
	if err != nil {
		s.log.Error("read the audit chain head", bot.LogErr, err)
		http.Error(w, "the store is unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, auditHead{Seq: seq, Hash: hash})
}

// printCompactions lists the retention compactions on the chain by day:
// how many records of which escalations (the first ten named), in which
// events. Their removed payload cannot be re-checked; what remains, and
// the hash each kept, was checked against the compaction event that
// lists it.
func printCompactions(w io.Writer, cs []store.Compaction) {
	if len(cs) == 0 {
		return
	}
	n := 0
	for _, c := range cs {
		n += len(c.Records)
	}
	fmt.Fprintf(w, "compacted (retention): the payloads (evidence lines, artifact text) of %d events removed in %d compactions; every hash above covers what remains, and each removal is listed by its compaction event\n", n, len(cs))
	for i := 0; i < len(cs); {
		day := cs[i].At.UTC().Format(time.DateOnly)
		j, records := i, 0
		var names []string
		for ; j < len(cs) && cs[j].At.UTC().Format(time.DateOnly) == day; j++ {
			records += len(cs[j].Records)
			if len(names) < 10 {
				names = append(names, cs[j].Escalation)
			}
		}
		more := ""
		if k := j - i - len(names); k > 0 {
			more = fmt.Sprintf(" and %d more", k)
		}
		fmt.Fprintf(w, "  %s: %d records of %s%s (compaction events %d to %d)\n", day, records, strings.Join(names, ", "), more, cs[i].Seq, cs[j-1].Seq)
		i = j
	}
}
