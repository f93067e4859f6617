package appliance

import (
	"strings"
	"testing"
)

// TestExpectationsConfig: expectations are replicated by default, not by
// default with a conntrackd peer (its ExpectationSync is off by default),
// either way when set, and a non-boolean is rejected with file and key.
func TestExpectationsConfig(t *testing.T) {
	for _, tc := range []struct {
		name, extra string
		want        bool
	}{
		{"default", "", true},
		{"conntrackd peer", `peer_version = "1.4.7"`, false},
		{"conntrackd peer, on", "peer_version = \"1.4.7\"\nexpectations = true", true},
		{"off", `expectations = false`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := strings.Replace(minimalSync, "[sync]\n", "[sync]\n"+tc.extra+"\n", 1)
			cfg, err := ParseConfig("test.toml", []byte(text))
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Sync.Expectations; got != tc.want {
				t.Errorf("expectations %v, want %v", got, tc.want)
			}
		})
	}
	text := strings.Replace(minimalSync, "[sync]\n", "[sync]\nexpectations = \"yes\"\n", 1)
	if _, err := ParseConfig("test.toml", []byte(text)); err == nil || !strings.Contains(err.Error(), "test.toml:") || !strings.Contains(err.Error(), "expectations") {
		t.Errorf("error %v, want test.toml:line: ... expectations ...", err)
	}
}
