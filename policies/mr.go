package policies

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// MergeRequest is what a policy evaluates: the JSON of GitLab's "get single
// merge request changes" API response (GET
// /projects/:id/merge_requests/:iid/changes), the MR object with its
// changes array. Only the fields the policy reads are kept.
type MergeRequest struct {
	ID           int64     `json:"id,omitempty"`
	IID          int64     `json:"iid"`
	ProjectID    int64     `json:"project_id,omitempty"`
	Title        string    `json:"title"`
	Description  string    `json:"description"`
	State        string    `json:"state,omitempty"`
	SourceBranch string    `json:"source_branch,omitempty"`
	TargetBranch string    `json:"target_branch"`
	Labels       Labels    `json:"labels"`
	Author       User      `json:"author"`
	SHA          string    `json:"sha,omitempty"`
	WebURL       string    `json:"web_url,omitempty"`
	UpdatedAt    time.Time `json:"updated_at,omitzero"`
	// MergedBy and MergedAt: who merged it and when, for a merged MR, as
	// the API reports them (zero when it does not).
	MergedBy   User      `json:"merged_by,omitzero"`
	MergedAt   time.Time `json:"merged_at,omitzero"`
	References struct {
		Full string `json:"full,omitempty"`
	} `json:"references,omitzero"`
	// PathWithNamespace is not in GitLab's response; threatgate fills it in
	// when it knows the project. Project() falls back to references.full and
	// web_url.
	PathWithNamespace string   `json:"path_with_namespace,omitempty"`
	Changes           []Change `json:"changes"`
}

// User is a GitLab user as the MR API shows it.
type User struct {
	Username string `json:"username"`
	Name     string `json:"name,omitempty"`
}

// Change is one file of an MR's diff.
type Change struct {
	OldPath     string `json:"old_path"`
	NewPath     string `json:"new_path"`
	Diff        string `json:"diff"`
	NewFile     bool   `json:"new_file"`
	RenamedFile bool   `json:"renamed_file"`
	DeletedFile bool   `json:"deleted_file"`
}

// Labels decodes GitLab labels given as strings or as label objects
// ({"title": "security"}, as webhooks and with_labels_details send them).
type Labels []string

func (ls *Labels) UnmarshalJSON(b []byte) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		// The decoder would place the error by its offset in b alone, so
		// ParseMergeRequest places it by the field.
		return &fieldError{field: "labels", msg: "want a list of label names or label objects, got " + truncate(string(b), 40)}
	}
	out := make(Labels, 0, len(raw))
	for _, r := range raw {
		var s string
		if json.Unmarshal(r, &s) == nil {
			out = append(out, s)
			continue
		}
		var o struct {
			Title string `json:"title"`
			Name  string `json:"name"`
		}
		if err := json.Unmarshal(r, &o); err != nil {
			return &fieldError{field: "labels", msg: "want a label name or a label object, got " + truncate(string(r), 40)}
		}
		out = append(out, cmpOr(o.Title, o.Name))
	}
	*ls = out
	return nil
}

// fieldError is a mistake in one top-level field that the JSON decoder
// cannot place; jsonProblem finds the field's line.
type fieldError struct {
	field, msg string
}

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Project returns the MR's project path ("group/sub/proj"), from
// path_with_namespace, references.full ("group/proj!12") or web_url, in
// that order; "" when none is known.
func (mr *MergeRequest) Project() string {
	if mr.PathWithNamespace != "" {
		return mr.PathWithNamespace
	}
	if f := mr.References.Full; f != "" {
		if i := strings.LastIndexByte(f, '!'); i > 0 {
			return f[:i]
		}
	}
	if u := mr.WebURL; u != "" {
		if i := strings.Index(u, "/-/merge_requests/"); i > 0 {
			rest := u[:i]
			if j := strings.Index(rest, "://"); j >= 0 {
				rest = rest[j+3:]
			}
			if k := strings.IndexByte(rest, '/'); k >= 0 {
				return rest[k+1:]
			}
		}
	}
	return ""
}

// MaxMRSize bounds an MR-changes document.
const MaxMRSize = 256 << 20

// ParseMergeRequest decodes the JSON of GitLab's MR-changes response. A
// malformed document is a *Problem naming the line and column.
func ParseMergeRequest(file string, data []byte) (*MergeRequest, error) {
	if len(data) > MaxMRSize {
		return nil, &Problem{File: file, Msg: fmt.Sprintf("larger than %d MiB", MaxMRSize>>20)}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &Problem{File: file, Msg: "empty; want the JSON of GET /projects/:id/merge_requests/:iid/changes"}
	}
	var mr MergeRequest
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&mr); err != nil {
		return nil, jsonProblem(file, data, err)
	}
	end := dec.InputOffset()
	if _, err := dec.Token(); err != io.EOF {
		for end < int64(len(data)) && isSpace(data[end]) {
			end++
		}
		line, col := position(data, end)
		return nil, &Problem{File: file, Line: line, Col: col, Msg: "unexpected data after the merge request object"}
	}
	var probs []*Problem
	if !hasKey(data, "changes") {
		probs = append(probs, &Problem{File: file, Line: 1, Col: 1, Field: "changes", Msg: "missing; want the JSON of GET /projects/:id/merge_requests/:iid/changes (the MR object with its changes array)"})
	}
	for i, c := range mr.Changes {
		if c.OldPath == "" && c.NewPath == "" {
			probs = append(probs, &Problem{File: file, Field: fmt.Sprintf("changes[%d]", i), Msg: "neither old_path nor new_path is set"})
		}
	}
	if err := joinProblems(probs); err != nil {
		return nil, err
	}
	return &mr, nil
}

// hasKey reports whether the top-level object of data, which the decoder
// has just read as one valid JSON value, has key (exactly, as a map would
// see it; the decoder also fills a field from "Changes"). It reads the
// keys up to the one it looks for and skips the values between them
// without decoding them: the MR is decoded once.
func hasKey(data []byte, key string) bool {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	i++
	for {
		i = skipSpace(data, i)
		if i >= len(data) || data[i] != '"' {
			return false // '}': the end of the object
		}
		end := stringEnd(data, i)
		if end < 0 {
			return false
		}
		k := data[i:end]
		if bytes.IndexByte(k, '\\') < 0 {
			if string(k[1:len(k)-1]) == key {
				return true
			}
		} else {
			var s string // escaped: as the map would unescape it
			if json.Unmarshal(k, &s) == nil && s == key {
				return true
			}
		}
		i = skipSpace(data, end)
		if i >= len(data) || data[i] != ':' {
			return false
		}
		if i = skipValue(data, skipSpace(data, i+1)); i < 0 {
			return false
		}
		i = skipSpace(data, i)
		if i >= len(data) || data[i] != ',' {
			return false
		}
		i++
	}
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && isSpace(data[i]) {
		i++
	}
	return i
}

// stringEnd returns the index after the JSON string that starts at
// data[i] (a '"'), or -1.
func stringEnd(data []byte, i int) int {
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// skipValue returns the index after the JSON value that starts at data[i],
// or -1.
func skipValue(data []byte, i int) int {
	if i >= len(data) {
		return -1
	}
	switch data[i] {
	case '"':
		return stringEnd(data, i)
	case '{', '[':
		depth := 0
		for i < len(data) {
			switch data[i] {
			case '"':
				if i = stringEnd(data, i); i < 0 {
					return -1
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	}
	for i < len(data) && !isSpace(data[i]) && data[i] != ',' && data[i] != '}' && data[i] != ']' {
		i++ // a number, true, false or null
	}
	return i
}

func jsonProblem(file string, data []byte, err error) *Problem {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	var fe *fieldError
	var pe *time.ParseError
	switch {
	case errors.As(err, &fe):
		line, col := position(data, valueOffset(data, fe.field))
		return &Problem{File: file, Line: line, Col: col, Field: fe.field, Msg: fe.msg}
	case errors.As(err, &pe), strings.HasPrefix(err.Error(), "Time.UnmarshalJSON"):
		// updated_at is the only time the MR keeps.
		off := valueOffset(data, "updated_at")
		line, col := position(data, off)
		got := "something else"
		if pe != nil {
			got = strconv.Quote(pe.Value)
		} else if off < int64(len(data)) {
			got = "a JSON " + jsonKind(data[off])
		}
		return &Problem{File: file, Line: line, Col: col, Field: "updated_at", Msg: "want a time such as 2026-01-02T15:04:05Z, got " + got}
	case errors.As(err, &se):
		// Offset counts the bad byte itself.
		line, col := position(data, se.Offset-1)
		return &Problem{File: file, Line: line, Col: col, Msg: "not valid JSON: " + se.Error()}
	case errors.As(err, &te):
		line, col := position(data, valueStart(data, te.Offset))
		field := te.Field
		return &Problem{File: file, Line: line, Col: col, Field: field, Msg: fmt.Sprintf("want %s, got a JSON %s", jsonType(te.Type.String()), te.Value)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		line, col := position(data, int64(len(data)))
		return &Problem{File: file, Line: line, Col: col, Msg: "not valid JSON: the document ends too early"}
	}
	return &Problem{File: file, Msg: "not a merge request: " + err.Error()}
}

func jsonType(t string) string {
	switch {
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case t == "string":
		return "a string"
	case t == "bool":
		return "true or false"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "float"):
		return "a number"
	case t == "time.Time":
		return "a time such as 2026-01-02T15:04:05Z"
	}
	return "an object"
}

// valueStart returns where the value of an *json.UnmarshalTypeError
// starts. The decoder reports the offset just after a string, number or
// literal, and just after the opening bracket of an object or array.
func valueStart(data []byte, off int64) int64 {
	if off <= 0 || off > int64(len(data)) {
		return min(max(off, 0), int64(len(data)))
	}
	i := off - 1
	switch data[i] {
	case '{', '[':
		return i
	case '"':
		for j := i - 1; j >= 0; j-- {
			if data[j] != '"' {
				continue
			}
			backslashes := 0
			for k := j - 1; k >= 0 && data[k] == '\\'; k-- {
				backslashes++
			}
			if backslashes%2 == 0 {
				return j
			}
		}
		return i
	}
	for i > 0 && !strings.ContainsRune(" \t\r\n:,[", rune(data[i-1])) {
		i--
	}
	return i
}

// valueOffset returns the offset of the value of key in the top-level
// object of data, or 0 when it cannot be found.
func valueOffset(data []byte, key string) int64 {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return 0
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return 0
		}
		if k == key {
			off := dec.InputOffset()
			for off < int64(len(data)) && (isSpace(data[off]) || data[off] == ':') {
				off++
			}
			return off
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return 0
		}
	}
	return 0
}

// jsonKind names the kind of JSON value that starts with b.
func jsonKind(b byte) string {
	switch b {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

// position converts a byte offset to a 1-based line and column.
func position(data []byte, off int64) (line, col int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	if off < 0 {
		off = 0
	}
	before := data[:off]
	line = bytes.Count(before, []byte{'\n'}) + 1
	col = int(off) - bytes.LastIndexByte(before, '\n')
	return line, col
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
