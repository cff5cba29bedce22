package bot

// verbSpec is everything threatgate knows about one verb: how it is
// written and explained (help, problems; later Slack modals and Discord
// command registration), what it needs, in which states it may run, and
// the function that decides it. Adding a verb is one entry in verbs.
type verbSpec struct {
	verb         Verb
	usage, about string
	text         string // what the command's free text holds, for problems

	anyone     bool // needs no person of the policy (help: someone not in the policy reads help only)
	escalation bool // acts on an escalation (named, or the thread's)
	afterEnd   bool // may still run once the escalation is merged or withdrawn
	inIntake   bool // may run while a manual escalation waits for its intake
	tier       bool // decides against the tier (matrix, checklist, deadlines, risk)
	head       bool // decides about the code at the head: must be the head its sender saw

	decide func(d *decision, c *Command) error // nil for help, which decide answers itself
}

// verbs lists every verb, in the order the full help shows them.
var verbs = []verbSpec{
	{verb: VerbEscalate, usage: "/escalate <group/proj!iid | MR URL> [--tier T] [--urgent] <reason>", about: "ask for a security review of a merge request", text: "reason",
		decide: (*decision).escalate},
	{verb: VerbApprove, usage: "/approve [ESC-id] [--check item=answer]... [rationale]", about: "approve, answering checklist items", text: "rationale",
		escalation: true, tier: true, head: true, decide: (*decision).approve},
	{verb: VerbStatus, usage: "/threatgate status [ESC-id]", about: "show where an escalation stands",
		decide: (*decision).status},
	{verb: VerbBacklog, usage: "/threatgate backlog", about: "list the 50 most urgent open escalations",
		decide: (*decision).backlog},
	{verb: VerbReject, usage: "/threatgate reject [ESC-id] <rationale>", about: "reject, saying why", text: "rationale",
		escalation: true, tier: true, head: true, decide: (*decision).reject},
	{verb: VerbDissent, usage: "/threatgate dissent [ESC-id] <note>", about: "record a dissenting note", text: "note",
		escalation: true, afterEnd: true, inIntake: true, decide: (*decision).dissent},
	{verb: VerbArtifact, usage: "/threatgate artifact [ESC-id] <kind> <link-or-text>", about: "attach an artifact such as a threat-model", text: "note",
		escalation: true, decide: (*decision).artifact},
	{verb: VerbDefer, usage: "/threatgate defer [ESC-id] <YYYY-MM-DD | duration> <reason>", about: "defer until a date, or for a duration such as 72h, 3d, 2w", text: "reason",
		escalation: true, tier: true, head: true, decide: (*decision).deferral},
	{verb: VerbAction, usage: "/threatgate action [ESC-id] [@owner] [due:YYYY-MM-DD] <text>", about: "record a follow-up action item, owned by you or @owner", text: "action text",
		escalation: true, afterEnd: true, inIntake: true, decide: (*decision).action},
	{verb: VerbDone, usage: "/threatgate done [ESC-id] <n>", about: "close action item n (its owner, who recorded it, or an approver)",
		escalation: true, afterEnd: true, inIntake: true, decide: (*decision).done},
	{verb: VerbRisk, usage: `/threatgate risk [ESC-id] <1-25 | likelihood=1..5 impact=1..5 [controls="..."]> [rationale], or risk [ESC-id] --validate [note]`, about: "record the residual risk, likelihood (1-5) x impact (1-5), with its compensating controls; --validate confirms someone else's score (authority.risk_validators)", text: "rationale",
		escalation: true, tier: true, head: true, decide: (*decision).risk},
	{verb: VerbRetier, usage: "/threatgate retier [ESC-id] <tier> <rationale>", about: "move an escalation to another tier", text: "rationale",
		escalation: true, head: true, decide: (*decision).retier},
	{verb: VerbWithdraw, usage: "/threatgate withdraw [ESC-id] <reason>", about: "withdraw an escalation", text: "reason",
		escalation: true, inIntake: true, head: true, decide: (*decision).withdraw},
	{verb: VerbIntake, usage: "/threatgate intake [ESC-id] then lines \"field: answer\"", about: "answer the intake fields of a manual escalation (in its thread, just write the lines)", text: "note",
		escalation: true, inIntake: true, tier: true, decide: (*decision).intake},
	{verb: VerbOverrideCap, usage: "/threatgate override-cap <person> [count] <rationale>", about: "grant a person count more manual escalations (default 1, at most 100)", text: "rationale",
		decide: (*decision).overrideCap},
	{verb: VerbAway, usage: "/threatgate away until YYYY-MM-DD | off", about: "say you are away until that day (your groups' backups are asked meanwhile), or back",
		decide: (*decision).away},
	{verb: VerbIncident, usage: "/threatgate incident <group/proj!iid | MR URL> [--fixed-by <MR ref>] <summary>", about: "record a security defect traced to a merged MR (any person of the policy); the reply names its id, INC-n", text: "summary",
		decide: (*decision).incident},
	{verb: VerbIncidentFixed, usage: "/threatgate incident-fixed <INC-id> [note]", about: "record that an incident was remediated (time to remediation runs from when it was recorded)", text: "note",
		decide: (*decision).incidentFixed},
	{verb: VerbHelp, usage: "/threatgate help [command]", about: "show this help, or one command's", anyone: true},
}

// VerbInfo is what surfaces need to know of a verb to offer it (help,
// Slack modals and buttons, Discord command registration): how it is
// written, what it does, what its free text is called, and what it needs.
type VerbInfo struct {
	Verb       Verb
	Usage      string
	About      string
	TextName   string // what the free text holds ("rationale", "reason"); "" for none
	Escalation bool   // acts on an escalation
	TierBound  bool   // decides against the tier (needs its checklist, matrix)
	HeadBound  bool   // decides about the code at the head
	Anyone     bool   // needs no person of the policy (help only)
}

// Verbs lists every verb as surfaces offer them, in help order.
func Verbs() []VerbInfo {
	out := make([]VerbInfo, 0, len(verbs))
	for _, s := range verbs {
		out = append(out, VerbInfo{Verb: s.verb, Usage: s.usage, About: s.about, TextName: s.text, Escalation: s.escalation, TierBound: s.tier, HeadBound: s.head, Anyone: s.anyone})
	}
	return out
}

// AllowedIn reports whether verb v may run on an escalation in state st
// (the same check decide makes): every verb that acts on an escalation
// runs while it is under review; after a merge or withdrawal only dissent
// and action items, during intake only what the verb table allows. It says
// nothing about who may run it (decide does).
func AllowedIn(v Verb, st State) bool {
	sp := spec(v)
	switch {
	case sp == nil:
		return false
	case !sp.escalation:
		return true
	case st.Ended():
		return sp.afterEnd
	case st == StateIntake:
		return sp.inIntake
	}
	return true
}

// spec returns the entry of v, nil for an unknown verb.
func spec(v Verb) *verbSpec {
	for i := range verbs {
		if verbs[i].verb == v {
			return &verbs[i]
		}
	}
	return nil
}

// HeadBound reports whether a command with verb v decides about the code
// at the MR's head, so that it must be about the head its sender saw:
// approve, reject, retier, withdraw, risk and defer.
func HeadBound(v Verb) bool {
	s := spec(v)
	return s != nil && s.head
}

// status answers /threatgate status.
func (d *decision) status(c *Command) error {
	if d.esc == nil {
		return d.noEscalation(c)
	}
	d.reply("%s", d.statusText())
	return nil
}

// backlog is answered by the engine (it reads every open escalation).
func (d *decision) backlog(*Command) error {
	return problemf("/threatgate backlog", "the backlog is answered by the engine, not here")
}

func (d *decision) dissent(c *Command) error {
	d.emit(EventDissent, EventData{Text: c.Text})
	d.effect(Effect{Kind: EffectThreadPost, Notice: &Notice{Kind: NoticeDissent, By: d.actor(), Text: c.Text, SHA: d.esc.HeadSHA}})
	d.reply("Dissent recorded on %s.", d.id())
	return nil
}
