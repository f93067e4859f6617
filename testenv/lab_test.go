package testenv

import (
	"testing"
	"time"
)

// TestPrivilegedLabIsStrict proves the lab can judge a failover: moving the
// VIPs without the conntrack state breaks established sessions, moving them
// after copying the state keeps them.
func TestPrivilegedLabIsStrict(t *testing.T) {
	RequirePrivileged(t)
	for _, tc := range []struct {
		name      string
		copyState bool
	}{
		{"without-state", false},
		{"with-state", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			lab := NewLab(t, LabOptions{Prefix: "fwl"})
			res, err := MoveExperiment(lab, 4, tc.copyState, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("copied %d entries: %v", res.Copied, res.Verdict)
			if tc.copyState {
				if res.Verdict.Kept != res.Verdict.Total {
					t.Errorf("with the state copied, every session must survive: %v", res.Verdict)
				}
				if res.Copied == 0 {
					t.Errorf("nothing copied")
				}
			} else if res.Verdict.Kept != 0 {
				t.Errorf("without state the strict ruleset must break every session: %v", res.Verdict)
			}
		})
	}
}

func TestPrivilegedLabTopology(t *testing.T) {
	RequirePrivileged(t)
	lab := NewLab(t, LabOptions{Prefix: "fwl"})
	if err := lab.PlaceVIPs(1); err != nil {
		t.Fatal(err)
	}
	e0, e1, err := lab.VIPHolders()
	if err != nil {
		t.Fatal(err)
	}
	if len(e0) != 1 || e0[0] != 1 || len(e1) != 1 || e1[0] != 1 {
		t.Fatalf("VIP holders eth0=%v eth1=%v, want fw1 only", e0, e1)
	}
	ctx := t.Context()
	for _, target := range []string{"192.168.1.10", "192.168.0.100"} {
		if out, err := lab.Client.Run(ctx, "ping", "-c", "1", "-W", "2", target); err != nil {
			t.Errorf("client cannot reach %s: %v\n%s", target, err, out)
		}
	}
	if out, err := lab.FW1.Run(ctx, "ping", "-c", "1", "-W", "2", "10.0.0.2"); err != nil {
		t.Errorf("sync link down: %v\n%s", err, out)
	}
	// The server must not be able to open a connection inward.
	if _, err := lab.Server.Run(ctx, "ping", "-c", "1", "-W", "1", "192.168.0.10"); err == nil {
		t.Errorf("server reached the client: the ruleset lets new traffic in from outside")
	}
}
