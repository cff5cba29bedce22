package store

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// BenchmarkInboxWrite compares, without HTTP, the inbox's group commit
// (Enqueue) with the ceiling the webhook benchmark uses (one bbolt Batch
// put per write, at bbolt's default delay and at 2ms), both fsyncing,
// from conns goroutines; each op is one write of a 350-byte body. It
// reports writes/s and writes per transaction.
//
//	go test -run XXX -bench InboxWrite -benchtime 5000x ./store/
func BenchmarkInboxWrite(b *testing.B) {
	body := make([]byte, 350)
	for _, conns := range []int{16, 64} {
		for _, kind := range []string{"bare-10ms", "enqueue", "bare-2ms", "enqueue"} {
			b.Run(fmt.Sprintf("conns=%d/%s", conns, kind), func(b *testing.B) {
				var write func(i int) error
				var txs func() uint64
				switch kind {
				case "enqueue":
					db, err := Open(b.TempDir())
					if err != nil {
						b.Fatal(err)
					}
					defer db.Close()
					write = func(i int) error {
						_, err := db.Enqueue(ctx, fmt.Sprintf("gitlab:bench-%d-%d", b.N, i), "gitlab:Merge Request Hook", body, time.Now())
						return err
					}
					txs = db.WriteTxs
				default:
					bdb, err := bolt.Open(b.TempDir()+"/bare.db", 0o600, nil)
					if err != nil {
						b.Fatal(err)
					}
					defer bdb.Close()
					bdb.MaxBatchDelay = map[string]time.Duration{"bare-10ms": 10 * time.Millisecond, "bare-2ms": 2 * time.Millisecond}[kind]
					bdb.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err })
					write = func(int) error {
						return bdb.Batch(func(tx *bolt.Tx) error {
							bk := tx.Bucket([]byte("b"))
							id, _ := bk.NextSequence()
							return bk.Put(binary.BigEndian.AppendUint64(nil, id), body)
						})
					}
					txs = func() uint64 {
						var id int
						bdb.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil })
						return uint64(id)
					}
				}
				before := txs()
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				start := time.Now()
				for range conns {
					wg.Go(func() {
						for {
							i := int(next.Add(1)) - 1
							if i >= b.N {
								return
							}
							if err := write(i); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				elapsed := time.Since(start)
				b.StopTimer()
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "writes/s")
				b.ReportMetric(float64(b.N)/float64(txs()-before), "writes/tx")
			})
		}
	}
}
