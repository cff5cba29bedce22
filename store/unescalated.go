package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

// Schema 12 (unescalated.go): what the GitLab worker remembers of open
// merge requests it classified into no tier, and the projects it has
// heard of.
var (
	// bucketUnescalated: project NUL iid (8 bytes, big endian) -> JSON
	// bot.Unescalated (head, facts digest, time). About one key per open
	// MR without an escalation; the worker removes an MR's key when it
	// sees the MR closed, merged, gone or escalated.
	bucketUnescalated = []byte("mr_unescalated")
	// bucketProjects: project path -> nothing. The projects threatgate
	// saw an MR of (an MR left without an escalation, or a watched
	// escalation's), which reconcile lists although they may have no
	// escalation (any longer).
	bucketProjects = []byte("gitlab_projects")
)

// migrate13Unescalated adds the buckets of unescalated MRs and of
// projects seen.
func migrate13Unescalated(tx *bolt.Tx) error {
	return createBuckets(tx, bucketUnescalated, bucketProjects)
}

// unescalatedKey is project NUL iid; the prefix project NUL reads one
// project's MRs in order of iid.
func unescalatedKey(project string, iid int64) []byte {
	k := make([]byte, 0, len(project)+9)
	k = append(k, project...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, uint64(iid))
}

func validUnescalated(project string, iid int64) error {
	if project == "" || strings.IndexByte(project, 0) >= 0 || iid <= 0 {
		return fmt.Errorf("unescalated MR %q!%d: want a project path and a positive iid", project, iid)
	}
	return nil
}

// FindUnescalated returns what is remembered of project's MRs iids, by
// iid (those never classified, or forgotten, are absent); nil iids: every
// MR of project. It reads one key per iid, or the project's range.
func (d *DB) FindUnescalated(ctx context.Context, project string, iids []int64) (map[int64]bot.Unescalated, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read unescalated MRs of %s: %w", project, err)
	}
	out := map[int64]bot.Unescalated{}
	err := d.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUnescalated)
		if b == nil {
			return fmt.Errorf("bucket %s is missing (schema migration 12)", bucketUnescalated)
		}
		decode := func(iid int64, v []byte) error {
			var u bot.Unescalated
			if err := json.Unmarshal(v, &u); err != nil {
				return fmt.Errorf("unescalated MR %s!%d: %w", project, iid, err)
			}
			u.Project, u.IID = project, iid
			out[iid] = u
			return nil
		}
		if iids != nil {
			for _, iid := range iids {
				if iid <= 0 {
					continue
				}
				if v := b.Get(unescalatedKey(project, iid)); v != nil {
					if err := decode(iid, v); err != nil {
						return err
					}
				}
			}
			return nil
		}
		prefix := append([]byte(project), 0)
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(k) != len(prefix)+8 {
				continue
			}
			if err := decode(int64(binary.BigEndian.Uint64(k[len(prefix):])), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// KeepUnescalated remembers put (each replacing what was remembered of
// its MR) and forgets drop (only Project and IID are read), in one small
// write transaction; nothing to do writes nothing. The projects of put
// are kept as seen (SawProjects) in the same transaction. The worker
// calls it once per inbox pass and once per project of a reconcile
// pass.
func (d *DB) KeepUnescalated(ctx context.Context, put, drop []bot.Unescalated) error {
	if len(put) == 0 && len(drop) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("keep unescalated MRs: %w", err)
	}
	vals := make([][]byte, len(put))
	for i, u := range put {
		if err := validUnescalated(u.Project, u.IID); err != nil {
			return err
		}
		v, err := json.Marshal(u)
		if err != nil {
			return fmt.Errorf("encode unescalated MR %s!%d: %w", u.Project, u.IID, err)
		}
		vals[i] = v
	}
	return d.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUnescalated)
		if b == nil {
			return fmt.Errorf("bucket %s is missing (schema migration 12)", bucketUnescalated)
		}
		for _, u := range drop {
			if validUnescalated(u.Project, u.IID) != nil {
				continue
			}
			if err := b.Delete(unescalatedKey(u.Project, u.IID)); err != nil {
				return err
			}
		}
		for i, u := range put {
			if err := b.Put(unescalatedKey(u.Project, u.IID), vals[i]); err != nil {
				return err
			}
		}
		return putProjects(tx, put)
	})
}

// putProjects keeps the projects of put as seen.
func putProjects(tx *bolt.Tx, put []bot.Unescalated) error {
	b := tx.Bucket(bucketProjects)
	if b == nil {
		return fmt.Errorf("bucket %s is missing (schema migration 12)", bucketProjects)
	}
	last := ""
	for _, u := range put {
		if u.Project == last || len(u.Project) > maxProjectPath {
			continue
		}
		last = u.Project
		if b.Get([]byte(u.Project)) == nil {
			if err := b.Put([]byte(u.Project), []byte{}); err != nil {
				return err
			}
		}
	}
	return nil
}

// maxProjectPath bounds a project path kept as seen (GitLab's own limit
// on a full path is lower).
const maxProjectPath = 1024

// SawProjects adds projects to the projects seen (those already there
// are skipped; nothing new writes nothing).
func (d *DB) SawProjects(ctx context.Context, projects ...string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("keep projects seen: %w", err)
	}
	var fresh []string
	err := d.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketProjects)
		if b == nil {
			return fmt.Errorf("bucket %s is missing (schema migration 12)", bucketProjects)
		}
		for _, p := range projects {
			if p == "" || len(p) > maxProjectPath {
				continue
			}
			if b.Get([]byte(p)) == nil && !slices.Contains(fresh, p) {
				fresh = append(fresh, p)
			}
		}
		return nil
	})
	if err != nil || len(fresh) == 0 {
		return err
	}
	return d.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketProjects)
		for _, p := range fresh {
			if err := b.Put([]byte(p), []byte{}); err != nil {
				return err
			}
		}
		return nil
	})
}

// ProjectsSeen returns the projects SawProjects kept, in order.
func (d *DB) ProjectsSeen(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read projects seen: %w", err)
	}
	var out []string
	err := d.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketProjects)
		if b == nil {
			return fmt.Errorf("bucket %s is missing (schema migration 12)", bucketProjects)
		}
		return b.ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	return out, err
}
