package main

import (
	"bufio"
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/threatgate/threatgate/bot"
)

// Mapped store pages (store.DB.TrimMapped): every trimEvery, when the
// process's resident file-backed memory is over trimOver, serve hands the
// store's mapped pages back to the page cache. Reads touch pages across
// the whole file over time (a random escalation page, the daily digest,
// a retick after a policy change); without this the process's resident
// size would follow the file's, not its work.
const (
	trimEvery = 5 * time.Second
	trimOver  = 64 << 20
)

// trimmer is what trimLoop needs of the store.
type trimmer interface {
	TrimMapped(ctx context.Context) error
}

// trimLoop runs trimOnce every period until ctx ends.
func trimLoop(ctx context.Context, db trimmer, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			trimOnce(ctx, db, trimOver, log)
		}
	}
}

// trimOnce trims when the resident file-backed memory is over limit bytes
// (never where /proc/self/status does not say). It reports whether it
// trimmed.
func trimOnce(ctx context.Context, db trimmer, limit int64, log *slog.Logger) bool {
	rss := residentFileBytes()
	if rss < 0 || rss <= limit {
		return false
	}
	if err := db.TrimMapped(ctx); err != nil {
		if ctx.Err() == nil {
			log.Warn("could not trim the store's mapped pages", bot.LogErr, err)
		}
		return false
	}
	log.Debug("trimmed the store's mapped pages", "rss_file_before", rss, "rss_file_after", residentFileBytes())
	return true
}

// residentFileBytes is RssFile of /proc/self/status in bytes, -1 when
// unknown.
func residentFileBytes() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "RssFile:"); ok {
			fields := strings.Fields(v)
			if len(fields) == 0 {
				return -1
			}
			kb, err := strconv.ParseInt(fields[0], 10, 64)
			if err != nil {
				return -1
			}
			return kb << 10
		}
	}
	return -1
}
