// Package yamlnode is the strict YAML walking the policy loader and the
// config loader share: every problem reported at the line and column of
// the node it is about, unknown and duplicate keys refused, merge keys
// refused. It works on yaml.Node trees (go.yaml.in/yaml/v3) and imports
// nothing of the project.
package yamlnode

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Resolve follows aliases (at most 16 deep) to the node they stand for.
func Resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 16; i++ {
		n = n.Alias
	}
	return n
}

// IsNull reports whether n holds nothing: absent, null, or an alias that
// does not resolve.
func IsNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || n.Kind == yaml.AliasNode || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// Describe names what n is, for problems: "a mapping", "a list",
// "nothing", or the quoted scalar.
func Describe(n *yaml.Node) string {
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return strconv.Quote(n.Value)
	}
	return "something else"
}

// Fail reports a problem at node n about field.
type Fail func(n *yaml.Node, field, msg string)

// Each walks the mapping n (already resolved), calling fn with each
// allowed key, its value and its field path (field + "." + key) in order
// of appearance. Merge keys, unknown keys and duplicate keys are reported
// through fail; unknown, when set, may word the problem for an unknown key
// (ok false: the default "unknown key ...; want one of ..."). n must be a
// mapping; the caller reports anything else in its own words.
func Each(n *yaml.Node, field string, allowed []string, fail Fail, unknown func(key string) (field, msg string, ok bool), fn func(key string, v *yaml.Node, f string)) {
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f := k.Value
		if field != "" {
			f = field + "." + k.Value
		}
		switch {
		case k.Value == "<<":
			fail(k, field, "merge keys (<<) are not supported; write the keys out")
		case !slices.Contains(allowed, k.Value):
			if unknown != nil {
				if uf, msg, ok := unknown(k.Value); ok {
					fail(k, uf, msg)
					continue
				}
			}
			fail(k, field, fmt.Sprintf("unknown key %q; want one of %s", k.Value, strings.Join(allowed, ", ")))
		case seen[k.Value]:
			fail(k, f, "duplicate key")
		default:
			seen[k.Value] = true
			fn(k.Value, v, f)
		}
	}
}
