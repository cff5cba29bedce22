package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
)

// escalationView is what templates/escalation.html shows.
type escalationView struct {
	E         *bot.Escalation
	Tier      *policies.Tier // nil when the policy no longer has the tier
	Row       escRow
	Signals   []signalView
	Intake    []pair
	Artifacts []artifactView
	Missing   int
	Matrix    []matrixRow
	Other     []decisionView // approvals that fill no row of the matrix (arbiters, former tiers)
	Approvals []decisionView // every approval, with its checklist
	Rejected  []decisionView
	Timeline  []eventView
	Chain     chainStatus
	// UnknownAuthors are the authors and committers of the MR's commits
	// that nobody in the policy matches (bot.UnknownAuthors): an approver
	// should know who else wrote the change.
	UnknownAuthors []string
	// Gate is the commit status threatgate last set, nil when none is
	// recorded; Merge how the MR was merged, nil until it is.
	Gate  *gateView
	Merge *mergeView
}

// gateView is the gate's status as threatgate last set it in GitLab.
type gateView struct {
	Status, Text, SHA string
	At                time.Time
	OnHead            bool // set on the MR's current head
	DryRun            bool // never written to GitLab: what a dry run would have set
}

// mergeView is the merge as recorded: who (as GitLab reported it), when,
// and for a bypass what the gate still needed then.
type mergeView struct {
	By       string
	At       time.Time
	Bypassed bool
	Missing  []string
}

type signalView struct {
	policies.Fired
	Description string
}

type pair struct{ Key, Value string }

type artifactView struct {
	Kind     string
	Name     string
	Required bool
	In       bool
	bot.Artifact
}

// matrixRow is one row of the tier's approvals matrix and who approved
// for it.
type matrixRow struct {
	policies.Approval
	Valid     int // approvals that count
	Approvals []decisionView
}

type decisionView struct {
	bot.Decision
	Stale  bool // by flag, or given for an older head in a tier that resets approvals on push
	Checks []pair
}

type eventView struct {
	bot.Event
	Summary string
}

// chainStatus is the outcome of verifying the audit chain for a page.
type chainStatus struct {
	OK     bool
	Events int    // the chain is verified up to this event (the whole log when OK)
	Err    string // the first broken link
	// Incremental: only the events after the last verified checkpoint
	// were read, Checked of them; the ones before were checked by earlier
	// pages and are not read again (see chainVerifier).
	Incremental bool
	Checked     int
}

// chainVerifier checks the audit chain from its last verified checkpoint
// to its head, so that a page costs the events written since the last
// check, not every event ever written; *store.DB is one (store.DB.VerifyFrom
// documents what it checks). It cannot see a change to an event before
// the checkpoint: that is for the full walk, Reader.Verify.
type chainVerifier interface {
	VerifyFrom(ctx context.Context) (verified uint64, checked int, err error)
}

// maxIDLen bounds an escalation id from the URL; longer ones cannot exist.
const maxIDLen = 64

func (s *Server) escalation(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !plausibleID(id) {
		s.NotFound(w, r)
		return
	}
	ctx := r.Context()
	e, err := s.Store.FindEscalation(ctx, id)
	if errors.Is(err, bot.ErrNotFound) {
		s.RenderError(w, r, http.StatusNotFound, fmt.Sprintf("There is no escalation %s.", id))
		return
	}
	if err != nil {
		s.fail(w, r, fmt.Errorf("find %s: %w", id, err))
		return
	}
	events, err := s.Store.Events(ctx, e.ID)
	if err != nil {
		s.fail(w, r, fmt.Errorf("events of %s: %w", e.ID, err))
		return
	}
	v := buildEscalation(e, events, s.policy(), s.now())
	if v.Gate != nil {
		v.Gate.DryRun = s.DryRun
	}
	v.Chain = s.verifyChain(r, e.ID)
	s.Render(w, r, "escalation", e.ID+" "+e.Project+"!"+fmt.Sprint(e.MRIID), v)
}

// verifyChain checks the audit chain for the page of escalation id: from
// the store's checkpoint when it keeps one, else (a Reader without
// VerifyFrom, such as a test's wrapper) by the full walk.
func (s *Server) verifyChain(r *http.Request, id string) chainStatus {
	var st chainStatus
	var err error
	if cv, ok := s.Store.(chainVerifier); ok {
		var verified uint64
		verified, st.Checked, err = cv.VerifyFrom(r.Context())
		st.Events, st.Incremental = int(verified), true
	} else {
		st.Events, err = s.Store.Verify(r.Context())
		st.Checked = st.Events
	}
	if err != nil {
		st.Err = err.Error()
		s.log.Error("audit chain broken", bot.LogEscalationID, id, bot.LogErr, err)
		return st
	}
	st.OK = true
	return st
}

// plausibleID reports whether id could name an escalation, so that odd
// input gets a 404 without reaching the store.
func plausibleID(id string) bool {
	if id == "" || len(id) > maxIDLen {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// buildEscalation computes the escalation page; it is a pure function of
// its arguments.
func buildEscalation(e *bot.Escalation, events []bot.Event, pol *policies.Policy, now time.Time) *escalationView {
	v := &escalationView{E: e, Row: newRow(e, pol, now), UnknownAuthors: bot.UnknownAuthors(e, pol)}
	if pol != nil {
		v.Tier = pol.Tier(e.Tier)
	}
	for _, f := range e.Signals {
		sv := signalView{Fired: f}
		if pol != nil {
			if sig := pol.Signal(f.ID); sig != nil {
				sv.Description = sig.Description
			}
		}
		v.Signals = append(v.Signals, sv)
	}
	var fields []string // the policy's intake order, then any others by name
	if pol != nil {
		for _, f := range pol.Intake {
			fields = append(fields, f.ID)
		}
	}
	v.Intake = orderedChecks(e.Intake, fields)

	// Artifacts: the tier's, in its order, then any others handed in.
	var required []string
	if v.Tier != nil {
		required = v.Tier.Artifacts
	}
	name := func(kind string) string {
		if pol != nil {
			if a, ok := pol.Artifact(kind); ok && a.Name != "" {
				return a.Name
			}
		}
		return kind
	}
	missing := e.MissingArtifacts(v.Tier) // the rule: an artifact whose text retention removed counts as missing
	for _, k := range required {
		av := artifactView{Kind: k, Name: name(k), Required: true}
		if i := slices.IndexFunc(e.Artifacts, func(a bot.Artifact) bool { return a.Kind == k }); i >= 0 {
			av.In, av.Artifact = true, e.Artifacts[i]
		}
		if slices.Contains(missing, k) {
			v.Missing++
		}
		v.Artifacts = append(v.Artifacts, av)
	}
	for _, a := range e.Artifacts {
		if !slices.Contains(required, a.Kind) {
			v.Artifacts = append(v.Artifacts, artifactView{Kind: a.Kind, Name: name(a.Kind), In: true, Artifact: a})
		}
	}

	var checklist []string
	if v.Tier != nil {
		checklist = v.Tier.Checklist
	}
	decision := func(d bot.Decision) decisionView {
		dv := decisionView{Decision: d, Stale: d.Stale || (v.Tier != nil && v.Tier.ResetApprovalsOnPush && e.HeadSHA != "" && d.SHA != e.HeadSHA)}
		dv.Checks = orderedChecks(d.Checks, checklist)
		return dv
	}
	for _, a := range e.Approvals {
		v.Approvals = append(v.Approvals, decision(a))
	}
	for _, d := range e.Rejections {
		v.Rejected = append(v.Rejected, decision(d))
	}
	placed := make([]bool, len(v.Approvals))
	if v.Tier != nil {
		for _, row := range v.Tier.Approvals {
			mr := matrixRow{Approval: row}
			for i, a := range v.Approvals {
				if placed[i] || a.Arbiter || a.Group != row.Group || (row.Role != "" && a.Role != "" && a.Role != row.Role) {
					continue
				}
				placed[i] = true
				mr.Approvals = append(mr.Approvals, a)
				if !a.Stale {
					mr.Valid++
				}
			}
			v.Matrix = append(v.Matrix, mr)
		}
	}
	for i, a := range v.Approvals {
		if !placed[i] {
			v.Other = append(v.Other, a)
		}
	}

	for _, ev := range events {
		v.Timeline = append(v.Timeline, eventView{Event: ev, Summary: summarize(ev)})
	}
	v.Gate, v.Merge = gateOf(e), mergeOf(e, events)
	return v
}

// gateOf reads the gate's last status from the projection (kept from
// the events that set it).
func gateOf(e *bot.Escalation) *gateView {
	if e.Gate == "" {
		return nil
	}
	return &gateView{Status: e.Gate, Text: e.GateText, SHA: e.GateSHA, At: e.GateAt, OnHead: e.GateSHA == e.HeadSHA}
}

// mergeOf reads the merge from the projection; for escalations merged
// before it kept who and when, the merged event gives the time.
func mergeOf(e *bot.Escalation, events []bot.Event) *mergeView {
	if e.State != bot.StateMerged && e.MergedAt.IsZero() {
		return nil
	}
	m := &mergeView{By: e.MergedBy, At: e.MergedAt, Bypassed: e.Bypassed, Missing: e.MergeMissing}
	if m.At.IsZero() {
		for _, ev := range slices.Backward(events) {
			if ev.Kind == bot.EventMerged {
				m.At = ev.At
				break
			}
		}
	}
	return m
}

// orderedChecks lists the answers in checks in the order of items, then
// any others by name: checklist answers, intake fields.
func orderedChecks(checks map[string]string, items []string) []pair {
	var out []pair
	for _, k := range items {
		if a, ok := checks[k]; ok {
			out = append(out, pair{k, a})
		}
	}
	var rest []string
	for k := range checks {
		if !slices.Contains(items, k) {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		out = append(out, pair{k, checks[k]})
	}
	return out
}

// maxSummary bounds the text quoted in a timeline entry.
const maxSummary = 200

// summarize describes an event's data in a short line for the timeline.
func summarize(ev bot.Event) string {
	d := ev.Data
	var parts []string
	add := func(format string, args ...any) { parts = append(parts, fmt.Sprintf(format, args...)) }
	text := func() {
		if t := strings.TrimSpace(d.Text); t != "" {
			add("“%s”", clip(t))
		}
	}
	switch ev.Kind {
	case bot.EventOpened:
		add("%s!%d in tier %s", d.Project, d.MRIID, tierText(d.Tier, d.TierName))
		add("score %d, %d %s", d.Score, len(d.Signals), plural(len(d.Signals), "signal", "signals"))
		if d.Manual {
			add("manual")
		}
		if d.Urgent {
			add("urgent")
		}
		if !d.DecisionDue.IsZero() {
			add("decision due %s", formatUTC(d.DecisionDue))
		}
		text()
	case bot.EventMRUpdated:
		if ev.SHA != "" {
			add("head %s", shortSHA(ev.SHA))
		}
		if d.Title != "" {
			add("title %q", clip(d.Title))
		}
		if d.MRState != "" {
			add("MR %s", d.MRState)
		}
		if d.TargetBranch != "" {
			add("target %s", d.TargetBranch)
		}
		if d.Labels != nil {
			add("labels %s", strings.Join(d.Labels, ", "))
		}
		if d.StaleFrom != "" {
			add("approvals for %s now stale", shortSHA(d.StaleFrom))
		}
	case bot.EventReclassified:
		add("score %d, %d %s", d.Score, len(d.Signals), plural(len(d.Signals), "signal", "signals"))
	case bot.EventTierRaised, bot.EventRetiered:
		add("%s → %s", d.FromTier, tierText(d.Tier, d.TierName))
		if ev.Kind == bot.EventTierRaised {
			add("score %d", d.Score)
		}
		if !d.DecisionDue.IsZero() {
			add("decision due %s", formatUTC(d.DecisionDue))
		}
		text()
	case bot.EventIntake:
		keys := make([]string, 0, len(d.Intake))
		for k := range d.Intake {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		add("answered %s", strings.Join(keys, ", "))
	case bot.EventFiled:
		add("filed: the review starts")
		if !d.DecisionDue.IsZero() {
			add("decision due %s", formatUTC(d.DecisionDue))
		}
	case bot.EventArtifactAdded:
		add("%s: %s", d.Artifact, clip(d.Ref))
	case bot.EventApproved, bot.EventRejected:
		if d.Arbiter {
			add("as arbiter")
		}
		if d.Group != "" {
			add("for %s", d.Group)
		}
		if d.Role != "" {
			add("role %s", d.Role)
		}
		if len(d.Checks) > 0 {
			add("%d checklist %s", len(d.Checks), plural(len(d.Checks), "answer", "answers"))
		}
		text()
	case bot.EventRisk:
		add("residual risk %d/25", d.Risk)
		if d.Likelihood > 0 {
			add("likelihood %d × impact %d", d.Likelihood, d.Impact)
		}
		if d.Controls != "" {
			add("controls: %s", d.Controls)
		}
		text()
	case bot.EventRiskValidated:
		add("residual risk %d/25 validated", d.Risk)
		text()
	case bot.EventDeferred:
		add("until %s", formatUTC(d.Until))
		text()
	case bot.EventMerged:
		if d.Bypassed {
			add("merged without approval (bypassed)")
		}
	case bot.EventStateChanged:
		add("%s → %s", words(string(d.From)), words(string(d.To)))
	case bot.EventCapOverridden:
		add("%s may file %d more", d.Person, d.Count)
		text()
	case bot.EventStatusForged:
		if t := strings.TrimSpace(d.Text); t != "" {
			add("%s", clip(t))
		} else {
			add("the gate's status on the head was set by someone else")
		}
	default:
		text()
	}
	return strings.Join(parts, "; ")
}

func tierText(id, name string) string {
	if name == "" {
		return id
	}
	return id + " (" + name + ")"
}

func words(s string) string { return strings.ReplaceAll(s, "_", " ") }

// clip shortens s to maxSummary runes.
func clip(s string) string {
	if r := []rune(s); len(r) > maxSummary {
		return string(r[:maxSummary]) + "…"
	}
	return s
}
