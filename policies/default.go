package policies

import (
	_ "embed"
	"sync"
)

//go:embed default.yaml
var defaultYAML []byte

//go:embed default_test.yaml
var defaultCases []byte

var defaultPolicy = sync.OnceValues(func() (*Policy, error) { return Load(DefaultName, defaultYAML) })

// DefaultName is how problems and Policy.Source name the embedded policy.
const DefaultName = "default.yaml (embedded)"

// Default returns the embedded default policy (policies/default.yaml), the
// one threatgate uses when no policy is configured. It is loaded once.
func Default() (*Policy, error) { return defaultPolicy() }

// DefaultYAML returns the source of the embedded default policy.
func DefaultYAML() []byte { return defaultYAML }

// DefaultCases returns the source of the default policy's test cases.
func DefaultCases() []byte { return defaultCases }
