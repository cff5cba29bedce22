package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/store"
)

// `threatgate backup` copies a stopped store to a file; GET /admin/backup
// streams a copy from the running server. Either copy, put in place as
// <data_dir>/threatgate.db, is the store restored.

// backupWriteTimeout bounds how long GET /admin/backup may take to send a
// copy: longer than the server's write timeout for pages, since a copy is
// the whole file.
const backupWriteTimeout = 30 * time.Minute

func (e *env) backup(args []string) int {
	flags := flag.NewFlagSet("backup", flag.ContinueOnError)
	configPath := flags.String("config", "", "config file, for data_dir and the server's URL (default: built-in defaults)")
	dataDir := flags.String("data", "", "data directory (default: data_dir of the config)")
	out := flags.String("out", "", "file to write the copy to")
	force := flags.Bool("force", false, "replace --out when it exists")
	rest, code := e.parseFlags(flags, args)
	if code != 0 {
		return max(code, 0)
	}
	if len(rest) > 0 {
		return e.usage("backup takes no arguments, got %q", rest[0])
	}
	if *out == "" {
		return e.usage("backup needs --out FILE, the file to write the copy to")
	}
	if _, err := os.Lstat(*out); err == nil && !*force {
		fmt.Fprintf(e.stderr, "threatgate: --out: %s exists; --force replaces it\n", *out)
		return exitFinding
	}
	db, code := e.openLocal(*configPath, *dataDir, func(dir, url string) string {
		return fmt.Sprintf("take the copy from it: GET %s/admin/backup (dashboard token)", url)
	})
	if db == nil {
		return code
	}
	defer db.Close()
	n, seq, hash, err := backupFile(e.ctx, db, *out, *force)
	if errors.Is(err, fs.ErrExist) {
		fmt.Fprintf(e.stderr, "threatgate: --out: %s exists; --force replaces it\n", *out)
		return exitFinding
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "threatgate: %v\n", err)
		return exitFinding
	}
	if seq == 0 {
		fmt.Fprintf(e.stdout, "wrote %s: %d bytes; its audit log is empty\n", *out, n)
	} else {
		fmt.Fprintf(e.stdout, "wrote %s: %d bytes; audit chain head: seq %d, hash %s\n", *out, n, seq, hash)
	}
	fmt.Fprintf(e.stdout, "to restore it, stop threatgate and put it in place as <data_dir>/%s\n", store.FileName)
	return exitOK
}

// backupFile writes a copy of db to path through a temporary file in the
// same directory, synced and then renamed into place, so that path never
// holds part of a copy. Without force it fails with an error matching
// fs.ErrExist when path exists, also when it appears meanwhile. It
// returns the bytes written and the copy's chain head.
func backupFile(ctx context.Context, db *store.DB, path string, force bool) (n int64, seq uint64, hash string, err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return 0, 0, "", fmt.Errorf("backup: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	n, err = db.WriteBackup(ctx, tmp, func(_ int64, s uint64, h string) error {
		seq, hash = s, h
		return nil
	})
	if err != nil {
		return 0, 0, "", err
	}
	if err = tmp.Sync(); err != nil {
		return 0, 0, "", fmt.Errorf("backup: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return 0, 0, "", fmt.Errorf("backup: %w", err)
	}
	if err = placeFile(tmp.Name(), path, force); err != nil {
		return 0, 0, "", err
	}
	// The rename is durable once the directory is synced; not every
	// platform can sync a directory, and the copy is whole either way.
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return n, seq, hash, nil
}

// placeFile moves the file tmp to path: replacing path when force, else
// failing with fs.ErrExist when path exists (a hard link refuses that
// atomically; where links are not supported, it checks, then renames).
func placeFile(tmp, path string, force bool) error {
	if force {
		return os.Rename(tmp, path)
	}
	err := os.Link(tmp, path)
	if err == nil {
		return os.Remove(tmp)
	}
	if errors.Is(err, fs.ErrExist) {
		return err
	}
	if _, serr := os.Lstat(path); serr == nil {
		return &fs.PathError{Op: "backup", Path: path, Err: fs.ErrExist}
	}
	return os.Rename(tmp, path)
}

// maxBackups is how many GET /admin/backup copies may be taken at once.
const maxBackups = 1

// backupHandler answers GET /admin/backup with a consistent copy of the
// database as it was when the request arrived, taken while the server
// goes on writing, as an attachment named after the time, with its exact
// length (a client can tell a copy cut short) and its chain head in
// X-Threatgate-Audit-Head ("SEQ HASH", an anchor).
//
// The copy is first written to a temporary file in the data directory and
// then sent from there: the copy's read transaction, which holds back any
// commit that must grow the file (store.DB.WriteBackup), then lasts as
// long as a local write of the file, however slowly the client reads. It
// needs room for one copy in the data directory while it runs; a second
// request while one runs is answered 429 with Retry-After.
func (s *server) backupHandler(w http.ResponseWriter, r *http.Request) {
	log := s.log.With(bot.LogComponent, "backup")
	// Each copy needs the whole file's room in the data directory while
	// it is sent: one at a time.
	if s.backups.Add(1) > maxBackups {
		s.backups.Add(-1)
		w.Header().Set("Retry-After", "60")
		http.Error(w, "a backup is already being taken; try again when it is done", http.StatusTooManyRequests)
		return
	}
	defer s.backups.Add(-1)
	fail := func(what string, err error) {
		log.Error(what, bot.LogErr, err)
		http.Error(w, "the backup failed; the server's log says why", http.StatusServiceUnavailable)
	}
	spool, err := os.CreateTemp(s.cfg.DataDir, ".backup-*.tmp")
	if err != nil {
		fail("backup: no room for the copy", err)
		return
	}
	defer func() {
		spool.Close()
		os.Remove(spool.Name())
	}()
	var headSeq uint64
	var headHash string
	n, err := s.db.WriteBackup(r.Context(), spool, func(_ int64, seq uint64, hash string) error {
		headSeq, headHash = seq, hash
		return nil
	})
	if err == nil {
		_, err = spool.Seek(0, io.SeekStart)
	}
	if err != nil {
		fail("backup failed", err)
		return
	}
	// The whole file may take longer to send than a page may.
	if err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(backupWriteTimeout)); err != nil {
		log.Warn("the backup keeps the server's write timeout", bot.LogErr, err)
	}
	name := "threatgate-" + s.clock.Now().UTC().Format("20060102-150405") + ".db"
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Threatgate-Audit-Head", fmt.Sprintf("%d %s", headSeq, headHash))
	sent, err := io.Copy(w, spool)
	if err != nil {
		// The client sees a body shorter than its Content-Length.
		log.Warn("backup cut short", "bytes", sent, "of", n, bot.LogErr, err)
		return
	}
	log.Info("backup sent", "bytes", n, "head_seq", headSeq)
}
