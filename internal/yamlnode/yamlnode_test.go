package yamlnode

import (
	"fmt"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestEach(t *testing.T) {
	var doc yaml.Node
	src := "a: 1\nb: &x 2\nzz: 3\na: 4\n<<: {c: 5}\nc: *x\nsecret: s\n"
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	var problems, seen []string
	fail := func(n *yaml.Node, field, msg string) {
		problems = append(problems, fmt.Sprintf("%d:%d %s: %s", n.Line, n.Column, field, msg))
	}
	unknown := func(key string) (string, string, bool) {
		if key == "secret" {
			return "sec.secret", "secrets come from the environment", true
		}
		return "", "", false
	}
	Each(doc.Content[0], "sec", []string{"a", "b", "c"}, fail, unknown, func(k string, v *yaml.Node, f string) {
		seen = append(seen, f+"="+Resolve(v).Value)
	})
	if want := []string{"sec.a=1", "sec.b=2", "sec.c=2"}; !slices.Equal(seen, want) {
		t.Errorf("walked %v, want %v", seen, want)
	}
	want := []string{
		`3:1 sec: unknown key "zz"; want one of a, b, c`,
		"4:1 sec.a: duplicate key",
		"5:1 sec: merge keys (<<) are not supported; write the keys out",
		"7:1 sec.secret: secrets come from the environment",
	}
	if !slices.Equal(problems, want) {
		t.Errorf("problems:\n%q\nwant\n%q", problems, want)
	}
	for n, want := range map[*yaml.Node]string{nil: "nothing", {Kind: yaml.MappingNode}: "a mapping", {Kind: yaml.SequenceNode}: "a list",
		{Kind: yaml.ScalarNode, Tag: "!!null"}: "nothing", {Kind: yaml.ScalarNode, Value: "x"}: `"x"`} {
		if got := Describe(n); got != want {
			t.Errorf("Describe = %q, want %q", got, want)
		}
	}
}
