package bot

import (
	"time"

	"github.com/threatgate/threatgate/policies"
)

// NoticeKind names what a thread post or MR note tells.
type NoticeKind string

// The notices decide posts. Each surface renders them in its idiom (text.go
// for GitLab notes and the console; Block Kit and embeds later).
const (
	NoticeOpened        NoticeKind = "opened"         // an escalation starts: its summary
	NoticeFiled         NoticeKind = "filed"          // a manual escalation's intake is in: its summary
	NoticeSelfFiled     NoticeKind = "self_filed"     // a draft's MR classifies on its own: its summary
	NoticeIntakeAsked   NoticeKind = "intake_asked"   // a draft asks its filer for the intake fields
	NoticeTierRaised    NoticeKind = "tier_raised"    // the MR now classifies higher
	NoticeRetiered      NoticeKind = "retiered"       // an authorised person moved the tier
	NoticeReady         NoticeKind = "ready"          // every artifact is in: review starts
	NoticeBackInReview  NoticeKind = "back_in_review" // new commits made decisions stale
	NoticeApproved      NoticeKind = "approved"
	NoticeRejected      NoticeKind = "rejected"
	NoticeDisputed      NoticeKind = "disputed"
	NoticeDissent       NoticeKind = "dissent"
	NoticeWithdrawn     NoticeKind = "withdrawn"      // by a person
	NoticeClosed        NoticeKind = "closed"         // the MR was closed
	NoticeReopened      NoticeKind = "reopened"       // the MR was reopened
	NoticeResumed       NoticeKind = "resumed"        // a withdrawal no longer holds
	NoticeDeferralEnded NoticeKind = "deferral_ended" // the date came, or the tier cannot be deferred
	NoticeBypass        NoticeKind = "bypass"         // merged without the head's approval
	NoticeForged        NoticeKind = "forged"         // the gate's status was set by someone else
	NoticeAnswer        NoticeKind = "answer"         // the answer to a command sent where there is no reply (an MR comment)
	// NoticeArtifactsAsked asks whoever owes them (AskedOf) for the
	// artifacts still missing (Fields: kind and name), in the thread.
	NoticeArtifactsAsked NoticeKind = "artifacts_asked"
	// NoticeNudge reminds AskedOf of what the escalation waits on them
	// for (Why: "approval", "artifact", "action:<n>" with Text the item),
	// at Threshold percent of the decision window (0 for an action item),
	// due at Due.
	NoticeNudge NoticeKind = "nudge"
	// NoticeHandoff asks the backup Groups (their members AskedOf) because
	// nobody responded (Why "no-response") or By is away.
	NoticeHandoff NoticeKind = "handoff"
	// NoticeLapsed says the decision deadline (Due) passed and on-call was
	// paged; it goes to the security channel too.
	NoticeLapsed NoticeKind = "lapsed"
)

// Notice is what a post or note says, as data: no English, nothing
// rendered. Text holds text that came from outside (a reason, a rationale,
// a note), which every renderer neutralises for its surface; Why holds
// threatgate's own explanation.
type Notice struct {
	Kind NoticeKind `json:"kind"`

	Project string `json:"project,omitempty"`
	MRIID   int64  `json:"mr_iid,omitempty"`

	Tier     string `json:"tier,omitempty"`
	TierName string `json:"tier_name,omitempty"`
	FromTier string `json:"from_tier,omitempty"`
	Score    int    `json:"score,omitempty"`

	By    string `json:"by,omitempty"`    // who did it (a person id)
	Text  string `json:"text,omitempty"`  // from outside: reason, rationale, note
	Why   string `json:"why,omitempty"`   // threatgate's explanation
	SHA   string `json:"sha,omitempty"`   // the head concerned
	State State  `json:"state,omitempty"` // where it stands now (or stood, for a bypass)

	// Forged status: what was found, who set it, what it was reset to.
	Found   string `json:"found,omitempty"`
	FoundBy string `json:"found_by,omitempty"`
	Reset   string `json:"reset,omitempty"`

	Arbiters  []string   `json:"arbiters,omitempty"`  // disputed: who decides
	Retiers   []string   `json:"retiers,omitempty"`   // resumed without a tier: who re-tiers
	Decisions []Decision `json:"decisions,omitempty"` // approved, rejected: those that count
	Fields    []Field    `json:"fields,omitempty"`    // intake asked: the fields missing, with their prompts; artifacts asked: the kinds missing, with their names
	AskedOf   []string   `json:"asked_of,omitempty"`  // artifacts asked: who owes them (person ids, or usernames the policy does not know); nudge, handoff: who is asked
	Groups    []string   `json:"groups,omitempty"`    // handoff: the backup groups asked
	Threshold int        `json:"threshold,omitempty"` // nudge: percent of the decision window
	Due       time.Time  `json:"due,omitzero"`        // nudge, lapsed: the deadline

	Summary      *Summary      `json:"summary,omitempty"`      // opened, filed, self_filed
	Requirements *Requirements `json:"requirements,omitempty"` // what the tier asks for
}

// Field is a named piece of text: an intake field and its prompt or
// answer, an artifact kind and its name.
type Field struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

// Summary is an escalation's opening: how it came, why, and when it is due.
type Summary struct {
	Manual           bool             `json:"manual,omitempty"`
	Urgent           bool             `json:"urgent,omitempty"`
	Filer            string           `json:"filer,omitempty"`
	Reason           string           `json:"reason,omitempty"` // from outside
	Intake           []Field          `json:"intake,omitempty"` // answers, from outside, in policy order
	Signals          []policies.Fired `json:"signals,omitempty"`
	FirstResponseDue time.Time        `json:"first_response_due,omitzero"`
	DecisionDue      time.Time        `json:"decision_due,omitzero"`
}

// Requirements is what a tier asks for.
type Requirements struct {
	Artifacts []Field             `json:"artifacts,omitempty"` // kind and name
	Approvals []policies.Approval `json:"approvals,omitempty"`
	Review    []string            `json:"review,omitempty"`
	Inform    []string            `json:"inform,omitempty"`
	Checklist []string            `json:"checklist,omitempty"`
}

// requirementsOf builds what tier t asks for.
func (d *decision) requirementsOf(t *policies.Tier) *Requirements {
	r := &Requirements{Approvals: t.Approvals, Review: t.Review, Inform: t.Inform, Checklist: t.Checklist}
	for _, k := range t.Artifacts {
		a, _ := d.pol.Artifact(k)
		r.Artifacts = append(r.Artifacts, Field{ID: k, Text: a.Name})
	}
	return r
}

// summaryOf builds the opening summary of the escalation as it stands.
func (d *decision) summaryOf() *Summary {
	e := d.esc
	s := &Summary{Manual: e.Manual, Urgent: e.Urgent, Signals: e.Signals, FirstResponseDue: e.FirstResponseDue, DecisionDue: e.DecisionDue}
	if e.Manual {
		s.Filer, s.Reason = e.Filer, e.Reason
		for _, f := range d.pol.Intake {
			if v := e.Intake[f.ID]; v != "" {
				s.Intake = append(s.Intake, Field{ID: f.ID, Text: v})
			}
		}
	}
	return s
}

// opening is the notice of kind k that summarises the escalation in tier t.
func (d *decision) opening(k NoticeKind, t *policies.Tier) *Notice {
	return &Notice{Kind: k, Tier: t.ID, TierName: t.Name, Score: d.esc.Score, Summary: d.summaryOf(), Requirements: d.requirementsOf(t)}
}

// post queues n as a thread post (and, with note, as an MR note too).
func (d *decision) post(n *Notice, note bool, mention []string) {
	if note {
		d.effect(Effect{Kind: EffectMRNote, Notice: n})
	}
	d.effect(Effect{Kind: EffectThreadPost, Notice: n, Mention: mention})
}

// askArtifacts asks, in the thread, for the artifacts tier t requires that
// the escalation lacks, mentioning whoever owes them (the MR's author and
// the filer). Nothing when none is missing.
func (d *decision) askArtifacts(t *policies.Tier) {
	if t == nil || d.esc == nil {
		return
	}
	missing := d.esc.MissingArtifacts(t)
	if len(missing) == 0 {
		return
	}
	n := &Notice{Kind: NoticeArtifactsAsked, Tier: t.ID, AskedOf: AskedOf(d.esc, d.pol)}
	for _, k := range missing {
		a, _ := d.pol.Artifact(k)
		n.Fields = append(n.Fields, Field{ID: k, Text: a.Name})
	}
	d.effect(Effect{Kind: EffectThreadPost, Notice: n, Mention: n.AskedOf})
}
