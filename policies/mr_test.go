package policies

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseMergeRequest(t *testing.T) {
	src := `{
  "id": 91823, "iid": 118, "project_id": 412,
  "title": "Rotate session IDs",
  "description": "Closes #231",
  "state": "opened",
  "source_branch": "ivan/rotate", "target_branch": "main",
  "labels": ["backend", {"id": 7, "title": "security::high", "color": "#d9534f"}, {"name": "from-name"}],
  "author": {"id": 57, "username": "ivan", "name": "Ivan Example"},
  "sha": "3c1e5b0a",
  "web_url": "https://gitlab.example.com/acme/identity/-/merge_requests/118",
  "updated_at": "2026-03-02T10:02:41.905Z",
  "references": {"short": "!118", "full": "acme/identity!118"},
  "changes_count": "1",
  "unknown_field": {"ignored": true},
  "changes": [{"old_path": "a.go", "new_path": "b.go", "a_mode": "100644", "b_mode": "100644",
               "diff": "@@ -1 +1 @@\n-a\n+b\n", "new_file": false, "renamed_file": true, "deleted_file": false}]
}`
	mr, err := ParseMergeRequest("mr.json", []byte(src))
	if err != nil {
		t.Fatalf("ParseMergeRequest = %v", err)
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"IID", mr.IID, int64(118)},
		{"ProjectID", mr.ProjectID, int64(412)},
		{"Title", mr.Title, "Rotate session IDs"},
		{"TargetBranch", mr.TargetBranch, "main"},
		{"Labels", []string(mr.Labels), []string{"backend", "security::high", "from-name"}},
		{"Author", mr.Author, User{Username: "ivan", Name: "Ivan Example"}},
		{"Project", mr.Project(), "acme/identity"},
		{"UpdatedAt", mr.UpdatedAt, time.Date(2026, 3, 2, 10, 2, 41, 905e6, time.UTC)},
		{"Changes", mr.Changes, []Change{{OldPath: "a.go", NewPath: "b.go", Diff: "@@ -1 +1 @@\n-a\n+b\n", RenamedFile: true}}},
	} {
		if !equal(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func equal(a, b any) bool {
	switch x := a.(type) {
	case []string:
		return slices.Equal(x, b.([]string))
	case []Change:
		return slices.Equal(x, b.([]Change))
	case time.Time:
		return x.Equal(b.(time.Time))
	}
	return a == b
}

func TestParseMergeRequestProblems(t *testing.T) {
	for _, tt := range []struct {
		name      string
		src       string
		line, col int
		field     string
		msg       string
	}{
		{"empty", "", 0, 0, "", "empty; want the JSON of GET /projects/:id/merge_requests/:iid/changes"},
		{"blank", " \n\t\n", 0, 0, "", "empty; want the JSON"},
		{"syntax error", "{\n  \"title\": \"x\",\n  \"changes\": [}\n", 3, 15, "", "not valid JSON: invalid character '}' looking for beginning of value"},
		{"missing comma", "{\"title\": \"x\"\n \"changes\": []}", 2, 2, "", "not valid JSON: invalid character '\"' after object key:value pair"},
		{"ends too early", "{\n  \"changes\": [\n", 3, 1, "", "not valid JSON: the document ends too early"},
		{"wrong type", "{\n  \"title\": 12,\n  \"changes\": []\n}", 2, 12, "title", "want a string, got a JSON number"},
		{"wrong type in a change", "{\"changes\": [\n  {\"old_path\": \"a\", \"new_file\": \"yes\"}]}", 2, 33, "changes.new_file", "want true or false, got a JSON string"},
		{"escaped quotes", "{\"changes\": [{\"old_path\": \"a\\\"b\\\\\", \"deleted_file\": \"x\\\"y\"}]}", 1, 53, "changes.deleted_file", "want true or false, got a JSON string"},
		{"changes not a list", "{\"changes\": {}}", 1, 13, "changes", "want a list, got a JSON object"},
		{"not an object", "[1, 2]", 1, 1, "", "want an object, got a JSON array"},
		{"missing changes", "{\"title\": \"x\", \"iid\": 3}", 1, 1, "changes", "missing; want the JSON of GET /projects/:id/merge_requests/:iid/changes"},
		{"null", "null", 1, 1, "changes", "missing"},
		{"trailing garbage", "{\"changes\": []}\n\n  garbage", 3, 3, "", "unexpected data after the merge request object"},
		{"two objects", "{\"changes\": []} {\"changes\": []}", 1, 17, "", "unexpected data after the merge request object"},
		{"labels a string", "{\"title\": \"x\",\n \"labels\": \"security\", \"changes\": []}", 2, 12, "labels", `want a list of label names or label objects, got "security"`},
		{"label a number", "{\"title\": \"x\",\n \"labels\": [\"ok\", 7], \"changes\": []}", 2, 12, "labels", "want a label name or a label object, got 7"},
		{"bad time", "{\"updated_at\": \"yesterday\", \"changes\": []}", 1, 16, "updated_at", `want a time such as 2026-01-02T15:04:05Z, got "yesterday"`},
		{"time a number", "{\"updated_at\": 5, \"changes\": []}", 1, 16, "updated_at", "want a time such as 2026-01-02T15:04:05Z, got a JSON number"},
		{"change without paths", "{\"changes\": [{\"diff\": \"\"}]}", 0, 0, "changes[0]", "neither old_path nor new_path is set"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mr, err := ParseMergeRequest("mr.json", []byte(tt.src))
			if mr != nil {
				t.Errorf("returned an MR with a problem")
			}
			ps := Problems(err)
			if len(ps) != 1 {
				t.Fatalf("err = %v, want one Problem", err)
			}
			p := ps[0]
			if p.File != "mr.json" || p.Line != tt.line || p.Col != tt.col || p.Field != tt.field || !strings.Contains(p.Msg, tt.msg) {
				t.Errorf("problem = %s:%d:%d %q %q\nwant      mr.json:%d:%d %q containing %q", p.File, p.Line, p.Col, p.Field, p.Msg, tt.line, tt.col, tt.field, tt.msg)
			}
		})
	}
}

// TestTestdataMRs: the example MRs parse, and carry what GitLab sends
// (they are used by the CLI and the README too).
func TestTestdataMRs(t *testing.T) {
	files, err := filepath.Glob("testdata/mr/*.json")
	if err != nil || len(files) < 4 {
		t.Fatalf("testdata/mr/*.json = %q, %v; want at least 4 files", files, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		mr, err := ParseMergeRequest(f, data)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if mr.IID == 0 || mr.Title == "" || mr.TargetBranch == "" || mr.Author.Username == "" || mr.SHA == "" || len(mr.Changes) == 0 {
			t.Errorf("%s: missing fields: %+v", f, mr)
		}
		if want := mr.References.Full[:strings.LastIndexByte(mr.References.Full, '!')]; mr.Project() != want || !strings.Contains(mr.WebURL, "/"+want+"/-/merge_requests/") {
			t.Errorf("%s: Project() = %q, references.full %q, web_url %q disagree", f, mr.Project(), mr.References.Full, mr.WebURL)
		}
		for _, c := range mr.Changes {
			if c.Diff != "" && !strings.HasPrefix(c.Diff, "@@ ") {
				t.Errorf("%s: %s: diff does not start with a hunk header, as GitLab's do", f, c.NewPath)
			}
		}
	}
}
