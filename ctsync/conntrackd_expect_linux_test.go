package ctsync

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/fwpair/fwpair/ctsync/ctnetlink"
	"github.com/fwpair/fwpair/ctsync/ctnetlink/ctnetlinktest"
	"github.com/fwpair/fwpair/testenv"
	"github.com/fwpair/fwpair/testenv/refdaemons"
)

// ftpHelperLoaded registers the ftp helper in ns (an nft ct helper
// object), so conntracks can carry it and expectations can be created.
func ftpHelperLoaded(t *testing.T, ns *testenv.NS) {
	t.Helper()
	if _, err := ns.Run(labCtx(t, 10*time.Second), "nft", `add table inet fwpairftp; add ct helper inet fwpairftp ftp { type "ftp" protocol tcp; }`); err != nil {
		t.Fatal(err)
	}
}

// startExpectLabNode is startLabNode with expectation replication.
func startExpectLabNode(t *testing.T, ns *testenv.NS, local, peer netip.Addr) *labNode {
	t.Helper()
	n := &labNode{ns: ns, k: labKernel(t, ns), done: make(chan error, 1)}
	xk, err := ctnetlink.NewExpectKernel(ns.FD())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { xk.Close() })
	cfg := Config{Channels: []ChannelConfig{{Interface: "eth2", Local: local, Peer: peer, RecvBuffer: 8 << 20, SendBuffer: 8 << 20}}}
	err = ns.Do(func() error {
		var err error
		n.e, err = New(cfg, Options{Kernel: n.k, Expect: xk})
		return err
	})
	if err != nil {
		t.Fatalf("engine in %s: %v", ns.Name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() { n.done <- n.e.Run(ctx) }()
	t.Cleanup(n.stop)
	select {
	case <-n.e.Ready():
	case err := <-n.done:
		t.Fatalf("Run in %s: %v", ns.Name, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("engine in %s not ready", ns.Name)
	}
	return n
}

// expectLine finds the line of `conntrack -L expect` (or conntrackd's
// expectation dump) for an expectation to dport.
func expectLine(out string, x *Expect) string {
	return findLine(out, fmt.Sprintf("dport=%d ", x.Tuple.DstPort))
}

// TestPrivilegedConntrackdExpectations: expectations travel both ways
// between fwpair and conntrackd 1.4.7 with ExpectationSync on, and are
// committed into the kernel on either side (conntrackd -c; Engine.Commit),
// master first.
func TestPrivilegedConntrackdExpectations(t *testing.T) {
	testenv.RequirePrivileged(t)
	lab := testenv.NewLab(t, testenv.LabOptions{Prefix: "fwx"})
	ftpHelperLoaded(t, lab.FW1)
	ftpHelperLoaded(t, lab.FW2)
	ctd := startConntrackdConf(t, lab.FW2, refdaemons.ConntrackdConf{Mode: "FTFW", Local: syncAddr2, Peer: syncAddr1, ExpectationSync: true})
	n1 := startExpectLabNode(t, lab.FW1, syncAddr1, syncAddr2)

	// fwpair -> conntrackd -> kernel. Written through handles of their
	// own, so the events are not the engine's.
	k1 := labKernel(t, lab.FW1)
	x1, err := ctnetlink.NewExpectKernel(lab.FW1.FD())
	if err != nil {
		t.Fatal(err)
	}
	defer x1.Close()
	ours := ctnetlinktest.TCP("192.168.0.10", "192.168.1.20", 40200, 21)
	ours.Helper = "ftp"
	if _, err := k1.Commit(labCtx(t, 10*time.Second), []Flow{ours}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "master in the internal cache", func() error {
		if _, ok := flowMap(n1.e.Entries(CacheInternal))[ours.Key]; !ok {
			return fmt.Errorf("missing")
		}
		return nil
	})
	ourX := ctnetlinktest.FTPExpect(&ours, 50100)
	ourX.Master = ours.Tuple
	ourX.Tuple.Src, ourX.Tuple.Dst = ours.Src, ours.Dst
	if r, err := x1.CreateExpect(labCtx(t, 5*time.Second), []Expect{ourX}); err != nil || r.Created != 1 {
		t.Fatalf("create: %+v %v", r, err)
	}
	waitFor(t, 15*time.Second, "our expectation in conntrackd -e expect", func() error {
		out, err := ctd.run(t, "-e", "expect")
		if err != nil {
			return err
		}
		if expectLine(out, &ourX) == "" {
			return fmt.Errorf("not yet:\n%s", out)
		}
		return nil
	})
	// Right after `-c` returned, the kernel held no expectation (the log
	// showed only the conntrack commit); `-c expect` commits them.
	for _, args := range [][]string{{"-c"}, {"-c", "expect"}} {
		if out, err := ctd.run(t, args...); err != nil {
			t.Fatalf("conntrackd %v: %v: %s", args, err, out)
		}
	}
	waitFor(t, 5*time.Second, "our expectation in fw2's kernel", func() error {
		out, err := lab.FW2.Run(labCtx(t, 10*time.Second), "conntrack", "-L", "expect")
		if err != nil {
			return err
		}
		if l := expectLine(out, &ourX); l == "" || !strings.Contains(l, "helper=ftp") ||
			!strings.Contains(l, fmt.Sprintf("master-src=%v master-dst=%v sport=%d dport=21", ours.Src, ours.Dst, ours.SrcPort)) {
			return fmt.Errorf("conntrackd -c did not create our expectation:\n%s", out)
		}
		return nil
	})

	// conntrackd -> fwpair -> kernel.
	k2 := labKernel(t, lab.FW2)
	x2, err := ctnetlink.NewExpectKernel(lab.FW2.FD())
	if err != nil {
		t.Fatal(err)
	}
	defer x2.Close()
	theirs := ctnetlinktest.TCP("192.168.0.11", "192.168.1.21", 40201, 21)
	theirs.Helper = "ftp"
	if _, err := k2.Commit(labCtx(t, 10*time.Second), []Flow{theirs}); err != nil {
		t.Fatal(err)
	}
	theirX := ctnetlinktest.FTPExpect(&theirs, 50101)
	theirX.Tuple.Src, theirX.Tuple.Dst = theirs.Src, theirs.Dst
	waitFor(t, 15*time.Second, "conntrackd's master in our external cache", func() error {
		if _, ok := flowMap(n1.e.Entries(CacheExternal))[theirs.Key]; !ok {
			return fmt.Errorf("missing")
		}
		return nil
	})
	if r, err := x2.CreateExpect(labCtx(t, 5*time.Second), []Expect{theirX}); err != nil || r.Created != 1 {
		t.Fatalf("create on the conntrackd side: %+v %v", r, err)
	}
	// (conntrackd may also echo ours back, created in its kernel by -c.)
	waitFor(t, 15*time.Second, "conntrackd's expectation held", func() error {
		n1.e.mu.Lock()
		_, ok := n1.e.exp.held[expKey(&theirX)]
		n1.e.mu.Unlock()
		if !ok {
			return fmt.Errorf("%+v", n1.e.ExpectStats())
		}
		return nil
	})
	if _, err := n1.e.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	out, err := lab.FW1.Run(labCtx(t, 10*time.Second), "conntrack", "-L", "expect")
	if err != nil {
		t.Fatal(err)
	}
	if l := expectLine(out, &theirX); l == "" || !strings.Contains(l, "helper=ftp") {
		t.Fatalf("Commit did not create conntrackd's expectation:\n%s\n%+v", out, n1.e.ExpectStats())
	}
	if st := n1.e.Stats(); len(st.Malformed) != 0 {
		t.Errorf("rejected: %v", st.Malformed)
	}
}
