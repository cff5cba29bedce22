package policies

import (
	"strings"
	"testing"
)

// TestDetectedSecretsNeverShowInAnyEvidence: a secret that a redact signal
// found must not be shown by another signal that matched the same line and
// is not marked redact, and a redact signal masks from the leftmost secret
// on the line, not from its first regexp's match. Default policy.
func TestDetectedSecretsNeverShowInAnyEvidence(t *testing.T) {
	pol, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	const glpat = "glpat-Zx8vQ2mN4pL7rT1sK9wY"
	const akia = "AKIAIOSFODNN7EXAMPLE"
	for _, tt := range []struct{ name, path, line, secret string }{
		{"tls-verify-disabled shows the line", "deploy.sh", `curl -k -H "PRIVATE-TOKEN: ` + glpat + `" https://gitlab.example.com/api/v4/projects`, glpat},
		{"dependency-source shows the line", "package.json", `"lib": "git+https://oauth2:` + glpat + `@gitlab.example.com/x/lib.git"`, glpat},
		{"secret-literal masks from its first regexp's match only", "app.go", `cfg := Config{Key: "` + akia + `", password: "hunter2hunter2"}`, akia},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mr := &MergeRequest{IID: 1, PathWithNamespace: "g/p", Changes: []Change{{OldPath: tt.path, NewPath: tt.path,
				Diff: "@@ -1 +1,2 @@\n x\n+" + tt.line + "\n"}}}
			res := pol.Evaluate(mr)
			redacted := false
			for _, f := range res.Signals {
				if s := signalByID(pol, f.ID); s != nil && s.Redact {
					redacted = true
				}
			}
			if !redacted {
				t.Fatalf("no redact signal fired: %+v", res.Signals)
			}
			for _, f := range res.Signals {
				for _, e := range f.Evidence {
					if strings.Contains(e, tt.secret) {
						t.Errorf("signal %s shows the secret a redact signal detected: %s", f.ID, e)
					}
				}
			}
		})
	}
}

func signalByID(p *Policy, id string) *Signal {
	for _, s := range p.Signals {
		if s.ID == id {
			return s
		}
	}
	return nil
}
