package bot

import (
	"slices"
	"strconv"
	"time"

	"github.com/threatgate/threatgate/policies"
)

// State is where an escalation is in its lifecycle (DESIGN.md section 3).
type State string

const (
	StateIntake            State = "intake" // a manual escalation waiting for its intake fields; not filed yet
	StateAwaitingArtifacts State = "awaiting_artifacts"
	StateInReview          State = "in_review"
	StateApproved          State = "approved"
	StateRejected          State = "rejected"
	StateDisputed          State = "disputed"
	StateDeferred          State = "deferred"
	StateWithdrawn         State = "withdrawn"
	StateMerged            State = "merged"
)

// AllStates are the states of the lifecycle.
var AllStates = []State{StateIntake, StateAwaitingArtifacts, StateInReview, StateApproved, StateRejected,
	StateDisputed, StateDeferred, StateWithdrawn, StateMerged}

// Active reports whether the escalation still waits on people: artifacts,
// approvals, an arbiter or the end of a deferral.
func (s State) Active() bool {
	switch s {
	case StateIntake, StateAwaitingArtifacts, StateInReview, StateDisputed, StateDeferred:
		return true
	}
	return false
}

// Ended reports whether the MR is gone: merged or withdrawn.
func (s State) Ended() bool { return s == StateMerged || s == StateWithdrawn }

// Watched reports whether e's MR must still be compared with the forge
// (reconcile): everything but a merge. A closed MR may be reopened, and a
// withdrawal by a person holds only until the head moves or the policy
// tiers it, so neither is final.
func (e *Escalation) Watched() bool {
	return e != nil && e.State != StateMerged && e.Project != "" && e.MRIID != 0
}

// Escalation is one MR under review: the projection of its events.
// Version counts the events applied; the store uses it to refuse a commit
// made from a stale read.
type Escalation struct {
	ID      string `json:"id"`
	Version uint64 `json:"version"`

	Project       string   `json:"project"`
	MRIID         int64    `json:"mr_iid"`
	MRURL         string   `json:"mr_url,omitempty"`
	Title         string   `json:"title,omitempty"`
	Author        string   `json:"author,omitempty"`
	CommitAuthors []string `json:"commit_authors,omitempty"`
	TargetBranch  string   `json:"target_branch,omitempty"`
	Labels        []string `json:"labels,omitempty"`
	HeadSHA       string   `json:"head_sha,omitempty"`
	// HeadSince is when threatgate learned of HeadSHA (zero for
	// escalations recorded before it was kept): a chat command written
	// before it was about an older head.
	HeadSince   time.Time `json:"head_since,omitzero"`
	MRState     string    `json:"mr_state,omitempty"`
	MRUpdatedAt time.Time `json:"mr_updated_at,omitzero"`

	Tier     string           `json:"tier"`
	TierName string           `json:"tier_name,omitempty"`
	Score    int              `json:"score"`
	Signals  []policies.Fired `json:"signals,omitempty"`
	// TierDef is the definition of Tier as the policy had it when the
	// escalation was opened into it, raised to it or re-tiered to it; nil
	// for escalations recorded before definitions were kept. Evidence
	// (bot/export.go) reads it, never today's policy.
	TierDef *TierSnapshot `json:"tier_def,omitempty"`

	State  State `json:"state"`
	Resume State `json:"resume,omitempty"` // where a deferred or withdrawn escalation goes back to

	Manual bool              `json:"manual,omitempty"`
	Urgent bool              `json:"urgent,omitempty"`
	Filer  string            `json:"filer,omitempty"`
	Reason string            `json:"reason,omitempty"`
	Intake map[string]string `json:"intake,omitempty"`

	Artifacts  []Artifact `json:"artifacts,omitempty"`
	Approvals  []Decision `json:"approvals,omitempty"`
	Rejections []Decision `json:"rejections,omitempty"`
	Dissents   []Note     `json:"dissents,omitempty"`
	Actions    []Note     `json:"actions,omitempty"` // action items: Owner, Due, Done
	Risk       *Note      `json:"risk,omitempty"`    // the latest residual-risk assessment; Score in Risk.Score

	// The clock: reminders sent (NudgeKey), handoffs, whether on-call is
	// paged, the last status update to the informed groups, when the
	// current deferral began, and the next time the sweep must look at it
	// (zero: never; the store indexes it).
	Nudged     []string  `json:"nudged,omitempty"`
	HandedOff  []Handoff `json:"handed_off,omitempty"`
	Paged      bool      `json:"paged,omitempty"`
	InformedAt time.Time `json:"informed_at,omitzero"`
	DeferredAt time.Time `json:"deferred_at,omitzero"`
	NextTick   time.Time `json:"next_tick,omitzero"`

	// Waiting lists the people whose approval would count and is still
	// missing, for nudges, the approver index and bottleneck reports.
	Waiting []string `json:"waiting,omitempty"`
	// WaitedOn is WaitingOn when the projection was last saved: who
	// every surface says it waits on (the person filter finds them).
	WaitedOn []string `json:"waited_on,omitempty"`
	// HeldByGroups are the groups the escalation holds up now under the
	// policy in force (HeldGroups: HoldingGroups of WaitedOn, none while
	// deferred or closed), set by the Engine with WaitedOn and again when
	// the policy changes, so that the store counts the dashboard's
	// bottlenecks at commit time (Contributions).
	HeldByGroups []string `json:"held_by_groups,omitempty"`

	// WithdrawnSHA is the head a person withdrew the escalation on, and
	// WithdrawnBy who; a withdrawal holds for that head only (and only while
	// the policy does not tier it). Both are cleared when it resumes.
	WithdrawnSHA string `json:"withdrawn_sha,omitempty"`
	WithdrawnBy  string `json:"withdrawn_by,omitempty"`
	// RetierSHA is the head an authorised person re-tiered the escalation
	// on, and RetierFrom the tier it had then: on that head the tier does
	// not rise back to RetierFrom on its own; a new head is classified
	// afresh.
	RetierSHA  string `json:"retier_sha,omitempty"`
	RetierFrom string `json:"retier_from,omitempty"`

	DeferredUntil time.Time `json:"deferred_until,omitzero"`
	Bypassed      bool      `json:"bypassed,omitempty"`
	// MergedBy is who merged the MR as the forge reported it ("" when it
	// did not say) and MergedAt when (the merge event's time when the
	// forge gave none); MergeMissing is what the gate still needed on the
	// merged head, recorded with a bypass.
	MergedBy     string    `json:"merged_by,omitempty"`
	MergedAt     time.Time `json:"merged_at,omitzero"`
	MergeMissing []string  `json:"merge_missing,omitempty"`
	// Gate is the commit status threatgate last set on the MR (pending,
	// success, failed), GateText its description, GateSHA the head it was
	// set on and GateAt when it was decided (delivered through the outbox
	// right after): from the event of the decision that set it
	// (EventData.Gate), never derived again from today's policy. Empty for
	// decisions recorded before it was kept.
	Gate     string    `json:"gate,omitempty"`
	GateText string    `json:"gate_text,omitempty"`
	GateSHA  string    `json:"gate_sha,omitempty"`
	GateAt   time.Time `json:"gate_at,omitzero"`
	Forged   int       `json:"forged,omitempty"` // gate statuses found set by someone else

	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`
	FirstResponseDue time.Time `json:"first_response_due,omitzero"`
	DecisionDue      time.Time `json:"decision_due,omitzero"`
	DecidedAt        time.Time `json:"decided_at,omitzero"`

	// Retention (retention.go): when the bulky payloads were last
	// compacted, and the Version that compaction left.
	CompactedAt      time.Time `json:"compacted_at,omitzero"`
	CompactedVersion uint64    `json:"compacted_version,omitempty"`
}

// Artifact is a piece of evidence a tier requires, as handed in.
type Artifact struct {
	Kind string    `json:"kind"`
	Ref  string    `json:"ref"`
	By   string    `json:"by"`
	SHA  string    `json:"sha,omitempty"`
	At   time.Time `json:"at"`
	// Removed is when retention removed its text (Ref is then "").
	Removed time.Time `json:"removed,omitzero"`
}

// Decision is an approval or a rejection. It counts only while it is not
// stale (new commits make it stale when the tier resets approvals on push).
type Decision struct {
	By        string            `json:"by"`
	Group     string            `json:"group,omitempty"` // the approvals-matrix group it was given for
	Role      string            `json:"role,omitempty"`
	SHA       string            `json:"sha"`
	Rationale string            `json:"rationale,omitempty"`
	Checks    map[string]string `json:"checks,omitempty"`
	Arbiter   bool              `json:"arbiter,omitempty"` // given by an arbiter to settle a dispute
	Stale     bool              `json:"stale,omitempty"`
	At        time.Time         `json:"at"`
}

// Note is a recorded remark: a dissent, an action item, a risk assessment.
type Note struct {
	By    string    `json:"by"`
	Text  string    `json:"text"`
	Score int       `json:"score,omitempty"`
	SHA   string    `json:"sha,omitempty"`
	At    time.Time `json:"at"`

	// Action items: who owns it, when it is due, and whether it is done.
	Owner  string    `json:"owner,omitempty"`
	Due    time.Time `json:"due,omitzero"`
	Done   bool      `json:"done,omitempty"`
	DoneAt time.Time `json:"done_at,omitzero"`
	DoneBy string    `json:"done_by,omitempty"`

	// Risk assessments: the likelihood and impact Score is the product of
	// (0 when it was given as one number), the compensating controls, and
	// who validated this score, when and with what note (empty until then;
	// a new score starts unvalidated).
	Likelihood    int       `json:"likelihood,omitempty"`
	Impact        int       `json:"impact,omitempty"`
	Controls      string    `json:"controls,omitempty"`
	ValidatedBy   string    `json:"validated_by,omitempty"`
	ValidatedAt   time.Time `json:"validated_at,omitzero"`
	ValidatedNote string    `json:"validated_note,omitempty"`
}

// Handoff is one time an escalation's backups were asked.
type Handoff struct {
	Groups []string  `json:"groups"`
	People []string  `json:"people,omitempty"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// TierSnapshot is a tier's definition as the policy had it at one moment,
// recorded with the escalation (EventData.TierDef, Escalation.TierDef) so
// that its evidence says what was required then, whatever the policy says
// later. It is never modified once made; a new definition is a new
// snapshot. Its JSON is part of the audit log and of the export schema
// (docs/EXPORT.md): fields are only ever added.
type TierSnapshot struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	// Artifacts the tier requires, in its order, with the catalogue's
	// name for each kind.
	Artifacts []ArtifactSpec `json:"artifacts,omitempty"`
	// Approvals is the approvals matrix: Count people of Group, in Role.
	Approvals []policies.Approval `json:"approvals,omitempty"`
	Review    []string            `json:"review,omitempty"`    // groups asked to review
	Inform    []string            `json:"inform,omitempty"`    // groups told
	Checklist []string            `json:"checklist,omitempty"` // items every approver answers
	Controls  []string            `json:"controls,omitempty"`  // compliance controls the tier evidences
	// MaxResidualRisk is the highest residual risk (1-25) the tier
	// accepts without a risk-acceptance approval; 0: no ceiling.
	MaxResidualRisk int `json:"max_residual_risk,omitempty"`
	// The deadlines, as the policy writes durations ("4h", "2d"; see
	// policies.FormatDuration); "" when the tier sets none.
	FirstResponse  string `json:"first_response,omitempty"`
	Decision       string `json:"decision,omitempty"`
	UrgentDecision string `json:"urgent_decision,omitempty"`
}

// ArtifactSpec is an artifact kind a tier requires: its id and its name
// in the policy's catalogue.
type ArtifactSpec struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// SnapshotTier records tier t of pol as a TierSnapshot; nil for a nil t.
// Empty lists stay nil, so a snapshot reads back from JSON as it was made.
func SnapshotTier(pol *policies.Policy, t *policies.Tier) *TierSnapshot {
	if t == nil {
		return nil
	}
	list := func(s []string) []string {
		if len(s) == 0 {
			return nil
		}
		return slices.Clone(s)
	}
	dur := func(d time.Duration) string {
		if d <= 0 {
			return ""
		}
		return policies.FormatDuration(d)
	}
	s := &TierSnapshot{
		ID: t.ID, Name: t.Name,
		Review: list(t.Review), Inform: list(t.Inform), Checklist: list(t.Checklist), Controls: list(t.Controls),
		MaxResidualRisk: t.MaxResidualRisk,
		FirstResponse:   dur(t.FirstResponse), Decision: dur(t.Decision), UrgentDecision: dur(t.UrgentDecision),
	}
	if len(t.Approvals) > 0 {
		s.Approvals = slices.Clone(t.Approvals)
	}
	for _, id := range t.Artifacts {
		a := ArtifactSpec{ID: id}
		if pol != nil {
			if k, ok := pol.Artifact(id); ok {
				a.Name = k.Name
			}
		}
		s.Artifacts = append(s.Artifacts, a)
	}
	return s
}

// NudgeKey names one reminder: what for ("approval", "artifact",
// "action:<n>"), at which threshold, to whom. Escalation.Nudged holds the
// keys of the reminders sent, so none is sent twice.
func NudgeKey(what string, threshold int, person string) string {
	return what + ":" + strconv.Itoa(threshold) + ":" + person
}

// MissingArtifacts lists the artifacts tier t requires that e lacks, in
// the tier's order.
func (e *Escalation) MissingArtifacts(t *policies.Tier) []string {
	if t == nil {
		return nil
	}
	var out []string
	for _, k := range t.Artifacts {
		// An artifact whose text retention removed is missing again (a
		// closed MR reopened after its retention period).
		if !slices.ContainsFunc(e.Artifacts, func(a Artifact) bool { return a.Kind == k && a.Removed.IsZero() }) {
			out = append(out, k)
		}
	}
	return out
}

// Authors returns the MR author and its commit authors: the people who may
// not approve their own change.
func (e *Escalation) Authors() []string {
	out := []string{}
	if e.Author != "" {
		out = append(out, e.Author)
	}
	for _, a := range e.CommitAuthors {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// Clone returns a deep copy of e, so that apply never changes a loaded
// projection in place.
func (e *Escalation) Clone() *Escalation {
	if e == nil {
		return nil
	}
	c := *e
	c.CommitAuthors = slices.Clone(e.CommitAuthors)
	c.Labels = slices.Clone(e.Labels)
	c.Signals = slices.Clone(e.Signals)
	c.Artifacts = slices.Clone(e.Artifacts)
	c.Approvals = slices.Clone(e.Approvals)
	c.Rejections = slices.Clone(e.Rejections)
	c.Dissents = slices.Clone(e.Dissents)
	c.Actions = slices.Clone(e.Actions)
	c.Waiting = slices.Clone(e.Waiting)
	c.WaitedOn = slices.Clone(e.WaitedOn)
	c.HeldByGroups = slices.Clone(e.HeldByGroups)
	c.Nudged = slices.Clone(e.Nudged)
	c.HandedOff = slices.Clone(e.HandedOff)
	// c.TierDef is shared: a snapshot is never modified once made.
	if e.Risk != nil {
		r := *e.Risk
		c.Risk = &r
	}
	if e.Intake != nil {
		c.Intake = make(map[string]string, len(e.Intake))
		for k, v := range e.Intake {
			c.Intake[k] = v
		}
	}
	return &c
}
