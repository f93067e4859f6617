package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, f := range []string{"node1.toml", "node2.toml", "fwpair.toml"} {
		var errb bytes.Buffer
		if code := run([]string{"-check", "-c", filepath.Join("..", "..", "etc", f)}, &errb); code != 0 {
			t.Errorf("%s: exit %d: %s", f, code, errb.String())
		}
	}
	bad := filepath.Join(t.TempDir(), "broken.toml")
	os.WriteFile(bad, []byte("[node]\nname = \"fw1\"\n\n[[vrrp.instance]]\ninterface = \"eth0\"\nvrid = 51\npriority = 300\nvips = [\"192.168.0.100/24\"]\n"), 0o600)
	var errb bytes.Buffer
	if code := run([]string{"-check", "-c", bad}, &errb); code != 1 {
		t.Fatalf("broken file: exit %d", code)
	}
	want := bad + ":7: vrrp.instance[0].priority: 300 is outside 1..255"
	if got := strings.TrimSpace(errb.String()); got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	if code := run([]string{"-bogus"}, &errb); code != 2 {
		t.Errorf("bad flag: exit %d", code)
	}
}
