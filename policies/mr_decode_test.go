package policies

import (
	"encoding/json"
	"os"
	"testing"
)

// hasKeyByMap is how ParseMergeRequest used to find out whether the MR
// has a changes array: a second decoding of the whole document.
func hasKeyByMap(data []byte, key string) bool {
	var obj map[string]json.RawMessage
	if json.Unmarshal(data, &obj) != nil {
		return false
	}
	_, ok := obj[key]
	return ok
}

func TestHasKey(t *testing.T) {
	for _, doc := range []string{
		`{"changes": []}`,
		`{"changes": null}`,
		`{"Changes": []}`,
		`{"CHANGES": [], "title": "changes"}`,
		`{"title": "\"changes\"", "x": {"changes": []}}`,
		`{"\u0063hanges": []}`,
		`{"a": [1, {"b": "}"}, "]"], "b": -1.5e3, "c": true, "d": null, "changes": []}`,
		`{"a":"\\","changes":[]}`,
		`{"a":"\\\"changes\":"}`,
		` { "x" : 1 , "changes" : 2 } `,
		`{}`,
		`[]`,
		`null`,
		`"changes"`,
		`{"changes"`, // not valid: the decoder refuses it first; no panic here
	} {
		if !json.Valid([]byte(doc)) {
			hasKey([]byte(doc), "changes")
			continue
		}
		if got, want := hasKey([]byte(doc), "changes"), hasKeyByMap([]byte(doc), "changes"); got != want {
			t.Errorf("hasKey(%s) = %v, a map says %v", doc, got, want)
		}
	}
}

// FuzzHasKey: on every valid JSON document, hasKey agrees with decoding
// the document into a map; on any input it does not panic.
func FuzzHasKey(f *testing.F) {
	for _, name := range []string{"testdata/mr/auth-change.json", "testdata/mr/docs-only.json"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"a": [1, {"b": "}"}, "]"], "\u0063hanges": []}`))
	f.Add([]byte(`{"Changes": [], "x": "\\\"changes\""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got := hasKey(data, "changes")
		if json.Valid(data) {
			if want := hasKeyByMap(data, "changes"); got != want {
				t.Fatalf("hasKey(%q) = %v, a map says %v", data, got, want)
			}
		}
	})
}
