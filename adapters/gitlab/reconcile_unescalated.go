package gitlab

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"

	"github.com/threatgate/threatgate/bot"
)

// Classifications remembers the open MRs threatgate classified into no
// tier (bot.Unescalated), so that reconcile reads again only those whose
// head or tier facts changed since, and the projects webhooks named;
// store.DB is one.
type Classifications interface {
	// FindUnescalated returns what is remembered of project's MRs iids
	// (nil: all of the project's), by iid.
	FindUnescalated(ctx context.Context, project string, iids []int64) (map[int64]bot.Unescalated, error)
	// KeepUnescalated remembers put and forgets drop, in one write.
	KeepUnescalated(ctx context.Context, put, drop []bot.Unescalated) error
	// SawProjects adds projects to those seen; ProjectsSeen lists them.
	SawProjects(ctx context.Context, projects ...string) error
	ProjectsSeen(ctx context.Context) ([]string, error)
}

// DefaultClassifyPerPass bounds how many MRs without an escalation one
// reconcile pass reads and classifies, by default: about four requests
// each (the MR, its diffs, its commits, the gate's status), so 500 are
// some 2,000 requests, a little over three minutes of the default
// request rate. A backlog larger than that (the first pass after an
// upgrade, a long outage of the webhook) is worked off over several
// passes, leaving the rest of the rate to the gate's own writes.
const DefaultClassifyPerPass = 500

// unescalatedState is the worker's part of remembering classifications:
// what the inbox pass classified, written together at the end of the
// pass.
type unescalatedState struct {
	mu  sync.Mutex
	put []bot.Unescalated
	mem *memClassifications
}

// classifications returns where classifications are remembered: Memory,
// else Store when it remembers them (store.DB does), else this process's
// memory.
func (w *Worker) classifications() Classifications {
	if w.Memory != nil {
		return w.Memory
	}
	if c, ok := w.Store.(Classifications); ok {
		return c
	}
	w.unesc.mu.Lock()
	defer w.unesc.mu.Unlock()
	if w.unesc.mem == nil {
		w.unesc.mem = &memClassifications{recs: map[string]map[int64]bot.Unescalated{}, projects: map[string]bool{}}
	}
	return w.unesc.mem
}

// unescalatedOf is what to remember of an MR that mi read through the API
// and the engine decided on (rep): its head and tier facts, when it is
// open and has no escalation; nil otherwise (an escalation watches it, or
// it is closed or merged and gated by nothing).
func unescalatedOf(project string, iid int64, mi *bot.MRInput, rep bot.Reply, w *Worker) *bot.Unescalated {
	if mi == nil || mi.MR == nil || !mi.Fetched || rep.Escalation != "" || rep.Duplicate || mi.MR.SHA == "" || !bot.Classifiable(mi.MR.State) {
		return nil
	}
	return &bot.Unescalated{Project: project, IID: iid, SHA: mi.MR.SHA, Facts: bot.TierFacts(mi.MR), At: w.Clock.Now()}
}

// classified notes what the inbox pass decided on an MR read through the
// API: an open MR left without an escalation is remembered (at the end
// of the pass, by keepClassified, which keeps its project as seen too),
// so that reconcile does not read it again until it changes.
func (w *Worker) classified(project string, iid int64, mi *bot.MRInput, rep bot.Reply) {
	u := unescalatedOf(project, iid, mi, rep, w)
	if u == nil || project == "" {
		return
	}
	w.unesc.mu.Lock()
	defer w.unesc.mu.Unlock()
	w.unesc.put = append(w.unesc.put, *u)
}

// keepClassified writes what classified noted: one small transaction for
// the pass's MRs, none when there are none. A failure is logged: what is
// not remembered is read again by a later reconcile, and nothing is
// lost.
func (w *Worker) keepClassified(ctx context.Context) {
	w.unesc.mu.Lock()
	put := w.unesc.put
	w.unesc.put = nil
	w.unesc.mu.Unlock()
	if len(put) == 0 {
		return
	}
	// Not ctx: a pass cut short still remembers what it classified.
	if err := w.classifications().KeepUnescalated(context.WithoutCancel(ctx), put, nil); err != nil {
		w.log().Warn("cannot remember the merge requests classified into no tier; reconcile reads them again", bot.LogErr, err)
	}
}

// reconcileProjects returns the projects a pass lists, in order: those
// of watched escalations (byProject), those configured (Projects), and
// those seen before (Classifications.ProjectsSeen: of an MR left without
// an escalation, or of an escalation once watched). The projects of
// watched escalations not yet seen are kept as seen (a write only when
// there is a new one), so that a project stays listed after its last
// escalation merged.
func (w *Worker) reconcileProjects(ctx context.Context, byProject map[string][]*bot.Escalation) []string {
	mem := w.classifications()
	set := map[string]bool{}
	seen, err := mem.ProjectsSeen(ctx)
	if err != nil {
		w.log().Warn("reconcile: cannot read the projects seen; listing those with escalations and those configured", bot.LogErr, err)
	}
	for _, p := range seen {
		set[p] = true
	}
	var fresh []string
	for p := range byProject {
		if !set[p] {
			fresh = append(fresh, p)
			set[p] = true
		}
	}
	if len(fresh) > 0 && err == nil {
		if err := mem.SawProjects(ctx, fresh...); err != nil {
			w.log().Warn("reconcile: cannot keep the projects seen", bot.LogErr, err)
		}
	}
	for _, p := range w.Projects {
		if p != "" {
			set[p] = true
		}
	}
	return sortedKeys(set)
}

// catchUp classifies the open MRs of project without an escalation that
// the lists showed (changed: updated since the watermark; open, when
// full: every open MR) and that bot.NeedsClassifying says must be read,
// at most *budget of them, through the same engine path as a webhook
// (classifyOne). It remembers those left without an escalation, and
// forgets those closed, merged, gone or escalated since; a full pass
// also forgets those no longer open. It reports whether every MR it had
// to read was handled: false keeps the project's watermark where it was,
// so the next pass lists them again.
func (w *Worker) catchUp(ctx context.Context, log *slog.Logger, project string, byIID map[int64]*bot.Escalation, changed, open []MRBrief, full bool, budget *int) bool {
	cand := map[int64]MRBrief{}
	add := func(bs []MRBrief) {
		for _, b := range bs {
			if byIID[b.IID] != nil {
				continue
			}
			if had, ok := cand[b.IID]; !ok || b.UpdatedAt.After(had.UpdatedAt) {
				cand[b.IID] = b
			}
		}
	}
	add(changed)
	add(open)
	if len(cand) == 0 && !full {
		return true
	}
	mem := w.classifications()
	var iids []int64
	if !full {
		iids = slices.Sorted(maps.Keys(cand))
	}
	recs, err := mem.FindUnescalated(ctx, project, iids)
	if err != nil {
		log.Warn("reconcile: cannot read what is remembered of merge requests without an escalation; tried again next pass", bot.LogErr, err)
		return false
	}
	var put, drop []bot.Unescalated
	var todo []MRBrief
	for _, b := range cand {
		rec, known := recs[b.IID]
		switch {
		case !bot.Classifiable(b.State):
			if known {
				drop = append(drop, rec)
			}
		case bot.NeedsClassifying(rec, known, b.SHA, b.Facts):
			todo = append(todo, b)
		}
	}
	if full {
		listed := make(map[int64]bool, len(open))
		for _, b := range open {
			listed[b.IID] = true
		}
		for iid, rec := range recs {
			// Escalated (the escalation watches it now), or no longer
			// open (closed, merged, moved, deleted): nothing to remember.
			if byIID[iid] != nil || !listed[iid] {
				drop = append(drop, rec)
			}
		}
	}
	// The most recently updated first: those most likely to merge soon.
	slices.SortFunc(todo, func(a, b MRBrief) int {
		if c := b.UpdatedAt.Compare(a.UpdatedAt); c != 0 {
			return c
		}
		return cmp.Compare(b.IID, a.IID)
	})
	clean := true
	classified := 0
	for i, b := range todo {
		if ctx.Err() != nil {
			clean = false
			break
		}
		if *budget <= 0 {
			log.Info("reconcile: more merge requests without an escalation to classify than a pass may read; the rest next pass", "left", len(todo)-i)
			clean = false
			break
		}
		*budget--
		u, gone, err := w.classifySafely(ctx, project, b.IID)
		switch {
		case err == nil && u != nil:
			put = append(put, *u)
			classified++
		case err == nil || gone:
			drop = append(drop, bot.Unescalated{Project: project, IID: b.IID})
			classified++
		default:
			clean = false
		}
	}
	if err := mem.KeepUnescalated(context.WithoutCancel(ctx), put, drop); err != nil {
		log.Warn("reconcile: cannot remember the merge requests classified into no tier; read again next pass", bot.LogErr, err)
	}
	if len(todo) > 0 {
		log.Debug("reconcile: classified merge requests without an escalation", "read", classified, "wanted", len(todo), "remembered", len(put))
	}
	return clean
}

// classifySafely reads MR iid of project and feeds it through the engine
// (classifyOne) under recover. u is what to remember of it (nil: it has
// an escalation now, or is not open); gone: GitLab has no such MR.
func (w *Worker) classifySafely(ctx context.Context, project string, iid int64) (u *bot.Unescalated, gone bool, err error) {
	err = recovered(func() error {
		var err error
		u, err = w.classifyOne(ctx, project, iid)
		return err
	})
	var pan *panicked
	switch {
	case errors.As(err, &pan):
		w.setAsideReconcile(ctx, fmt.Sprintf("%s!%d", project, iid), "", pan)
		return nil, false, err
	case err != nil:
		return nil, isNotFound(err), err
	}
	return u, false, nil
}

// classifyOne feeds what GitLab shows now of MR iid of project, which
// has no escalation, through the engine, exactly as the worker does for
// a webhook: the engine opens its escalation (and gate) when it
// classifies into a tier. Its errors are logged here.
func (w *Worker) classifyOne(ctx context.Context, project string, iid int64) (*bot.Unescalated, error) {
	log := w.log().With("project", project, "mr_iid", iid)
	mi, err := w.Fetch.FetchMR(ctx, project, iid)
	if err != nil {
		log.Warn("reconcile: cannot fetch MR", bot.LogErr, err)
		return nil, err
	}
	mi.Action = bot.MRSeen
	rep, err := w.Engine.Handle(ctx, bot.Input{Kind: bot.InputMR, Actor: bot.System, MR: mi})
	if settle(err) != nil {
		log.Warn("reconcile: engine refused", bot.LogErr, err)
		return nil, err
	}
	if err != nil {
		return nil, nil // refused for good: nothing to remember, read again when it changes
	}
	if rep.Escalation != "" {
		log.Info("reconcile: a merge request whose webhook was missed classifies into a tier", bot.LogEscalationID, rep.Escalation)
	}
	return unescalatedOf(project, iid, mi, rep, w), nil
}

// memClassifications keeps classifications in this process's memory, for
// a worker whose store does not keep them.
type memClassifications struct {
	mu       sync.Mutex
	recs     map[string]map[int64]bot.Unescalated
	projects map[string]bool
}

func (m *memClassifications) FindUnescalated(_ context.Context, project string, iids []int64) (map[int64]bot.Unescalated, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[int64]bot.Unescalated{}
	for iid, u := range m.recs[project] {
		if iids == nil || slices.Contains(iids, iid) {
			out[iid] = u
		}
	}
	return out, nil
}

func (m *memClassifications) KeepUnescalated(_ context.Context, put, drop []bot.Unescalated) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, u := range drop {
		delete(m.recs[u.Project], u.IID)
	}
	for _, u := range put {
		if m.recs[u.Project] == nil {
			m.recs[u.Project] = map[int64]bot.Unescalated{}
		}
		m.recs[u.Project][u.IID] = u
		m.projects[u.Project] = true
	}
	return nil
}

func (m *memClassifications) SawProjects(_ context.Context, projects ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range projects {
		m.projects[p] = true
	}
	return nil
}

func (m *memClassifications) ProjectsSeen(context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.projects)), nil
}
