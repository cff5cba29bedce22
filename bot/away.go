package bot

import (
	"time"

	"github.com/threatgate/threatgate/policies"
)

// maxAway bounds how far ahead /threatgate away may reach: further than
// that is a typo, or belongs in the policy's away_until.
const maxAway = 366 * 24 * time.Hour

// Personal reports whether events of kind k belong to no escalation: about
// a person (cap overrides, absences) or an incident (which names its MR's
// escalation in its data). They carry no escalation id, fold into no
// projection, and are committed without one.
func (k EventKind) Personal() bool {
	switch k {
	case EventCapOverridden, EventAway, EventIncident, EventIncidentFixed:
		return true
	}
	return false
}

// away records that the sender is away until c.Until (the day they are
// back), or, with a zero c.Until, that they are back.
func (d *decision) away(c *Command) error {
	f, me := verbField(VerbAway), d.in.Actor.Person
	if c.Until.IsZero() {
		d.emit(EventAway, EventData{Person: me})
		if p := d.person(); p != nil && p.AwayUntil.After(d.now) {
			d.reply("You are no longer marked away here, but the policy lists you away until %s (people away_until): your groups' backups are still asked until then; ask the security team to change it.", p.AwayUntil.Format(time.DateOnly))
			return nil
		}
		d.reply("Welcome back: you are no longer marked away.")
		return nil
	}
	if !c.Until.After(d.now) {
		return problemf(f, "%s is not in the future; give the day you are back, such as %s", c.Until.Format(time.DateOnly), day(d.now).AddDate(0, 0, 7).Format(time.DateOnly))
	}
	if c.Until.Sub(d.now) > maxAway {
		return problemf(f, "%s is more than a year away; give a nearer day (a long absence belongs in the policy's away_until)", c.Until.Format(time.DateOnly))
	}
	d.emit(EventAway, EventData{Person: me, Until: c.Until})
	d.reply("You are away until %s: your groups' backups are asked meanwhile. Back sooner? /threatgate away off", c.Until.Format(time.DateOnly))
	return nil
}

// AwayAt reports whether person p is away at now: the policy's away_until
// says so, or what they recorded with /threatgate away (away: person id ->
// the day they are back, as Store.Away returns it). Either is enough.
func AwayAt(p *policies.Person, away map[string]time.Time, now time.Time) bool {
	if p == nil {
		return false
	}
	if p.AwayUntil.After(now) {
		return true
	}
	until, ok := away[p.ID]
	return ok && until.After(now)
}
