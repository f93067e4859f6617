package bench

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// FWPairKeyed is fwpaird as in etc/ with authenticated sync ([sync.auth]:
// HMAC-SHA256 over every datagram): its replication runs give the CPU cost
// of the HMAC, sender and receiver, next to FWPair's.
const FWPairKeyed = "fwpair-keyed"

// Repl is a scale with only the replication bursts at 100,000 flows, one of
// each stack (BENCH_SCALE=repl): the keyed-sync cost without the failovers.
var Repl = Scale{
	Name: "repl", Flows: 100_000, Sessions: 100,
	ReplReps: 1,
	KeptWait: 8 * time.Second, SyncWait: 30 * time.Second, ReplWait: 40 * time.Second, ReplStall: 5 * time.Second,
	Budget: 5 * time.Minute,
}

// withSyncKey writes a copy of a node config with [sync.auth] and one
// shared key file (the same for both nodes, in dir).
func withSyncKey(path, dir string, n int) (string, error) {
	key := filepath.Join(dir, "sync.key")
	if _, err := os.Stat(key); err != nil {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		if err := os.WriteFile(key, []byte(hex.EncodeToString(b)+"\n"), 0o600); err != nil {
			return "", err
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	text := string(b)
	if !strings.Contains(text, "\n[[sync.link]]") {
		return "", fmt.Errorf("%s: no [[sync.link]]", path)
	}
	text = strings.Replace(text, "\n[[sync.link]]", "\n[sync.auth]\nkey_files = [\""+key+"\"]\n\n[[sync.link]]", 1)
	p := filepath.Join(dir, fmt.Sprintf("node%d-keyed.toml", n))
	return p, os.WriteFile(p, []byte(text), 0o644)
}

func hasRepl(res *Results, stack string) bool {
	for _, r := range res.Replication {
		if r.Stack == stack {
			return true
		}
	}
	return false
}
