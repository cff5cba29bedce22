// Package testrig is the setup most tests outside bot need: a policy, a
// real bbolt store in a temporary directory, an engine and a fake clock. It
// lives outside bot/ so that the domain's packages depend on no SDK (the
// store brings bbolt).
package testrig

import (
	"context"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/bot/bottest"
	"github.com/threatgate/threatgate/policies"
	"github.com/threatgate/threatgate/store"
)

// Rig is a policy, a real store in a temporary directory (its audit chain
// verified when the test ends), an engine over them and a fake clock.
type Rig struct {
	Policy *policies.Policy
	DB     *store.DB
	Dir    string
	Engine *bot.Engine
	Clock  *bottest.Clock
}

// T0 is when a Rig's clock starts.
var T0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

// NewRig loads policyYAML and opens a store in t.TempDir(); cleanup
// verifies the chain and closes the store.
func NewRig(t testing.TB, policyYAML string) *Rig {
	t.Helper()
	pol, err := policies.Load("test.yaml", []byte(policyYAML))
	if err != nil {
		t.Fatalf("test policy: %v", err)
	}
	dir := t.TempDir()
	db, err := store.Open(dir, store.NoSync())
	if err != nil {
		t.Fatal(err)
	}
	r := &Rig{Policy: pol, DB: db, Dir: dir, Clock: bottest.NewClock(T0)}
	r.Engine = bot.NewEngine(db, pol, r.Clock, nil)
	t.Cleanup(func() {
		// r.DB, not db: a test may have closed and reopened the store.
		if _, err := r.DB.Verify(context.Background()); err != nil {
			t.Errorf("audit chain: %v", err)
		}
		r.DB.Close()
	})
	return r
}
