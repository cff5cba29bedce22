package main

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"embed"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/threatgate/threatgate/adapters/gitlab/gitlabtest"
	"github.com/threatgate/threatgate/adapters/web"
	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
	"github.com/threatgate/threatgate/store"
)

// The demo: `threatgate demo` serves with the embedded policy, the
// console on, a simulated GitLab in place of the real one, and a few
// seeded escalations, so that a new user sees threatgate work without
// any account anywhere.

const defaultDemoDataDir = "./threatgate-demo-data"

// samplesFS holds the sample merge requests, each the JSON of GitLab's
// GET /projects/:id/merge_requests/:iid/changes.
//
//go:embed samples/*.json
var samplesFS embed.FS

// demoSamples lists what the simulated GitLab can open, in the order the
// console shows them. The tier each gets is not written here: the policy
// classifies the sample (simSample.Tier), and the console shows that.
var demoSamples = []struct {
	id, file, about string
}{
	{"auth-session", "auth-session.json", "An auth change: shorter idle sessions and a new session ID on login (internal/auth), by carol of appsec."},
	{"dependency-bump", "dependency-bump.json", "A dependency bump: package.json and its lockfile, by grace."},
	{"pii-migration", "pii-migration.json", "A migration adding customer e-mail, phone, address and date of birth columns, by frank."},
	{"docs-only", "docs-only.json", "A docs-only change (README, CONTRIBUTING, docs/), by erin."},
	{"sso-insecure-tls", "sso-insecure-tls.json", "A new SSO login whose token client skips TLS verification, by grace."},
	{"terraform-open-ingress", "terraform-open-ingress.json", "Terraform opening a database port to 0.0.0.0/0, by dave."},
	{"ci-deploy-job", "ci-deploy-job.json", "A new deploy job in .gitlab-ci.yml, by frank."},
}

// firstDemoIID is the first MR number the simulator hands out on a new
// data directory; later ones follow the highest number in the store.
const firstDemoIID = 200

// The actions a person can take on a merge request in the simulated
// GitLab (simulator.Act), besides opening a sample.
const (
	actPush   = "push"
	actMerge  = "merge"
	actClose  = "close"
	actReopen = "reopen"
)

// simulator is the demo's GitLab: a fake GitLab (adapters/gitlab/gitlabtest)
// on a loopback port, which the demo's server talks to exactly as serve
// talks to a real one (the GitLab client reads MRs and sets the gate's
// commit status in it). Opening a sample, pushing, merging, closing and
// reopening change the fake, then go the real way: the Merge Request Hook
// GitLab would send is posted to the server's /webhooks/gitlab (the
// intake records it; the worker handles it), and, so that the click's
// answer can name the outcome, the worker reads the MR back at once
// (Worker.Refresh, the reconcile path). Nothing here writes to the store.
// It is safe for concurrent use.
type simulator struct {
	gl         *gitlabtest.Server
	clock      bot.Clock
	statusName string // the gate's commit status
	samples    []simSample

	// Set by newDemoServer before the first action.
	hooks  http.Handler  // the server's handler; webhooks are posted to it
	secret string        // the webhook's secret token
	reader bot.Refresher // the GitLab worker: reads an MR now, through the engine
	store  demoStore

	mu      sync.Mutex
	nextIID int64
	order   []string            // every MR it holds, "project!iid", oldest first
	heads   map[string][]string // by MR: every head it had, oldest first
	samp    map[string]string   // by MR: the sample it was opened from
}

// demoStore is what the simulator reads of the store: which escalation an
// MR has.
type demoStore interface {
	FindByMR(ctx context.Context, project string, iid int64) (*bot.Escalation, error)
}

type simSample struct {
	web.Sample
	mr gitlabtest.MR // the template: no IID, SHA or state
}

var (
	_ web.Samples         = (*simulator)(nil)
	_ web.SimulatedGitLab = (*simulator)(nil)
)

// newSimulator starts the fake GitLab and loads the embedded samples,
// classifying each with pol. firstIID is the MR number the first opening
// gets; each opening gets the next, so the same sample can be opened again
// and again. Close stops the fake.
func newSimulator(clock bot.Clock, firstIID int64, pol *policies.Policy) (*simulator, error) {
	s := &simulator{clock: clock, nextIID: firstIID, statusName: defaultStatusName, heads: map[string][]string{}, samp: map[string]string{}}
	for _, d := range demoSamples {
		name := path.Join("samples", d.file)
		data, err := samplesFS.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read sample %s: %w", name, err)
		}
		mr, err := policies.ParseMergeRequest(name, data)
		if err != nil {
			return nil, fmt.Errorf("parse sample %s: %w", name, err)
		}
		smp := simSample{Sample: web.Sample{ID: d.id, Title: mr.Title, Description: d.about}, mr: gitlabtest.MR{
			Project: mr.Project(), Title: mr.Title, Description: mr.Description, Author: mr.Author.Username,
			SourceBranch: mr.SourceBranch, TargetBranch: mr.TargetBranch, Labels: slices.Clone([]string(mr.Labels)),
		}}
		for _, c := range mr.Changes {
			smp.mr.Diffs = append(smp.mr.Diffs, gitlabtest.Diff{OldPath: c.OldPath, NewPath: c.NewPath, Diff: c.Diff,
				NewFile: c.NewFile, RenamedFile: c.RenamedFile, DeletedFile: c.DeletedFile})
		}
		if t := pol.Evaluate(mr).Tier; t != nil {
			smp.Tier = t.ID
		}
		s.samples = append(s.samples, smp)
	}
	s.gl = gitlabtest.Start()
	s.gl.SetNow(func() time.Time { return clock.Now() })
	return s, nil
}

// Close stops the fake GitLab.
func (s *simulator) Close() { s.gl.Close() }

// Samples lists the sample merge requests, each with the tier the policy
// gives it.
func (s *simulator) Samples() []web.Sample {
	out := make([]web.Sample, len(s.samples))
	for i, smp := range s.samples {
		out[i] = smp.Sample
	}
	return out
}

// OpenSample opens the sample with id as a new MR in the simulated GitLab
// and returns the escalation it led to ("" when it needs no review) and
// what happened, in a sentence. An unknown id is a *bot.Problem naming the
// samples there are.
func (s *simulator) OpenSample(ctx context.Context, id string) (escalation, reply string, err error) {
	ref, err := s.open(ctx, id)
	if err != nil {
		return "", "", err
	}
	return s.outcome(ctx, ref, "Opened "+ref+" in the simulated GitLab.")
}

// open adds a fresh copy of sample id to the fake GitLab (a new MR number,
// a new head), sends its webhook and reads it back; it returns the MR.
func (s *simulator) open(ctx context.Context, id string) (string, error) {
	i := slices.IndexFunc(s.samples, func(x simSample) bool { return x.ID == id })
	if i < 0 {
		ids := make([]string, len(s.samples))
		for j, x := range s.samples {
			ids[j] = x.ID
		}
		return "", &bot.Problem{Field: "sample", Msg: fmt.Sprintf("no sample merge request %q; want one of %s", id, strings.Join(ids, ", "))}
	}
	mr := s.samples[i].mr
	s.mu.Lock()
	mr.IID = s.nextIID
	s.nextIID++
	s.mu.Unlock()
	mr.SHA = fakeSHA(mr.Project, mr.IID, 0)
	mr.Labels, mr.Diffs = slices.Clone(mr.Labels), slices.Clone(mr.Diffs)
	s.gl.AddMR(mr)
	ref := s.remember(mr.Project, mr.IID, mr.SHA, id)
	return ref, s.notify(ctx, mr.Project, mr.IID, "open")
}

// remember records an MR the fake holds now and its head.
func (s *simulator) remember(project string, iid int64, head, sample string) string {
	ref := fmt.Sprintf("%s!%d", project, iid)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.heads[ref]; !ok {
		s.order = append(s.order, ref)
	}
	if hs := s.heads[ref]; len(hs) == 0 || hs[len(hs)-1] != head {
		s.heads[ref] = append(hs, head)
	}
	if sample != "" {
		s.samp[ref] = sample
	}
	return ref
}

// notify tells the server what changed, as GitLab does: the Merge Request
// Hook to /webhooks/gitlab, which the intake records for the worker. Then
// the worker reads the MR at once (the reconcile path), so the engine has
// decided on it when notify returns; the webhook, handled a moment later,
// finds nothing new.
func (s *simulator) notify(ctx context.Context, project string, iid int64, action string) error {
	req, err := s.gl.HookRequest(ctx, "http://127.0.0.1/webhooks/gitlab", s.secret, project, iid, action)
	if err != nil {
		return fmt.Errorf("webhook for %s!%d: %w", project, iid, err)
	}
	rec := httptest.NewRecorder()
	s.hooks.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return fmt.Errorf("webhook for %s!%d: the server answered %d: %s", project, iid, rec.Code, strings.TrimSpace(rec.Body.String()))
	}
	if err := s.reader.Refresh(ctx, bot.Effect{Project: project, MRIID: iid}); err != nil {
		return fmt.Errorf("read %s!%d back: %w", project, iid, err)
	}
	return nil
}

// Act does what a person does to an MR in GitLab: push a commit (a new
// head), merge (whatever the gate says), close or reopen; then the server
// is told as GitLab tells it (notify). It returns the MR's escalation (""
// when it has none) and what happened. An MR the simulated GitLab does not
// hold is an error wrapping web.ErrUnknownMR; an unknown action, or one
// the MR's state does not allow (merging a closed MR), is a *bot.Problem.
func (s *simulator) Act(ctx context.Context, ref, action string) (escalation, reply string, err error) {
	project, iid, ok := parseRef(ref)
	if !ok {
		return "", "", fmt.Errorf("%w: %q is not a merge request such as group/proj!12", web.ErrUnknownMR, ref)
	}
	mr, ok := s.gl.MR(project, iid)
	if !ok {
		return "", "", fmt.Errorf("%w: the simulated GitLab has no merge request %s", web.ErrUnknownMR, ref)
	}
	var did string
	switch action {
	case actPush:
		s.mu.Lock()
		n := len(s.heads[ref])
		s.mu.Unlock()
		if mr.State != "opened" {
			return "", "", &bot.Problem{Field: "action", Msg: fmt.Sprintf("%s is %s; only an open merge request takes a push", ref, mr.State)}
		}
		sha := fakeSHA(project, iid, n)
		email := mr.Author + "@example.com"
		s.gl.Push(project, iid, gitlabtest.Commit{ID: sha, AuthorEmail: email, CommitterEmail: email, Title: "Address review comments"})
		s.remember(project, iid, sha, "")
		did = fmt.Sprintf("Pushed commit %s to %s: a new head.", bot.ShortSHA(sha), ref)
	case actMerge, actClose, actReopen:
		change := map[string]func(string, int64) error{actMerge: s.gl.MergeMR, actClose: s.gl.CloseMR, actReopen: s.gl.ReopenMR}[action]
		if err := change(project, iid); err != nil {
			return "", "", &bot.Problem{Field: "action", Msg: fmt.Sprintf("cannot %s %s: %v", action, ref, err)}
		}
		did = map[string]string{actMerge: "Merged ", actClose: "Closed ", actReopen: "Reopened "}[action] + ref + " in the simulated GitLab."
	default:
		return "", "", &bot.Problem{Field: "action", Msg: fmt.Sprintf("no action %q; want push, merge, close or reopen", action)}
	}
	hook := map[string]string{actPush: "update", actMerge: "merge", actClose: "close", actReopen: "reopen"}[action]
	if err := s.notify(ctx, project, iid, hook); err != nil {
		return "", "", err
	}
	return s.outcome(ctx, ref, did)
}

// outcome says what the escalation of MR ref is now, after did.
func (s *simulator) outcome(ctx context.Context, ref, did string) (string, string, error) {
	project, iid, _ := parseRef(ref)
	e, err := s.store.FindByMR(ctx, project, iid)
	if errors.Is(err, bot.ErrNotFound) {
		return "", did + " It needs no security review: no escalation.", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("find the escalation of %s: %w", ref, err)
	}
	msg := fmt.Sprintf("%s %s (tier %s) is %s on head %s.", did, e.ID, e.Tier, strings.ReplaceAll(string(e.State), "_", " "), bot.ShortSHA(e.HeadSHA))
	if e.Bypassed {
		msg += " The merge bypassed the gate: it is recorded as a bypass."
	}
	return e.ID, msg, nil
}

// parseRef reads "group/proj!12".
func parseRef(ref string) (project string, iid int64, ok bool) {
	i := strings.LastIndexByte(ref, '!')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.ParseInt(ref[i+1:], 10, 64)
	if err != nil || n <= 0 {
		return "", 0, false
	}
	return ref[:i], n, true
}

// MergeRequests returns every MR of the simulated GitLab, newest first, as
// the fake holds it: its state, head and the gate's commit status (on the
// head, or, when the head has none yet, the latest on an earlier head),
// with the escalation threatgate keeps for it.
func (s *simulator) MergeRequests(ctx context.Context) []web.SimMR {
	s.mu.Lock()
	order := slices.Clone(s.order)
	heads := map[string][]string{}
	samp := map[string]string{}
	for _, ref := range order {
		heads[ref] = slices.Clone(s.heads[ref])
		samp[ref] = s.samp[ref]
	}
	s.mu.Unlock()
	out := make([]web.SimMR, 0, len(order))
	for _, ref := range slices.Backward(order) {
		project, iid, _ := parseRef(ref)
		mr, ok := s.gl.MR(project, iid)
		if !ok {
			continue
		}
		v := web.SimMR{Ref: ref, Project: project, IID: iid, Title: mr.Title, Author: mr.Author, State: mr.State, Head: mr.SHA, Sample: samp[ref]}
		hs := heads[ref]
		for i := len(hs) - 1; i >= 0 && v.Gate == ""; i-- {
			for _, st := range s.gl.Statuses(project, hs[i]) {
				if st.Name == s.statusName {
					v.Gate, v.GateSHA, v.GateText = st.State, st.SHA, st.Description
				}
			}
		}
		if e, err := s.store.FindByMR(ctx, project, iid); err == nil {
			v.Escalation, v.Tier, v.Bypassed = e.ID, e.Tier, e.Bypassed
		}
		out = append(out, v)
	}
	return out
}

// restore puts the MRs of the escalations already in the store back into
// the fake GitLab (which lives in memory) when the demo starts again on
// its data directory: same number, head, author and state, and the diff of
// the sample of the same title, so that nothing threatgate reads changes.
func (s *simulator) restore(all []*bot.Escalation) {
	slices.SortFunc(all, func(a, b *bot.Escalation) int { return a.CreatedAt.Compare(b.CreatedAt) })
	for _, e := range all {
		if e.Project == "" || e.MRIID <= 0 || e.HeadSHA == "" {
			continue
		}
		if _, ok := s.gl.MR(e.Project, e.MRIID); ok {
			continue
		}
		mr := gitlabtest.MR{Project: e.Project, IID: e.MRIID, Title: e.Title, Author: e.Author, SHA: e.HeadSHA}
		sample := ""
		for _, smp := range s.samples {
			if smp.mr.Project == e.Project && smp.mr.Title == e.Title {
				mr = smp.mr
				mr.IID, mr.SHA, sample = e.MRIID, e.HeadSHA, smp.ID
				mr.Labels, mr.Diffs = slices.Clone(mr.Labels), slices.Clone(mr.Diffs)
			}
		}
		switch e.MRState {
		case "merged", "closed":
			mr.State = e.MRState
		}
		if e.State == bot.StateMerged {
			mr.State = "merged"
		}
		s.gl.AddMR(mr)
		s.remember(e.Project, e.MRIID, e.HeadSHA, sample)
	}
}

// addMR adds an MR of no sample (the one a seeded manual escalation names).
func (s *simulator) addMR(mr gitlabtest.MR) {
	s.gl.AddMR(mr)
	s.remember(mr.Project, mr.IID, mr.SHA, "")
}

// newIID hands out the next MR number.
func (s *simulator) newIID() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextIID++
	return s.nextIID - 1
}

// fakeSHA makes a commit SHA that differs for every MR and push.
func fakeSHA(name string, iid int64, n int) string {
	h := sha1.Sum(fmt.Appendf(nil, "%s/%d/%d", name, iid, n))
	return hex.EncodeToString(h[:])
}

// nextFreeIID returns an MR number above every one in the store, so that
// what the simulator opens after a restart never lands on an old
// escalation.
func nextFreeIID(ctx context.Context, db web.Lister) (int64, error) {
	all, err := db.List(ctx)
	if err != nil {
		return 0, fmt.Errorf("list escalations: %w", err)
	}
	next := int64(firstDemoIID)
	for _, e := range all {
		next = max(next, e.MRIID+1)
	}
	return next, nil
}

// demoClock is the demo's clock: the wall clock, except while seeding,
// when it stands where Set put it so that the seeded history spreads over
// past weeks.
type demoClock struct {
	mu sync.Mutex
	at time.Time // zero: the wall clock
}

var _ bot.Clock = (*demoClock)(nil)

// Now returns the time Set put the clock at, or the wall clock's.
func (c *demoClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at.IsZero() {
		return time.Now()
	}
	return c.at
}

// stopped returns where Set stopped the clock, zero when it runs.
func (c *demoClock) stopped() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.at
}

// Set stops the clock at t; the zero time gives it back to the wall clock.
func (c *demoClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at = t
}

// seedDemo fills a new data directory with escalations in different
// states, made through the engine by real inputs and commands as the
// default policy's people, at times spread over the past four weeks. It
// does nothing when the store already has escalations, and returns how
// many it made. clock must be h's clock; seedDemo moves it and gives it
// back to the wall clock (or to where it stood) when done. Every command
// must be accepted: a refusal is returned as an error naming it.
func seedDemo(ctx context.Context, db demoDB, h web.Handler, sim *simulator, clock *demoClock) (int, error) {
	all, err := db.List(ctx)
	if err != nil {
		return 0, fmt.Errorf("seed: list escalations: %w", err)
	}
	if len(all) > 0 {
		return 0, nil
	}
	defer clock.Set(clock.stopped())
	sd := &seeder{ctx: ctx, db: db, h: h, sim: sim, clock: clock, now: clock.Now()}
	sd.run()
	return sd.n, sd.err
}

// demoDB is what seeding reads of the store.
type demoDB interface {
	web.Lister
	FindEscalation(ctx context.Context, id string) (*bot.Escalation, error)
}

// seeder runs the seeding script, stopping at the first error.
type seeder struct {
	ctx   context.Context
	db    demoDB
	h     web.Handler
	sim   *simulator
	clock *demoClock
	now   time.Time // the real now; the script runs before it
	n     int
	err   error
}

const demoDay = 24 * time.Hour

// at moves the clock to ago before now.
func (sd *seeder) at(ago time.Duration) { sd.clock.Set(sd.now.Add(-ago)) }

// open opens a sample and returns its escalation.
func (sd *seeder) open(sample string) string {
	if sd.err != nil {
		return ""
	}
	esc, reply, err := sd.sim.OpenSample(sd.ctx, sample)
	if err == nil && esc == "" {
		err = fmt.Errorf("sample %s did not escalate: %s", sample, reply)
	}
	if err != nil {
		sd.err = fmt.Errorf("seed: %w", err)
		return ""
	}
	sd.n++
	return esc
}

// act does action to the MR of escalation esc in the simulated GitLab.
func (sd *seeder) act(esc, action string) {
	if sd.err != nil {
		return
	}
	e, err := sd.db.FindEscalation(sd.ctx, esc)
	if err == nil {
		_, _, err = sd.sim.Act(sd.ctx, fmt.Sprintf("%s!%d", e.Project, e.MRIID), action)
	}
	if err != nil {
		sd.err = fmt.Errorf("seed: %s %s: %w", action, esc, err)
	}
}

// do runs a chat command as person in the thread of escalation esc and
// returns the escalation the reply names.
func (sd *seeder) do(person, esc, text string) string {
	if sd.err != nil {
		return ""
	}
	first, _, _ := strings.Cut(text, "\n")
	c, err := bot.ParseCommand(text)
	if err != nil {
		sd.err = fmt.Errorf("seed: %s: %w", first, err)
		return ""
	}
	rep, err := sd.h.Handle(sd.ctx, bot.Input{Kind: bot.InputCommand, Actor: bot.Identity{Person: person, Surface: "web"}, Command: &c, Escalation: esc})
	if err != nil {
		sd.err = fmt.Errorf("seed: %s as %s on %s: %w", first, person, esc, err)
		return ""
	}
	return rep.Escalation
}

// seedChecks answers the checklist of the default policy's T2 and T3 tiers.
func seedChecks(data, access, regulatory, deps string) string {
	q := func(s string) string { return `"` + s + `"` }
	return " --check data-sensitivity=" + q(data) + " --check access-implications=" + q(access) +
		" --check regulatory=" + q(regulatory) + " --check cross-system-dependencies=" + q(deps)
}

func (sd *seeder) run() {
	// Approved (T2): artifacts from a champion, a residual risk, an
	// appsec approval answering the checklist, an action item.
	sd.at(27 * demoDay)
	esc := sd.open("auth-session")
	sd.at(26*demoDay + 20*time.Hour)
	sd.do("frank", esc, "/threatgate artifact threat-model https://wiki.example.com/security/tm/session-rotation")
	sd.do("frank", esc, "/threatgate artifact impact-matrix https://wiki.example.com/security/impact/identity-service")
	sd.do("frank", esc, "/threatgate artifact test-evidence https://gitlab.example.com/acme/identity-service/-/pipelines/88214")
	sd.at(25*demoDay + 3*time.Hour)
	sd.do("bob", esc, "/threatgate risk 4 Likelihood 2 (needs a planted session ID), impact 2 (one account)")
	sd.do("bob", esc, "/approve"+seedChecks("session IDs only, no PII", "users are logged out after 30 idle minutes", "none", "the mobile app refreshes its session on resume")+
		" Rotation on login closes the fixation hole; the shorter timeout is in line with our standard.")
	sd.do("bob", esc, "/threatgate action Add the session-rotation test to the nightly security suite")

	// Merged while awaiting artifacts: a bypass (T1).
	sd.at(20 * demoDay)
	esc = sd.open("ci-deploy-job")
	sd.at(19*demoDay + 2*time.Hour)
	sd.act(esc, actMerge)

	// Disputed (T2): an appsec approval and a reviewer's rejection.
	sd.at(16 * demoDay)
	esc = sd.open("terraform-open-ingress")
	sd.at(15*demoDay + 4*time.Hour)
	sd.do("grace", esc, "/threatgate artifact threat-model https://wiki.example.com/security/tm/analytics-vendor-access")
	sd.do("grace", esc, "/threatgate artifact impact-matrix https://wiki.example.com/security/impact/reporting-replica")
	sd.do("grace", esc, "/threatgate artifact test-evidence terraform plan attached to the MR: one new ingress rule, nothing else")
	sd.at(14*demoDay + 2*time.Hour)
	sd.do("alice", esc, "/threatgate risk 6 Likelihood 2 (the vendor's credentials), impact 3 (aggregated sales data)")
	sd.do("alice", esc, "/approve"+seedChecks("reporting replica: aggregated sales, no customer PII", "read-only role for the vendor", "vendor DPA signed", "the BI dashboards share the replica")+
		" Acceptable for a read-only replica with a dedicated role.")
	sd.at(14*demoDay - 3*time.Hour)
	sd.do("frank", esc, "/threatgate reject 0.0.0.0/0 on a database port is an open door; ask the vendor for their egress ranges or use a private link.")

	// Deferred (T1, the deferrable tier) until after today.
	sd.at(10 * demoDay)
	esc = sd.open("dependency-bump")
	sd.at(9 * demoDay)
	sd.do("carol", esc, "/threatgate defer 3w Waiting for axios 1.7.5, which fixes the redirect regression; bump once to that.")

	// In review (T3) with one of the two appsec approvals, past its
	// decision deadline.
	sd.at(6 * demoDay)
	esc = sd.open("sso-insecure-tls")
	sd.at(5 * demoDay)
	sd.do("grace", esc, "/threatgate artifact threat-model https://wiki.example.com/security/tm/new-idp")
	sd.do("grace", esc, "/threatgate artifact data-flow-diagram https://wiki.example.com/security/dfd/oidc-login")
	sd.do("grace", esc, "/threatgate artifact impact-matrix https://wiki.example.com/security/impact/identity-service")
	sd.do("grace", esc, "/threatgate artifact test-evidence https://gitlab.example.com/acme/identity-service/-/pipelines/88702")
	sd.do("grace", esc, "/threatgate artifact rollback-plan Feature flag sso_new_idp; off restores the old login")
	sd.at(4 * demoDay)
	sd.do("bob", esc, "/threatgate risk 8 Likelihood 2 (TLS verification is off only in staging), impact 4 (every staff login)")
	sd.do("alice", esc, "/approve"+seedChecks("ID tokens carry e-mail addresses", "new login path for all staff", "SOC2 access review", "the old IdP stays until cut-over")+
		" Only with the TLS verification restored before production; tracked as an action item.")
	sd.do("alice", esc, "/threatgate action Remove InsecureSkipVerify before the production rollout")

	// Awaiting artifacts (T2): one of three handed in.
	sd.at(2 * demoDay)
	esc = sd.open("pii-migration")
	sd.at(1 * demoDay)
	sd.do("frank", esc, "/threatgate artifact threat-model https://wiki.example.com/security/tm/customer-contact")

	// An urgent manual escalation, filed with its intake fields.
	// Its MR is in the simulated GitLab, so the escalation learns its
	// title, link and head as an automatic one does.
	sd.at(3 * time.Hour)
	iid := sd.sim.newIID()
	sd.sim.addMR(gitlabtest.MR{Project: "acme/payments-api", IID: iid, SHA: fakeSHA("acme/payments-api", iid, 0), Author: "erin",
		Title: "Log request bodies in the request logger", SourceBranch: "erin/request-logging",
		Diffs: []gitlabtest.Diff{{OldPath: "internal/httplog/httplog.go", NewPath: "internal/httplog/httplog.go",
			Diff: "@@ -40,3 +40,4 @@ func (l *Logger) Wrap(h http.Handler) http.Handler {\n \t\tstart := time.Now()\n+\t\tl.log.Info(\"request\", \"path\", r.URL.Path, \"body\", readBody(r))\n \t\th.ServeHTTP(w, r)\n"}}})
	if sd.do("frank", "", fmt.Sprintf("/escalate acme/payments-api!%d --urgent --tier T2 Card tokens may be written to the request log", iid)+
		"\nsummary: The new request logger writes whole request bodies, which include card tokens, to the shared log index."+
		"\nassets: payments-api, the log cluster; payment data (card tokens)"+
		"\nexploit: Anyone with read access to the log index (about 200 engineers) could replay a token against the charge endpoint.") != "" {
		sd.n++
	}
}

// newDemoServer builds the demo's server as serve builds it, with the
// simulator's fake GitLab as its GitLab (gitlab.url, the token, the
// webhook secret) and the console on, and wires the simulator to it: its
// webhooks go to the server's handler, the worker reads MRs back. It
// mounts demoHandler.
func newDemoServer(cfg Config, pol *policies.Policy, db *store.DB, clock bot.Clock, log *slog.Logger, sim *simulator) (*server, error) {
	g := defaultGitLab()
	g.URL, g.StatusName = sim.gl.Addr(), sim.statusName
	cfg.GitLab = g
	if cfg.Web == nil {
		cfg.Web = &WebConfig{}
	}
	cfg.Web.Console = true
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("webhook secret: %w", err)
	}
	secret := hex.EncodeToString(b[:])
	s, err := newServer(cfg, Secrets{GitLabToken: bot.Secret(sim.gl.Token), GitLabWebhookSecret: bot.Secret(secret)}, pol, db, clock, log, extras{
		Samples: sim,
		Banner:  "Demo mode: a simulated GitLab and the embedded policy; the console lets you act as anyone.",
	})
	if err != nil {
		return nil, err
	}
	sim.hooks, sim.secret, sim.reader, sim.store = s.handler, secret, s.worker, db
	s.handler = demoHandler(s, sim)
	return s, nil
}

// demoHandler is the demo's HTTP handler: the server's own (health,
// metrics, /api, /webhooks/gitlab), plus the simulated GitLab's API:
//
//	GET  /api/demo/samples       the sample MRs: [{"id", "title", "description", "tier"}]
//	POST /api/demo/samples/{id}  open one: {"escalation": "ESC-8" or "", "reply": "..."}
//	GET  /api/demo/gitlab        the simulated GitLab's MRs, gate statuses included
//
// The POST refuses cross-origin browser requests, so another site cannot
// open MRs in a demo running on the visitor's machine.
func demoHandler(s *server, sim *simulator) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", s.handler)
	mux.HandleFunc("GET /api/demo/samples", func(w http.ResponseWriter, r *http.Request) {
		type sampleJSON struct {
			ID          string `json:"id"`
			Title       string `json:"title"`
			Description string `json:"description"`
			Tier        string `json:"tier"`
		}
		out := []sampleJSON{}
		for _, x := range sim.Samples() {
			out = append(out, sampleJSON{x.ID, x.Title, x.Description, x.Tier})
		}
		writeJSON(w, out)
	})
	open := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		esc, reply, err := sim.OpenSample(r.Context(), r.PathValue("id"))
		if p, ok := bot.IsProblem(err); ok {
			http.Error(w, p.Error(), http.StatusNotFound)
			return
		}
		if err != nil {
			s.log.Error("open sample", "sample", r.PathValue("id"), bot.LogErr, err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		writeJSON(w, map[string]string{"escalation": esc, "reply": reply})
	})
	mux.Handle("POST /api/demo/samples/{id}", http.NewCrossOriginProtection().Handler(open))
	mux.HandleFunc("GET /api/demo/gitlab", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, sim.MergeRequests(r.Context()))
	})
	return s.local(mux)
}

// demo runs `threatgate demo`: the embedded policy, the console on, the
// simulated GitLab, a seeded data directory; it serves until e.ctx ends.
func (e *env) demo(args []string) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	listen := fs.String("listen", defaultListen, "host:port to serve on")
	dataDir := fs.String("data", defaultDemoDataDir, "data directory of the demo (not the production default)")
	rest, code := e.parseFlags(fs, args)
	if code != 0 {
		return max(code, 0)
	}
	if len(rest) > 0 {
		return e.usage("demo takes no arguments, got %q", rest[0])
	}
	cfg := DefaultConfig()
	cfg.Listen, cfg.DataDir = *listen, *dataDir
	cfg.Web = &WebConfig{Console: true}
	if err := cfg.Validate(); err != nil {
		for _, p := range policies.Problems(err) {
			switch p.Field {
			case "listen":
				p.Field = "--listen"
			case "data_dir":
				p.Field = "--data"
			}
		}
		return e.printProblems(err)
	}
	// Quiet while seeding: its thirty-odd commits are not news.
	level := new(slog.LevelVar)
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}
	pol, err := policies.Default()
	if err != nil {
		fmt.Fprintf(e.stderr, "threatgate: demo: embedded policy: %v\n", err)
		return exitFinding
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			fmt.Fprintf(e.stderr, "threatgate: demo: %s is already in use; stop what holds it or pick another address with --listen %s\n", cfg.Listen, nextPort(cfg.Listen))
		} else {
			fmt.Fprintf(e.stderr, "threatgate: demo: cannot listen on %s: %v\n", cfg.Listen, err)
		}
		return exitFinding
	}
	defer ln.Close()
	cfg.Listen = ln.Addr().String() // the real port when --listen asked for :0

	db, err := store.Open(cfg.DataDir, store.Logger(log))
	if err != nil {
		fmt.Fprintf(e.stderr, "threatgate: demo: %v\n", err)
		return exitFinding
	}
	defer db.Close()
	first, err := nextFreeIID(e.ctx, db)
	if err != nil {
		fmt.Fprintf(e.stderr, "threatgate: demo: %v\n", err)
		return exitFinding
	}
	clock := &demoClock{}
	sim, err := newSimulator(clock, first, pol)
	if err != nil {
		fmt.Fprintf(e.stderr, "threatgate: demo: %v\n", err)
		return exitFinding
	}
	defer sim.Close()
	if all, err := db.List(e.ctx); err == nil {
		sim.restore(all)
	}
	s, err := newDemoServer(cfg, pol, db, clock, log, sim)
	if err != nil {
		fmt.Fprintf(e.stderr, "threatgate: demo: %v\n", err)
		return exitFinding
	}
	level.Set(slog.LevelWarn)
	n, err := seedDemo(e.ctx, db, s.engine, sim, clock)
	level.Set(slog.LevelInfo)
	if err != nil {
		fmt.Fprintf(e.stderr, "threatgate: demo: %v\n", err)
		return exitFinding
	}
	if n > 0 {
		log.Info("seeded the demo", "escalations", n, "data_dir", cfg.DataDir)
	}

	fmt.Fprintf(e.stdout, "threatgate demo: open %s/ — the dashboard, the console at /console (act as anyone in the policy) and sample merge requests to open; data in %s; Ctrl-C stops\n",
		cfg.PublicURL(), cfg.DataDir)
	if err := s.run(e.ctx, ln); err != nil {
		fmt.Fprintf(e.stderr, "threatgate: demo: %v\n", err)
		return exitFinding
	}
	return exitOK
}

// nextPort suggests the address after listen: the same host, the next port.
func nextPort(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	n, perr := strconv.Atoi(port)
	if err != nil || perr != nil || n <= 0 || n >= 65535 {
		return "127.0.0.1:8081"
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, strconv.Itoa(n+1))
}
