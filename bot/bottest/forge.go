package bottest

import (
	"context"
	"sync"

	"github.com/threatgate/threatgate/bot"
)

// Forge is a bot.Forge that records the effects it was given. Fail, when
// set, is asked before each call; a non-nil error fails the call.
type Forge struct {
	mu   sync.Mutex
	Sent []bot.Effect
	Fail func(e bot.Effect) error
}

var _ bot.Forge = (*Forge)(nil)

func (f *Forge) do(e bot.Effect) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Fail != nil {
		if err := f.Fail(e); err != nil {
			return err
		}
	}
	f.Sent = append(f.Sent, e)
	return nil
}

// SetStatus records e.
func (f *Forge) SetStatus(_ context.Context, e bot.Effect) error { return f.do(e) }

// PostNote records e.
func (f *Forge) PostNote(_ context.Context, e bot.Effect) error { return f.do(e) }

// AddLabels records e.
func (f *Forge) AddLabels(_ context.Context, e bot.Effect) error { return f.do(e) }

// Effects returns a copy of what was delivered.
func (f *Forge) Effects() []bot.Effect {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]bot.Effect(nil), f.Sent...)
}
