package testenv

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

// relatedCounter is the nft counter the test adds to a firewall's forward
// chain, in front of the ruleset's accept, to count RELATED packets.
const relatedCounter = "ftp_related"

func addRelatedCounter(ns *NS) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := ns.Run(ctx, "nft", fmt.Sprintf("add counter inet fwpair %s; insert rule inet fwpair forward ct state related counter name %s", relatedCounter, relatedCounter))
	return err
}

func relatedPackets(ns *NS) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := ns.Run(ctx, "nft", "list", "counter", "inet", "fwpair", relatedCounter)
	if err != nil {
		return 0, err
	}
	f := strings.Fields(out[strings.Index(out, "packets"):])
	if len(f) < 2 {
		return 0, fmt.Errorf("no packets in %q", out)
	}
	return strconv.Atoi(f[1])
}

func expectations(ns *NS) (string, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := ns.Run(ctx, "conntrack", "-L", "expect")
	return out, strings.Count(out, "helper=ftp"), err
}

// TestPrivilegedFTPFailover: a passive and an active FTP session through
// the pair (etc/fwpair-nat.nft: the ftp helper on the inside-to-outside
// control connections, masquerade to the outside VIP, strict forwarding).
// Each control connection announces its data connection (PASV / PORT)
// through fw1, whose helper creates the expectations; fw1 crashes; both
// control connections keep working through fw2, and both data
// connections, opened only after the failover, go through fw2 as RELATED
// (counted by an nft rule on fw2). The active one can only pass as
// RELATED: the server connects to the outside VIP, which nothing but the
// expectation's NAT sends to the inside client. Both modes.
func TestPrivilegedFTPFailover(t *testing.T) {
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
		start := time.Now()
		lab := NewLab(t, LabOptions{Prefix: "fwf", Ruleset: ruleset})
		c, err := StartCluster(lab, ClusterOptions{Bin: bin, Dir: t.TempDir(), Sessions: 4, DirectInject: &direct})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for _, fw := range []*NS{lab.FW1, lab.FW2} {
			if err := addRelatedCounter(fw); err != nil {
				t.Fatal(err)
			}
		}
		srv, err := StartFTPServer(lab.Server, ServerAddr.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		ctl := netip.AddrPortFrom(ServerAddr.Addr(), 21)
		pasv, err := DialFTP(lab.Client, ctl)
		if err != nil {
			t.Fatal(err)
		}
		defer pasv.Close()
		act, err := DialFTP(lab.Client, ctl)
		if err != nil {
			t.Fatal(err)
		}
		defer act.Close()
		data, err := pasv.Pasv()
		if err != nil {
			t.Fatal(err)
		}
		if err := act.Port(ClientAddr.Addr()); err != nil {
			t.Fatal(err)
		}
		if out, n, err := expectations(lab.FW1); err != nil || n != 2 {
			t.Fatalf("fw1 should hold 2 ftp expectations (%v):\n%s", err, out)
		}
		// fw2 has them: in its kernel (direct inject) or its cache.
		deadline := time.Now().Add(10 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			st, err := c.Nodes[1].Client().Stats(ctx)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			out, n, err := expectations(lab.FW2)
			if err != nil {
				t.Fatal(err)
			}
			if st.Sync["expectations_received"] >= 2 && (!direct || n == 2) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("fw2 did not get the expectations: received %d, kernel:\n%s\n%s", st.Sync["expectations_received"], out, c.Diagnose())
			}
			time.Sleep(100 * time.Millisecond)
		}

		res, err := c.Run(Crash, 1)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("crash fw1: takeover %v, sessions %v", res.Takeover.Round(time.Millisecond), res.Verdict)
		for i, f := range []*FTPClient{pasv, act} {
			if _, err := f.Cmd("NOOP", "200"); err != nil {
				t.Fatalf("control connection %d (0: passive, 1: active) lost at the failover: %v\n%s", i, err, c.Diagnose())
			}
		}
		got, err := pasv.PassiveGet(data)
		if err != nil || got != FTPPassiveData {
			t.Errorf("passive data connection after the failover: %q, %v", got, err)
		}
		afterPassive, err := relatedPackets(lab.FW2)
		if err != nil {
			t.Fatal(err)
		}
		got, err = act.ActiveGet()
		if err != nil || got != FTPActiveData {
			t.Errorf("active data connection after the failover: %q, %v", got, err)
		}
		afterActive, err := relatedPackets(lab.FW2)
		if err != nil {
			t.Fatal(err)
		}
		if afterPassive == 0 || afterActive <= afterPassive {
			t.Errorf("data connections not RELATED on fw2: %d packets after the passive one, %d after the active one", afterPassive, afterActive)
		}
		drops, err := InvalidDrops(lab.FW2)
		if err != nil {
			t.Fatal(err)
		}
		if drops != 0 {
			t.Errorf("fw2 dropped %d invalid packets", drops)
		}
		// The control connections still work after their data.
		for _, f := range []*FTPClient{pasv, act} {
			if _, err := f.Cmd("NOOP", "200"); err != nil {
				t.Errorf("control connection after the data connection: %v", err)
			}
		}
		if t.Failed() {
			t.Log(c.Diagnose())
			t.Log(c.Nodes[1].LogTail(3000))
		}
		t.Logf("related packets on fw2: %d passive, %d active; run %v", afterPassive, afterActive-afterPassive, time.Since(start).Round(100*time.Millisecond))
	})
}
