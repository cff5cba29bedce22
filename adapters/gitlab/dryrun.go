package gitlab

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/threatgate/threatgate/bot"
)

// DryRun is the forge of a dry run (gitlab.mode dry_run, or no
// gitlab.url): it does nothing to GitLab, logs what it would have done,
// and remembers the latest actions (the newest 200, and each escalation's
// newest status, in memory) so the dashboard and /api/dry-run can show
// them. Safe for concurrent use.
type DryRun struct {
	Log   *slog.Logger
	Clock bot.Clock

	mu     sync.Mutex
	seen   []DryRunAction
	status map[string]DryRunAction // escalation → the newest status it would have set
}

// DryRunAction is one thing the dry-run forge would have done.
type DryRunAction struct {
	At         time.Time `json:"at"`
	Kind       string    `json:"kind"`
	Escalation string    `json:"escalation"`
	Project    string    `json:"project"`
	MRIID      int64     `json:"mr_iid"`
	SHA        string    `json:"sha,omitempty"`
	Status     string    `json:"status,omitempty"`
	Text       string    `json:"text,omitempty"`
	Labels     []string  `json:"labels,omitempty"`
}

var _ bot.Forge = (*DryRun)(nil)

const (
	dryRunKeep     = 200
	dryRunStatuses = 10000 // escalations whose newest status is kept
)

func (d *DryRun) record(e bot.Effect) error {
	a := DryRunAction{Kind: string(e.Kind), Escalation: e.Escalation, Project: e.Project, MRIID: e.MRIID, SHA: e.SHA, Status: e.Status, Text: e.Body(), Labels: e.Labels}
	if d.Clock != nil {
		a.At = d.Clock.Now()
	}
	if d.Log != nil {
		d.Log.Info("dry run: would act on GitLab; nothing was sent", bot.LogKind, a.Kind, bot.LogEscalationID, a.Escalation, "project", a.Project, "mr_iid", a.MRIID, "sha", a.SHA, "status", a.Status)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if e.Kind == bot.EffectStatus && a.Escalation != "" {
		if d.status == nil {
			d.status = make(map[string]DryRunAction)
		}
		if _, ok := d.status[a.Escalation]; !ok && len(d.status) >= dryRunStatuses {
			for k := range d.status { // forget one, any
				delete(d.status, k)
				break
			}
		}
		d.status[a.Escalation] = a
	}
	d.seen = append(d.seen, a)
	if len(d.seen) > dryRunKeep {
		d.seen = d.seen[len(d.seen)-dryRunKeep:]
	}
	return nil
}

// SetStatus records what status would have been set.
func (d *DryRun) SetStatus(_ context.Context, e bot.Effect) error { return d.record(e) }

// PostNote records what note would have been posted, neutralised and with
// its mentions, as Client.PostNote would post it.
func (d *DryRun) PostNote(_ context.Context, e bot.Effect) error {
	e.Text, e.Notice = noteText(e), nil
	return d.record(e)
}

// AddLabels records what labels would have been added.
func (d *DryRun) AddLabels(_ context.Context, e bot.Effect) error { return d.record(e) }

// Actions returns the latest actions, newest last.
func (d *DryRun) Actions() []DryRunAction {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]DryRunAction(nil), d.seen...)
}

// LatestStatus returns the newest status the dry run would have set for
// escalation, and whether there is one (since this process started).
func (d *DryRun) LatestStatus(escalation string) (DryRunAction, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	a, ok := d.status[escalation]
	return a, ok
}
