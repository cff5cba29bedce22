package bot

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/threatgate/threatgate/policies"
)

// Evidence bundles: what an auditor is given for each escalation decided
// in a time window, built only from what the audit log recorded. Nothing
// is read from today's policy: the tier's requirements, its controls and
// its checklist come from the definition recorded with the escalation
// (Escalation.TierDef). docs/EXPORT.md documents every field.

// Schemas of the export's JSON documents. A field is only ever added
// within a version; a change in meaning is a new version.
const (
	BundleSchema = "threatgate.bundle/v1" // one escalation's bundle

	// RetentionRemoved says what retention removes from events.
	RetentionRemoved = "signal evidence lines and artifact text (links are kept)"
	ExportSchema     = "threatgate.export/v1" // the export's index and control summary
)

// Kinds of decision (Decided.Kind).
const (
	DecidedApproved  = "approved"
	DecidedRejected  = "rejected"
	DecidedWithdrawn = "withdrawn"
	DecidedMerged    = "merged"   // merged, not a bypass (an approval or withdrawal before it is the decision instead)
	DecidedBypassed  = "bypassed" // merged without an approval
)

// Kinds of gap (Gap.Kind): what a bundle lacks as evidence.
const (
	// GapNotRecorded: the escalation was recorded before tier
	// definitions were kept; what its tier required, and the controls
	// it maps to, are unknown.
	GapNotRecorded = "tier_definition_not_recorded"
	// GapMissingArtifact: an artifact the recorded tier requires was
	// never handed in.
	GapMissingArtifact = "missing_artifact"
	// GapLate: the decision came after the decision deadline in force.
	GapLate = "decided_after_deadline"
	// GapBypassed: the merge request was merged without an approval.
	GapBypassed = "bypassed"
	// GapActionOpen: an action item is not closed.
	GapActionOpen = "action_open"
)

// ExportStore is what an export reads: a window of the audit log, to find
// the escalations decided in it, and the events of each of those. store.DB
// is one. Nothing else is read: no list of escalations, no projection.
type ExportStore interface {
	History
	// Events returns an escalation's events in log order with their
	// chain fields, or ErrNotFound.
	Events(ctx context.Context, escalationID string) ([]Event, error)
}

// Export is the evidence of every escalation decided in [From, To).
type Export struct {
	Schema   string           `json:"schema"` // ExportSchema
	From     time.Time        `json:"from"`   // inclusive
	To       time.Time        `json:"to"`     // exclusive
	Index    []IndexEntry     `json:"escalations"`
	Controls []ControlSummary `json:"controls"`
	// Unmapped are the escalations that evidence no control: their tier
	// definition was not recorded, or it names no control.
	Unmapped []Unmapped `json:"unmapped"`
	Bundles  []*Bundle  `json:"-"` // in Index order; each is its own document
}

// IndexEntry is one escalation of an export, in short.
type IndexEntry struct {
	Escalation string    `json:"escalation"`
	Project    string    `json:"project"`
	MRIID      int64     `json:"mr_iid"`
	Title      string    `json:"title"`
	MRURL      string    `json:"mr_url"`
	Tier       string    `json:"tier"`
	TierName   string    `json:"tier_name"`
	Recorded   bool      `json:"tier_definition_recorded"`
	Decision   string    `json:"decision"`
	DecidedAt  time.Time `json:"decided_at"`
	DecidedBy  string    `json:"decided_by"`
	State      State     `json:"state"`
	Controls   []string  `json:"controls"`
	Gaps       int       `json:"gaps"`
}

// Bundle is the evidence of one escalation: its events (every one, up to
// when it was built) and what they recorded. It is a pure function of the
// events and the projection they fold into (BuildBundle).
type Bundle struct {
	Schema     string `json:"schema"` // BundleSchema
	Escalation string `json:"escalation"`

	MR       BundleMR      `json:"mr"`
	OpenedAt time.Time     `json:"opened_at"`
	OpenedBy string        `json:"opened_by"` // "system" (the MR classified) or the filer
	Manual   *BundleManual `json:"manual"`    // null for an automatic escalation
	Urgent   bool          `json:"urgent"`

	Decision  Decided         `json:"decision"`
	State     State           `json:"state"` // after the last event
	Deadlines BundleDeadlines `json:"deadlines"`

	Tier     BundleTier `json:"tier"`
	Controls []string   `json:"controls"` // the recorded tier's; empty when not recorded

	Artifacts []BundleArtifact `json:"artifacts"`
	// MissingArtifacts are those the recorded tier requires that were
	// never handed in.
	MissingArtifacts []ArtifactSpec `json:"missing_artifacts"`
	Approvals        []BundleVote   `json:"approvals"`
	Rejections       []BundleVote   `json:"rejections"`
	Dissents         []BundleNote   `json:"dissents"`
	Risk             *BundleRisk    `json:"risk"` // the latest assessment; null when none
	Actions          []BundleAction `json:"actions"`

	Gaps     []Gap           `json:"gaps"`
	Timeline []TimelineEntry `json:"timeline"`
	Chain    BundleChain     `json:"chain"`
	// Retention says what retention (retention.closed_days) removed from
	// the escalation's events, and when; absent when nothing was.
	Retention *BundleRetention `json:"retention,omitempty"`
}

// BundleRetention is what retention compacted: the events listed by the
// compaction events Seqs lost their signal evidence lines and artifact
// text; each kept its hash, and the compaction event records the digest
// of what remains (audit verify checks both).
type BundleRetention struct {
	Seqs    []uint64  `json:"compaction_events"`
	At      time.Time `json:"compacted_at"` // the last compaction
	Records []uint64  `json:"records"`      // the events compacted
	Removed string    `json:"removed"`
}

// BundleMR is the merge request as last recorded.
type BundleMR struct {
	Project       string   `json:"project"`
	IID           int64    `json:"iid"`
	Title         string   `json:"title"`
	URL           string   `json:"url"`
	Author        string   `json:"author"`
	CommitAuthors []string `json:"commit_authors"`
	TargetBranch  string   `json:"target_branch"`
	Labels        []string `json:"labels"`
	Head          string   `json:"head"`  // the head SHA last seen
	State         string   `json:"state"` // opened, closed, merged
}

// BundleManual is what the filer of a manual escalation gave.
type BundleManual struct {
	Filer  string            `json:"filer"`
	Reason string            `json:"reason"`
	Intake map[string]string `json:"intake"`
}

// Decided is an escalation's decision: the first event that moved it into
// approved, rejected or withdrawn, or merged its MR.
type Decided struct {
	Kind string    `json:"kind"` // DecidedApproved, ...
	At   time.Time `json:"at"`
	By   string    `json:"by"`
	Seq  uint64    `json:"seq"`
	SHA  string    `json:"sha"`  // the head it was made on
	Text string    `json:"text"` // a withdrawal's or the last rejection's reason
}

// BundleDeadlines are the deadlines in force when the escalation was
// decided, and whether the decision kept them.
type BundleDeadlines struct {
	FirstResponseDue time.Time `json:"first_response_due,omitzero"`
	DecisionDue      time.Time `json:"decision_due,omitzero"`
	Late             bool      `json:"late"`
}

// BundleTier is the tier and why.
type BundleTier struct {
	ID      string           `json:"id"`
	Name    string           `json:"name"`
	Score   int              `json:"score"`
	Signals []policies.Fired `json:"signals"` // with their evidence, as stored (redacted)
	// Definition is the tier's definition recorded with the escalation;
	// null when it was recorded before definitions were kept.
	Definition *TierSnapshot `json:"definition"`
	Changes    []TierChange  `json:"changes"`
}

// TierChange is an opening, a tier raise or a re-tier.
type TierChange struct {
	Seq       uint64    `json:"seq"`
	At        time.Time `json:"at"`
	Kind      EventKind `json:"kind"`
	From      string    `json:"from"`
	To        string    `json:"to"`
	By        string    `json:"by"`
	Score     int       `json:"score"`
	Rationale string    `json:"rationale"`
	Recorded  bool      `json:"definition_recorded"`
}

// BundleArtifact is an artifact as handed in (the last one of its kind).
type BundleArtifact struct {
	Seq  uint64    `json:"seq"`
	Kind string    `json:"kind"`
	Name string    `json:"name"` // from the recorded tier; "" when unknown
	Ref  string    `json:"ref"`  // a link or the text itself; "" once retention removed the text
	By   string    `json:"by"`
	At   time.Time `json:"at"`
	SHA  string    `json:"sha"`
	// Removed is when retention removed the artifact's text.
	Removed time.Time `json:"removed,omitzero"`
}

// BundleVote is an approval or a rejection.
type BundleVote struct {
	Seq       uint64        `json:"seq"`
	By        string        `json:"by"`
	Group     string        `json:"group"`
	Role      string        `json:"role"`
	SHA       string        `json:"sha"`
	At        time.Time     `json:"at"`
	Rationale string        `json:"rationale"`
	Checklist []CheckAnswer `json:"checklist"`
	Arbiter   bool          `json:"arbiter"`
	Stale     bool          `json:"stale"` // made stale by new commits or a higher tier
}

// CheckAnswer is an approver's answer to one checklist item.
type CheckAnswer struct {
	Item   string `json:"item"`
	Answer string `json:"answer"`
}

// BundleNote is a dissent.
type BundleNote struct {
	Seq  uint64    `json:"seq"`
	By   string    `json:"by"`
	At   time.Time `json:"at"`
	SHA  string    `json:"sha"`
	Text string    `json:"text"`
}

// BundleRisk is the latest residual-risk assessment.
type BundleRisk struct {
	Seq       uint64    `json:"seq"`
	By        string    `json:"by"`
	Score     int       `json:"score"`
	Rationale string    `json:"rationale"`
	At        time.Time `json:"at"`
	SHA       string    `json:"sha"`
	// Ceiling is the recorded tier's max_residual_risk (0: none or not
	// recorded); Above whether Score is over it.
	Ceiling int  `json:"max_residual_risk"`
	Above   bool `json:"above_max"`
	// Likelihood and Impact (1-5 each) whose product is Score; 0 when the
	// score was given as one number. Controls are the compensating
	// controls the scorer named ("" for none).
	Likelihood int    `json:"likelihood"`
	Impact     int    `json:"impact"`
	Controls   string `json:"controls"`
	// Validation is the second person's validation of this score; null
	// when it was not validated.
	Validation *BundleValidation `json:"validation"`
	// Acceptances are the approvals in the risk-acceptance role given
	// after this score was recorded: who accepted it.
	Acceptances []BundleVote `json:"acceptances"`
}

// BundleValidation is who validated a residual-risk score, and when.
type BundleValidation struct {
	Seq  uint64    `json:"seq"`
	By   string    `json:"by"`
	At   time.Time `json:"at"`
	Note string    `json:"note"`
}

// BundleAction is an action item.
type BundleAction struct {
	N      int       `json:"n"` // 1-based, as /threatgate done names it
	Seq    uint64    `json:"seq"`
	Text   string    `json:"text"`
	Owner  string    `json:"owner"`
	Due    time.Time `json:"due,omitzero"`
	By     string    `json:"by"`
	At     time.Time `json:"at"`
	Done   bool      `json:"done"`
	DoneAt time.Time `json:"done_at,omitzero"`
	DoneBy string    `json:"done_by"`
}

// Gap is something a bundle lacks as evidence.
type Gap struct {
	Kind   string `json:"kind"` // GapNotRecorded, ...
	Detail string `json:"detail"`
}

// TimelineEntry is one event of the escalation.
type TimelineEntry struct {
	Seq      uint64    `json:"seq"`
	At       time.Time `json:"at"`
	Kind     EventKind `json:"kind"`
	Actor    string    `json:"actor"`
	SHA      string    `json:"sha"`
	Summary  string    `json:"summary"`
	Hash     string    `json:"hash"`
	PrevHash string    `json:"prev_hash"`
	// Compacted is set on an event whose payload retention removed.
	Compacted *Compaction `json:"compacted,omitempty"`
}

// BundleChain is where the bundle's events sit in the audit chain. Other
// escalations' events lie between them; each event's own hash is in the
// timeline.
type BundleChain struct {
	FirstSeq  uint64 `json:"first_seq"`
	LastSeq   uint64 `json:"last_seq"`
	Events    int    `json:"events"`
	FirstHash string `json:"first_hash"`
	LastHash  string `json:"last_hash"`
}

// ControlSummary is one compliance control: the escalations of the export
// that evidence it (their recorded tier maps to it) and their gaps.
type ControlSummary struct {
	Control     string            `json:"control"`
	Escalations []ControlEvidence `json:"escalations"`
	Gaps        []ControlGap      `json:"gaps"`
}

// ControlEvidence is an escalation evidencing a control.
type ControlEvidence struct {
	Escalation string    `json:"escalation"`
	Tier       string    `json:"tier"`
	Decision   string    `json:"decision"`
	DecidedAt  time.Time `json:"decided_at"`
	Gaps       int       `json:"gaps"`
}

// ControlGap is a gap of an escalation evidencing a control.
type ControlGap struct {
	Escalation string `json:"escalation"`
	Kind       string `json:"kind"`
	Detail     string `json:"detail"`
}

// Unmapped is an escalation that evidences no control, and why.
type Unmapped struct {
	Escalation string `json:"escalation"`
	Reason     string `json:"reason"`
}

// ExportOf reads the evidence of every escalation decided in [from, to)
// (see DecisionOf): the window of the audit log names the candidates (those
// with a decision event in it), the events of each candidate say whether
// its first decision falls in the window, and the bundle is built from
// those events alone (BuildBundle over their Replay). Its reads follow the
// window and the escalations decided in it, never the whole store. Errors
// are internal.
func ExportOf(ctx context.Context, s ExportStore, from, to time.Time) (*Export, error) {
	return ExportWhere(ctx, s, from, to, nil)
}

// ExportWhere is ExportOf of the escalations keep accepts (as their events
// leave them; nil keeps all): the dashboard's export of a filtered list.
func ExportWhere(ctx context.Context, s ExportStore, from, to time.Time, keep func(*Escalation) bool) (*Export, error) {
	from, to = from.UTC(), to.UTC()
	window, err := s.EventsBetween(ctx, from, to)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	var candidates []string
	for _, ev := range window {
		if ev.Escalation != "" && decisionKind(ev) != "" && !slices.Contains(candidates, ev.Escalation) {
			candidates = append(candidates, ev.Escalation)
		}
	}
	var bundles []*Bundle
	for _, id := range candidates {
		events, err := s.Events(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
		d := DecisionOf(events)
		if d == nil || d.At.Before(from) || !d.At.Before(to) {
			continue // decided before the window: another window's
		}
		e := Replay(events)
		if keep != nil && !keep(e) {
			continue
		}
		bundles = append(bundles, BuildBundle(e, events))
	}
	return NewExport(from, to, bundles), nil
}

// NewExport puts bundles (of escalations decided in [from, to)) in order,
// decision first, and adds the index and the control summary.
func NewExport(from, to time.Time, bundles []*Bundle) *Export {
	bundles = slices.Clone(bundles)
	slices.SortStableFunc(bundles, func(a, b *Bundle) int {
		return cmp.Or(a.Decision.At.Compare(b.Decision.At), cmp.Compare(a.Decision.Seq, b.Decision.Seq))
	})
	x := &Export{Schema: ExportSchema, From: from.UTC(), To: to.UTC(), Index: []IndexEntry{}, Bundles: bundles}
	for _, b := range bundles {
		x.Index = append(x.Index, IndexEntry{
			Escalation: b.Escalation, Project: b.MR.Project, MRIID: b.MR.IID, Title: b.MR.Title, MRURL: b.MR.URL,
			Tier: b.Tier.ID, TierName: b.Tier.Name, Recorded: b.Tier.Definition != nil,
			Decision: b.Decision.Kind, DecidedAt: b.Decision.At, DecidedBy: b.Decision.By, State: b.State,
			Controls: b.Controls, Gaps: len(b.Gaps),
		})
	}
	x.Controls, x.Unmapped = BuildControlSummary(bundles)
	return x
}

// decisionKind is the kind of decision ev is, "" when it is none: a state
// change into approved, rejected or withdrawn, or a merge.
func decisionKind(ev Event) string {
	switch {
	case ev.Kind == EventMerged && ev.Data.Bypassed:
		return DecidedBypassed
	case ev.Kind == EventMerged:
		return DecidedMerged
	case ev.Kind != EventStateChanged:
		return ""
	}
	switch ev.Data.To {
	case StateApproved:
		return DecidedApproved
	case StateRejected:
		return DecidedRejected
	case StateWithdrawn:
		return DecidedWithdrawn
	}
	return ""
}

// DecisionOf returns an escalation's decision from its events (in log
// order): the first state change into approved, rejected or withdrawn, or
// the first merge, whichever comes first; nil when it was never decided.
// An escalation is decided in a window when this event's time falls in it,
// so it belongs to exactly one window however often it moves later (a
// re-approval after a tier raise, the merge after an approval); its later
// events are in its timeline.
func DecisionOf(events []Event) *Decided {
	_, d := firstDecision(events)
	return d
}

// firstDecision is DecisionOf and the index of its event in events (-1: none).
func firstDecision(events []Event) (int, *Decided) {
	var reason string
	for i, ev := range events {
		switch ev.Kind {
		case EventWithdrawn, EventRejected:
			reason = ev.Data.Text
		}
		k := decisionKind(ev)
		if k == "" {
			continue
		}
		if k == DecidedWithdrawn && resumedAfter(events[i+1:]) {
			// A withdrawal (a closed MR) that did not hold: the
			// escalation came back, so its real decision is later (a
			// merge past the gate cannot hide behind a close and reopen).
			continue
		}
		d := &Decided{Kind: k, At: ev.At.UTC(), By: ev.Actor, Seq: ev.Seq, SHA: ev.SHA}
		if k == DecidedWithdrawn || k == DecidedRejected {
			d.Text = reason
		}
		return i, d
	}
	return -1, nil
}

// BuildBundle returns the evidence of escalation e from its events (all of
// them, in log order; e is their projection). It reads no policy: what the
// tier required comes from e.TierDef, the definition recorded with it. An
// escalation that was never decided gets a zero Decision.
func BuildBundle(e *Escalation, events []Event) *Bundle {
	if e == nil {
		e = Replay(events)
	}
	if e == nil {
		e = &Escalation{}
	}
	b := &Bundle{
		Schema: BundleSchema, Escalation: e.ID,
		MR: BundleMR{
			Project: e.Project, IID: e.MRIID, Title: e.Title, URL: e.MRURL, Author: e.Author,
			CommitAuthors: nonNil(e.CommitAuthors), TargetBranch: e.TargetBranch, Labels: nonNil(e.Labels),
			Head: e.HeadSHA, State: e.MRState,
		},
		OpenedAt: e.CreatedAt.UTC(), OpenedBy: System.Person, Urgent: e.Urgent, State: e.State,
		Tier: BundleTier{
			ID: e.Tier, Name: e.TierName, Score: e.Score, Signals: nonNil(e.Signals), Definition: e.TierDef,
			Changes: []TierChange{},
		},
		Controls:  []string{},
		Artifacts: []BundleArtifact{}, MissingArtifacts: []ArtifactSpec{},
		Approvals: []BundleVote{}, Rejections: []BundleVote{}, Dissents: []BundleNote{}, Actions: []BundleAction{},
		Gaps: []Gap{}, Timeline: []TimelineEntry{},
	}
	if e.Manual {
		b.OpenedBy = e.Filer
		b.Manual = &BundleManual{Filer: e.Filer, Reason: e.Reason, Intake: e.Intake}
		if b.Manual.Intake == nil {
			b.Manual.Intake = map[string]string{}
		}
	}
	def := e.TierDef
	if def != nil {
		b.Controls = nonNil(def.Controls)
		if b.Tier.Name == "" {
			b.Tier.Name = def.Name
		}
	}
	decidedAt, d := firstDecision(events)
	var before State // the state just before the decision
	if d != nil {
		b.Decision = *d
		// The deadlines in force when it was decided: the projection of
		// the events up to it.
		if prior := Replay(events[:decidedAt]); prior != nil {
			before = prior.State
			if then := apply(prior, events[decidedAt]); !then.DecisionDue.IsZero() {
				b.Deadlines = BundleDeadlines{FirstResponseDue: then.FirstResponseDue.UTC(), DecisionDue: then.DecisionDue.UTC()}
				b.Deadlines.Late = d.At.After(then.DecisionDue)
			}
		}
	}

	// Sequence numbers of what the projection keeps, from the events
	// that made it: apply appends approvals, rejections, dissents and
	// action items in event order and keeps the last artifact of a kind
	// and the last risk assessment.
	var approvals, rejections, dissents, actions []uint64
	artifactSeq := map[string]uint64{}
	var riskSeq, validatedSeq uint64
	for _, ev := range events {
		switch ev.Kind {
		case EventOpened:
			b.OpenedBy = ev.Actor
			b.Tier.Changes = append(b.Tier.Changes, TierChange{Seq: ev.Seq, At: ev.At.UTC(), Kind: ev.Kind, To: ev.Data.Tier, By: ev.Actor, Score: ev.Data.Score, Recorded: ev.Data.TierDef != nil})
		case EventTierRaised, EventRetiered:
			b.Tier.Changes = append(b.Tier.Changes, TierChange{Seq: ev.Seq, At: ev.At.UTC(), Kind: ev.Kind, From: ev.Data.FromTier, To: ev.Data.Tier, By: ev.Actor, Score: ev.Data.Score, Rationale: ev.Data.Text, Recorded: ev.Data.TierDef != nil})
		case EventArtifactAdded:
			artifactSeq[ev.Data.Artifact] = ev.Seq
		case EventApproved:
			approvals = append(approvals, ev.Seq)
		case EventRejected:
			rejections = append(rejections, ev.Seq)
		case EventDissent:
			dissents = append(dissents, ev.Seq)
		case EventAction:
			actions = append(actions, ev.Seq)
		case EventRisk:
			riskSeq, validatedSeq = ev.Seq, 0
		case EventRiskValidated:
			validatedSeq = ev.Seq
		case EventCompacted:
			if b.Retention == nil {
				b.Retention = &BundleRetention{Seqs: []uint64{}, Records: []uint64{}, Removed: RetentionRemoved}
			}
			b.Retention.Seqs = append(b.Retention.Seqs, ev.Seq)
			b.Retention.At = ev.At.UTC()
			for _, r := range ev.Data.Records {
				b.Retention.Records = append(b.Retention.Records, r.Seq)
			}
		}
		te := TimelineEntry{
			Seq: ev.Seq, At: ev.At.UTC(), Kind: ev.Kind, Actor: ev.Actor, SHA: ev.SHA,
			Summary: EventSummary(ev), Hash: ev.Hash, PrevHash: ev.PrevHash,
		}
		if c := ev.Compacted; c != nil {
			te.Compacted = &Compaction{By: c.By, At: c.At.UTC()}
		}
		b.Timeline = append(b.Timeline, te)
	}
	at := func(seqs []uint64, i int) uint64 {
		if i < len(seqs) {
			return seqs[i]
		}
		return 0
	}

	names := map[string]string{}
	if def != nil {
		for _, a := range def.Artifacts {
			names[a.ID] = a.Name
		}
	}
	for _, a := range e.Artifacts {
		b.Artifacts = append(b.Artifacts, BundleArtifact{Seq: artifactSeq[a.Kind], Kind: a.Kind, Name: names[a.Kind], Ref: a.Ref, By: a.By, At: a.At.UTC(), SHA: a.SHA, Removed: a.Removed.UTC()})
	}
	for i, d := range e.Approvals {
		b.Approvals = append(b.Approvals, vote(d, at(approvals, i), def))
	}
	for i, d := range e.Rejections {
		b.Rejections = append(b.Rejections, vote(d, at(rejections, i), def))
	}
	for i, n := range e.Dissents {
		b.Dissents = append(b.Dissents, BundleNote{Seq: at(dissents, i), By: n.By, At: n.At.UTC(), SHA: n.SHA, Text: n.Text})
	}
	if r := e.Risk; r != nil {
		b.Risk = &BundleRisk{Seq: riskSeq, By: r.By, Score: r.Score, Rationale: r.Text, At: r.At.UTC(), SHA: r.SHA}
		if def != nil && def.MaxResidualRisk > 0 {
			b.Risk.Ceiling = def.MaxResidualRisk
			b.Risk.Above = r.Score > def.MaxResidualRisk
		}
		b.Risk.Likelihood, b.Risk.Impact, b.Risk.Controls = r.Likelihood, r.Impact, r.Controls
		if r.ValidatedBy != "" {
			b.Risk.Validation = &BundleValidation{Seq: validatedSeq, By: r.ValidatedBy, At: r.ValidatedAt.UTC(), Note: r.ValidatedNote}
		}
		b.Risk.Acceptances = []BundleVote{}
		for _, v := range b.Approvals {
			if v.Role == RoleRiskAcceptance && !v.At.Before(r.At.UTC()) {
				b.Risk.Acceptances = append(b.Risk.Acceptances, v)
			}
		}
	}
	for i, n := range e.Actions {
		b.Actions = append(b.Actions, BundleAction{N: i + 1, Seq: at(actions, i), Text: n.Text, Owner: ActionOwner(n), Due: n.Due.UTC(), By: n.By, At: n.At.UTC(), Done: n.Done, DoneAt: n.DoneAt.UTC(), DoneBy: n.DoneBy})
	}

	// Gaps, from what was recorded.
	if def == nil {
		b.Gaps = append(b.Gaps, Gap{GapNotRecorded, "the tier definition in force was not recorded with this escalation (it predates recorded definitions), so what " + cmp.Or(e.Tier, "its tier") + " required and the controls it maps to are unknown"})
	} else {
		for _, a := range def.Artifacts {
			if !slices.ContainsFunc(e.Artifacts, func(x Artifact) bool { return x.Kind == a.ID }) {
				b.MissingArtifacts = append(b.MissingArtifacts, a)
				b.Gaps = append(b.Gaps, Gap{GapMissingArtifact, fmt.Sprintf("%s required by %s was never handed in", artifactLabel(a), def.ID)})
			}
		}
	}
	if b.Decision.Kind == DecidedBypassed {
		b.Gaps = append(b.Gaps, Gap{GapBypassed, fmt.Sprintf("merged at %s without an approval, while %s", ShortSHA(b.Decision.SHA), before)})
	}
	if b.Deadlines.Late {
		b.Gaps = append(b.Gaps, Gap{GapLate, fmt.Sprintf("%s %s, %s after its decision deadline %s", b.Decision.Kind, stamp(b.Decision.At), HumanDuration(b.Decision.At.Sub(b.Deadlines.DecisionDue)), stamp(b.Deadlines.DecisionDue))})
	}
	for _, a := range b.Actions {
		if !a.Done {
			due := ""
			if !a.Due.IsZero() {
				due = ", due " + a.Due.Format(time.DateOnly)
			}
			b.Gaps = append(b.Gaps, Gap{GapActionOpen, fmt.Sprintf("action item %d (owner %s%s) is not closed", a.N, a.Owner, due)})
		}
	}

	if n := len(events); n > 0 {
		b.Chain = BundleChain{FirstSeq: events[0].Seq, LastSeq: events[n-1].Seq, Events: n, FirstHash: events[0].Hash, LastHash: events[n-1].Hash}
	}
	return b
}

// vote is an approval or rejection for a bundle: the checklist answers in
// the recorded checklist's order, then any others by name.
func vote(d Decision, seq uint64, def *TierSnapshot) BundleVote {
	v := BundleVote{Seq: seq, By: d.By, Group: d.Group, Role: d.Role, SHA: d.SHA, At: d.At.UTC(), Rationale: d.Rationale, Arbiter: d.Arbiter, Stale: d.Stale, Checklist: []CheckAnswer{}}
	var order []string
	if def != nil {
		for _, item := range def.Checklist {
			if _, ok := d.Checks[item]; ok {
				order = append(order, item)
			}
		}
	}
	var rest []string
	for k := range d.Checks {
		if !slices.Contains(order, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	for _, k := range append(order, rest...) {
		v.Checklist = append(v.Checklist, CheckAnswer{Item: k, Answer: d.Checks[k]})
	}
	return v
}

func artifactLabel(a ArtifactSpec) string {
	if a.Name == "" || a.Name == a.ID {
		return a.ID
	}
	return a.ID + " (" + a.Name + ")"
}

// BuildControlSummary groups bundles by the controls their recorded tiers
// map to, in control order (byte-wise), each with its escalations (in the
// bundles' order) and their gaps; an escalation of several controls is
// under each. The escalations that evidence no control are returned apart,
// with the reason.
func BuildControlSummary(bundles []*Bundle) ([]ControlSummary, []Unmapped) {
	byControl := map[string]*ControlSummary{}
	unmapped := []Unmapped{}
	for _, b := range bundles {
		switch {
		case b.Tier.Definition == nil:
			unmapped = append(unmapped, Unmapped{b.Escalation, "tier definition not recorded"})
			continue
		case len(b.Controls) == 0:
			unmapped = append(unmapped, Unmapped{b.Escalation, fmt.Sprintf("tier %s maps to no control", b.Tier.ID)})
			continue
		}
		for _, c := range b.Controls {
			s := byControl[c]
			if s == nil {
				s = &ControlSummary{Control: c, Escalations: []ControlEvidence{}, Gaps: []ControlGap{}}
				byControl[c] = s
			}
			if slices.ContainsFunc(s.Escalations, func(x ControlEvidence) bool { return x.Escalation == b.Escalation }) {
				continue // a control listed twice in one tier
			}
			s.Escalations = append(s.Escalations, ControlEvidence{Escalation: b.Escalation, Tier: b.Tier.ID, Decision: b.Decision.Kind, DecidedAt: b.Decision.At, Gaps: len(b.Gaps)})
			for _, g := range b.Gaps {
				s.Gaps = append(s.Gaps, ControlGap{Escalation: b.Escalation, Kind: g.Kind, Detail: g.Detail})
			}
		}
	}
	out := []ControlSummary{}
	for _, s := range byControl {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b ControlSummary) int { return strings.Compare(a.Control, b.Control) })
	return out, unmapped
}

// summaryWidth bounds free text in a timeline summary.
const summaryWidth = 100

// EventSummary says in one short line what ev recorded, for a timeline:
// free text is cut to about 100 characters on one line (the bundle's
// sections and the event itself keep it whole).
func EventSummary(ev Event) string {
	d := ev.Data
	with := func(s, text string) string {
		if t := clip(text); t != "" {
			return s + ": " + t
		}
		return s
	}
	switch ev.Kind {
	case EventOpened:
		s := fmt.Sprintf("opened as %s", tierWithName(d.Tier, d.TierName))
		if d.Manual {
			s = fmt.Sprintf("escalated by hand as %s", tierWithName(d.Tier, d.TierName))
		}
		s += fmt.Sprintf(", score %d, %s", d.Score, d.To)
		if d.Urgent {
			s += ", urgent"
		}
		return with(s, d.Text)
	case EventMRUpdated:
		var parts []string
		if ev.SHA != "" && d.StaleFrom != "" {
			parts = append(parts, "head "+ShortSHA(ev.SHA))
		}
		if d.Title != "" {
			parts = append(parts, "title")
		}
		if d.Author != "" {
			parts = append(parts, "author "+d.Author)
		}
		if d.TargetBranch != "" {
			parts = append(parts, "target "+d.TargetBranch)
		}
		if d.Labels != nil {
			parts = append(parts, "labels")
		}
		if d.CommitAuthors != nil {
			parts = append(parts, "commit authors")
		}
		if d.MRState != "" {
			parts = append(parts, "state "+d.MRState)
		}
		if d.Urgent {
			parts = append(parts, "urgent")
		}
		s := "merge request updated"
		if len(parts) > 0 {
			s += ": " + strings.Join(parts, ", ")
		}
		if d.StaleFrom != "" {
			s += "; earlier decisions stale"
		}
		return s
	case EventReclassified:
		return fmt.Sprintf("reclassified: score %d, signals %s", d.Score, signalIDs(d.Signals))
	case EventTierRaised:
		return fmt.Sprintf("tier raised from %s to %s, score %d", cmp.Or(d.FromTier, "none"), tierWithName(d.Tier, d.TierName), d.Score)
	case EventRetiered:
		return with(fmt.Sprintf("re-tiered from %s to %s", cmp.Or(d.FromTier, "none"), tierWithName(d.Tier, d.TierName)), d.Text)
	case EventIntake:
		keys := make([]string, 0, len(d.Intake))
		for k := range d.Intake {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		return "intake answered: " + strings.Join(keys, ", ")
	case EventFiled:
		return with("filed", d.Text)
	case EventArtifactAdded:
		if ev.Compacted != nil && d.Ref == "" {
			return "artifact " + d.Artifact + " (text removed by retention)"
		}
		return with("artifact "+d.Artifact, d.Ref)
	case EventCompacted:
		return with(fmt.Sprintf("compacted %d earlier events: %s", len(d.Records), RetentionRemoved), d.Text)
	case EventApproved:
		s := "approved"
		if d.Arbiter {
			s += " as arbiter"
		}
		if d.Group != "" {
			s += " for " + d.Group
		}
		if d.Role != "" {
			s += " (" + d.Role + ")"
		}
		switch n := len(d.Checks); n {
		case 0:
		case 1:
			s += ", 1 checklist answer"
		default:
			s += fmt.Sprintf(", %d checklist answers", n)
		}
		return with(s, d.Text)
	case EventRejected:
		s := "rejected"
		if d.Arbiter {
			s += " as arbiter"
		}
		return with(s, d.Text)
	case EventDissent:
		return with("dissent", d.Text)
	case EventAction:
		s := "action item for " + cmp.Or(d.Owner, ev.Actor)
		if !d.Due.IsZero() {
			s += ", due " + d.Due.UTC().Format(time.DateOnly)
		}
		return with(s, d.Text)
	case EventActionDone:
		return fmt.Sprintf("action item %d closed", d.N)
	case EventRisk:
		s := fmt.Sprintf("residual risk %d", d.Risk)
		if d.Likelihood != 0 {
			s += fmt.Sprintf(" (likelihood %d x impact %d)", d.Likelihood, d.Impact)
		}
		if d.Controls != "" {
			s += ", controls: " + d.Controls
		}
		return with(s, d.Text)
	case EventRiskValidated:
		return with(fmt.Sprintf("residual risk %d validated", d.Risk), d.Text)
	case EventDeferred:
		return with("deferred until "+stamp(d.Until), d.Text)
	case EventWithdrawn:
		return with("withdrawn", d.Text)
	case EventReopened:
		return "merge request reopened"
	case EventMerged:
		if d.Bypassed {
			return "merged without an approval (bypass)"
		}
		return "merged"
	case EventStateChanged:
		return with(fmt.Sprintf("%s → %s", cmp.Or(string(d.From), "none"), d.To), d.Text)
	case EventStatusForged:
		return "the gate's status on the head was set by someone else"
	case EventNudged:
		s := "reminded " + strings.Join(d.People, ", ")
		if d.Threshold > 0 {
			s += fmt.Sprintf(" (%d%% of the decision window)", d.Threshold)
		}
		return with(s, d.Text)
	case EventHandedOff:
		return with("asked backups "+strings.Join(d.Groups, ", "), d.Text)
	case EventPaged:
		return "on-call paged: the decision deadline passed"
	case EventPageResolved:
		return "page resolved"
	case EventInformed:
		return "informed groups sent a status update"
	case EventCapOverridden:
		return with(fmt.Sprintf("cap of %s raised by %d", d.Person, d.Count), d.Text)
	}
	return string(ev.Kind)
}

func tierWithName(id, name string) string {
	if name == "" {
		return id
	}
	return id + " (" + name + ")"
}

func signalIDs(fs []policies.Fired) string {
	if len(fs) == 0 {
		return "none"
	}
	ids := make([]string, len(fs))
	for i, f := range fs {
		ids[i] = f.ID
	}
	return strings.Join(ids, ", ")
}

// clip puts text on one line and cuts it to summaryWidth characters.
func clip(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= summaryWidth {
		return s
	}
	r := []rune(s)
	return strings.TrimSpace(string(r[:summaryWidth-1])) + "…"
}

// stamp writes a time for people: UTC, to the minute.
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// nonNil returns s, or an empty slice for nil, so lists are [] in JSON.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// resumedAfter reports whether events bring a withdrawn escalation back:
// a state change out of withdrawn.
func resumedAfter(events []Event) bool {
	for _, ev := range events {
		if ev.Kind == EventStateChanged && ev.Data.From == StateWithdrawn {
			return true
		}
	}
	return false
}
