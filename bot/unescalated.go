package bot

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"time"

	"github.com/threatgate/threatgate/policies"
)

// Unescalated is what threatgate remembers of an open merge request that
// it classified into no tier and that has no escalation: the head it
// classified, a digest of the other facts the policy read (TierFacts)
// and the policy it classified under (policies.Policy.Digest). Reconcile
// compares what a merge request list says of the MR with it, so that an
// MR whose tier inputs did not change since is not read again, and one
// whose webhook was lost after they changed, or which the policy in
// force never classified, is.
type Unescalated struct {
	Project string `json:"-"` // path with namespace; part of the key
	IID     int64  `json:"-"` // part of the key
	SHA     string `json:"sha"`
	Facts   string `json:"facts"`
	// Policy is the Digest of the policy it was classified under; ""
	// in records written before it was kept (unknown: any other policy).
	Policy string    `json:"policy,omitempty"`
	At     time.Time `json:"at"` // when it was classified
}

// TierFacts returns a digest of what the policy reads of mr besides its
// diff and its project: title, description, labels (in any order),
// target branch and author. The diff (paths, added lines, changed lines)
// is the head SHA's, and the project is the MR's key, so two readings of
// one MR with the same head SHA and the same TierFacts classify the same
// under one policy. A merge request list gives every one of these
// fields, so the digest of a listed MR and of the same MR read with its
// diff agree. Fields the policy does not read (draft, state, source
// branch, pipeline) are left out: changing them changes no tier.
func TierFacts(mr *policies.MergeRequest) string {
	if mr == nil {
		return ""
	}
	h := sha256.New()
	count := func(n int) {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(n))
		h.Write(b[:])
	}
	field := func(s string) {
		count(len(s))
		h.Write([]byte(s))
	}
	field(mr.Title)
	field(mr.Description)
	field(mr.TargetBranch)
	field(mr.Author.Username)
	labels := slices.Clone([]string(mr.Labels))
	slices.Sort(labels)
	count(len(labels))
	for _, l := range labels {
		field(l)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Classifiable reports whether an MR in state (as GitLab lists it) is one
// the engine classifies when it has no escalation: open (or locked,
// which GitLab shows while it merges or rebases). Closed and merged MRs
// nobody escalated are not gated.
func Classifiable(state string) bool {
	return state != "closed" && state != "merged"
}

// NeedsClassifying reports whether an open MR listed with head sha and
// facts (TierFacts of what the list says), and no escalation, must be
// read with its diff and classified under the policy whose Digest is
// policy: it was never classified (known is false), its head is unknown,
// its head or facts differ from those it was classified at (rec), or it
// was classified under another policy (a record without a policy, or a
// policy digest of "", counts as another). A push, a label, a
// retargeting, an edit of the title or description, or a new policy
// since then is caught; an MR unchanged since its classification under
// this policy is not read again.
func NeedsClassifying(rec Unescalated, known bool, sha, facts, policy string) bool {
	return !known || sha == "" || rec.SHA != sha || rec.Facts != facts ||
		policy == "" || rec.Policy != policy
}
