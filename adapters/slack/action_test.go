package slack

import (
	"testing"

	"github.com/threatgate/threatgate/bot"
)

func TestParseAction(t *testing.T) {
	for _, tt := range []struct {
		id, value string
		want      Action
		ok        bool
	}{
		{"threatgate:approve", "ESC-7@aaa1111122223333", Action{bot.VerbApprove, "ESC-7", "aaa1111122223333"}, true},
		{"threatgate:dissent", "ESC-12", Action{bot.VerbDissent, "ESC-12", ""}, true},
		{"threatgate:reject", "ESC-7@", Action{}, false},
		{"threatgate:reject", "ESC-7@not a sha", Action{}, false},
		{"threatgate:reject", "ESC-x", Action{}, false},
		{"threatgate:reject", "", Action{}, false},
		{"threatgate:", "ESC-7", Action{}, false},
		{"other:approve", "ESC-7", Action{}, false},
	} {
		got, ok := ParseAction(tt.id, tt.value)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseAction(%q, %q) = %+v, %v; want %+v, %v", tt.id, tt.value, got, ok, tt.want, tt.ok)
		}
	}
	for _, a := range []Action{{bot.VerbApprove, "ESC-1", "0123456789abcdef0123456789abcdef01234567"}, {bot.VerbArtifact, "ESC-99", ""}} {
		if got, ok := ParseAction(a.ID(), a.Value()); !ok || got != a {
			t.Errorf("ParseAction(%q, %q) = %+v, %v; want %+v", a.ID(), a.Value(), got, ok, a)
		}
	}
	if v := (Action{Verb: bot.VerbApprove, Escalation: "ESC-1", Head: "<!here>"}).Value(); v != "ESC-1" {
		t.Errorf("Value with a head that is no commit id = %q, want %q", v, "ESC-1")
	}
}
