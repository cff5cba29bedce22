// Package web serves threatgate's HTTP pages and JSON API: the dashboard,
// a page per escalation with its audit timeline, the list of escalations
// as JSON, and the local chat console. Server (server.go) ties them
// together behind the dashboard token; pages are html/template with
// embedded assets, no JavaScript needed. It reads through small
// interfaces and imports bot and policies only.
package web

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
)

// Lister lists every escalation; store.DB is one.
type Lister interface {
	List(ctx context.Context) ([]*bot.Escalation, error)
}

// API serves GET /api/escalations.
type API struct {
	Store  Lister
	Policy func() *policies.Policy
	Log    *slog.Logger
}

// EscalationJSON is one item of GET /api/escalations; its keys are a
// contract with API users.
type EscalationJSON struct {
	ID               string           `json:"id"`
	Project          string           `json:"project"`
	MRIID            int64            `json:"mr_iid"`
	MRURL            string           `json:"mr_url,omitempty"`
	Title            string           `json:"title,omitempty"`
	State            bot.State        `json:"state"`
	Tier             string           `json:"tier"`
	TierName         string           `json:"tier_name,omitempty"`
	Score            int              `json:"score"`
	HeadSHA          string           `json:"head_sha"`
	MissingArtifacts []string         `json:"missing_artifacts"`
	Approvals        []ApprovalJSON   `json:"approvals"`
	Waiting          []string         `json:"waiting"`
	Signals          []policies.Fired `json:"signals"`
	Manual           bool             `json:"manual"`
	Urgent           bool             `json:"urgent"`
	Bypassed         bool             `json:"bypassed"`
	CreatedAt        time.Time        `json:"created_at"`
	UpdatedAt        time.Time        `json:"updated_at"`
	DecisionDue      *time.Time       `json:"decision_due"`
}

// ApprovalJSON is one approval of an escalation.
type ApprovalJSON struct {
	By    string `json:"by"`
	Group string `json:"group,omitempty"`
	Role  string `json:"role"`
	SHA   string `json:"sha"`
	Stale bool   `json:"stale"`
	// Counts: it fills a slot of the approvals matrix now (not stale, not
	// by an author of the change or the filer).
	Counts bool      `json:"counts"`
	At     time.Time `json:"at"`
}

// Convert renders an escalation as the API shows it.
func Convert(e *bot.Escalation, pol *policies.Policy) EscalationJSON {
	j := EscalationJSON{
		ID: e.ID, Project: e.Project, MRIID: e.MRIID, MRURL: e.MRURL, Title: e.Title, State: e.State,
		Tier: e.Tier, TierName: e.TierName, Score: e.Score, HeadSHA: e.HeadSHA,
		MissingArtifacts: []string{}, Approvals: []ApprovalJSON{}, Waiting: []string{}, Signals: []policies.Fired{},
		Manual: e.Manual, Urgent: e.Urgent, Bypassed: e.Bypassed, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt,
	}
	if pol != nil {
		if m := e.MissingArtifacts(pol.Tier(e.Tier)); m != nil {
			j.MissingArtifacts = m
		}
	}
	for _, a := range e.Approvals {
		role := a.Role
		if a.Arbiter {
			role = "arbiter"
		}
		j.Approvals = append(j.Approvals, ApprovalJSON{By: a.By, Group: a.Group, Role: role, SHA: a.SHA,
			Stale: bot.Stale(e, pol, a), Counts: bot.Counts(e, pol, a, true), At: a.At})
	}
	if e.Waiting != nil {
		j.Waiting = e.Waiting
	}
	if e.Signals != nil {
		j.Signals = e.Signals
	}
	if !e.DecisionDue.IsZero() {
		d := e.DecisionDue
		j.DecisionDue = &d
	}
	return j
}

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		apiError(w, http.StatusMethodNotAllowed, "use GET")
		return
	}
	all, err := a.Store.List(r.Context())
	if err != nil {
		if a.Log != nil {
			a.Log.Error("list escalations", bot.LogErr, err)
		}
		apiError(w, http.StatusInternalServerError, "internal error")
		return
	}
	state := r.URL.Query().Get("state")
	pol := a.Policy()
	out := make([]EscalationJSON, 0, len(all))
	for _, e := range all {
		if state != "" && string(e.State) != state {
			continue
		}
		out = append(out, Convert(e, pol))
	}
	slices.SortStableFunc(out, func(x, y EscalationJSON) int { return x.CreatedAt.Compare(y.CreatedAt) })
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(out)
}

// apiError answers with status and {"error": msg}.
func apiError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
