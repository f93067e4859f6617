package testenv

import (
	"testing"
	"time"
)

// TestPrivilegedFailoverVRRPv3 is the crash failover of
// TestPrivilegedFailover with VRRPv3 at 50 ms adverts (real-time VRRP
// threads): the 200 sessions survive, and the traffic gap is a fraction of
// VRRPv2's 3.3 s. The gap bound, 500 ms (issue #13 aims at 250 ms), leaves
// room for a loaded CI host and still fails with v2 timing anywhere: v2's
// Skew_Time alone is 609 ms at priority 100.
func TestPrivilegedFailoverVRRPv3(t *testing.T) {
	RequirePrivileged(t)
	bin, err := Binaries(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var cfgs [2]string
	for i := range 2 {
		p, err := RepoFile([]string{"etc/node1.toml", "etc/node2.toml"}[i])
		if err != nil {
			t.Fatal(err)
		}
		if cfgs[i], err = WithVRRPv3(p, dir, i+1, 50*time.Millisecond, 50); err != nil {
			t.Fatal(err)
		}
	}
	lab := NewLab(t, LabOptions{Prefix: "fwe"})
	c, err := StartCluster(lab, ClusterOptions{Bin: bin, Dir: dir, Sessions: 200, Configs: cfgs})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Run(Crash, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("MEASURED VRRPv3 50 ms crash: holder fw%d, gap %s, takeover %s, %v",
		res.Holder, res.Gap, res.Takeover, res.Verdict)
	if res.Split || res.Holder != 2 {
		t.Errorf("VIPs on fw%d (split %v), want fw2 only", res.Holder, res.Split)
	}
	if res.Verdict.Kept != res.Verdict.Total || res.Verdict.Reset != 0 {
		t.Errorf("%v\n%s", res.Verdict, c.Diagnose())
	}
	if res.Gap > 500*time.Millisecond {
		t.Errorf("traffic gap %s after the crash, want under 500ms with 50 ms adverts", res.Gap)
	}
}
