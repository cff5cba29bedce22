package gitlab

import (
	"context"
	"errors"
	"fmt"

	"github.com/threatgate/threatgate/bot"
)

var _ bot.Refresher = (*Worker)(nil)

// Refresh reads the MR of e (Project, MRIID) as GitLab shows it now and
// hands it to the engine, exactly as a webhook would: a manual escalation
// learns its MR's title, link, head and authors this way, and its head gets
// the gate. An MR GitLab does not have (yet) is no error: its webhook will
// bring it. In a dry run (no API) there is nothing to read. Other errors are
// the fetch's (the dispatcher retries them).
func (w *Worker) Refresh(ctx context.Context, e bot.Effect) error {
	if w.Fetch == nil {
		return nil
	}
	if e.Project == "" || e.MRIID <= 0 {
		return nil
	}
	mi, err := w.Fetch.FetchMR(ctx, e.Project, e.MRIID)
	if err != nil {
		if isNotFound(err) {
			w.log().Warn("refresh: no such merge request in GitLab; waiting for its webhook", bot.LogEscalationID, e.Escalation, "project", e.Project, "mr_iid", e.MRIID)
			return nil
		}
		return fmt.Errorf("refresh %s!%d: %w", e.Project, e.MRIID, err)
	}
	mi.Action = bot.MRSeen
	if _, err := w.Engine.Handle(ctx, bot.Input{Kind: bot.InputMR, Actor: bot.System, MR: mi}); settle(err) != nil {
		return fmt.Errorf("refresh %s!%d: %w", e.Project, e.MRIID, err)
	}
	return nil
}

// isNotFound reports whether err says GitLab has no such MR (or project).
func isNotFound(err error) bool {
	var pe *PermanentError
	return errors.As(err, &pe) && pe.Status == 404
}
