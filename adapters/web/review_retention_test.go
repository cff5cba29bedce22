package web_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
)

// TestReviewCompactedEscalationPageAndBundle: after retention removed the
// threat model's text, the escalation page lists the artifact as "in"
// with an empty "Link or text" cell and the signals with empty evidence,
// and says nothing of retention there (only the timeline's compacted
// event does): it reads as if an empty threat
// model had been handed in. Its evidence bundle (built from a replay of
// the events, which loses Artifact.Removed) says the same in its
// artifacts table.
func TestReviewCompactedEscalationPageAndBundle(t *testing.T) {
	s := newDashSite(t)
	s.handle(s.mr(1, "aaa111", "Session rework", bot.MROpen, "internal/auth/session.go"))
	s.say("UANN", "/threatgate artifact ESC-1 threat-model STRIDE: "+strings.Repeat("the session token is rotated on login. ", 12))
	s.handle(s.mr(1, "aaa111", "Session rework", bot.MRMerge, "internal/auth/session.go"))
	const keep = 30 * 24 * time.Hour
	s.clock.Advance(keep + time.Hour)
	if n, err := s.eng.Compact(context.Background(), s.clock.Now(), keep); err != nil || n == 0 {
		t.Fatalf("Compact = %d, %v", n, err)
	}
	res := s.get("/escalations/ESC-1")
	wantStatus(t, res, http.StatusOK)
	page := body(t, res)
	arts := page[strings.Index(page, `id="artifacts-h"`):]
	arts = arts[:strings.Index(arts, "</section>")]
	if !strings.Contains(arts, "retention") {
		t.Errorf("the escalation page's artifacts table shows the compacted threat model as \"in\" with an empty \"Link or text\" cell, not as removed by retention:\n%s", arts)
	}
	res = s.get("/escalations/ESC-1/bundle?format=md")
	wantStatus(t, res, http.StatusOK)
	if md := body(t, res); !strings.Contains(md, "*text removed by retention ") {
		t.Error("the bundle's artifacts table shows the threat model with an empty text, not as removed by retention")
	}
}
