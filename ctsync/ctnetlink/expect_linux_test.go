package ctnetlink_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	. "github.com/fwpair/fwpair/ctsync/ctnetlink"
	"github.com/fwpair/fwpair/ctsync/ctnetlink/ctnetlinktest"
	"github.com/fwpair/fwpair/testenv"
)

// TestLinuxExpect creates, observes and deletes a real expectation: the
// master is an ftp-helped conntrack committed through LinuxKernel, the
// expectation is checked with `conntrack -L expect` as the oracle.
func TestLinuxExpect(t *testing.T) {
	testenv.RequirePrivileged(t)
	k, ns := ctnetlinktest.OpenKernel(t, KernelOptions{})
	// The ftp helper must be registered for a master to carry it.
	if _, err := ns.Run(ctnetlinktest.Ctx(t, 10*time.Second), "nft", "add table inet h; add ct helper inet h ftp { type \"ftp\" protocol tcp; }"); err != nil {
		t.Fatalf("nft: %v", err)
	}
	// As fwpaird does at start: with the default 2 the kernel reports
	// events only for conntracks created while a listener was joined, and
	// the expectation listener below joins asynchronously, so the master
	// could miss it (the intermittent "no event yet" failure).
	if _, err := ns.Run(ctnetlinktest.Ctx(t, 10*time.Second), "sysctl", "-qw", "net.netfilter.nf_conntrack_events=1"); err != nil {
		t.Fatalf("sysctl: %v", err)
	}
	x, err := NewExpectKernel(ns.FD())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	evCh := make(chan ExpectEvent, 16)
	ctx := ctnetlinktest.Ctx(t, 30*time.Second)
	evDone := make(chan error, 1)
	go func() {
		evDone <- x.ExpectEvents(ctx, func(evs []ExpectEvent) {
			for _, ev := range evs {
				evCh <- ev
			}
		})
	}()

	m := ctnetlinktest.FTPMaster(1)
	m.Status = 0x18e // SEEN_REPLY|ASSURED|CONFIRMED|... as a live session
	res, err := k.Commit(ctnetlinktest.Ctx(t, 10*time.Second), []Flow{m})
	if err != nil || res.Created != 1 {
		t.Fatalf("commit master: %+v %v", res, err)
	}
	want := ctnetlinktest.FTPExpect(&m, 50001)
	want.NAT = ExpectNAT{Addr: netip.MustParseAddr("192.168.1.100"), Port: 50001, Proto: ProtoTCP, Direction: 1}
	want.Fn = "nat-follow-master"
	// The event socket joins asynchronously: retry the first create until
	// its event shows, bounded.
	var got ExpectEvent
	deadline := time.Now().Add(10 * time.Second)
	for got.Type == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no expectation NEW event")
		}
		r, err := x.CreateExpect(ctnetlinktest.Ctx(t, 5*time.Second), []Expect{want})
		if err != nil || r.Created != 1 {
			t.Fatalf("create: %+v %v", r, err)
		}
		// A retry replaces the expectation (DESTROY, then NEW): wait
		// for a NEW.
		select {
		case got = <-evCh:
			for got.Type != EventNew {
				select {
				case got = <-evCh:
				case <-time.After(2 * time.Second):
					t.Fatalf("no NEW after %+v", got)
				}
			}
		case err := <-evDone:
			t.Fatalf("ExpectEvents: %v", err)
		case <-time.After(500 * time.Millisecond):
			out, _ := ns.Run(ctnetlinktest.Ctx(t, 10*time.Second), "conntrack", "-L", "expect")
			t.Logf("no event yet; table:\n%s", out)
		}
	}
	if got.Type != EventNew || !got.Own || got.Expect.Master != want.Master || got.Expect.Tuple != want.Tuple ||
		got.Expect.Helper != "ftp" || got.Expect.NAT != want.NAT {
		t.Fatalf("event %+v, want own NEW of %+v", got, want)
	}
	out, err := ns.Run(ctnetlinktest.Ctx(t, 10*time.Second), "conntrack", "-L", "expect")
	if err != nil {
		t.Fatalf("conntrack -L expect: %v", err)
	}
	if !strings.Contains(out, "dport=50001") || !strings.Contains(out, "ftp") {
		t.Fatalf("oracle does not show the expectation:\n%s", out)
	}
	// Creating it again replaces it (EBUSY → delete, create).
	if r, err := x.CreateExpect(ctnetlinktest.Ctx(t, 5*time.Second), []Expect{want}); err != nil || r.Created != 1 {
		t.Fatalf("re-create: %+v %v", r, err)
	}
	r, err := x.DeleteExpect(ctnetlinktest.Ctx(t, 5*time.Second), []Expect{want, ctnetlinktest.FTPExpect(&m, 50999)})
	if err != nil || r.Deleted != 1 || len(r.Failed) != 0 {
		t.Fatalf("delete: %+v %v", r, err)
	}
	out, _ = ns.Run(ctnetlinktest.Ctx(t, 10*time.Second), "conntrack", "-L", "expect")
	if strings.Contains(out, "dport=50001") {
		t.Fatalf("expectation still there:\n%s", out)
	}
	// Without a helped master the kernel refuses: counted, not fatal.
	orphan := ctnetlinktest.FTPMaster(7)
	if r, err := x.CreateExpect(ctnetlinktest.Ctx(t, 5*time.Second), []Expect{ctnetlinktest.FTPExpect(&orphan, 50002)}); err != nil || len(r.Failed) != 1 {
		t.Fatalf("orphan create: %+v %v", r, err)
	}
}
