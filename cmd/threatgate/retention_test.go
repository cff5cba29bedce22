package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/internal/testrig"
)

// TestRetentionEndToEnd: with retention.closed_days, the sweep compacts
// the escalations closed for that long, through the schedule's job;
// audit verify still passes, says what was compacted and when, and holds
// an anchor taken before; the bundles of compacted escalations keep their
// decisions, MR facts and tier definition and say what was removed.
func TestRetentionEndToEnd(t *testing.T) {
	r := seedExport(t)
	ctx := context.Background()
	_, before, err := r.DB.HeadOf(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keep := 365 * 24 * time.Hour
	// ESC-1 was merged on Friday 6 November, ESC-4 (CI, merged) on Monday;
	// ESC-2 (rejected), ESC-3 (withdrawn) and ESC-6 (approved) keep their
	// MRs open and ESC-7 is in review: none of those is closed.
	now := testrig.T0.Add(4*24*time.Hour + time.Hour + keep + time.Minute)
	jobs := engineJobs(r.Engine, "", keep)
	if err := jobs.sweep(ctx, now); err != nil {
		t.Fatalf("sweep with retention: %v", err)
	}
	compacted := map[string]bool{}
	for _, id := range []string{"ESC-1", "ESC-2", "ESC-3", "ESC-4", "ESC-6", "ESC-7"} {
		evs, err := r.DB.Events(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		compacted[id] = evs[len(evs)-1].Kind == bot.EventCompacted
	}
	for id, want := range map[string]bool{"ESC-1": true, "ESC-4": true, "ESC-6": false, "ESC-2": false, "ESC-3": false, "ESC-7": false} {
		if compacted[id] != want {
			t.Errorf("%s compacted = %v, want %v", id, compacted[id], want)
		}
	}
	// A second sweep finds nothing more to do.
	_, head, _ := r.DB.HeadOf(ctx)
	if err := jobs.sweep(ctx, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, again, _ := r.DB.HeadOf(ctx); again != head {
		t.Error("a second sweep compacted again")
	}

	var stdout, stderr string
	var code int
	dir := filepath.Join(t.TempDir(), "out")
	r.closed(func() {
		var out, errb bytes.Buffer
		e := &env{ctx: ctx, stdin: strings.NewReader(""), stdout: &out, stderr: &errb}
		code = e.auditVerify([]string{"--data", r.Dir, "--expect-head", before})
		stdout, stderr = out.String(), errb.String()
		if c, _, serr := runExport(t, "--from", exportFrom, "--to", "2026-11-07", "--format", "json", "--out", dir, "--data", r.Dir); c != exitOK {
			t.Fatalf("export after compaction: exit %d, %s", c, serr)
		}
		if c, _, serr := runExport(t, "--from", exportFrom, "--to", "2026-11-07", "--format", "md", "--out", dir+"-md", "--data", r.Dir); c != exitOK {
			t.Fatalf("export --format md after compaction: exit %d, %s", c, serr)
		}
	})
	if code != exitOK {
		t.Fatalf("audit verify after compaction: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	for _, want := range []string{"compacted (retention):", "in 2 compactions", "2 records of ESC-4, ESC-1", "anchor --expect-head: holds"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("audit verify output lacks %q:\n%s", want, stdout)
		}
	}

	data, err := os.ReadFile(filepath.Join(dir, "ESC-1.json"))
	if err != nil {
		t.Fatal(err)
	}
	var b bot.Bundle
	if err := json.Unmarshal(data, &b); err != nil {
		t.Fatal(err)
	}
	if b.Retention == nil || len(b.Retention.Records) == 0 || !b.Retention.At.Equal(now.UTC()) {
		t.Fatalf("ESC-1 bundle retention = %+v", b.Retention)
	}
	if b.MR.Title == "" || b.Tier.Definition == nil || len(b.Approvals) != 1 || len(b.Approvals[0].Checklist) != 1 || len(b.Dissents) != 1 || b.Risk == nil {
		t.Errorf("ESC-1 bundle lost decisions or MR facts: %s", data)
	}
	for _, s := range b.Tier.Signals {
		if s.Evidence != nil {
			t.Errorf("signal %s kept its evidence: %v", s.ID, s.Evidence)
		}
	}
	// A link is never removed.
	if len(b.Artifacts) != 1 || b.Artifacts[0].Ref != "https://wiki.example.com/tm/session-rotation" || !b.Artifacts[0].Removed.IsZero() {
		t.Errorf("ESC-1 artifacts = %+v", b.Artifacts)
	}
	if bytes.Contains(data, []byte("internal/auth/session.go")) {
		t.Error("ESC-1's bundle still carries evidence lines")
	}
	md, err := os.ReadFile(filepath.Join(dir+"-md", "ESC-1.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Retention", "*removed by retention*", "Rotation on login closes the fixation hole."} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("ESC-1.md lacks %q", want)
		}
	}
}
