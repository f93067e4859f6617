package testenv

import (
	"bytes"
	"net"
	"testing"
)

// TestPrivilegedFailoverVMAC: the client and the server ignore gratuitous
// ARP (their neighbour entries for the VIPs are pinned, permanent, after
// the election), and fw1 crashes. With use_vmac the entries hold the
// virtual router MAC, which fw2 takes over, and the 200 sessions survive;
// the control run without it keeps sending to the dead fw1 and loses
// them, which shows the test can fail.
func TestPrivilegedFailoverVMAC(t *testing.T) {
	RequirePrivileged(t)
	bin, err := Binaries(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ruleset, err := VMACRuleset()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		vmac bool
	}{{"use_vmac", true}, {"control-without-vmac", false}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var cfgs [2]string
			for i := range 2 {
				p, err := RepoFile([]string{"etc/node1.toml", "etc/node2.toml"}[i])
				if err != nil {
					t.Fatal(err)
				}
				if tc.vmac {
					if p, err = WithVMAC(p, dir, i+1); err != nil {
						t.Fatal(err)
					}
				}
				cfgs[i] = p
			}
			lab := NewLab(t, LabOptions{Prefix: "fwe", Ruleset: ruleset})
			c, err := StartCluster(lab, ClusterOptions{Bin: bin, Dir: dir, Sessions: 200, Configs: cfgs})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			cmac, err := PinNeighbor(lab.Client, "eth0", VIP0.Addr())
			if err != nil {
				t.Fatal(err)
			}
			smac, err := PinNeighbor(lab.Server, "eth0", VIP1.Addr())
			if err != nil {
				t.Fatal(err)
			}
			vmac0 := net.HardwareAddr{0, 0, 0x5e, 0, 1, 51}
			vmac1 := net.HardwareAddr{0, 0, 0x5e, 0, 1, 52}
			if got := bytes.Equal(cmac, vmac0) && bytes.Equal(smac, vmac1); got != tc.vmac {
				t.Fatalf("pinned client %v, server %v: virtual MACs %v, want %v", cmac, smac, got, tc.vmac)
			}
			res, err := c.Run(Crash, 1)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("MEASURED crash with GARP-deaf neighbours (%s): holder fw%d, gap %s, %v", tc.name, res.Holder, res.Gap, res.Verdict)
			if res.Holder != 2 || res.Split {
				t.Errorf("VIPs on fw%d (split %v), want fw2", res.Holder, res.Split)
			}
			kept := res.Verdict.Kept == res.Verdict.Total && res.Verdict.Reset == 0
			switch {
			case tc.vmac && !kept:
				t.Errorf("with use_vmac: %v\n%s", res.Verdict, c.Diagnose())
			case !tc.vmac && kept:
				t.Errorf("without use_vmac every session survived although the neighbours ignore GARP: the test cannot fail")
			}
		})
	}
}
