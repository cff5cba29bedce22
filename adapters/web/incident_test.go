package web_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/web"
	"github.com/threatgate/threatgate/bot"
)

func (s *dashSite) postJSON(path, body string, mod ...func(*http.Request)) *http.Response {
	s.t.Helper()
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return s.do(r, mod...)
}

// TestPostIncident: POST /api/incidents (dashboard token) records an
// incident through the engine as /threatgate incident does; the reporter
// must be a person of the policy; bad bodies name the field; a retried
// request with the same Idempotency-Key records nothing more.
func TestPostIncident(t *testing.T) {
	s := newDashSite(t, withToken("tok"))
	s.srv.Engine = s.eng
	s.h = s.srv.Handler()
	s.seed()
	bearer := func(r *http.Request) { r.Header.Set("Authorization", "Bearer tok") }

	res := s.postJSON("/api/incidents", `{"mr": "shop/api!4", "summary": "reset tokens never expire", "reporter": "alice"}`)
	wantStatus(t, res, http.StatusUnauthorized)

	key := func(r *http.Request) { bearer(r); r.Header.Set("Idempotency-Key", "k1") }
	res = s.postJSON("/api/incidents", `{"mr": "shop/api!4", "summary": "reset tokens never expire", "reporter": "alice", "fixed_by": "shop/api!9"}`, key)
	wantStatus(t, res, http.StatusCreated)
	var got web.IncidentResponse
	if err := json.NewDecoder(res.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.Incident != "INC-1" || !strings.Contains(got.Text, "escalation ESC-4 in T2") {
		t.Errorf("response = %+v", got)
	}
	res = s.postJSON("/api/incidents", `{"mr": "shop/api!4", "summary": "reset tokens never expire", "reporter": "alice"}`, key)
	wantStatus(t, res, http.StatusOK)

	for _, tt := range []struct {
		name, body, ctype string
		status            int
		want              string
	}{
		{"reporter not in the policy", `{"mr": "shop/api!4", "summary": "x", "reporter": "mallory"}`, "", http.StatusUnprocessableEntity, "not in the policy's people"},
		{"bad MR", `{"mr": "shop", "summary": "", "reporter": ""}`, "", http.StatusUnprocessableEntity, "mr: "},
		{"unknown key", `{"mr": "shop/api!4", "summary": "x", "reporter": "alice", "sev": 1}`, "", http.StatusBadRequest, "not an incident"},
		{"a form", `mr=shop/api!4`, "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType, "application/json"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := s.postJSON("/api/incidents", tt.body, bearer, func(r *http.Request) {
				if tt.ctype != "" {
					r.Header.Set("Content-Type", tt.ctype)
				}
			})
			wantStatus(t, res, tt.status)
			b, _ := io.ReadAll(res.Body)
			if !strings.Contains(string(b), tt.want) {
				t.Errorf("body = %s, want %q", b, tt.want)
			}
		})
	}
	inc, err := s.db.FindIncident(t.Context(), "INC-1")
	if err != nil || inc.Recorded.Actor != "alice" || inc.Recorded.Data.Ref != "shop/api!9" {
		t.Fatalf("FindIncident = %+v, %v", inc, err)
	}
	if id, _ := s.db.NextIncident(t.Context()); id != "INC-2" {
		t.Errorf("NextIncident = %s: a refused or repeated request spent an id", id)
	}
}

// TestDashboardIncidentTile: the tile shows the last 30 days' leakage and
// near misses, read from that window of the log only.
func TestDashboardIncidentTile(t *testing.T) {
	var reader *windowed
	s := newDashSite(t, withReader(func(r web.Reader) web.Reader { reader = &windowed{Reader: r}; return reader }))
	s.seed()
	s.say("UALICE", "/threatgate incident shop/api!4 reset tokens never expire") // rejected, at its tier: no leak
	s.say("UBOB", "/threatgate incident shop/api!77 open redirect")              // never escalated: leaked
	s.clock.Advance(24 * time.Hour)
	page := body(t, s.get("/"))
	wantContains(t, page, "<strong>50%</strong> defect leakage, 30 days (1 of 2 incidents); <strong>0</strong> near misses")
	now := s.clock.Now()
	if len(reader.windows) != 1 || !reader.windows[0][0].Equal(now.AddDate(0, 0, -30)) {
		t.Errorf("read the log over %v, want the 30 days before %v", reader.windows, now)
	}
}

// windowed records the windows of the log read.
type windowed struct {
	web.Reader
	windows [][2]time.Time
}

func (w *windowed) EventsBetween(ctx context.Context, from, to time.Time) ([]bot.Event, error) {
	w.windows = append(w.windows, [2]time.Time{from, to})
	return w.Reader.EventsBetween(ctx, from, to)
}
