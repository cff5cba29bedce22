// Package web serves threatgate's HTTP pages and JSON API: the dashboard,
// a page per escalation with its audit timeline, the list of escalations
// as JSON, and the local chat console. Server (server.go) ties them
// together behind the dashboard token; pages are html/template with
// embedded assets, no JavaScript needed. It reads through small
// interfaces and imports bot and policies only.
package web

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
)

// Lister lists every escalation; store.DB is one.
type Lister interface {
	List(ctx context.Context) ([]*bot.Escalation, error)
}

// API serves GET /api/escalations: a page of the whole record, filtered
// and paged as docs/API.md describes, read through the store's indexes
// (Pager) and written as it is encoded.
type API struct {
	Store  Pager
	Policy func() *policies.Policy
	Log    *slog.Logger
	Now    func() time.Time // the clock deadlines, flag=overdue and flag=late are measured at; nil: time.Now
	// DryRun marks every recorded gate as what a dry run would have set.
	DryRun bool
}

func (a *API) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// ListJSON is the body of GET /api/escalations; its keys are a contract
// with API users.
type ListJSON struct {
	Items []EscalationJSON `json:"items"`
	// Next is the cursor of the next page and NextURL the page's URL
	// (also in the Link header, rel="next"); both absent on the last page.
	Next    string `json:"next,omitempty"`
	NextURL string `json:"next_url,omitempty"`
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
	// Deadline is where the decision deadline stands at the time of the
	// request (bot.DeadlineOf); null once the escalation is not active or
	// has no deadline.
	Deadline *DeadlineJSON `json:"deadline"`
	// Gate is the commit status threatgate last set (absent when none is
	// recorded); MergedBy and MergedAt say who merged and when, as GitLab
	// reported it (absent until merged; merged_by also when GitLab did
	// not say).
	Gate *GateJSON `json:"gate,omitempty"`
	// DryRun is true when the gate above was never written to GitLab
	// (a dry run: it is what threatgate would have set).
	DryRun   bool       `json:"dry_run,omitempty"`
	MergedBy string     `json:"merged_by,omitempty"`
	MergedAt *time.Time `json:"merged_at,omitempty"`
}

// DeadlineJSON is bot.Deadline as the API shows it.
type DeadlineJSON struct {
	Due         time.Time  `json:"due"`          // moved by a deferral's pause
	LeftSeconds int64      `json:"left_seconds"` // signed: negative once the deadline passed
	Overdue     bool       `json:"overdue"`
	Paused      bool       `json:"paused"`
	Until       *time.Time `json:"paused_until,omitempty"` // while paused: when the deferral ends
	Text        string     `json:"text"`                   // "3d 4h left", "overdue by 5d", "paused, 2d left"
}

// GateJSON is the gate's commit status as threatgate last set it.
type GateJSON struct {
	Status      string    `json:"status"` // pending, success, failed
	Description string    `json:"description"`
	SHA         string    `json:"sha"`
	At          time.Time `json:"at"`
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

// Convert renders an escalation as the API shows it at now.
func Convert(e *bot.Escalation, pol *policies.Policy, now time.Time) EscalationJSON {
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
	if w := bot.WaitingOn(e, pol); w != nil {
		j.Waiting = w
	}
	if e.Signals != nil {
		j.Signals = e.Signals
	}
	if !e.DecisionDue.IsZero() {
		d := e.DecisionDue
		j.DecisionDue = &d
	}
	if dl := bot.DeadlineOf(e, pol, now); dl.Has {
		j.DecisionDue = &dl.Due
		j.Deadline = &DeadlineJSON{Due: dl.Due, LeftSeconds: int64(dl.Left / time.Second), Overdue: dl.Overdue, Paused: dl.Paused, Text: dl.Phrase()}
		if dl.Paused && !dl.Until.IsZero() {
			j.Deadline.Until = &dl.Until
		}
	}
	if e.Gate != "" {
		j.Gate = &GateJSON{Status: e.Gate, Description: e.GateText, SHA: e.GateSHA, At: e.GateAt}
	}
	j.MergedBy = e.MergedBy
	if !e.MergedAt.IsZero() {
		m := e.MergedAt
		j.MergedAt = &m
	}
	return j
}

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		apiError(w, http.StatusMethodNotAllowed, "use GET")
		return
	}
	now := a.now().UTC()
	q, err := parseListQuery(r.URL.Query(), now)
	if err != nil {
		apiError(w, http.StatusBadRequest, problemsText(err))
		return
	}
	pol := a.Policy()
	q.Policy = pol
	page, err := a.Store.ListPage(r.Context(), q)
	if msg, ok := listProblem(err); ok {
		apiError(w, http.StatusBadRequest, msg)
		return
	}
	if err != nil {
		if a.Log != nil {
			a.Log.Error("list escalations", bot.LogErr, err)
		}
		apiError(w, http.StatusInternalServerError, "internal error")
		return
	}
	var next string
	if page.Next != "" {
		next = listURL(r.URL.Path, q, page.Next)
		w.Header().Set("Link", "<"+next+">; rel=\"next\"")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if r.Method == http.MethodHead {
		return
	}
	if err := writeList(w, page, pol, now, next, a.DryRun); err != nil && a.Log != nil {
		// The status is sent: the client sees a truncated body.
		a.Log.Warn("write the list of escalations", bot.LogErr, err)
	}
}

// writeList streams a page as ListJSON, one item at a time, so the
// response never holds more than one encoded item.
func writeList(w io.Writer, page bot.ListPage, pol *policies.Policy, now time.Time, nextURL string, dryRun bool) error {
	bw := bufio.NewWriterSize(w, 32<<10)
	bw.WriteString("{\n  \"items\": [")
	for i, e := range page.Items {
		j := Convert(e, pol, now)
		j.DryRun = dryRun && j.Gate != nil
		item, err := json.MarshalIndent(j, "    ", "  ")
		if err != nil {
			return fmt.Errorf("encode %s: %w", e.ID, err)
		}
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.WriteString("\n    ")
		bw.Write(item)
	}
	if len(page.Items) > 0 {
		bw.WriteString("\n  ")
	}
	bw.WriteString("]")
	if page.Next != "" {
		for _, kv := range [][2]string{{"next", page.Next}, {"next_url", nextURL}} {
			v, _ := json.Marshal(kv[1])
			bw.WriteString(",\n  \"" + kv[0] + "\": ")
			bw.Write(v)
		}
	}
	bw.WriteString("\n}\n")
	return bw.Flush()
}

// apiError answers with status and {"error": msg}.
func apiError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// maxIncidentBody bounds a POST /api/incidents body.
const maxIncidentBody = 16 << 10

// IncidentRequest is the body of POST /api/incidents; its keys are a
// contract with API users.
type IncidentRequest struct {
	MR       string `json:"mr"`       // group/proj!12 or the MR's URL
	Summary  string `json:"summary"`  // what went wrong
	Reporter string `json:"reporter"` // a person id of the policy
	FixedBy  string `json:"fixed_by,omitempty"`
}

// IncidentResponse answers a recorded incident.
type IncidentResponse struct {
	Incident string `json:"incident"` // "INC-7"
	Text     string `json:"text"`     // what /threatgate incident would reply
}

// postIncident serves POST /api/incidents: the same input as
// /threatgate incident, from the reporter (who must be a person of the
// policy). It takes JSON only, so that a form on another site cannot post
// one with a signed-in browser's cookie. An Idempotency-Key header makes a
// retried request a no-op.
func (s *Server) postIncident(w http.ResponseWriter, r *http.Request) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		apiError(w, http.StatusUnsupportedMediaType, "send the incident as application/json: {\"mr\": \"group/proj!12\", \"summary\": \"...\", \"reporter\": \"person-id\"}")
		return
	}
	var req IncidentRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxIncidentBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		apiError(w, http.StatusBadRequest, "the body is not an incident: want {\"mr\": \"group/proj!12\", \"summary\": \"...\", \"reporter\": \"person-id\"}")
		return
	}
	var problems []string
	mr, err := bot.ParseMRRef(req.MR)
	if err != nil {
		problems = append(problems, "mr: "+problemText(err))
	}
	c := bot.Command{Verb: bot.VerbIncident, MR: mr, Text: strings.TrimSpace(req.Summary)}
	if req.FixedBy != "" {
		if c.FixedBy, err = bot.ParseMRRef(req.FixedBy); err != nil {
			problems = append(problems, "fixed_by: "+problemText(err))
		}
	}
	if c.Text == "" {
		problems = append(problems, "summary: say what went wrong")
	}
	if req.Reporter == "" {
		problems = append(problems, "reporter: name the person of the policy who reports it")
	}
	if len(problems) > 0 {
		apiError(w, http.StatusUnprocessableEntity, strings.Join(problems, "; "))
		return
	}
	// Held to what a typed command is: its limits, no control characters.
	if c, err = bot.ParseCommand(c.String()); err != nil {
		apiError(w, http.StatusUnprocessableEntity, problemText(err))
		return
	}
	in := bot.Input{Kind: bot.InputCommand, Actor: bot.Identity{Person: req.Reporter, Surface: "api"}, Command: &c}
	if k := r.Header.Get("Idempotency-Key"); k != "" {
		in.Key = "api-incident:" + k
	}
	rep, err := s.Engine.Handle(r.Context(), in)
	if p, ok := bot.IsProblem(err); ok {
		apiError(w, http.StatusUnprocessableEntity, p.Error())
		return
	}
	if err != nil {
		s.log.Error("record an incident", bot.LogErr, err)
		apiError(w, http.StatusInternalServerError, "internal error")
		return
	}
	status := http.StatusCreated
	if rep.Duplicate {
		status = http.StatusOK
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(IncidentResponse{Incident: rep.Incident, Text: rep.Text})
}

// problemText is a Problem's text; any other error reads "internal error".
func problemText(err error) string {
	if p, ok := bot.IsProblem(err); ok {
		return p.Error()
	}
	return "internal error"
}
