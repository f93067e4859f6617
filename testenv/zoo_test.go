package testenv

import (
	"strings"
	"testing"
)

// TestPrivilegedTrafficZoo is issue #10's traffic zoo (RunZoo): with the
// NAT gateway ruleset (etc/fwpair-nat.nft: strict forwarding, tcp_loose=0,
// masquerade to the outside VIP, a port forward from the outside VIP to an
// inside host, the ftp helper) and the firewalls' conntrack timeouts
// shortened in their namespaces (ZooTimeouts: UDP stream 10 s, TCP
// established 20 s, ICMP 10 s), one of each kind of connection runs
// through the pair, older than its timeout before the first failover:
// TCP from the inside, TCP through the port forward, idle TCP, a UDP flow
// where only the outside talks, ICMP echo, and IPv6 TCP (compared table
// to table: no IPv6 VIPs yet). Then crash, failback, cable pull, failback,
// graceful stop: every connection must survive every failover with no
// reset and no invalid drop on either firewall, in both modes. FTP
// (passive and active, one crash, both modes) is TestPrivilegedFTPFailover,
// kept apart so the zoo's run time does not grow.
func TestPrivilegedTrafficZoo(t *testing.T) {
	RequirePrivileged(t)
	bin, err := Binaries(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ruleset, err := ZooRuleset()
	if err != nil {
		t.Fatal(err)
	}
	forEachSyncMode(t, func(t *testing.T, direct bool) {
		lab := NewLab(t, LabOptions{Prefix: "fwz", Ruleset: ruleset})
		rep, err := RunZoo(lab, ZooOptions{Bin: bin, Dir: t.TempDir(), DirectInject: direct, Logf: t.Logf})
		if err != nil {
			t.Fatalf("%v\ntable so far:\n%s", err, rep.Table)
		}
		t.Logf("direct_inject=%v: %d zoo flows replicated before the first failover, consistency repair %s; kept per kind and failover (run %s):\n%s",
			direct, rep.Flows, rep.Repair, rep.Duration.Round(1e9), rep.Table)
		if len(rep.Problems) > 0 {
			t.Errorf("%s", strings.Join(rep.Problems, "\n"))
		}
	})
}
