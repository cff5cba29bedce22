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

// Schema 13 (unescalated.go): what the GitLab worker remembers of open
// merge requests it classified into no tier, and the projects it has
// heard of.
var (
	// bucketUnescalated: project NUL iid (8 bytes, big endian) -> JSON
	// bot.Unescalated (head, facts digest, time). About one key per open
	// MR without an escalation; the worker removes an MR's key when it
	// sees the MR closed, merged, gone or escalated.
	bucketUnescalated = []byte("mr_unescalated")
	// bucketProjects: project path -> nothing. The projects threatgate
	// saw an MR of (one a webhook named, an MR left without an
	// escalation, an escalation's), which reconcile lists although they
	// may have no escalation (any longer). The migration fills it with
	// the projects of every escalation, merged ones included (by_mr, in
	// lower case: GitLab's paths are not case sensitive).
	bucketProjects = []byte("gitlab_projects")
)

// migrate13Unescalated adds the buckets of unescalated MRs and of
// projects seen, and keeps the project of every escalation as seen:
// one whose escalations all merged is listed too, so that an MR there
// whose webhook is lost is caught up. It reads by_mr's keys
// ("project!iid"), not the escalations.
func migrate13Unescalated(tx *bolt.Tx) error {
	if err := createBuckets(tx, bucketUnescalated, bucketProjects); err != nil {
		return err
	}
	byMR, projects := tx.Bucket(bucketByMR), tx.Bucket(bucketProjects)
	if byMR == nil {
		return nil
	}
	last := ""
	return byMR.ForEach(func(k, _ []byte) error {
		i := bytes.LastIndexByte(k, '!')
		if i <= 0 || i > maxProjectPath || string(k[:i]) == last {
			return nil
		}
		last = string(k[:i])
		if projects.Get(k[:i]) != nil {
			return nil
		}
		return projects.Put(bytes.Clone(k[:i]), []byte{})
	})
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
			return fmt.Errorf("bucket %s is missing (schema migration 13)", bucketUnescalated)
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
// write transaction; nothing to do writes nothing. The projects of put,
// and projects, are kept as seen (SawProjects) in the same transaction;
// with nothing to put or drop it is SawProjects. The worker calls it
// once per inbox pass and once per project of a reconcile pass.
func (d *DB) KeepUnescalated(ctx context.Context, put, drop []bot.Unescalated, projects ...string) error {
	if len(put) == 0 && len(drop) == 0 {
		if len(projects) > 0 {
			return d.SawProjects(ctx, projects...)
		}
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
			return fmt.Errorf("bucket %s is missing (schema migration 13)", bucketUnescalated)
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
		all := slices.Clone(projects)
		for _, u := range put {
			all = append(all, u.Project)
		}
		return putProjects(tx, all)
	})
}

// putProjects keeps projects as seen.
func putProjects(tx *bolt.Tx, projects []string) error {
	b := tx.Bucket(bucketProjects)
	if b == nil {
		return fmt.Errorf("bucket %s is missing (schema migration 13)", bucketProjects)
	}
	last := ""
	for _, p := range projects {
		if p == last || p == "" || len(p) > maxProjectPath {
			continue
		}
		last = p
		if b.Get([]byte(p)) == nil {
			if err := b.Put([]byte(p), []byte{}); err != nil {
				return err
			}
		}
	}
	return nil
}

// ForgetProject stops keeping project as seen (under any spelling of
// its case) and forgets what is remembered of its MRs, in one write;
// a project not kept writes nothing. Reconcile calls it for a project
// GitLab no longer has; a webhook or an escalation of it makes it seen
// again.
func (d *DB) ForgetProject(ctx context.Context, project string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("forget project %s: %w", project, err)
	}
	var keys [][]byte
	err := d.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketProjects)
		if b == nil {
			return fmt.Errorf("bucket %s is missing (schema migration 13)", bucketProjects)
		}
		return b.ForEach(func(k, _ []byte) error {
			if strings.EqualFold(string(k), project) {
				keys = append(keys, bytes.Clone(k))
			}
			return nil
		})
	})
	if err != nil || len(keys) == 0 {
		return err
	}
	return d.bolt.Update(func(tx *bolt.Tx) error {
		projects, unesc := tx.Bucket(bucketProjects), tx.Bucket(bucketUnescalated)
		for _, k := range keys {
			if err := projects.Delete(k); err != nil {
				return err
			}
			prefix := append(bytes.Clone(k), 0)
			c := unesc.Cursor()
			for mk, _ := c.Seek(prefix); mk != nil && bytes.HasPrefix(mk, prefix); mk, _ = c.Seek(prefix) {
				if err := c.Delete(); err != nil {
					return err
				}
			}
		}
		return nil
	})
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
			return fmt.Errorf("bucket %s is missing (schema migration 13)", bucketProjects)
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
			return fmt.Errorf("bucket %s is missing (schema migration 13)", bucketProjects)
		}
		return b.ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	return out, err
}
