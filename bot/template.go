package bot

import "strings"

// strideTemplate is the outline of a STRIDE threat model that chat
// surfaces offer when a threat-model artifact is asked for: fill it in
// and send it as the artifact's text, or link to a document instead.
const strideTemplate = `Assets: (what the change touches that is worth protecting)
Trust boundaries: (where data or control crosses from one trust level to another)
Spoofing: threat: … | mitigation: … | status: open/mitigated/accepted
Tampering: threat: … | mitigation: … | status: …
Repudiation: threat: … | mitigation: … | status: …
Information disclosure: threat: … | mitigation: … | status: …
Denial of service: threat: … | mitigation: … | status: …
Elevation of privilege: threat: … | mitigation: … | status: …`

// ArtifactTemplate returns the outline offered for an artifact of kind:
// the STRIDE template for "threat-model", "" for kinds that have none.
func ArtifactTemplate(kind string) string {
	if kind == "threat-model" {
		return strideTemplate
	}
	return ""
}

// IsUntouchedTemplate reports whether text is an artifact's template sent
// back as it was offered (nothing filled in), which records nothing.
func IsUntouchedTemplate(kind, text string) bool {
	t := ArtifactTemplate(kind)
	return t != "" && normalizeSpace(text) == normalizeSpace(t)
}

func normalizeSpace(s string) string { return strings.Join(strings.Fields(s), " ") }
