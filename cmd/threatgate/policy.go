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
	rc, total, failed, run := exitOK, 0, 0, 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintf(e.stderr, "%s: cannot read the test cases: %v\n", f, unwrapPath(err))
			rc = exitFinding
			continue
		}
		cases, err := policies.LoadCases(f, data)
		if err != nil {
			rc = e.printProblems(err)
			continue
		}
		if len(cases) == 0 {
			// A file that tests nothing is a mistake, not a pass.
			fmt.Fprintf(e.stderr, "%s: no test cases; want a mapping with a non-empty list under cases (see docs/POLICY.md, Test cases)\n", f)
			rc = exitFinding
			continue
		}
		run++
		total += len(cases)
		for _, fl := range pol.Check(f, cases) {
			failed++
			fmt.Fprintln(e.stdout, "FAIL "+fl.String())
			rc = exitFinding
		}
	}
	if run == 0 {
		// Nothing ran: a summary of 0 cases would read as a pass.
		fmt.Fprintf(e.stderr, "policy test: no test case ran (%s)\n", plural(len(files), "file", "files")+" not usable")
		return exitFinding
	}
	summary := fmt.Sprintf("%d cases, %d failed", total, failed)
	if n := len(files) - run; n > 0 {
		summary += fmt.Sprintf("; %s not run (see above)", plural(n, "file", "files"))
	}
	fmt.Fprintln(e.stdout, summary)
	return rc
}

// plural writes n and the word for it: "1 file", "2 files".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// explanation is the JSON form of policy explain; its keys are a
// contract (docs/POLICY.md). It says everything the text form says: with
// no tier, "tier" is null, there is no "tier_name" and no "deadlines", and
// the tier's lists are empty.
type explanation struct {
	MR        explainedMR      `json:"mr"`
	Policy    string           `json:"policy"`
	Tier      *string          `json:"tier"`
	TierName  *string          `json:"tier_name,omitempty"`
	Score     int              `json:"score"`
	Signals   []policies.Fired `json:"signals"`
	Artifacts []string         `json:"artifacts"`
	// ArtifactNames names each artifact kind of Artifacts.
	ArtifactNames map[string]string   `json:"artifact_names"`
	Approvals     []explainedApproval `json:"approvals"`
	Review        []string            `json:"review"`
	Inform        []string            `json:"inform"`
	Deadlines     *explainedDeadlines `json:"deadlines,omitempty"`
	Checklist     []string            `json:"checklist"`
	Controls      []string            `json:"controls"`
}

// explainedMR is the MR that was classified.
type explainedMR struct {
	Project string `json:"project,omitempty"` // "" when the MR-changes JSON does not say
	IID     int64  `json:"iid"`
	Title   string `json:"title"`
}

// explainedApproval is a row of the tier's approvals matrix and the
// members of its group.
type explainedApproval struct {
	policies.Approval
	Members []string `json:"members"`
}

// explainedDeadlines are the tier's deadlines, written as a policy writes
// durations ("4h", "2d"; "0s" for none).
type explainedDeadlines struct {
	FirstResponse  string `json:"first_response"`
	Decision       string `json:"decision"`
	UrgentDecision string `json:"urgent_decision"`
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
	x := explanation{MR: explainedMR{Project: mr.Project(), IID: mr.IID, Title: strings.TrimSpace(mr.Title)}, Policy: pol.Source,
		Score: res.Score, Signals: res.Signals, Artifacts: []string{}, ArtifactNames: map[string]string{},
		Approvals: []explainedApproval{}, Review: []string{}, Inform: []string{}, Checklist: []string{}, Controls: []string{}}
	if x.Signals == nil {
		x.Signals = []policies.Fired{}
	}
	if t := res.Tier; t != nil {
		x.Tier, x.TierName = &t.ID, &t.Name
		x.Artifacts = append(x.Artifacts, t.Artifacts...)
		for _, k := range t.Artifacts {
			a, _ := pol.Artifact(k)
			x.ArtifactNames[k] = a.Name
		}
		for _, a := range t.Approvals {
			row := explainedApproval{Approval: a, Members: []string{}}
			if g := pol.Groups[a.Group]; g != nil {
				row.Members = append(row.Members, g.Members...)
			}
			x.Approvals = append(x.Approvals, row)
		}
		x.Review = append(x.Review, t.Review...)
		x.Inform = append(x.Inform, t.Inform...)
		x.Checklist = append(x.Checklist, t.Checklist...)
		x.Controls = append(x.Controls, t.Controls...)
		x.Deadlines = &explainedDeadlines{FirstResponse: fmtDuration(t.FirstResponse), Decision: fmtDuration(t.Decision), UrgentDecision: fmtDuration(t.UrgentDecision)}
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
