package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestGroupStopsAllOnAFailure: the first background part to fail (or
// panic) cancels the others, and Wait returns its error.
func TestGroupStopsAllOnAFailure(t *testing.T) {
	for name, bad := range map[string]func(context.Context) error{
		"error": func(context.Context) error { return errors.New("disk on fire") },
		"panic": func(context.Context) error { var m map[string]int; m["x"]++; return nil },
	} {
		t.Run(name, func(t *testing.T) {
			g := newGroup(context.Background())
			stopped := make(chan struct{})
			g.Go("steady", func(ctx context.Context) error { <-ctx.Done(); close(stopped); return nil })
			g.Go("bad", bad)
			select {
			case <-g.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("the group did not notice the failure")
			}
			err := g.Wait()
			if err == nil || !strings.Contains(err.Error(), "bad") {
				t.Errorf("Wait = %v, want the bad part's failure", err)
			}
			select {
			case <-stopped:
			default:
				t.Error("the steady part was not stopped")
			}
		})
	}
	g := newGroup(context.Background())
	g.Go("quiet", func(context.Context) error { return nil })
	if err := g.Wait(); err != nil {
		t.Errorf("Wait = %v, want nil", err)
	}
}
