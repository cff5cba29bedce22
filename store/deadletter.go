package store

import bolt "go.etcd.io/bbolt"

// migrate4DeadLetters adds the bucket of items set aside.
func migrate4DeadLetters(tx *bolt.Tx) error {
	return createBuckets(tx, bucketDeadLetters)
}
