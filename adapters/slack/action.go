package slack

import (
	"strings"

	"github.com/threatgate/threatgate/bot"
)

// actionPrefix starts the action_id of every button threatgate renders;
// the verb follows it ("threatgate:approve").
const actionPrefix = "threatgate:"

// Action is what a button on a card asks for: a verb on an escalation, as
// the escalation's head was when the card showed it.
type Action struct {
	Verb       bot.Verb
	Escalation string // "ESC-7"
	Head       string // the head SHA the card showed; "" when it showed none
}

// ID is the button's action_id: "threatgate:" and the verb.
func (a Action) ID() string { return actionPrefix + string(a.Verb) }

// Value is the button's value: the escalation id, then "@" and the head
// the card showed, so that a click on a card older than the MR's head is
// refused like a command written before a push (bot.Input.Head). A head
// that is not a commit id is left out.
func (a Action) Value() string {
	if !validSHA(a.Head) {
		return a.Escalation
	}
	return a.Escalation + "@" + a.Head
}

// ParseAction reads the action_id and value of a button threatgate
// rendered; false for any other (another app's button, a value that is
// not an escalation id). It checks the shape only: the verb, the
// escalation and the person clicking are the engine's to judge.
func ParseAction(actionID, value string) (Action, bool) {
	verb, ok := strings.CutPrefix(actionID, actionPrefix)
	if !ok || verb == "" {
		return Action{}, false
	}
	esc, head, hasHead := strings.Cut(value, "@")
	if !validEscalation(esc) || hasHead && !validSHA(head) {
		return Action{}, false
	}
	return Action{Verb: bot.Verb(verb), Escalation: esc, Head: head}, true
}

// validEscalation reports whether s looks like an escalation id: "ESC-"
// and digits.
func validEscalation(s string) bool {
	n, ok := strings.CutPrefix(s, "ESC-")
	if !ok || n == "" || len(n) > 19 {
		return false
	}
	for _, c := range n {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// validSHA reports whether s is a commit id: 7 to 64 hex digits (SHA-1
// or SHA-256, full or abbreviated).
func validSHA(s string) bool {
	if len(s) < 7 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
