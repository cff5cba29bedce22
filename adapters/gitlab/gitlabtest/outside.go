package gitlabtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
)

// This file lets the fake serve outside a test, as the simulated GitLab
// of `threatgate demo`, and adds what a person clicking through GitLab
// does: merge, close, reopen, and the Merge Request Hook GitLab sends
// after each change.

// Start starts a fake GitLab outside a test; Close stops it. Misuse that
// would fail a test (an unknown MR, a duplicate IID) panics instead, so a
// caller checks with MR first.
func Start() *Server { return start(panicTB{}) }

// panicTB stands for the test outside one: a fatal misuse panics.
type panicTB struct{ testing.TB }

func (panicTB) Helper()                   {}
func (panicTB) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }
func (panicTB) Cleanup(func())            {}

// Transition errors: what GitLab refuses when a person tries it.
var (
	// ErrNotOpen is returned by MergeMR and CloseMR for an MR that is not open.
	ErrNotOpen = fmt.Errorf("the merge request is not open")
	// ErrNotClosed is returned by ReopenMR for an MR that is not closed.
	ErrNotClosed = fmt.Errorf("only a closed merge request can be reopened")
	// ErrNoMR is returned for an MR the fake does not have.
	ErrNoMR = fmt.Errorf("no such merge request")
)

// transition moves the MR from state from to state to, as a person in
// GitLab would; it returns ErrNoMR or notFrom when the MR is elsewhere.
func (s *Server) transition(project string, iid int64, from, to string, notFrom error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.lookup(project)
	if p == nil || p.mrs[iid] == nil {
		return ErrNoMR
	}
	st := p.mrs[iid]
	if st.mr.State != from {
		return fmt.Errorf("%w (it is %s)", notFrom, st.mr.State)
	}
	st.mr.State = to
	st.mr.UpdatedAt = s.now().UTC()
	return nil
}

// MergeMR merges an open MR, whatever its commit statuses say (a person with
// the rights can always merge); a merged, closed or unknown MR is an error.
func (s *Server) MergeMR(project string, iid int64) error {
	return s.transition(project, iid, "opened", "merged", ErrNotOpen)
}

// CloseMR closes an open MR.
func (s *Server) CloseMR(project string, iid int64) error {
	return s.transition(project, iid, "opened", "closed", ErrNotOpen)
}

// ReopenMR reopens a closed MR.
func (s *Server) ReopenMR(project string, iid int64) error {
	return s.transition(project, iid, "closed", "opened", ErrNotClosed)
}

// MergeRequestHook returns the body of the Merge Request Hook GitLab sends
// for the MR as the fake holds it now, with action (open, update, merge,
// close, reopen).
func (s *Server) MergeRequestHook(project string, iid int64, action string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.lookup(project)
	if p == nil || p.mrs[iid] == nil {
		return nil, ErrNoMR
	}
	m := p.mrs[iid].mr
	labels := []map[string]string{}
	for _, l := range m.Labels {
		labels = append(labels, map[string]string{"title": l})
	}
	return json.Marshal(map[string]any{
		"object_kind": "merge_request", "event_type": "merge_request",
		"user":    map[string]any{"username": m.Author},
		"project": map[string]any{"id": p.id, "path_with_namespace": p.path, "web_url": s.URL + "/" + p.path},
		"object_attributes": map[string]any{
			"iid": m.IID, "title": m.Title, "description": m.Description, "state": m.State, "action": action,
			"url":           fmt.Sprintf("%s/%s/-/merge_requests/%d", s.URL, p.path, m.IID),
			"source_branch": m.SourceBranch, "target_branch": m.TargetBranch,
			"updated_at":  m.UpdatedAt.UTC().Format("2006-01-02 15:04:05 UTC"),
			"last_commit": map[string]string{"id": m.SHA},
		},
		"labels": labels,
	})
}

// HookRequest returns the request GitLab would send to url for the MR's
// Merge Request Hook with action: the body of MergeRequestHook and the
// headers X-Gitlab-Event, X-Gitlab-Token (secret), X-Gitlab-Event-UUID
// (new each time) and Content-Type.
func (s *Server) HookRequest(ctx context.Context, url, secret, project string, iid int64, action string) (*http.Request, error) {
	body, err := s.MergeRequestHook(project, iid, action)
	if err != nil {
		return nil, err
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-Gitlab-Event", "Merge Request Hook")
	r.Header.Set("X-Gitlab-Token", secret)
	r.Header.Set("X-Gitlab-Event-UUID", uuid())
	r.Header.Set("User-Agent", "GitLab/17.0.0")
	r.ContentLength = int64(len(body))
	return r, nil
}

// uuid returns a random version 4 UUID.
func uuid() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// Addr is the listener's base URL (Server.URL unless a caller changed it).
func (s *Server) Addr() string { return s.srv.URL }
