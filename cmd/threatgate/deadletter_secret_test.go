package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/gitlab"
	"github.com/threatgate/threatgate/bot/bottest"
	"github.com/threatgate/threatgate/policies"
	"github.com/threatgate/threatgate/store"
)

// TestDeadLetterMasksSecretsInsideJSON: the same title that
// MaskSecrets masks in the escalation is stored in clear in a dead letter,
// because the payload is masked as JSON text, where " is written \".
func TestDeadLetterMasksSecretsInsideJSON(t *testing.T) {
	ctx := context.Background()
	pol, err := policies.Default()
	if err != nil {
		t.Fatal(err)
	}
	title := `rotate password = "hunter2hunter2xyz"`
	if m := pol.MaskSecrets(title); strings.Contains(m, "hunter2hunter2xyz") {
		t.Fatalf("MaskSecrets does not mask the raw title: %q", m)
	}
	db, err := store.Open(t.TempDir(), store.NoSync())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	clock := bottest.NewClock(time.Date(2026, 10, 5, 9, 0, 0, 0, time.UTC))
	s, err := newServer(DefaultConfig(), Secrets{}, pol, db, clock, slog.New(slog.DiscardHandler), extras{})
	if err != nil {
		t.Fatal(err)
	}
	body := `{"object_kind":"merge_request","project":{"path_with_namespace":"shop/api"},"object_attributes":{"iid":4,"action":"open","title":"rotate password = \"hunter2hunter2xyz\""}}`
	if _, err := db.Enqueue(ctx, "uuid-poison", gitlab.EventMergeRequest, []byte(body), clock.Now()); err != nil {
		t.Fatal(err)
	}
	s.worker.Engine = panicking{}
	if n, err := s.worker.ProcessDue(ctx); n != 1 || err != nil {
		t.Fatalf("ProcessDue = %d, %v", n, err)
	}
	dls, err := db.DeadLetters(ctx, 0)
	if err != nil || len(dls) != 1 {
		t.Fatalf("dead letters %v %v", dls, err)
	}
	if strings.Contains(string(dls[0].Payload), "hunter2hunter2xyz") {
		t.Errorf("the dead letter stores the secret in clear: %s", dls[0].Payload)
	}
}
