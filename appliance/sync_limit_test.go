package appliance

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fwpair/fwpair/ctsync"
)

// TestWarnExternalLimit: a node whose conntrack table may hold more than
// sync.external_limit says so at start, as a warning in commit mode.
func TestWarnExternalLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nf_conntrack_max")
	for _, tc := range []struct {
		max    string
		limit  int
		direct bool
		want   string
	}{
		{"1048576\n", ctsync.DefaultExternalLimit, false, "level=WARN"},
		{"1048576\n", ctsync.DefaultExternalLimit, true, "level=INFO"},
		{"262144\n", ctsync.DefaultExternalLimit, false, ""},
		{"1048576\n", 1 << 20, false, ""},
	} {
		if err := os.WriteFile(path, []byte(tc.max), 0o644); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		c := &SyncConfig{Config: ctsync.DefaultConfig()}
		c.ExternalLimit, c.DirectInject = tc.limit, tc.direct
		warnExternalLimit(c, slog.New(slog.NewTextHandler(&buf, nil)), path)
		got := buf.String()
		if tc.want == "" && got != "" || tc.want != "" && (!strings.Contains(got, tc.want) || !strings.Contains(got, "sync.external_limit")) {
			t.Errorf("max %q, limit %d, direct %v: logged %q, want %q", strings.TrimSpace(tc.max), tc.limit, tc.direct, got, tc.want)
		}
	}
}
