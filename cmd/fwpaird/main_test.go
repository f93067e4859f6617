package main

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fwpair/fwpair/appliance"
	"github.com/fwpair/fwpair/manpage"
)

func TestCheck(t *testing.T) {
	for _, f := range []string{"node1.toml", "node2.toml", "fwpair.toml"} {
		var errb bytes.Buffer
		// -offline: the build host has none of the reference nodes' interfaces.
		if code := run([]string{"-check", "-offline", "-c", filepath.Join("..", "..", "etc", f)}, &errb); code != 0 {
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

// TestManPages: fwpaird(8) documents every flag and fwpair.toml(5) every
// configuration key (appliance's TestConfigKeysDocumented ties the key
// table to the loader).
func TestManPages(t *testing.T) {
	fs, _ := newFlags(io.Discard)
	render := func(name string) string {
		p, err := manPage(name, fs)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		if err := manpage.Write(&b, p); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	daemon := render(manFwpaird)
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.Contains(daemon, ".B \\-"+strings.ReplaceAll(f.Name, "-", "\\-")) {
			t.Errorf("fwpaird.8 does not document -%s", f.Name)
		}
	})
	config := render(manConfig)
	for _, k := range appliance.ConfigKeys {
		name := k.Key[strings.LastIndexByte(k.Key, '.')+1:]
		if !strings.Contains(config, ".B "+name+" (") {
			t.Errorf("fwpair.toml.5 does not document %s", k.Key)
		}
	}
	if _, err := manPage("nope.1", fs); err == nil {
		t.Error("unknown page accepted")
	}
}
