// Package policies loads a threatgate policy and classifies merge requests
// with it: which signals fire (with the evidence that fired them), the
// score, and the tier.
//
// # Basics
//
// Load parses YAML into a yaml.Node tree and walks it, so every mistake —
// unknown keys, bad regexes and globs, bad durations, references to
// undefined groups, signals, people or artifacts, duplicate ids, tiers that
// can never match — is reported at once as a *Problem naming file, line
// and column. A loaded Policy is read-only and safe for concurrent use.
//
// Evaluate takes the JSON of GitLab's MR-changes response (MergeRequest).
// Path rules are compiled once into a glob set that matches every changed
// path (old and new, so a rename cannot escape a rule) against all rules
// at once; it agrees with doublestar.Match, which a fuzz test checks.
//
// # Caveats
//
// policies imports nothing of the project. The embedded default.yaml must
// pass its own cases in default_test.yaml.
package policies
