//go:build !linux

package store

// dontNeed does nothing where the mapping cannot be advised.
func dontNeed(addr, n uintptr) error { return nil }
