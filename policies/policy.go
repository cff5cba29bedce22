package policies

import (
	"regexp"
	"strings"
	"time"
)

// Policy is a loaded, validated and compiled policy. It is read-only after
// Load and safe for concurrent use.
type Policy struct {
	Version   int
	Source    string // file name it was loaded from; DefaultName for the embedded default
	Digest    string // hex SHA-256 of the bytes it was loaded from
	Intake    []IntakeField
	Artifacts []ArtifactKind // the catalogue: built-in kinds plus the policy's own
	Signals   []*Signal
	Tiers     []*Tier // highest first; the first that matches wins
	Groups    map[string]*Group
	People    []*Person
	Caps      Caps
	Authority Authority
	Schedule  Schedule
	// UrgentLabels are MR labels that make an escalation urgent, as
	// --urgent does: the tier's urgent decision window, listed first.
	UrgentLabels []string
	Backlog      Backlog

	signalByID map[string]*Signal
	tierByID   map[string]*Tier
	artByID    map[string]ArtifactKind
	personBy   map[string]*Person // "id:alice", "gitlab:alice", "slack:U1", "discord:1"
	paths      *globSet           // every signal's path globs, compiled once
	redactRE   []*regexp.Regexp   // the text patterns of signals marked redact
}

// IntakeField is one piece of information a manual escalation must carry
// before it counts as filed.
type IntakeField struct {
	ID     string
	Prompt string
}

// ArtifactKind is a kind of evidence a tier can require.
type ArtifactKind struct {
	ID     string
	Name   string
	Prompt string
}

// Signal is an observable risk signal. It fires when every condition in
// When holds; a fired signal keeps the evidence that fired it.
type Signal struct {
	ID          string
	Category    string
	Weight      int
	Description string
	When        Condition
	// Redact masks what the signal's added_lines condition matched in its
	// evidence, everywhere: it found a secret, and threatgate must not
	// republish or store it.
	Redact bool
}

// Condition is the `when` of a signal. Lists within one condition are OR;
// different conditions are AND. An unset condition holds for every MR.
type Condition struct {
	Paths           []string
	Labels          []string
	TargetBranches  []string
	Projects        []string
	Title           []string // regular expressions
	Description     []string // regular expressions
	AddedLines      []string // regular expressions over lines the diff adds
	MinChangedLines int
	Authors         []string // GitLab usernames

	pathIDs []int // indexes into Policy.paths patterns
	title   []*regexp.Regexp
	desc    []*regexp.Regexp
	added   []*regexp.Regexp
}

// Tier is a risk tier: what an escalation in it needs before it is approved.
type Tier struct {
	ID                   string
	Name                 string
	When                 TierCondition
	Artifacts            []string
	Approvals            []Approval
	Review               []string // groups asked to review, not required to approve
	Inform               []string // groups told, nothing asked
	FirstResponse        time.Duration
	Decision             time.Duration
	UrgentDecision       time.Duration
	HandoffAfter         time.Duration
	PageOnLapse          bool
	ResetApprovalsOnPush bool
	Checklist            []string
	MaxResidualRisk      int // 1..25; 0 means no limit
	Deferrable           bool
	Controls             []string
	// UpdateEvery is how often the informed groups get a status update
	// while an escalation of the tier is open; 0: only on changes.
	UpdateEvery time.Duration

	rank int // 0 is the highest tier
}

// TierCondition selects a tier: the score must reach MinScore (when set)
// and one of AnySignals must have fired (when set).
type TierCondition struct {
	MinScore   int
	AnySignals []string
}

// Approval is one row of a tier's approvals matrix: Count distinct people
// from Group must approve, in the named Role.
type Approval struct {
	Group string `json:"group"`
	Count int    `json:"count"`
	Role  string `json:"role"`
}

// Group is a set of people who approve, review or are informed. Backups are
// groups whose members stand in when the primary members are away.
type Group struct {
	ID      string
	Members []string // person ids
	Backups []string // group ids
	// SlackChannel is where the group hears about the escalations it is
	// informed of (one message per escalation, updated in place); "" for
	// none.
	SlackChannel string
}

// SlackChannelID reports whether s looks like the id of a Slack channel
// (C... public, G... private; upper-case letters and digits), which is
// what the Web API needs to edit a message later.
func SlackChannelID(s string) bool {
	return slackID(s, "CG")
}

// SlackUserID reports whether s looks like a Slack user id (U..., or W...
// on Enterprise Grid).
func SlackUserID(s string) bool {
	return slackID(s, "UW")
}

func slackID(s, first string) bool {
	if len(s) < 3 || len(s) > 32 || !strings.ContainsRune(first, rune(s[0])) {
		return false
	}
	for _, c := range s[1:] {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Person maps one human across the surfaces threatgate talks to.
type Person struct {
	ID       string // defaults to the GitLab username
	Name     string
	GitLab   string
	GitLabID int64 // pinned numeric GitLab user id; 0 to resolve the username through the API
	Slack    string
	Discord  string
	Email    string   // the first of Emails, "" when there is none
	Emails   []string // every address the person commits with; matched without regard to case
	Timezone string
	Hours    string // working hours such as "09:00-17:00"; empty means 09:00-17:00
	Location *time.Location
	// AwayUntil: the person is away until this day (UTC midnight of the
	// date); their groups' backups are asked meanwhile. Zero: not away.
	AwayUntil time.Time
}

// Caps limits manual escalations per engineer and quarter.
type Caps struct {
	ManualPerQuarter int // 0 means no cap
	OverrideGroup    string
}

// Backlog holds the rules of deferral under load.
type Backlog struct {
	// PeakOpenThreshold: a deferral needs at least this many open
	// escalations (or a member of caps.override_group); 0: no condition.
	PeakOpenThreshold int
	// MaxDeferral bounds how far a deferral may reach; 0: no bound.
	MaxDeferral time.Duration
}

// Authority names who may take the decisions that bypass the normal flow.
type Authority struct {
	Retier  []string // groups that may re-tier an escalation (always with a rationale)
	Arbiter []string // groups that settle a disputed escalation
	// RiskValidators are the groups whose members validate a residual-risk
	// score someone else recorded; when set, a tier with max_residual_risk
	// is approved only once its current score is validated.
	RiskValidators []string
}

// Schedule holds the cron specs of the periodic jobs.
type Schedule struct {
	Sweep    string
	Digest   string
	Weekly   string
	Timezone string
	Location *time.Location
}

// Signal returns the signal with id, or nil.
func (p *Policy) Signal(id string) *Signal { return p.signalByID[id] }

// Tier returns the tier with id, or nil.
func (p *Policy) Tier(id string) *Tier { return p.tierByID[id] }

// Artifact returns the artifact kind with id and whether it exists.
func (p *Policy) Artifact(id string) (ArtifactKind, bool) {
	a, ok := p.artByID[id]
	return a, ok
}

// Rank returns the tier's position: 0 is the highest tier. Rank(a) < Rank(b)
// means a is a higher (stricter) tier than b.
func (t *Tier) Rank() int { return t.rank }

// Higher reports whether tier a is stricter than tier b. A nil tier is the
// lowest of all.
func Higher(a, b *Tier) bool {
	switch {
	case a == nil:
		return false
	case b == nil:
		return true
	}
	return a.rank < b.rank
}

// Person finds a person by their id on a surface: "id", "gitlab", "slack",
// "discord", or by "email" (give the address in lower case). It returns nil
// when nobody matches.
func (p *Policy) Person(surface, id string) *Person {
	if id == "" {
		return nil
	}
	if surface == "email" {
		id = strings.ToLower(strings.TrimSpace(id))
	}
	return p.personBy[surface+":"+id]
}

// InGroup reports whether person is a member of group.
func (p *Policy) InGroup(person, group string) bool {
	g := p.Groups[group]
	if g == nil {
		return false
	}
	for _, m := range g.Members {
		if m == person {
			return true
		}
	}
	return false
}

// MayStandIn reports whether person may act for group: as a member, or as a
// member of one of its backup groups.
func (p *Policy) MayStandIn(person, group string) bool {
	if p.InGroup(person, group) {
		return true
	}
	if g := p.Groups[group]; g != nil {
		for _, b := range g.Backups {
			if p.InGroup(person, b) {
				return true
			}
		}
	}
	return false
}

// InAny reports whether person is a member of any of groups.
func (p *Policy) InAny(person string, groups []string) bool {
	for _, g := range groups {
		if p.InGroup(person, g) {
			return true
		}
	}
	return false
}
