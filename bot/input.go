package bot

import (
	"time"

	"github.com/threatgate/threatgate/policies"
)

// Identity is who sent an input, verified by the adapter that received it.
type Identity struct {
	Person     string `json:"person,omitempty"`      // the policy's person id; "" when the sender is not in the policy
	Surface    string `json:"surface"`               // "slack", "discord", "gitlab", "web", "cli", "system"
	ExternalID string `json:"external_id,omitempty"` // the id on that surface (Slack user id, GitLab username...)
}

// System is the identity of threatgate itself (webhooks, reconcile, cron).
var System = Identity{Person: "system", Surface: "system"}

// String names the identity for logs and refusals.
func (id Identity) String() string {
	if id.Person != "" {
		return id.Person
	}
	if id.ExternalID != "" {
		return id.Surface + ":" + id.ExternalID
	}
	return id.Surface
}

// InputKind says what arrived.
type InputKind string

const (
	InputMR      InputKind = "mr"      // a merge request was seen (webhook or reconcile)
	InputCommand InputKind = "command" // a chat command or MR comment
	InputTick    InputKind = "tick"    // the clock moved (cron sweep)
)

// MRAction is what happened to the MR, as the forge reports it.
type MRAction string

const (
	MROpen   MRAction = "open"
	MRUpdate MRAction = "update"
	MRReopen MRAction = "reopen"
	MRClose  MRAction = "close"
	MRMerge  MRAction = "merge"
	MRSeen   MRAction = "seen" // reconcile: the current state, whatever changed
)

// MRInput is a merge request as the forge shows it now. MR carries the
// changes the policy classifies; CommitAuthors are the usernames of the
// authors of its commits, who may not approve it.
type MRInput struct {
	Action        MRAction
	MR            *policies.MergeRequest
	CommitAuthors []string // usernames, or e-mail addresses where the forge gives only those
	// Status is the gate's commit status on the head as the forge shows it
	// now, nil when unknown (not fetched) or absent.
	Status *ForgeStatus
	// AnswerCheck says the forge asked for the gate's state (an external
	// status check): the state is set again even when nothing changed,
	// and an MR that needs no review is passed.
	AnswerCheck bool
	// Fetched says the MR was just read from the forge's API: its head
	// and state are the forge's answer now, whatever its updated_at says
	// (the forge's servers may disagree about the time).
	Fetched bool
}

// ForgeStatus is a commit status with the gate's name found on the MR head.
type ForgeStatus struct {
	SHA    string
	State  string // pending, running, success, failed, canceled
	Author string // who set it
	Ours   bool   // set by threatgate's own account
}

// Input is one thing that arrived for the engine to decide on.
type Input struct {
	Kind    InputKind
	Actor   Identity
	MR      *MRInput // InputMR
	Command *Command // InputCommand
	// Escalation is the escalation the command refers to by context (the
	// chat thread it was typed in), used when the command names none.
	Escalation string
	// Key identifies a delivery (webhook UUID, interaction id); a second
	// input with the same key changes nothing.
	Key string
	// Head is the MR head the sender saw when they wrote the command (an
	// MR comment: the head of the MR's newest version before it), "" when
	// the surface cannot tell. A command that decides on the head
	// (HeadBound) is refused when the escalation's head is another.
	Head string
	// WrittenAt is when the sender wrote the command, as their surface
	// attests it (a Slack message's timestamp, a signed request's, the
	// click on a card's button); zero when the surface cannot tell. When
	// Head is "" a head-bound command written before the escalation's
	// head last changed (Escalation.HeadSince) is refused, as is one
	// older than MaxCommandAge.
	WrittenAt time.Time
	// Inbox is the inbox item (InboxItem.ID) this input was read from, 0
	// for none. The commit of its decision removes the item in the same
	// transaction, so a processed webhook costs no write of its own; an
	// input that commits nothing leaves the item to its reader.
	Inbox uint64
}
