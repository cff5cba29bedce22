// Package bot is threatgate's domain: escalations and their lifecycle, the
// events that record every change, the inputs that arrive from chat and
// the forge, the effects to deliver once a decision is committed, the
// command grammar every chat surface shares, and the Engine that ties them
// together through small ports (Store, Chat, Forge, Pager, Clock).
//
// # Basics
//
// Data flows one way. An adapter verifies who sent something and turns it
// into an Input. Engine.Handle loads the escalation, calls decide — a pure
// function of (what is known, policy, input, now) returning events and
// effects, or a *Problem for the user — and hands the events, the
// projection they fold into (apply) and the effects to Store.Commit in one
// call. Only then is the sender answered.
//
// Rules the domain enforces: an approval counts only from a member (or
// backup) of a group in the tier's approvals matrix who did not write the
// MR or its commits, for the current head; new commits make approvals
// stale when the tier resets on push; a tier rises on its own and falls
// only by an explicit re-tier with a rationale; manual escalations count
// against a quarterly cap; every decision keeps its rationale, and dissent
// is recorded, never dropped.
//
// # Caveats
//
// bot imports policies and the standard library only: no SDK, no adapter,
// no store. decide reads no clock and does no I/O; keep it that way, the
// table tests depend on it. Texts written before an escalation has an id
// carry IDPlaceholder; Effect.Body fills it in.
package bot
