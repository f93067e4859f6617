package appliance

import (
	"strings"
	"testing"

	"github.com/fwpair/fwpair/ctsync"
	"time"
)

const minimalSync = minimalVRRP + `
[sync]
[[sync.link]]
interface = "eth2"
local = "10.0.0.1"
peer = "10.0.0.2"
`

// TestConsistencyCheckConfig: the consistency check runs every 2 s between
// two fwpaird nodes, stays off the wire when peer_version says the peer
// is conntrackd, can be set either way, and bad values are rejected with
// the file, line and key.
func TestConsistencyCheckConfig(t *testing.T) {
	for _, tc := range []struct {
		name, extra string
		want        time.Duration
	}{
		{"default", "", ctsync.DefaultConsistencyInterval},
		{"conntrackd peer", `peer_version = "1.4.7"`, 0},
		{"conntrackd peer, forced on", "peer_version = \"1.4.7\"\nconsistency_check = \"5s\"", 5 * time.Second},
		{"off", `consistency_check = "0s"`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := strings.Replace(minimalSync, "[sync]\n", "[sync]\n"+tc.extra+"\n", 1)
			cfg, err := ParseConfig("test.toml", []byte(text))
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Sync.ConsistencyInterval; got != tc.want {
				t.Errorf("consistency check %v, want %v", got, tc.want)
			}
		})
	}
	for _, bad := range []string{`consistency_check = "10ms"`, `consistency_check = "-1s"`, `consistency_check = "soon"`} {
		text := strings.Replace(minimalSync, "[sync]\n", "[sync]\n"+bad+"\n", 1)
		_, err := ParseConfig("test.toml", []byte(text))
		if err == nil || !strings.Contains(err.Error(), "test.toml:") || !strings.Contains(err.Error(), "consistency_check") {
			t.Errorf("%s: error %v, want test.toml:line: sync.consistency_check: ...", bad, err)
		}
	}
}
