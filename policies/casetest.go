package policies

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Case is one policy test case: an MR and what the policy must make of it.
type Case struct {
	Name    string
	Line    int
	MR      *MergeRequest
	Tier    string   // expected tier id, "none" for no tier
	Signals []string // expected fired signals, exactly (order does not matter)
}

// Failure is a case whose result differs from what it expects.
type Failure struct {
	File string
	Case Case
	Got  Result
	Msg  string
}

func (f Failure) String() string {
	return fmt.Sprintf("%s:%d: %s: %s", f.File, f.Case.Line, f.Case.Name, f.Msg)
}

// LoadCases reads a policy test file:
//
//	cases:
//	  - name: auth change is T2
//	    mr_file: testdata/auth.json   # MR-changes JSON, relative to this file
//	    tier: T2                      # or none
//	    signals: [auth-code]
//	  - name: docs only
//	    mr: {title: "Fix typo", target_branch: main, changes: [{old_path: README.md, new_path: README.md, diff: ""}]}
//	    tier: none
//	    signals: []
//
// Mistakes are *Problems with their line, all reported at once.
func LoadCases(file string, data []byte) ([]Case, error) {
	l := &loader{file: file}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlProblem(file, err)
	}
	if len(doc.Content) == 0 {
		return nil, &Problem{File: file, Line: 1, Col: 1, Msg: "empty; want a mapping with cases"}
	}
	var cases []Case
	l.fields(doc.Content[0], "", []string{"cases"}, func(_ string, v *yaml.Node, f string) {
		l.seq(v, f, func(i int, c *yaml.Node, f string) {
			cs := Case{Line: resolve(c).Line}
			var hasTier, hasSignals bool
			l.fields(c, f, []string{"name", "mr", "mr_file", "tier", "signals"}, func(k string, v *yaml.Node, f string) {
				switch k {
				case "name":
					cs.Name = l.str(v, f)
				case "tier":
					hasTier = true
					cs.Tier = l.str(v, f)
				case "signals":
					hasSignals = true
					if n := resolve(v); n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
						cs.Signals = []string{}
					} else {
						cs.Signals = l.strs(v, f)
					}
				case "mr":
					var obj any
					if err := v.Decode(&obj); err != nil {
						l.fail(resolve(v), f, "want an MR-changes object: %v", err)
						return
					}
					raw, err := json.Marshal(jsonable(obj))
					if err != nil {
						l.fail(resolve(v), f, "want an MR-changes object: %v", err)
						return
					}
					mr, err := ParseMergeRequest("", raw)
					if err != nil {
						// Lines and columns would be those of the JSON made
						// from the YAML; the mr key is the place to look.
						ps := Problems(err)
						if len(ps) == 0 {
							ps = []*Problem{{Msg: err.Error()}}
						}
						for _, p := range ps {
							pf := f
							if p.Field != "" {
								pf = f + "." + p.Field
							}
							l.fail(resolve(v), pf, "%s", p.Msg)
						}
						return
					}
					cs.MR = mr
				case "mr_file":
					name := l.str(v, f)
					if name == "" {
						return
					}
					if !filepath.IsAbs(name) {
						name = filepath.Join(filepath.Dir(file), name)
					}
					raw, err := os.ReadFile(name)
					if err != nil {
						l.fail(resolve(v), f, "cannot read %s: %v", name, pathErr(err))
						return
					}
					mr, err := ParseMergeRequest(name, raw)
					if err != nil {
						l.fail(resolve(v), f, "%v", err)
						return
					}
					cs.MR = mr
				}
			})
			if cs.Name == "" {
				cs.Name = fmt.Sprintf("case %d", i+1)
			}
			if cs.MR == nil && !l.has(resolve(c), "mr") && !l.has(resolve(c), "mr_file") {
				l.fail(resolve(c), f, "want mr (an inline MR-changes object) or mr_file")
			}
			if !hasTier && !hasSignals {
				l.fail(resolve(c), f, "want tier and/or signals to check")
			}
			if !hasTier {
				cs.Tier = ""
			}
			if !hasSignals {
				cs.Signals = nil
			}
			cases = append(cases, cs)
		})
	})
	if root := resolve(doc.Content[0]); root.Kind == yaml.MappingNode && !l.has(root, "cases") {
		// Otherwise a file with a typo in its only key would pass with
		// nothing tested.
		l.fail(root, "cases", "missing; want a list of cases")
	}
	if err := joinProblems(l.probs); err != nil {
		return nil, err
	}
	return cases, nil
}

// Check runs the cases against p and returns the ones that fail. Signals
// that the case names but the policy does not define fail the case too.
func (p *Policy) Check(file string, cases []Case) []Failure {
	var out []Failure
	for _, c := range cases {
		if c.MR == nil {
			continue
		}
		res := p.Evaluate(c.MR)
		got := "none"
		if res.Tier != nil {
			got = res.Tier.ID
		}
		var msgs []string
		if c.Tier != "" && c.Tier != "none" && p.Tier(c.Tier) == nil {
			msgs = append(msgs, fmt.Sprintf("tier %q is not defined in the policy", c.Tier))
		} else if c.Tier != "" && c.Tier != got {
			msgs = append(msgs, fmt.Sprintf("tier = %s, want %s (score %d)", got, c.Tier, res.Score))
		}
		if c.Signals != nil {
			var fired []string
			for _, f := range res.Signals {
				fired = append(fired, f.ID)
			}
			var missing, extra []string
			for _, s := range c.Signals {
				if p.Signal(s) == nil {
					msgs = append(msgs, fmt.Sprintf("signal %q is not defined in the policy", s))
				} else if !slices.Contains(fired, s) {
					missing = append(missing, s)
				}
			}
			for _, s := range fired {
				if !slices.Contains(c.Signals, s) {
					extra = append(extra, s)
				}
			}
			if len(missing) > 0 {
				msgs = append(msgs, "signals did not fire: "+strings.Join(missing, ", "))
			}
			if len(extra) > 0 {
				msgs = append(msgs, "signals fired that the case does not expect: "+strings.Join(extra, ", "))
			}
		}
		if len(msgs) > 0 {
			out = append(out, Failure{File: file, Case: c, Got: res, Msg: strings.Join(msgs, "; ")})
		}
	}
	return out
}

// jsonable converts what yaml.v3 decodes into something encoding/json takes
// (map[string]any keys; yaml may produce map[any]any for odd keys).
func jsonable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = jsonable(e)
		}
		return x
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = jsonable(e)
		}
		return x
	}
	return v
}
