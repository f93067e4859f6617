package bench

import (
	"os"
	"strings"
	"testing"

	"github.com/fwpair/fwpair/appliance"
	"github.com/fwpair/fwpair/importer"
)

// TestImportReferenceStack converts the keepalived.conf and
// conntrackd.conf the bench writes for its reference stack and checks the
// result matches what fwpair's own node files (etc/node1.toml,
// etc/node2.toml) say for the same pair.
func TestImportReferenceStack(t *testing.T) {
	if _, err := os.Stat(ShippedScript); err != nil {
		t.Skip("conntrackd's examples are not installed (make deps installs conntrackd)")
	}
	s := &refStack{dir: t.TempDir(), conntrackd: "/usr/sbin/conntrackd"}
	for n := 1; n <= 2; n++ {
		nd, err := s.writeNode(n)
		if err != nil {
			t.Fatal(err)
		}
		res, err := importer.Import(importer.Input{Keepalived: nd.kaConf, Conntrackd: nd.ctdConf})
		if err != nil {
			t.Fatalf("fw%d: %v", n, err)
		}
		got, err := appliance.ParseConfig("imported", res.TOML)
		if err != nil {
			t.Fatal(err)
		}
		want, err := appliance.LoadConfig("../../etc/node" + string(rune('0'+n)) + ".toml")
		if err != nil {
			t.Fatal(err)
		}
		if got.Node != want.Node || got.VRRP.Group != want.VRRP.Group || len(got.VRRP.Instances) != len(want.VRRP.Instances) {
			t.Fatalf("fw%d: node/group/instances differ:\n%s", n, res.TOML)
		}
		for i, w := range want.VRRP.Instances {
			g := got.VRRP.Instances[i]
			if g.Name != w.Name || g.Interface != w.Interface || g.VRID != w.VRID || g.Priority != w.Priority ||
				g.AdvertInterval != w.AdvertInterval || g.VIPs[0] != w.VIPs[0] {
				t.Errorf("fw%d instance %d: got %+v, want %+v", n, i, g, w)
			}
		}
		gl, wl := got.Sync.Channels[0], want.Sync.Channels[0]
		if got.Sync.Mode != want.Sync.Mode || gl.Interface != wl.Interface || gl.Local != wl.Local || gl.Peer != wl.Peer || gl.Port != wl.Port {
			t.Errorf("fw%d sync: got %+v, want %+v", n, gl, wl)
		}
		// The notify scripts are conntrackd's primary-backup.sh (what
		// fwpaird does itself) and a state logger (the hook).
		if !strings.Contains(string(res.TOML), "on_transition") {
			t.Errorf("fw%d: the state notify script did not become the hook:\n%s", n, res.TOML)
		}
		for _, n := range res.Notes {
			if strings.Contains(n.Detail, "unknown to the importer") {
				t.Errorf("%s", n)
			}
		}
	}
}
