package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/store"
)

var _ bot.ExportStore = (*store.DB)(nil)

// export writes the evidence bundles of the escalations decided in a
// window of days (docs/EXPORT.md): it reads the store's audit log, never
// the policy. Exit 0 when written; 1 when the store or --out cannot be
// used; 2 for bad flags, every one named.
func (e *env) export(args []string) int {
	fset := flag.NewFlagSet("export", flag.ContinueOnError)
	fromFlag := fset.String("from", "", "first day of the window, YYYY-MM-DD (UTC)")
	toFlag := fset.String("to", "", "last day of the window, YYYY-MM-DD (UTC), included")
	format := fset.String("format", "json", "output format: "+strings.Join(bot.ExportFormats, ", "))
	out := fset.String("out", "", "directory to write into; created, and it must be empty unless --force")
	data := fset.String("data", "", "data directory of the store (default: data_dir of the config)")
	configPath := fset.String("config", "", "config file, for data_dir and the server's URL (default: built-in defaults)")
	force := fset.Bool("force", false, "write into a non-empty --out, replacing files of the same name")
	rest, code := e.parseFlags(fset, args)
	if code != 0 {
		return max(code, 0)
	}

	var problems []string
	if len(rest) > 0 {
		problems = append(problems, fmt.Sprintf("takes no arguments, got %q", rest[0]))
	}
	// The window is [from, the day after to): --to is included.
	from, end, windowProblems := bot.ExportWindow("--from", *fromFlag, "--to", *toFlag)
	problems = append(problems, windowProblems...)
	if !slices.Contains(bot.ExportFormats, *format) {
		problems = append(problems, fmt.Sprintf("--format: want one of %s, got %q", strings.Join(bot.ExportFormats, ", "), *format))
	}
	if *out == "" {
		problems = append(problems, "--out: want the directory to write the export into")
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(e.stderr, "threatgate: export: %s\n", p)
		}
		fmt.Fprintln(e.stderr, "Run 'threatgate help' for usage.")
		return exitUsage
	}
	if msg := checkOut(*out, *force); msg != "" {
		fmt.Fprintf(e.stderr, "threatgate: export: --out: %s\n", msg)
		return exitFinding
	}

	cfg, err := e.loadConfig(*configPath)
	if err != nil {
		return e.printProblems(err)
	}
	x, code := e.readExport(cmp.Or(*data, cfg.DataDir), cfg.PublicURL(), from, end)
	if code != exitOK {
		return code
	}
	files, err := bot.RenderExport(x, *format)
	if err != nil {
		fmt.Fprintf(e.stderr, "threatgate: export: %v\n", err)
		return exitFinding
	}
	if err := writeExport(*out, files); err != nil {
		fmt.Fprintf(e.stderr, "threatgate: export: %v\n", err)
		return exitFinding
	}
	fmt.Fprintf(e.stdout, "exported %d escalations decided from %s to %s (UTC, both included) as %s: %d files in %s\n",
		len(x.Bundles), *fromFlag, *toFlag, *format, len(files), *out)
	return exitOK
}

// checkOut says why the export cannot be written into dir, "" when it
// can: dir is missing (it will be created), or an empty directory, or
// force is set.
func checkOut(dir string, force bool) string {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return ""
	case err != nil:
		return fmt.Sprintf("cannot use %s: %v", dir, unwrapPath(err))
	case !fi.IsDir():
		return fmt.Sprintf("%s is a file; want a directory", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Sprintf("cannot read %s: %v", dir, unwrapPath(err))
	}
	if len(entries) > 0 && !force {
		return fmt.Sprintf("%s is not empty (%d entries); choose a new or empty directory, or add --force to replace files of the same name", dir, len(entries))
	}
	return ""
}

// readExport opens the store in dataDir (it must exist: export never
// creates one) and reads the export of [from, to). url is the server's
// public URL, for the hint when a running server holds the store.
func (e *env) readExport(dataDir, url string, from, to time.Time) (*bot.Export, int) {
	if _, err := os.Stat(filepath.Join(dataDir, store.FileName)); err != nil {
		fmt.Fprintf(e.stderr, "threatgate: export: --data: no threatgate store in %s (want the data directory holding %s)\n", dataDir, store.FileName)
		return nil, exitFinding
	}
	db, err := store.Open(dataDir, store.ReadOnly(), store.LockTimeout(500*time.Millisecond))
	if errors.Is(err, store.ErrInUse) {
		fmt.Fprintf(e.stderr, "threatgate: export: the data directory %s is in use by a running threatgate (bbolt allows one process); stop it, or export from a copy: GET %s/admin/backup (dashboard token) saved as %s in an empty directory, then export --data on that directory\n", dataDir, url, store.FileName)
		return nil, exitFinding
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "threatgate: export: %v\n", err)
		return nil, exitFinding
	}
	defer db.Close()
	x, err := bot.ExportOf(e.ctx, db, from, to)
	if err != nil {
		fmt.Fprintf(e.stderr, "threatgate: export: %v\n", err)
		return nil, exitFinding
	}
	return x, exitOK
}

// writeExport creates dir (0700) and writes files into it (0600), each
// replacing a file of the same name (never following a link there).
func writeExport(dir string, files []bot.ExportFile) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, unwrapPath(err))
	}
	for _, f := range files {
		p := filepath.Join(dir, f.Name)
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("replace %s: %w", p, unwrapPath(err))
		}
		w, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("write %s: %w", p, unwrapPath(err))
		}
		_, err = w.Write(f.Data)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", p, unwrapPath(err))
		}
	}
	return nil
}
