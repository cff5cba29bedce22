package bot

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSecretNeverPrints(t *testing.T) {
	s := Secret("glpat-supersecret")
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "token", s)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "token", s)
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %s %#v %+v", s, s, s, struct{ T Secret }{s}), buf.String()} {
		if strings.Contains(out, "supersecret") {
			t.Errorf("secret leaked: %q", out)
		}
	}
	if s.Reveal() != "glpat-supersecret" {
		t.Error("Reveal lost the value")
	}
}
