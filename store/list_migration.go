package store

import (
	"crypto/rand"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

// migrateListIndex builds the whole record's index (esc_list, list.go) for
// the escalations already stored and makes the secret that signs list
// cursors. It is self-contained: it reads only the escalations bucket and
// writes only esc_list and meta list_key, so it may run at any place in
// the migrations after schema 1.
func migrateListIndex(tx *bolt.Tx) error {
	if err := createBuckets(tx, bucketList); err != nil {
		return err
	}
	meta := tx.Bucket(bucketMeta)
	if len(meta.Get([]byte(metaListKey))) == 0 {
		secret := make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return fmt.Errorf("make the list cursor key: %w", err)
		}
		if err := meta.Put([]byte(metaListKey), secret); err != nil {
			return fmt.Errorf("store the list cursor key: %w", err)
		}
	}
	return tx.Bucket(bucketEscalations).ForEach(func(k, v []byte) error {
		var e bot.Escalation
		if err := decodeProjection(v, &e); err != nil {
			return fmt.Errorf("decode %s: %w", k, err)
		}
		if err := indexList(tx, &e); err != nil {
			return fmt.Errorf("index %s: %w", k, err)
		}
		return nil
	})
}
