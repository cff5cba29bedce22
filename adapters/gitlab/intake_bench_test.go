package gitlab

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/store"
)

// wall is the real clock, for the load benchmark.
type wall struct{}

func (wall) Now() time.Time { return time.Now() }

// bareHandler is the ceiling the intake is measured against: check the
// token, decode the JSON, one bbolt Batch put, answer. txs counts the
// file's write transactions.
func bareHandler(tb testing.TB, delay time.Duration) (h http.Handler, txs func() uint64) {
	db, err := bolt.Open(tb.TempDir()+"/bare.db", 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	db.MaxBatchDelay = delay
	tb.Cleanup(func() { db.Close() })
	db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists([]byte("b")); return err })
	txs = func() uint64 {
		var id int
		db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil })
		return uint64(id)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("X-Gitlab-Token")), []byte(testSecret)) != 1 {
			http.Error(w, "no", 401)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "bad", 400)
			return
		}
		var v map[string]any
		if err := json.Unmarshal(body, &v); err != nil {
			http.Error(w, "bad", 400)
			return
		}
		err = db.Batch(func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("b"))
			id, _ := b.NextSequence()
			return b.Put(binary.BigEndian.AppendUint64(nil, id), body)
		})
		if err != nil {
			http.Error(w, "err", 500)
			return
		}
		io.WriteString(w, "ok\n")
	}), txs
}

// cpuTime is the CPU time (user and system) this process used so far:
// the handler's and the load generator's, which is the same for both.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// postLoad posts n signed MR webhooks over conns connections and returns the
// acknowledgement latencies.
func postLoad(b *testing.B, url string, conns, n int) []time.Duration {
	tr := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var next atomic.Int64
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	at := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				body := mrHookJSON(int64(i%1000+1), "update", fmt.Sprintf("%040d", i), at)
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				req.Header.Set("X-Gitlab-Event", EventMergeRequest)
				req.Header.Set("X-Gitlab-Token", string(testSecret))
				req.Header.Set("X-Gitlab-Event-UUID", fmt.Sprintf("bench-%d-%d", b.N, i))
				start := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat[i] = time.Since(start)
				if resp.StatusCode != 200 {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		}()
	}
	wg.Wait()
	return lat
}

// TestMain runs the tests, or, started by burn as a child process (with
// THREATGATE_BURN=1), keeps one CPU busy until it is killed.
func TestMain(m *testing.M) {
	if os.Getenv("THREATGATE_BURN") == "1" {
		buf := make([]byte, 4096)
		for {
			sum := sha256.Sum256(buf)
			buf[0] = sum[0]
		}
	}
	os.Exit(m.Run())
}

// ackReps is how many times each bare, intake pair runs.
const ackReps = 3

// burn keeps the machine busy while webhooks come in: one process per CPU
// (this test binary, whose TestMain spins), each spinning on SHA-256, as
// another program hogging the machine would. stop kills them.
func burn(b *testing.B) (stop func()) {
	var procs []*exec.Cmd
	for range runtime.NumCPU() {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "THREATGATE_BURN=1")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		procs = append(procs, cmd)
	}
	return func() {
		for _, cmd := range procs {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}
}

// ackSetup is one handler of the comparison: the bare ceiling with a
// bbolt batch delay, or the intake (its group commit waits for no timer).
type ackSetup struct {
	name  string
	delay time.Duration // bare only
}

// ackSetups: each bare ceiling is followed by an intake run, so that
// every intake run has its ceiling measured just before it.
var ackSetups = []ackSetup{
	{"bare-10ms", 10 * time.Millisecond}, // bbolt's default MaxBatchDelay
	{"intake", 0},
	{"bare-2ms", 2 * time.Millisecond}, // the delay the intake used before its group commit
	{"intake", 0},
}

// BenchmarkWebhookAck measures webhook acknowledgement on loopback: the
// real intake (token check, body bound, JSON screen, durable record in
// the store's inbox by its group commit) next to the bare ceiling (token
// check, JSON decode, one bbolt Batch put) with bbolt's default batch
// delay (10ms) and with 2ms, in the same run, on a quiet machine and on
// one kept busy by a CPU burner process per CPU (burn). Run with
//
//	go test -run XXX -bench WebhookAck -benchtime 3000x ./adapters/gitlab/
//
// Each op is one webhook; events/s, p50 and p99 are reported, with
// webhooks per write transaction (per fsync pair) and the process's CPU
// time per webhook (load generator included; less sensitive to other
// processes than events/s). Both fsync.
// The sequence bare-10ms, intake, bare-2ms, intake runs ackReps times in
// a row; each intake run is compared with the bare run just before it.
func BenchmarkWebhookAck(b *testing.B) {
	for _, load := range []string{"quiet", "busy"} {
		for _, conns := range []int{16, 64} {
			for rep := range ackReps {
				for i, set := range ackSetups {
					name := set.name
					if name == "intake" {
						name = "intake-after-" + ackSetups[i-1].name
					}
					b.Run(fmt.Sprintf("%s/conns=%d/rep=%d/%s", load, conns, rep+1, name), func(b *testing.B) {
						var h http.Handler
						var txs func() uint64
						if set.name == "intake" {
							db, err := store.Open(b.TempDir())
							if err != nil {
								b.Fatal(err)
							}
							b.Cleanup(func() { db.Close() })
							h = &Intake{Secret: testSecret, Inbox: db, Clock: wall{}}
							txs = db.WriteTxs
						} else {
							h, txs = bareHandler(b, set.delay)
						}
						srv := httptest.NewServer(h)
						defer srv.Close()
						if load == "busy" {
							defer burn(b)()
						}
						b.ResetTimer()
						tx0, cpu0, start := txs(), cpuTime(), time.Now()
						lat := postLoad(b, srv.URL, conns, b.N)
						elapsed, cpu := time.Since(start), cpuTime()-cpu0
						b.StopTimer()
						b.ReportMetric(float64(b.N)/float64(txs()-tx0), "events/tx")
						b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu_us/event")
						slices.Sort(lat)
						b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
						b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
						b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
					})
				}
			}
		}
	}
}

var _ bot.Clock = wall{}
