package main

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"sync"
)

// executableDigest returns the hex SHA-256 of the running executable, ""
// when it cannot be read. bot.Engine.SetBuild takes it: the rules that
// compute the open escalations' next ticks are this binary's, and a
// restart of the same binary under the same policy need not recompute
// them (bot.TickMark). It reads the file once per process.
var executableDigest = sync.OnceValue(readExecutableDigest)

func readExecutableDigest() string {
	path, err := os.Executable()
	if err != nil {
		return ""
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}
