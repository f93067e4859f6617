package ctnetlink_test

import (
	"net/netip"
	"testing"
	"time"

	. "github.com/fwpair/fwpair/ctsync/ctnetlink"
	"github.com/fwpair/fwpair/ctsync/ctnetlink/ctnetlinktest"
	"github.com/fwpair/fwpair/testenv"
)

// TestPrivilegedEventFilter: with the default options the event socket
// does not receive the NEW and UPDATE events of the adapter's own writes,
// while traffic events (port id 0), other writers' events and every
// DESTROY, own ones included, still arrive. The events arrive in the
// kernel's order, so once a later foreign event is seen an unfiltered own
// event would already be in the list. It also shows the premise on this
// kernel: a write's events carry the writer's port id (a second adapter
// sees its own write marked Own and the first adapter's as foreign).
func TestPrivilegedEventFilter(t *testing.T) {
	testenv.RequirePrivileged(t)
	k, ns := ctnetlinktest.OpenKernel(t, KernelOptions{})
	other, err := NewKernel(KernelOptions{NetNS: ns.FD(), OwnUpdateEvents: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	c := ctnetlinktest.Listen(t, k)
	c.Ready(t, k)
	oc := ctnetlinktest.Listen(t, other)
	oc.Ready(t, other)
	ctx := ctnetlinktest.Ctx(t, 30*time.Second)
	const d = 5 * time.Second
	is := func(typ EventType, key Key) func(*Event) bool {
		return func(e *Event) bool { return e.Type == typ && e.Flow.Key == key }
	}
	noneOf := func(key Key) {
		t.Helper()
		for _, e := range c.Seen() {
			if e.Flow.Key == key {
				t.Errorf("own %v event of %v passed the filter", e.Type, key.Tuple)
			}
		}
	}

	a := ctnetlinktest.TCP("10.1.0.1", "10.2.0.1", 2000, 443)
	b := ctnetlinktest.UDP("10.1.0.2", "10.2.0.1", 2001, 53)
	if _, err := k.Commit(ctx, []Flow{a}); err != nil {
		t.Fatal(err)
	}
	// The second adapter sees k's write as foreign: the stamp is k's port
	// id, not a marker of "some user space".
	if ev := oc.Wait(t, d, "k's NEW at the other adapter", is(EventNew, a.Key)); ev.Own {
		t.Errorf("k's NEW marked Own at another adapter: %+v", ev)
	}
	if _, err := other.Commit(ctx, []Flow{b}); err != nil {
		t.Fatal(err)
	}
	if ev := oc.Wait(t, d, "other's own NEW", is(EventNew, b.Key)); !ev.Own {
		t.Errorf("the other adapter's own NEW not stamped with its port id: %+v", ev)
	}
	if ev := c.Wait(t, d, "foreign NEW", is(EventNew, b.Key)); ev.Own {
		t.Errorf("foreign NEW marked Own: %+v", ev)
	}
	noneOf(a.Key)

	// Own UPDATE (commit of an existing entry), then a foreign one.
	a.Mark = 9
	if res, err := k.Commit(ctx, []Flow{a}); err != nil || res.Updated != 1 {
		t.Fatalf("Commit existing = %+v, %v", res, err)
	}
	b.Mark = 4
	if res, err := other.Commit(ctx, []Flow{b}); err != nil || res.Updated != 1 {
		t.Fatalf("other Commit existing = %+v, %v", res, err)
	}
	c.Wait(t, d, "foreign UPDATE", is(EventUpdate, b.Key))
	noneOf(a.Key)

	// Traffic: a ping on the namespace's loopback, tracked because a
	// ruleset uses conntrack; its events carry port id 0.
	for _, args := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"nft", "add table inet fwk; add chain inet fwk out { type filter hook output priority 0; }; add rule inet fwk out ct state new counter"},
		{"ping", "-c", "1", "-W", "2", "127.0.0.1"},
	} {
		if _, err := ns.Run(ctx, args[0], args[1:]...); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	c.Wait(t, d, "traffic NEW", func(e *Event) bool {
		return e.Type == EventNew && !e.Own && e.Flow.Proto == 1 && e.Flow.Dst == netip.MustParseAddr("127.0.0.1")
	})

	// Own DESTROY passes, marked Own; a foreign DESTROY too.
	if _, err := k.Delete(ctx, []Key{a.Key}); err != nil {
		t.Fatal(err)
	}
	if ev := c.Wait(t, d, "own DESTROY", is(EventDestroy, a.Key)); !ev.Own {
		t.Errorf("own DESTROY not Own: %+v", ev)
	}
	if _, err := other.Delete(ctx, []Key{b.Key}); err != nil {
		t.Fatal(err)
	}
	if ev := c.Wait(t, d, "foreign DESTROY", is(EventDestroy, b.Key)); ev.Own {
		t.Errorf("foreign DESTROY marked Own: %+v", ev)
	}
	if s := k.Stats(); s.Overruns != 0 || s.DecodeErrors != 0 {
		t.Errorf("Stats = %+v, want no overrun or decode error", s)
	}
}
