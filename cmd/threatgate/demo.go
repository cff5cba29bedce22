package main

import (
	"context"
	"crypto/sha1"
	"embed"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/threatgate/threatgate/adapters/gitlab"
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
// console shows them. The tiers named are what the embedded default
// policy gives (demo_test.go checks them).
var demoSamples = []struct {
	id, file, about string
}{
	{"auth-session", "auth-session.json", "An auth change: shorter idle sessions and a new session ID on login (internal/auth). Escalates as T2."},
	{"dependency-bump", "dependency-bump.json", "A dependency bump from the dependency bot: package.json and its lockfile. Escalates as T1, the lowest tier."},
	{"pii-migration", "pii-migration.json", "A migration adding customer e-mail, phone, address and date of birth columns. Escalates as T2."},
	{"docs-only", "docs-only.json", "A docs-only change (README, CONTRIBUTING, docs/). Needs no review: no escalation."},
	{"sso-insecure-tls", "sso-insecure-tls.json", "A new SSO login whose token client skips TLS verification. Escalates as T3, the critical tier."},
	{"terraform-open-ingress", "terraform-open-ingress.json", "Terraform opening a database port to 0.0.0.0/0. Escalates as T2."},
	{"ci-deploy-job", "ci-deploy-job.json", "A new deploy job in .gitlab-ci.yml. Escalates as T1."},
}

// firstDemoIID is the first MR number the simulator hands out on a new
// data directory; later ones follow the highest number in the store.
const firstDemoIID = 200

// simulator is the demo's GitLab. It opens sample merge requests by
// feeding them to the engine as the webhook worker would, and it is the
// forge the dispatcher delivers to: it records every commit status, note
// and label per MR, so the dashboard can show what GitLab would show.
// It is safe for concurrent use.
type simulator struct {
	clock   bot.Clock
	handler web.Handler // decides on the inputs of OpenSample; set before serving
	samples []simSample

	mu      sync.Mutex
	nextIID int64
	opened  map[string]*simOpened // by escalation id
	byMR    map[string]*simOpened // every MR it opened, by "project!iid"
	mrs     map[string]*SimMR     // by "project!iid"
	actions []gitlab.DryRunAction
	done    map[string]bool // effect ids acted on: a retried delivery does not act twice
}

type simSample struct {
	web.Sample
	mr      *policies.MergeRequest // the template; never changed
	authors []string
}

// simOpened is an MR the simulator opened, kept to merge or push to it.
type simOpened struct {
	mr      *policies.MergeRequest
	authors []string
	pushes  int
}

// SimMR is one merge request as the simulated GitLab shows it: the gate's
// status on the head, the labels and the notes threatgate left.
type SimMR struct {
	Project    string   `json:"project"`
	IID        int64    `json:"mr_iid"`
	Title      string   `json:"title,omitempty"`
	WebURL     string   `json:"web_url,omitempty"`
	SHA        string   `json:"sha,omitempty"`
	Status     string   `json:"status,omitempty"`
	StatusText string   `json:"status_text,omitempty"`
	Labels     []string `json:"labels"`
	Notes      []string `json:"notes"`
}

var (
	_ bot.Forge     = (*simulator)(nil)
	_ bot.Refresher = (*simulator)(nil)
	_ web.Samples   = (*simulator)(nil)
)

// simKeep bounds the action log; per-MR records are kept whole.
const simKeep = 1000

// newSimulator loads the embedded samples. firstIID is the MR number the
// first opening gets; each opening gets the next, so the same sample can
// be opened again and again.
func newSimulator(clock bot.Clock, firstIID int64) (*simulator, error) {
	s := &simulator{clock: clock, nextIID: firstIID, opened: map[string]*simOpened{}, byMR: map[string]*simOpened{}, mrs: map[string]*SimMR{}, done: map[string]bool{}}
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
		mr.PathWithNamespace = mr.Project()
		s.samples = append(s.samples, simSample{
			Sample: web.Sample{ID: d.id, Title: mr.Title, Description: d.about},
			mr:     mr, authors: []string{mr.Author.Username},
		})
	}
	return s, nil
}

// Samples lists the sample merge requests.
func (s *simulator) Samples() []web.Sample {
	out := make([]web.Sample, len(s.samples))
	for i, smp := range s.samples {
		out[i] = smp.Sample
	}
	return out
}

// OpenSample opens the sample with id as a new MR, as if GitLab had sent
// its webhook and the worker had fetched it, and returns the escalation
// it led to ("" when it needs no review) and the engine's reply. An
// unknown id is a *bot.Problem naming the samples there are.
func (s *simulator) OpenSample(ctx context.Context, id string) (escalation, reply string, err error) {
	rep, err := s.open(ctx, s.handler, id, s.clock.Now())
	return rep.Escalation, rep.Text, err
}

// open feeds a fresh copy of sample id to h: a new MR number, a new head
// SHA, updated at now.
func (s *simulator) open(ctx context.Context, h web.Handler, id string, now time.Time) (bot.Reply, error) {
	i := slices.IndexFunc(s.samples, func(x simSample) bool { return x.ID == id })
	if i < 0 {
		ids := make([]string, len(s.samples))
		for j, x := range s.samples {
			ids[j] = x.ID
		}
		return bot.Reply{}, &bot.Problem{Field: "sample", Msg: fmt.Sprintf("no sample merge request %q; want one of %s", id, strings.Join(ids, ", "))}
	}
	if h == nil {
		return bot.Reply{}, fmt.Errorf("open sample %s: the simulator has no engine", id)
	}
	smp := s.samples[i]
	iid := s.newIID()

	mr := *smp.mr
	mr.IID = iid
	mr.State = "opened"
	mr.SHA = fakeSHA(id, iid, 0)
	mr.UpdatedAt = now
	mr.Labels = slices.Clone(smp.mr.Labels)
	mr.Changes = slices.Clone(smp.mr.Changes)
	mr.References.Full = fmt.Sprintf("%s!%d", mr.PathWithNamespace, iid)
	if u := smp.mr.WebURL; u != "" {
		if k := strings.LastIndex(u, "/-/merge_requests/"); k > 0 {
			mr.WebURL = fmt.Sprintf("%s/-/merge_requests/%d", u[:k], iid)
		}
	}
	s.mu.Lock()
	s.mrLocked(mr.PathWithNamespace, iid, &mr)
	s.mu.Unlock()

	rep, err := h.Handle(ctx, bot.Input{
		Kind: bot.InputMR, Actor: bot.System,
		MR:  &bot.MRInput{Action: bot.MROpen, MR: &mr, CommitAuthors: slices.Clone(smp.authors)},
		Key: fmt.Sprintf("demo-open:%s!%d", mr.PathWithNamespace, iid),
	})
	if err != nil {
		return bot.Reply{}, fmt.Errorf("open sample %s as %s!%d: %w", id, mr.PathWithNamespace, iid, err)
	}
	o := &simOpened{mr: &mr, authors: slices.Clone(smp.authors)}
	s.mu.Lock()
	s.byMR[fmt.Sprintf("%s!%d", mr.PathWithNamespace, iid)] = o
	if rep.Escalation != "" {
		s.opened[rep.Escalation] = o
	}
	s.mu.Unlock()
	return rep, nil
}

// merge merges the MR of escalation id at now, as GitLab's merge webhook
// would report it, whatever the gate says: a merge before approval is a
// bypass.
func (s *simulator) merge(ctx context.Context, h web.Handler, id string, now time.Time) (bot.Reply, error) {
	return s.change(ctx, h, id, now, bot.MRMerge)
}

// push adds a commit to the MR of escalation id at now: a new head SHA.
func (s *simulator) push(ctx context.Context, h web.Handler, id string, now time.Time) (bot.Reply, error) {
	return s.change(ctx, h, id, now, bot.MRUpdate)
}

func (s *simulator) change(ctx context.Context, h web.Handler, id string, now time.Time, action bot.MRAction) (bot.Reply, error) {
	s.mu.Lock()
	o := s.opened[id]
	if o == nil {
		s.mu.Unlock()
		return bot.Reply{}, &bot.Problem{Field: id, Msg: "the simulated GitLab did not open this merge request, so it cannot change it"}
	}
	mr := *o.mr
	mr.UpdatedAt = now
	switch action {
	case bot.MRMerge:
		mr.State = "merged"
	case bot.MRUpdate:
		o.pushes++
		mr.SHA = fakeSHA(mr.PathWithNamespace, mr.IID, o.pushes)
	}
	o.mr = &mr
	authors := slices.Clone(o.authors)
	s.mu.Unlock()
	rep, err := h.Handle(ctx, bot.Input{Kind: bot.InputMR, Actor: bot.System, MR: &bot.MRInput{Action: action, MR: &mr, CommitAuthors: authors}})
	if err != nil {
		return bot.Reply{}, fmt.Errorf("%s %s: %w", action, id, err)
	}
	return rep, nil
}

// Refresh feeds the MR of e (a manual escalation's) to the engine as the
// simulated GitLab shows it now, as the GitLab worker does for serve. An
// MR the simulator never opened is left alone: there is nothing to show.
func (s *simulator) Refresh(ctx context.Context, e bot.Effect) error {
	s.mu.Lock()
	var mr policies.MergeRequest
	var authors []string
	o, found := s.byMR[fmt.Sprintf("%s!%d", e.Project, e.MRIID)]
	if found {
		mr, authors = *o.mr, slices.Clone(o.authors)
	}
	h := s.handler
	s.mu.Unlock()
	if !found || h == nil {
		return nil
	}
	_, err := h.Handle(ctx, bot.Input{Kind: bot.InputMR, Actor: bot.System, MR: &bot.MRInput{Action: bot.MRSeen, MR: &mr, CommitAuthors: authors}})
	if _, ok := bot.IsProblem(err); ok {
		return nil
	}
	return err
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

// mrLocked returns the record of an MR, making it; s.mu is held.
func (s *simulator) mrLocked(project string, iid int64, mr *policies.MergeRequest) *SimMR {
	k := fmt.Sprintf("%s!%d", project, iid)
	m := s.mrs[k]
	if m == nil {
		m = &SimMR{Project: project, IID: iid, Labels: []string{}, Notes: []string{}}
		s.mrs[k] = m
	}
	if mr != nil {
		m.Title, m.WebURL, m.SHA = mr.Title, mr.WebURL, mr.SHA
	}
	return m
}

// record acts on an effect once, however often it is delivered.
func (s *simulator) record(e bot.Effect) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.ID != "" {
		if s.done[e.ID] {
			return nil
		}
		s.done[e.ID] = true
	}
	a := gitlab.DryRunAction{At: s.clock.Now(), Kind: string(e.Kind), Escalation: e.Escalation, Project: e.Project,
		MRIID: e.MRIID, SHA: e.SHA, Status: e.Status, Text: e.Body(), Labels: slices.Clone(e.Labels)}
	s.actions = append(s.actions, a)
	if len(s.actions) > simKeep {
		s.actions = slices.Delete(s.actions, 0, len(s.actions)-simKeep)
	}
	m := s.mrLocked(e.Project, e.MRIID, nil)
	switch e.Kind {
	case bot.EffectStatus:
		m.SHA, m.Status, m.StatusText = e.SHA, e.Status, a.Text
	case bot.EffectMRNote:
		m.Notes = append(m.Notes, a.Text)
	case bot.EffectMRLabels:
		for _, l := range e.Labels {
			if !slices.Contains(m.Labels, l) {
				m.Labels = append(m.Labels, l)
			}
		}
	}
	return nil
}

// SetStatus records the gate's commit status on the MR head.
func (s *simulator) SetStatus(_ context.Context, e bot.Effect) error { return s.record(e) }

// PostNote records a note on the MR.
func (s *simulator) PostNote(_ context.Context, e bot.Effect) error { return s.record(e) }

// AddLabels records labels added to the MR.
func (s *simulator) AddLabels(_ context.Context, e bot.Effect) error { return s.record(e) }

// Actions returns what threatgate did in the simulated GitLab, oldest
// first (the latest 1000).
func (s *simulator) Actions() []gitlab.DryRunAction {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.actions)
}

// MR returns the simulated GitLab's view of an MR, and false when it has
// never seen it.
func (s *simulator) MR(project string, iid int64) (SimMR, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.mrs[fmt.Sprintf("%s!%d", project, iid)]
	if m == nil {
		return SimMR{}, false
	}
	c := *m
	c.Labels, c.Notes = slices.Clone(m.Labels), slices.Clone(m.Notes)
	return c, true
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
func seedDemo(ctx context.Context, db web.Lister, h web.Handler, sim *simulator, clock *demoClock) (int, error) {
	all, err := db.List(ctx)
	if err != nil {
		return 0, fmt.Errorf("seed: list escalations: %w", err)
	}
	if len(all) > 0 {
		return 0, nil
	}
	defer clock.Set(clock.stopped())
	sd := &seeder{ctx: ctx, h: h, sim: sim, clock: clock, now: clock.Now()}
	sd.run()
	return sd.n, sd.err
}

// seeder runs the seeding script, stopping at the first error.
type seeder struct {
	ctx   context.Context
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
	rep, err := sd.sim.open(sd.ctx, sd.h, sample, sd.clock.Now())
	if err == nil && rep.Escalation == "" {
		err = fmt.Errorf("sample %s did not escalate: %s", sample, rep.Text)
	}
	if err != nil {
		sd.err = fmt.Errorf("seed: %w", err)
		return ""
	}
	sd.n++
	return rep.Escalation
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
	if sd.err == nil {
		if _, err := sd.sim.merge(sd.ctx, sd.h, esc, sd.clock.Now()); err != nil {
			sd.err = fmt.Errorf("seed: %w", err)
		}
	}

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
	sd.at(3 * time.Hour)
	if sd.do("frank", "", fmt.Sprintf("/escalate acme/payments-api!%d --urgent --tier T2 Card tokens may be written to the request log", sd.sim.newIID())+
		"\nsummary: The new request logger writes whole request bodies, which include card tokens, to the shared log index."+
		"\nassets: payments-api, the log cluster; payment data (card tokens)"+
		"\nexploit: Anyone with read access to the log index (about 200 engineers) could replay a token against the charge endpoint.") != "" {
		sd.n++
	}
}

// newDemoServer builds the demo's server from serve's parts (store,
// engine, dispatcher, worker, health, metrics, /api) with the simulator
// as the forge and chat as the chat surface (nil: thread posts are
// dropped). It wires the simulator to the engine and mounts demoHandler.
func newDemoServer(cfg Config, pol *policies.Policy, db *store.DB, clock bot.Clock, log *slog.Logger, sim *simulator) (*server, error) {
	cfg.GitLab = nil // no webhooks, no API: the simulator is GitLab
	if cfg.Web == nil {
		cfg.Web = &WebConfig{}
	}
	cfg.Web.Console = true
	s, err := newServer(cfg, Secrets{}, pol, db, clock, log, extras{
		Forge: sim, Samples: sim,
		Banner: "Demo mode: a simulated GitLab and the embedded policy; the console lets you act as anyone.",
	})
	if err != nil {
		return nil, err
	}
	sim.handler = s.engine
	s.dispatcher.Refresher = sim
	s.handler = demoHandler(s, sim)
	return s, nil
}

// demoHandler is the demo's HTTP handler: the server's own (health,
// metrics, /api), plus the simulated GitLab's API:
//
//	GET  /api/demo/samples       the sample MRs: [{"id", "title", "description"}]
//	POST /api/demo/samples/{id}  open one: {"escalation": "ESC-8" or "", "reply": "..."}
//	GET  /api/demo/gitlab        what threatgate did in the simulated GitLab
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
		}
		out := []sampleJSON{}
		for _, x := range sim.Samples() {
			out = append(out, sampleJSON{x.ID, x.Title, x.Description})
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
		out := sim.Actions()
		if out == nil {
			out = []gitlab.DryRunAction{}
		}
		writeJSON(w, out)
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
	sim, err := newSimulator(clock, first)
	if err != nil {
		fmt.Fprintf(e.stderr, "threatgate: demo: %v\n", err)
		return exitFinding
	}
	s, err := newDemoServer(cfg, pol, db, clock, log, sim)
	if err != nil {
		fmt.Fprintf(e.stderr, "threatgate: demo: %v\n", err)
		return exitFinding
	}
	level.Set(slog.LevelWarn)
	n, err := seedDemo(e.ctx, db, sim.handler, sim, clock)
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
