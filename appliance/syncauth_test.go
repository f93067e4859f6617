package appliance

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fwpair/fwpair/ctsync"
)

func writeKey(t *testing.T, dir, name, text string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSyncAuthAndAcceptFromConfig(t *testing.T) {
	dir := t.TempDir()
	good := writeKey(t, dir, "k1", strings.Repeat("ab", 32)+"\n", 0o600)
	good2 := writeKey(t, dir, "k2", strings.Repeat("cd", 40), 0o400)
	open := writeKey(t, dir, "k3", strings.Repeat("ab", 32), 0o644)
	short := writeKey(t, dir, "k4", strings.Repeat("ab", 16), 0o600)
	nothex := writeKey(t, dir, "k5", strings.Repeat("zz", 32), 0o600)
	link := "[sync]\n[[sync.link]]\ninterface = \"eth2\"\nlocal = \"10.0.0.1\"\npeer = \"10.0.0.2\"\n"
	auth := func(files ...string) string {
		return link + "[sync.auth]\nkey_files = [\"" + strings.Join(files, "\", \"") + "\"]\n"
	}
	cfg, err := ParseConfig("x.toml", []byte(auth(good, good2)))
	if err != nil {
		t.Fatal(err)
	}
	if a := cfg.Sync.Auth; a == nil || len(a.Keys) != 2 || len(a.Keys[0]) != 32 || len(a.Keys[1]) != 40 {
		t.Fatalf("auth: %+v", cfg.Sync.Auth)
	}
	if got := cfg.Sync.Channels[0].AcceptFrom; len(got) != 1 || got[0] != netip.MustParseAddr("10.0.0.2") {
		t.Fatalf("accept_from default: %v", got)
	}
	for _, c := range []struct{ name, file, want string }{
		{"open mode", auth(open), "x.toml:7: sync.auth.key_files: " + open + ": mode 0644 lets group or others read the key"},
		{"short", auth(short), "sync.auth.key_files: " + short + ": 16-byte key, at least 32"},
		{"short", auth(short), "x.toml:7:"},
		{"not hex", auth(nothex), "the key is not hex"},
		{"missing", auth(filepath.Join(dir, "nope")), "no such file"},
		{"relative", auth("k1"), "k1: not an absolute path"},
		{"same key", auth(good, good), "have the same key id"},
		{"three", auth(good, good2, good), "3 files, at most 2"},
		{"none", link + "[sync.auth]\nkey_files = []\n", "x.toml:7: sync.auth.key_files: empty"},
		{"skew", auth(good) + "max_clock_skew = \"2h\"\n", "x.toml:8: sync.auth.max_clock_skew: must be between"},
		{"multicast needs accept_from", "[sync]\n[[sync.link]]\ninterface = \"eth2\"\nlocal = \"10.0.0.1\"\n", "x.toml:3: sync.link[0].interface: a multicast link needs accept_from"},
		{"accept_from own", link + "accept_from = [\"10.0.0.1\"]\n", "x.toml:6: sync.link[0].accept_from: 10.0.0.1 is this node's own address"},
		{"accept_from bad", link + "accept_from = [\"10.0.0.x\"]\n", "x.toml:6: sync.link[0].accept_from[0]: \"10.0.0.x\" is not an IP address"},
	} {
		_, err := ParseConfig("x.toml", []byte(c.file))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
}

func TestReloadSyncAuth(t *testing.T) {
	fs := newFakeSync(0)
	k1, k2 := []byte(strings.Repeat("a", 32)), []byte(strings.Repeat("b", 32))
	cur := &SyncConfig{Config: ctsync.Config{Auth: &ctsync.AuthConfig{Keys: [][]byte{k1}, MaxSkew: 1}}}
	next := &SyncConfig{Config: ctsync.Config{Auth: &ctsync.AuthConfig{Keys: [][]byte{k2, k1}, MaxSkew: 1}}}
	var applied, restart []string
	if !reloadSyncAuth(fs, cur, next, &applied, &restart) || len(applied) != 1 || len(restart) != 0 {
		t.Fatalf("rotation step: applied %v restart %v", applied, restart)
	}
	applied, restart = nil, nil
	if reloadSyncAuth(fs, cur, &SyncConfig{}, &applied, &restart) || len(restart) != 1 {
		t.Fatalf("turning auth off: applied %v restart %v", applied, restart)
	}
}
