package testenv

import (
	"testing"
)

// TestPrivilegedFailover runs the product's promise end to end with the
// real binaries: 200 established TCP sessions survive a crash, a failback
// with preemption and a graceful stop, with plain forwarding and with the
// client LAN masqueraded behind the eth1 VIP; the VIPs are never on both
// nodes once settled. The control run without sync must lose sessions,
// which shows the test can fail.
func TestPrivilegedFailover(t *testing.T) {
	RequirePrivileged(t)
	bin, err := Binaries(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		masquerade bool
		noSync     bool
		// commit runs with the external cache committed on takeover
		// instead of the default direct inject.
		commit bool
	}{
		{"plain", false, false, false},
		{"masquerade", true, false, false},
		{"masquerade-commit", true, false, true},
		{"control-without-sync", false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lab := NewLab(t, LabOptions{Prefix: "fwe", Masquerade: tc.masquerade})
			opts := ClusterOptions{Bin: bin, Dir: t.TempDir(), NoSync: tc.noSync, Sessions: 200}
			if tc.commit {
				off := false
				opts.DirectInject = &off
			}
			c, err := StartCluster(lab, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			steps := []struct {
				fault  Fault
				node   int
				holder int
			}{
				{Crash, 1, 2},
				{Restart, 1, 1},
				{Graceful, 1, 2},
			}
			if tc.noSync {
				steps = steps[:1]
			}
			for _, s := range steps {
				res, err := c.Run(s.fault, s.node)
				if err != nil {
					t.Fatalf("%s fw%d: %v", s.fault, s.node, err)
				}
				t.Logf("%s: holder fw%d, gap %s, takeover %s, %v, commit %d entries in %.3fs, VIPs after %.3fs",
					res.Name, res.Holder, res.Gap, res.Takeover, res.Verdict, res.CommitEntries, res.CommitSeconds, res.VIPsSeconds)
				if res.Split {
					t.Errorf("%s: VIPs on both nodes after settling", res.Name)
				}
				if res.Holder != s.holder {
					t.Errorf("%s: VIPs on fw%d, want fw%d", res.Name, res.Holder, s.holder)
				}
				if tc.noSync {
					if res.Verdict.Kept == res.Verdict.Total {
						t.Errorf("%s without sync kept every session: the lab cannot tell a good failover from a bad one", res.Name)
					}
					continue
				}
				if res.Verdict.Kept != res.Verdict.Total || res.Verdict.Reset != 0 {
					t.Errorf("%s: %v\n%s", res.Name, res.Verdict, c.Diagnose())
				}
				// The first takeover must commit every session from the
				// external cache. Later ones are only logged: after a
				// failback the old MASTER's external cache has been seen to
				// hold part of the table under load (the sessions survived
				// on its own leftover entries; see the closing notes).
				if tc.commit && s.fault == Crash && (res.DirectInject || res.CommitEntries < 200) {
					t.Errorf("%s: external-cache mode committed %d entries (direct inject %v)", res.Name, res.CommitEntries, res.DirectInject)
				}
			}
		})
	}
}
