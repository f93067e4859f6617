package ctsync

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/bpf"

	"github.com/fwpair/fwpair/testenv"
)

// TestOwnEventFilterProgram runs the filter in x/net/bpf's interpreter
// (the kernel's semantics for classic BPF) on messages as ctnetlink queues
// them: own NEW and UPDATE are dropped, everything else is kept whole.
func TestOwnEventFilterProgram(t *testing.T) {
	const own = 0x8000_1234
	raw, err := nlOwnEventFilter(own)
	if err != nil {
		t.Fatal(err)
	}
	ins, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("program does not disassemble")
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	msg := func(typ, flags uint16, pid uint32) []byte {
		b := make([]byte, 40)
		binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
		binary.NativeEndian.PutUint16(b[4:], typ)
		binary.NativeEndian.PutUint16(b[6:], flags)
		binary.NativeEndian.PutUint32(b[8:], 7)
		binary.NativeEndian.PutUint32(b[12:], pid)
		return b
	}
	ctNew := uint16(nfnlSubsysCtnetlink<<8 | ipctnlMsgCtNew)
	ctDel := uint16(nfnlSubsysCtnetlink<<8 | ipctnlMsgCtDelete)
	for _, tt := range []struct {
		name string
		msg  []byte
		keep bool
	}{
		{"own NEW", msg(ctNew, nlmFCreate|nlmFExcl, own), false},
		{"own UPDATE", msg(ctNew, 0, own), false},
		{"own DESTROY", msg(ctDel, 0, own), true},
		{"traffic NEW (port id 0)", msg(ctNew, nlmFCreate|nlmFExcl, 0), true},
		{"traffic UPDATE", msg(ctNew, 0, 0), true},
		{"traffic DESTROY", msg(ctDel, 0, 0), true},
		{"other writer's NEW", msg(ctNew, nlmFCreate, own+1), true},
		{"port id with the bytes swapped", msg(ctNew, nlmFCreate, 0x3412_0080), true},
		{"other subsystem, own port id", msg(2<<8|ipctnlMsgCtNew, 0, own), true},
	} {
		n, err := vm.Run(tt.msg)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		// The kernel keeps min(n, len) bytes; 0 drops the message.
		if keep := n >= len(tt.msg); keep != tt.keep || (n != 0 && !keep) {
			t.Errorf("%s: filter returned %d of %d bytes, want keep=%v", tt.name, n, len(tt.msg), tt.keep)
		}
	}
	if _, err := nlOwnEventFilter(0); err == nil {
		t.Error("a filter for port id 0 (traffic) was built")
	}
}

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
	k, ns := ktKernel(t, KernelOptions{})
	other, err := NewKernel(KernelOptions{NetNS: ns.FD(), OwnUpdateEvents: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	c := ktListen(t, k)
	c.ready(t, k)
	oc := ktListen(t, other)
	oc.ready(t, other)
	ctx := ktCtx(t, 30*time.Second)
	const d = 5 * time.Second
	is := func(typ EventType, key Key) func(*Event) bool {
		return func(e *Event) bool { return e.Type == typ && e.Flow.Key == key }
	}
	noneOf := func(key Key) {
		t.Helper()
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, e := range c.evs {
			if e.Flow.Key == key {
				t.Errorf("own %v event of %v passed the filter", e.Type, key.Tuple)
			}
		}
	}

	a := ktTCP("10.1.0.1", "10.2.0.1", 2000, 443)
	b := ktUDP("10.1.0.2", "10.2.0.1", 2001, 53)
	if _, err := k.Commit(ctx, []Flow{a}); err != nil {
		t.Fatal(err)
	}
	// The second adapter sees k's write as foreign: the stamp is k's port
	// id, not a marker of "some user space".
	if ev := oc.wait(t, d, "k's NEW at the other adapter", is(EventNew, a.Key)); ev.Own {
		t.Errorf("k's NEW marked Own at another adapter: %+v", ev)
	}
	if _, err := other.Commit(ctx, []Flow{b}); err != nil {
		t.Fatal(err)
	}
	if ev := oc.wait(t, d, "other's own NEW", is(EventNew, b.Key)); !ev.Own {
		t.Errorf("the other adapter's own NEW not stamped with its port id: %+v", ev)
	}
	if ev := c.wait(t, d, "foreign NEW", is(EventNew, b.Key)); ev.Own {
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
	c.wait(t, d, "foreign UPDATE", is(EventUpdate, b.Key))
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
	c.wait(t, d, "traffic NEW", func(e *Event) bool {
		return e.Type == EventNew && !e.Own && e.Flow.Proto == 1 && e.Flow.Dst == netip.MustParseAddr("127.0.0.1")
	})

	// Own DESTROY passes, marked Own; a foreign DESTROY too.
	if _, err := k.Delete(ctx, []Key{a.Key}); err != nil {
		t.Fatal(err)
	}
	if ev := c.wait(t, d, "own DESTROY", is(EventDestroy, a.Key)); !ev.Own {
		t.Errorf("own DESTROY not Own: %+v", ev)
	}
	if _, err := other.Delete(ctx, []Key{b.Key}); err != nil {
		t.Fatal(err)
	}
	if ev := c.wait(t, d, "foreign DESTROY", is(EventDestroy, b.Key)); ev.Own {
		t.Errorf("foreign DESTROY marked Own: %+v", ev)
	}
	if s := k.Stats(); s.Overruns != 0 || s.DecodeErrors != 0 {
		t.Errorf("Stats = %+v, want no overrun or decode error", s)
	}
}

// TestPrivilegedDirectInjectConsistency: with the own-event filter on, a
// direct-inject BACKUP records what it injects itself, so the consistency
// check's view of the peer's table (digest.go) matches the MASTER's:
// after a burst with SNAT entries, and after updates the BACKUP applies by
// replacing its NAT entries (delete + create, whose own DESTROY events
// arrive after the new state is recorded), the digests match without any
// repair. Without the recording, the BACKUP's view is empty and never
// matches.
func TestPrivilegedDirectInjectConsistency(t *testing.T) {
	testenv.RequirePrivileged(t)
	a, b := nsPair(t, 1)
	const every = 150 * time.Millisecond
	na := startNSNode(t, a, Config{Channels: unicast(1, 0), ConsistencyInterval: every}, KernelOptions{})
	nb := startNSNode(t, b, Config{Channels: unicast(1, 1), DirectInject: true, ConsistencyInterval: every}, KernelOptions{})
	na.e.SetMaster(true) // the MASTER sends the digests
	traffic := labKernel(t, a)
	flows := append(genFlows(1500, 0, 0), ktBenchFlows(500, nlProtoTCP, true)...)
	if _, err := traffic.Commit(labCtx(t, 10*time.Second), flows); err != nil {
		t.Fatal(err)
	}
	injected := func(mark uint32) func() error {
		return func() error {
			got, err := nb.k.Dump(labCtx(t, 10*time.Second))
			if err != nil {
				return err
			}
			n := 0
			for i := range got {
				if mark == 0 || got[i].Mark == mark {
					n++
				}
			}
			if n < len(flows) {
				return fmt.Errorf("%d of %d entries in b's kernel", n, len(flows))
			}
			return nil
		}
	}
	waitFor(t, 15*time.Second, "injected into b's kernel", injected(0))
	// An in-place mark change of every entry on a (written without the NAT
	// attributes, so a's NAT entries are updated, not replaced): b updates
	// its plain entries and replaces its NAT ones.
	upd := make([]Flow, len(flows))
	for i, f := range flows {
		f.SNAT, f.DNAT, f.Mark = NAT{}, NAT{}, 77
		upd[i] = f
	}
	if res, err := traffic.Commit(labCtx(t, 10*time.Second), upd); err != nil || res.Updated != len(upd) {
		t.Fatalf("update on a = %+v, %v", res, err)
	}
	waitFor(t, 15*time.Second, "updates injected", injected(77))
	// Digests taken while states are in flight may differ and trigger a
	// repair; once everything has arrived they must match, and keep
	// matching with nothing more to repair.
	settled := time.Now()
	clean := func(after time.Time) func() error {
		return func() error {
			if c := nb.e.Consistency(); !c.LastClean.After(after) {
				return fmt.Errorf("last clean %v, checks %d, repaired %d (a: %+v)", c.LastClean, c.Checks, c.Repaired, na.e.Consistency())
			}
			return nil
		}
	}
	waitFor(t, 15*time.Second, "a clean digest after the burst", clean(settled))
	before := nb.e.Consistency()
	checks := before.Checks
	waitFor(t, 15*time.Second, "three more digests", func() error {
		if c := nb.e.Consistency(); c.Checks < checks+3 {
			return fmt.Errorf("%d checks", c.Checks)
		}
		return nil
	})
	waitFor(t, 5*time.Second, "a clean digest at the end", clean(time.Now().Add(-every/2)))
	if c := nb.e.Consistency(); c.Repaired != before.Repaired {
		t.Errorf("repairs went on after the digests matched: %d, then %d", before.Repaired, c.Repaired)
	}
	if st := nb.e.Stats(); st.EventsOwn == 0 {
		t.Errorf("b stats: %+v (want the own DESTROY events of the replaces)", st)
	}
	t.Logf("b: %+v, inject failed %d", nb.e.Consistency(), nb.e.Stats().InjectFailed)
}
