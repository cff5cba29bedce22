package store

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// rssFileKB is the process's resident file-backed memory, -1 when
// /proc/self/status does not say.
func rssFileKB(t *testing.T) int {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "RssFile:"); ok {
			n, err := strconv.Atoi(strings.Fields(v)[0])
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// TestTrimMappedReturnsReadPages: reading every escalation maps the
// store's pages; TrimMapped unmaps them, and what is read afterwards is
// what was read before.
func TestTrimMappedReturnsReadPages(t *testing.T) {
	if runtime.GOOS != "linux" || rssFileKB(t) < 0 {
		t.Skip("needs Linux's /proc/self/status") // TrimMapped is a no-op elsewhere
	}
	db := mustOpen(t, NoSync())
	for i := range 400 {
		c := openCommit("acme/api", int64(i+1), t0, t0.Add(time.Hour))
		c.Events[0].Data.Text = randomText(4000) // packs to no less
		mustCommit(t, db, c)
	}
	ctx := context.Background()
	if err := db.TrimMapped(ctx); err != nil {
		t.Fatal(err)
	}
	base := rssFileKB(t)
	before, err := db.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	read := rssFileKB(t)
	if err := db.TrimMapped(ctx); err != nil {
		t.Fatal(err)
	}
	trimmed := rssFileKB(t)
	t.Logf("RssFile: %d kB before reading, %d kB after, %d kB after the trim", base, read, trimmed)
	if read-base < 1024 {
		t.Fatalf("reading 400 escalations mapped only %d kB; the test cannot tell a trim", read-base)
	}
	if trimmed-base > (read-base)/4 {
		t.Errorf("after the trim RssFile is %d kB, %d kB over before reading (reading added %d kB)", trimmed, trimmed-base, read-base)
	}
	after, err := db.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("read %d escalations after the trim, %d before", len(after), len(before))
	}
	for i := range after {
		if after[i].ID != before[i].ID || after[i].Version != before[i].Version || after[i].HeadSHA != before[i].HeadSHA {
			t.Fatalf("escalation %d differs after the trim: %+v vs %+v", i, after[i], before[i])
		}
	}
}

// TestTrimMappedWhileTheFileGrows: trims run while commits grow the file
// (bbolt remaps it) and readers read and verify; every read sees what was
// committed, and the chain verifies. A trim that advised memory other
// than the current mapping would zero the heap or the old mapping here.
func TestTrimMappedWhileTheFileGrows(t *testing.T) {
	db := mustOpen(t, NoSync())
	ctx := context.Background()
	const n = 300
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, 3)
	wg.Add(2)
	go func() { // trimmer
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if err := db.TrimMapped(ctx); err != nil {
				errs <- err
				return
			}
			runtime.Gosched()
		}
	}()
	go func() { // reader
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			escs, err := db.List(ctx)
			if err != nil {
				errs <- err
				return
			}
			for _, e := range escs {
				if want := fmt.Sprintf("ESC-%d", e.MRIID); e.ID != want || e.Project != "acme/api" {
					errs <- fmt.Errorf("read %s of %s!%d, want %s of acme/api", e.ID, e.Project, e.MRIID, want)
					return
				}
			}
		}
	}()
	for i := range n {
		c := openCommit("acme/api", int64(i+1), t0, t0.Add(time.Hour))
		c.Events[0].Data.Text = randomText(4000) // grow the file faster
		if _, err := db.Commit(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if k, err := db.Verify(ctx); err != nil || k < n {
		t.Errorf("Verify = %d, %v; want at least %d, nil", k, err, n)
	}
	if e, err := db.FindEscalation(ctx, fmt.Sprintf("ESC-%d", n)); err != nil || e.MRIID != n {
		t.Errorf("FindEscalation(ESC-%d) = %+v, %v", n, e, err)
	}
}

// randomText is n hex digits that no packing shrinks much.
func randomText(n int) string {
	b := make([]byte, n/2)
	rand.Read(b)
	return hex.EncodeToString(b)
}
