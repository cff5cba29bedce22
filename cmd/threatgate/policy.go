package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/threatgate/threatgate/adapters/gitlab"
	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
)

// loadPolicy reads --policy, or the embedded default when it is empty.
func loadPolicy(path string) (*policies.Policy, error) {
	if path == "" {
		return policies.Default()
	}
	return policies.LoadFile(path)
}

// printProblems writes every problem in err, one per line, and returns
// exitFinding.
func (e *env) printProblems(err error) int {
	ps := policies.Problems(err)
	if len(ps) == 0 {
		fmt.Fprintf(e.stderr, "threatgate: %v\n", err)
		return exitFinding
	}
	for _, p := range ps {
		fmt.Fprintln(e.stderr, p.Error())
	}
	return exitFinding
}

func (e *env) policyLint(args []string) int {
	fs := flag.NewFlagSet("policy lint", flag.ContinueOnError)
	files, code := e.parseFlags(fs, args)
	if code != 0 {
		return max(code, 0)
	}
	if len(files) == 0 {
		return e.usage("policy lint: name at least one policy file")
	}
	rc := exitOK
	for _, f := range files {
		if _, err := policies.LoadFile(f); err != nil {
			rc = e.printProblems(err)
			continue
		}
		fmt.Fprintf(e.stdout, "%s: ok\n", f)
	}
	return rc
}

func (e *env) policyTest(args []string) int {
	fs := flag.NewFlagSet("policy test", flag.ContinueOnError)
	policyPath := fs.String("policy", "", "policy file (default: the embedded policy)")
	files, code := e.parseFlags(fs, args)
	if code != 0 {
		return max(code, 0)
	}
	if len(files) == 0 {
		return e.usage("policy test: name at least one test-case file")
	}
	pol, err := loadPolicy(*policyPath)
	if err != nil {
		return e.printProblems(err)
	}
	rc, total, failed := exitOK, 0, 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintf(e.stderr, "%s: cannot read: %v\n", f, unwrapPath(err))
			rc = exitFinding
			continue
		}
		cases, err := policies.LoadCases(f, data)
		if err != nil {
			rc = e.printProblems(err)
			continue
		}
		total += len(cases)
		for _, fl := range pol.Check(f, cases) {
			failed++
			fmt.Fprintln(e.stdout, "FAIL "+fl.String())
			rc = exitFinding
		}
	}
	fmt.Fprintf(e.stdout, "%d cases, %d failed\n", total, failed)
	return rc
}

// explanation is the JSON form of policy explain; its keys are a contract.
type explanation struct {
	Tier      *string             `json:"tier"`
	TierName  string              `json:"tier_name"`
	Score     int                 `json:"score"`
	Signals   []policies.Fired    `json:"signals"`
	Artifacts []string            `json:"artifacts"`
	Approvals []policies.Approval `json:"approvals"`
}

func (e *env) policyExplain(args []string) int {
	fs := flag.NewFlagSet("policy explain", flag.ContinueOnError)
	policyPath := fs.String("policy", "", "policy file (default: the embedded policy)")
	format := fs.String("format", "text", "output format: text or json")
	mrURL := fs.String("mr", "", "explain a live merge request, given its URL (reads GitLab, changes nothing)")
	configPath := fs.String("config", "", "config file (for --mr: where the GitLab token comes from)")
	files, code := e.parseFlags(fs, args)
	if code != 0 {
		return max(code, 0)
	}
	if *format != "text" && *format != "json" {
		return e.usage("policy explain: --format wants text or json, got %q", *format)
	}
	if *mrURL != "" {
		if len(files) > 0 {
			return e.usage("policy explain: give --mr or a file, not both")
		}
		pol, err := loadPolicy(*policyPath)
		if err != nil {
			return e.printProblems(err)
		}
		mr, err := e.fetchMR(*mrURL, *configPath)
		if err != nil {
			if p, ok := bot.IsProblem(err); ok {
				fmt.Fprintf(e.stderr, "threatgate: --mr: %s\n", p.Msg)
			} else {
				fmt.Fprintf(e.stderr, "threatgate: %v\n", err)
			}
			return exitFinding
		}
		return e.explain(pol, mr, *format)
	}
	if len(files) > 1 {
		return e.usage("policy explain: give one MR-changes file (or - for standard input), got %d", len(files))
	}
	name := "-"
	if len(files) == 1 {
		name = files[0]
	}
	var data []byte
	var err error
	if name == "-" {
		data, err = io.ReadAll(io.LimitReader(e.stdin, policies.MaxMRSize+1))
		name = "<stdin>"
	} else {
		data, err = os.ReadFile(name)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "%s: cannot read: %v\n", name, unwrapPath(err))
		return exitFinding
	}
	pol, err := loadPolicy(*policyPath)
	if err != nil {
		return e.printProblems(err)
	}
	mr, err := policies.ParseMergeRequest(name, data)
	if err != nil {
		return e.printProblems(err)
	}
	return e.explain(pol, mr, *format)
}

// fetchMR reads a live MR through the GitLab API; nothing is written.
func (e *env) fetchMR(rawURL, configPath string) (*policies.MergeRequest, error) {
	base, project, iid, err := gitlab.ParseMRURL(rawURL)
	if err != nil {
		return nil, err
	}
	cfg := DefaultConfig()
	if configPath != "" {
		if cfg, err = e.loadConfig(configPath); err != nil {
			return nil, err
		}
	}
	g := cfg.GitLab
	if g == nil {
		g = defaultGitLab()
	}
	token, _, err := g.Token(os.Getenv)
	if err != nil {
		return nil, err
	}
	c, err := gitlab.New(gitlab.Config{BaseURL: base, Token: token, StatusName: g.StatusName, Timeout: g.Timeout})
	if err != nil {
		return nil, err
	}
	mi, err := c.FetchMR(e.ctx, project, iid)
	if err != nil {
		return nil, err
	}
	return mi.MR, nil
}

// explain prints the classification of mr.
func (e *env) explain(pol *policies.Policy, mr *policies.MergeRequest, format string) int {
	res := pol.Evaluate(mr)
	x := explanation{Score: res.Score, Signals: res.Signals, Artifacts: []string{}, Approvals: []policies.Approval{}}
	if x.Signals == nil {
		x.Signals = []policies.Fired{}
	}
	if t := res.Tier; t != nil {
		x.Tier, x.TierName = &t.ID, t.Name
		x.Artifacts = append(x.Artifacts, t.Artifacts...)
		x.Approvals = append(x.Approvals, t.Approvals...)
	}
	if format == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(x); err != nil {
			fmt.Fprintf(e.stderr, "threatgate: write: %v\n", err)
			return exitFinding
		}
		return exitOK
	}
	e.explainText(pol, mr, res)
	return exitOK
}

func (e *env) explainText(pol *policies.Policy, mr *policies.MergeRequest, res policies.Result) {
	w := e.stdout
	title := mr.Title
	if p := mr.Project(); p != "" {
		title = fmt.Sprintf("%s!%d %s", p, mr.IID, mr.Title)
	}
	fmt.Fprintf(w, "MR:     %s\n", strings.TrimSpace(title))
	fmt.Fprintf(w, "Policy: %s\n", pol.Source)
	if res.Tier == nil {
		fmt.Fprintf(w, "Tier:   none (score %d): no escalation\n", res.Score)
	} else {
		fmt.Fprintf(w, "Tier:   %s %s (score %d)\n", res.Tier.ID, res.Tier.Name, res.Score)
	}
	if len(res.Signals) == 0 {
		fmt.Fprintln(w, "Signals: none fired")
	} else {
		fmt.Fprintln(w, "Signals:")
		for _, s := range res.Signals {
			fmt.Fprintf(w, "  %s (%s, +%d)\n", s.ID, s.Category, s.Weight)
			for _, ev := range s.Evidence {
				fmt.Fprintf(w, "    - %s\n", ev)
			}
		}
	}
	t := res.Tier
	if t == nil {
		return
	}
	if len(t.Artifacts) > 0 {
		fmt.Fprintln(w, "Artifacts:")
		for _, k := range t.Artifacts {
			a, _ := pol.Artifact(k)
			fmt.Fprintf(w, "  - %s: %s\n", k, a.Name)
		}
	}
	fmt.Fprintln(w, "Approvals:")
	for _, a := range t.Approvals {
		members := []string{}
		if g := pol.Groups[a.Group]; g != nil {
			members = g.Members
		}
		fmt.Fprintf(w, "  - %d from %s (%s): %s\n", a.Count, a.Group, a.Role, strings.Join(members, ", "))
	}
	if len(t.Review) > 0 {
		fmt.Fprintf(w, "Review: %s\n", strings.Join(t.Review, ", "))
	}
	if len(t.Inform) > 0 {
		fmt.Fprintf(w, "Inform: %s\n", strings.Join(t.Inform, ", "))
	}
	fmt.Fprintf(w, "Deadlines: first response %s, decision %s (urgent %s)\n", fmtDuration(t.FirstResponse), fmtDuration(t.Decision), fmtDuration(t.UrgentDecision))
	if len(t.Checklist) > 0 {
		fmt.Fprintf(w, "Checklist: %s\n", strings.Join(t.Checklist, ", "))
	}
	if len(t.Controls) > 0 {
		fmt.Fprintf(w, "Controls: %s\n", strings.Join(t.Controls, ", "))
	}
}

// fmtDuration writes a duration as a policy would: "3d", "8h", "90m".
func fmtDuration(d time.Duration) string { return policies.FormatDuration(d) }

func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
