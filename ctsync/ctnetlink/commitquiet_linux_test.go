package ctnetlink_test

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	. "github.com/fwpair/fwpair/ctsync/ctnetlink"
	"github.com/fwpair/fwpair/ctsync/ctnetlink/ctnetlinktest"
	"github.com/fwpair/fwpair/testenv"
)

// TestPrivilegedCommitQuiet: CommitQuiet's entries produce no NEW event at
// the adapter's listener even with the own-event filter off (the socket is
// out of the group, so with no other listener the kernel builds none), the
// DESTROY group stays joined during it, an EventGap follows, and the NEW
// and UPDATE groups are joined again afterwards.
func TestPrivilegedCommitQuiet(t *testing.T) {
	testenv.RequirePrivileged(t)
	k, _ := ctnetlinktest.OpenKernel(t, KernelOptions{OwnUpdateEvents: true})
	c := ctnetlinktest.Listen(t, k)
	c.Ready(t, k)
	ctx := ctnetlinktest.Ctx(t, 30*time.Second)
	const d = 5 * time.Second

	flows := ctnetlinktest.BenchFlows(2000, ProtoTCP, false)
	res, err := k.CommitQuiet(ctx, flows)
	if err != nil || res.Created != len(flows) {
		t.Fatalf("CommitQuiet = %+v, %v", res, err)
	}
	c.Wait(t, d, "gap", func(e *Event) bool { return e.Type == EventGap })
	// After the gap the groups are joined again: an own NEW arrives (the
	// filter is off), and it is the only NEW so far.
	after := ctnetlinktest.UDP("10.5.0.1", "10.6.0.1", 7, 7)
	if _, err := k.Commit(ctx, []Flow{after}); err != nil {
		t.Fatal(err)
	}
	c.Wait(t, d, "NEW after the quiet commit", func(e *Event) bool { return e.Type == EventNew && e.Flow.Key == after.Key })
	for _, e := range c.Seen() {
		if e.Type == EventNew || e.Type == EventUpdate {
			t.Errorf("%v event of %v during the quiet commit", e.Type, e.Flow.Tuple)
			break
		}
	}

	// A quiet commit that replaces NAT entries: the DESTROY half arrives.
	nat := ctnetlinktest.BenchFlows(10, ProtoTCP, true)
	if _, err := k.Commit(ctx, nat); err != nil {
		t.Fatal(err)
	}
	if _, err := k.CommitQuiet(ctx, nat); err != nil {
		t.Fatal(err)
	}
	c.Wait(t, d, "DESTROY during a quiet commit", func(e *Event) bool { return e.Type == EventDestroy && e.Flow.Key == nat[0].Key })
	c.Wait(t, d, "second gap", func(e *Event) bool { return e.Type == EventGap })

	// CommitReportQuiet (the injector's backlog): the same, with the
	// per-flow report.
	more := ctnetlinktest.BenchFlows(500, ProtoUDP, false)
	for i := range more {
		more[i].Src = netip.AddrFrom4([4]byte{10, 99, byte(i >> 8), byte(i)})
	}
	res, failed, err := k.CommitReportQuiet(ctx, more)
	if err != nil || res.Created != len(more) || len(failed) != len(more) || slices.Contains(failed, true) {
		t.Fatalf("CommitReportQuiet = %+v, %v; %d reports for %d flows", res, err, len(failed), len(more))
	}
	c.Wait(t, d, "third gap", func(e *Event) bool { return e.Type == EventGap })
	for _, e := range c.Seen() {
		if (e.Type == EventNew || e.Type == EventUpdate) && e.Flow.Src == more[0].Src {
			t.Errorf("%v event of %v during CommitReportQuiet", e.Type, e.Flow.Tuple)
		}
	}
	if s := k.Stats(); s.Overruns != 0 || s.DecodeErrors != 0 {
		t.Errorf("Stats = %+v", s)
	}
}
