package ctnetlink_test

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/fwpair/fwpair/ctsync/ctnetlink"
	"github.com/fwpair/fwpair/ctsync/ctnetlink/ctnetlinktest"
	"github.com/fwpair/fwpair/testenv"
)

func TestPrivilegedCommit(t *testing.T) {
	testenv.RequirePrivileged(t)
	k, ns := ctnetlinktest.OpenKernel(t, KernelOptions{})
	flows := ctnetlinktest.CommitFlows()
	res, err := k.Commit(ctnetlinktest.Ctx(t, 10*time.Second), flows)
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if res.Created != len(flows) || res.Updated != 0 || len(res.Failed) != 0 {
		t.Fatalf("Commit = %+v, want %d created", res, len(flows))
	}

	es := ctnetlinktest.List(t, ns)
	if len(es) != len(flows) {
		t.Errorf("conntrack -L shows %d entries, want %d", len(es), len(flows))
	}
	for i := range flows {
		f := &flows[i]
		e := ctnetlinktest.Find(t, es, f)
		if f.Proto == ProtoTCP && e.State != "ESTABLISHED" {
			t.Errorf("%s: state %q, want ESTABLISHED", e.Line, e.State)
		}
		if e.Mark != strconv.Itoa(int(f.Mark)) {
			t.Errorf("%s: mark %s, want %d", e.Line, e.Mark, f.Mark)
		}
		if e.Timeout > int(f.Timeout) || e.Timeout < int(f.Timeout)-5 {
			t.Errorf("%s: timeout %d, want about %d", e.Line, e.Timeout, f.Timeout)
		}
		if f.Proto == ProtoTCP && !strings.Contains(e.Line, "[ASSURED]") {
			t.Errorf("%s: not ASSURED", e.Line)
		}
		wantReplySrc, wantReplyDst := f.Dst.String(), f.Src.String()
		wantReplySport, wantReplyDport := strconv.Itoa(int(f.DstPort)), strconv.Itoa(int(f.SrcPort))
		if f.SNAT.Addr.IsValid() {
			wantReplyDst = f.SNAT.Addr.String()
			if f.SNAT.Port != 0 {
				wantReplyDport = strconv.Itoa(int(f.SNAT.Port))
			}
		}
		if f.DNAT.Addr.IsValid() {
			wantReplySrc = f.DNAT.Addr.String()
			if f.DNAT.Port != 0 {
				wantReplySport = strconv.Itoa(int(f.DNAT.Port))
			}
		}
		if e.Reply["src"] != wantReplySrc || e.Reply["dst"] != wantReplyDst {
			t.Errorf("%s: reply %s -> %s, want %s -> %s", e.Line, e.Reply["src"], e.Reply["dst"], wantReplySrc, wantReplyDst)
		}
		if HasPorts(f.Proto) && (e.Reply["sport"] != wantReplySport || e.Reply["dport"] != wantReplyDport) {
			t.Errorf("%s: reply ports %s -> %s, want %s -> %s", e.Line, e.Reply["sport"], e.Reply["dport"], wantReplySport, wantReplyDport)
		}
	}

	// Dump round trip: what we read back is what we wrote.
	got, err := k.Dump(ctnetlinktest.Ctx(t, 10*time.Second))
	if err != nil {
		t.Fatalf("Dump: %v", err)
	}
	if len(got) != len(flows) {
		t.Fatalf("Dump returned %d flows, want %d", len(got), len(flows))
	}
	byKey := map[Key]Flow{}
	for _, f := range got {
		byKey[f.Key] = f
	}
	for _, want := range flows {
		g, ok := byKey[want.Key]
		if !ok {
			t.Errorf("Dump lacks %+v", want.Key)
			continue
		}
		if g.Mark != want.Mark || g.SNAT != want.SNAT || g.DNAT != want.DNAT ||
			g.HasProtoState != want.HasProtoState || g.ProtoState != want.ProtoState {
			t.Errorf("Dump %+v\nwant %+v", g, want)
		}
		if g.Status&(IPSConfirmed|IPSSeenReply) != IPSConfirmed|IPSSeenReply {
			t.Errorf("Dump %v: status %#x lacks CONFIRMED|SEEN_REPLY", g.Key, g.Status)
		}
		if (want.SNAT.Addr.IsValid()) != (g.Status&IPSSrcNAT != 0) || (want.DNAT.Addr.IsValid()) != (g.Status&IPSDstNAT != 0) {
			t.Errorf("Dump %v: status %#x NAT bits do not match the bindings", g.Key, g.Status)
		}
		if g.Timeout > want.Timeout || g.Timeout+5 < want.Timeout {
			t.Errorf("Dump %v: timeout %d, want about %d", g.Key, g.Timeout, want.Timeout)
		}
	}
}

func TestPrivilegedCommitExisting(t *testing.T) {
	testenv.RequirePrivileged(t)
	k, ns := ctnetlinktest.OpenKernel(t, KernelOptions{})
	ctx := ctnetlinktest.Ctx(t, 20*time.Second)
	// Two entries created by someone else: one plain, one that the
	// replicated state says is SNATed.
	if _, err := ns.Run(ctx, "conntrack", "-I", "-p", "tcp", "-s", "10.1.0.1", "-d", "10.2.0.1",
		"--sport", "1000", "--dport", "80", "--state", "SYN_SENT", "-u", "SEEN_REPLY", "-t", "50", "-m", "1"); err != nil {
		t.Fatal(err)
	}
	if _, err := ns.Run(ctx, "conntrack", "-I", "-p", "tcp", "-s", "10.1.0.2", "-d", "10.2.0.1",
		"--sport", "1001", "--dport", "80", "--state", "ESTABLISHED", "-u", "SEEN_REPLY,ASSURED", "-t", "50"); err != nil {
		t.Fatal(err)
	}
	plain := ctnetlinktest.TCP("10.1.0.1", "10.2.0.1", 1000, 80)
	plain.Mark, plain.Timeout = 99, 500
	nat := ctnetlinktest.TCP("10.1.0.2", "10.2.0.1", 1001, 80)
	nat.SNAT = NAT{Addr: netip.MustParseAddr("10.2.0.100")}
	nat.Timeout = 700
	fresh := ctnetlinktest.UDP("10.1.0.3", "10.2.0.1", 53, 53)
	res, err := k.Commit(ctx, []Flow{plain, nat, fresh})
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if res.Created != 1 || res.Updated != 2 || len(res.Failed) != 0 {
		t.Fatalf("Commit = %+v, want 1 created, 2 updated", res)
	}
	es := ctnetlinktest.List(t, ns)
	if len(es) != 3 {
		t.Fatalf("conntrack -L shows %d entries, want 3", len(es))
	}
	e := ctnetlinktest.Find(t, es, &plain)
	if e.Mark != "99" || e.State != "ESTABLISHED" || e.Timeout < 490 || !strings.Contains(e.Line, "[ASSURED]") {
		t.Errorf("updated entry %q: want mark 99, ESTABLISHED, ASSURED, timeout ~500", e.Line)
	}
	e = ctnetlinktest.Find(t, es, &nat)
	if e.Reply["dst"] != "10.2.0.100" || e.Timeout < 690 {
		t.Errorf("replaced entry %q: want reply dst 10.2.0.100, timeout ~700", e.Line)
	}

	// Committing the same state again updates everything in place.
	res, err = k.Commit(ctx, []Flow{plain, nat, fresh})
	if err != nil {
		t.Fatalf("Commit again: %v", err)
	}
	if res.Created != 0 || res.Updated != 3 || len(res.Failed) != 0 {
		t.Fatalf("Commit again = %+v, want 3 updated", res)
	}
}

func TestPrivilegedCommitInvalid(t *testing.T) {
	testenv.RequirePrivileged(t)
	k, _ := ctnetlinktest.OpenKernel(t, KernelOptions{})
	bad := ctnetlinktest.TCP("10.0.0.1", "2001:db8::1", 1, 2) // mixed families
	badICMP := ctnetlinktest.Ping("10.0.0.1", "10.0.0.2", 1)
	badICMP.ICMPType = 3 // not trackable as a query
	good := ctnetlinktest.UDP("10.0.0.1", "10.0.0.2", 1, 2)
	res, err := k.Commit(ctnetlinktest.Ctx(t, 10*time.Second), []Flow{bad, good, badICMP})
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if res.Created != 1 || res.Failed["EINVAL"] != 2 {
		t.Fatalf("Commit = %+v, want 1 created, 2 EINVAL", res)
	}
}

func TestPrivilegedDelete(t *testing.T) {
	testenv.RequirePrivileged(t)
	k, ns := ctnetlinktest.OpenKernel(t, KernelOptions{})
	ctx := ctnetlinktest.Ctx(t, 10*time.Second)
	flows := ctnetlinktest.CommitFlows()
	if res, err := k.Commit(ctx, flows); err != nil || res.Created != len(flows) {
		t.Fatalf("Commit = %+v, %v", res, err)
	}
	keys := []Key{flows[0].Key, flows[1].Key, flows[6].Key, ctnetlinktest.UDP("10.9.9.9", "10.9.9.8", 1, 1).Key}
	res, err := k.Delete(ctx, keys)
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if res.Deleted != 3 || len(res.Failed) != 0 {
		t.Fatalf("Delete = %+v, want 3 deleted, missing one ignored", res)
	}
	es := ctnetlinktest.List(t, ns)
	if len(es) != len(flows)-3 {
		t.Fatalf("conntrack -L shows %d entries after delete, want %d", len(es), len(flows)-3)
	}
	for _, e := range es {
		for _, key := range keys[:3] {
			if e.Orig["src"] == key.Src.String() && e.Orig["sport"] == strconv.Itoa(int(key.SrcPort)) && e.Zone == strconv.Itoa(int(key.Zone)) {
				t.Errorf("deleted entry still there: %s", e.Line)
			}
		}
	}
	if err := k.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if got, err := k.Dump(ctx); err != nil || len(got) != 0 {
		t.Fatalf("Dump after flush = %d flows, %v", len(got), err)
	}
}

// ctnetlinktest.Events runs k.Events in the background and collects what it delivers.
func TestPrivilegedEvents(t *testing.T) {
	testenv.RequirePrivileged(t)
	// Own NEW/UPDATE events are filtered by default; this test checks how
	// they are marked, so it asks for them.
	k, ns := ctnetlinktest.OpenKernel(t, KernelOptions{OwnUpdateEvents: true})
	c := ctnetlinktest.Listen(t, k)
	c.Ready(t, k)
	ctx := ctnetlinktest.Ctx(t, 30*time.Second)
	const d = 5 * time.Second
	is := func(typ EventType, key Key) func(*Event) bool {
		return func(e *Event) bool { return e.Type == typ && e.Flow.Key == key }
	}

	a := ctnetlinktest.TCP("10.1.0.1", "10.2.0.1", 2000, 443)
	a.SNAT = NAT{Addr: netip.MustParseAddr("10.2.0.100"), Port: 33333}
	a.Mark = 3
	if _, err := k.Commit(ctx, []Flow{a}); err != nil {
		t.Fatal(err)
	}
	ev := c.Wait(t, d, "own NEW", is(EventNew, a.Key))
	if !ev.Own || ev.Flow.SNAT != a.SNAT || ev.Flow.Mark != 3 || ev.Flow.ProtoState != ctnetlinktest.TCPEstablished {
		t.Errorf("own NEW event = %+v, want Own, SNAT %v, mark 3, ESTABLISHED", ev, a.SNAT)
	}

	b := ctnetlinktest.TCP("10.1.0.2", "10.2.0.1", 2001, 443)
	if _, err := ns.Run(ctx, "conntrack", "-I", "-p", "tcp", "-s", "10.1.0.2", "-d", "10.2.0.1",
		"--sport", "2001", "--dport", "443", "--state", "ESTABLISHED", "-u", "SEEN_REPLY,ASSURED", "-t", "60"); err != nil {
		t.Fatal(err)
	}
	if ev := c.Wait(t, d, "foreign NEW", is(EventNew, b.Key)); ev.Own {
		t.Errorf("NEW from the conntrack tool marked Own: %+v", ev)
	}
	if _, err := ns.Run(ctx, "conntrack", "-U", "-p", "tcp", "-s", "10.1.0.2", "-d", "10.2.0.1",
		"--sport", "2001", "--dport", "443", "-m", "5"); err != nil {
		t.Fatal(err)
	}
	if ev := c.Wait(t, d, "foreign UPDATE", is(EventUpdate, b.Key)); ev.Own || ev.Flow.Mark != 5 {
		t.Errorf("UPDATE from the conntrack tool = %+v, want not Own, mark 5", ev)
	}

	a.Mark = 7
	if res, err := k.Commit(ctx, []Flow{a}); err != nil || res.Updated != 1 {
		t.Fatalf("Commit existing = %+v, %v", res, err)
	}
	// A NAT flow is replaced (delete + create): both events are ours.
	if ev := c.Wait(t, d, "own DESTROY (replace)", is(EventDestroy, a.Key)); !ev.Own {
		t.Errorf("replace DESTROY not Own: %+v", ev)
	}
	if ev := c.Wait(t, d, "own NEW (replace)", is(EventNew, a.Key)); !ev.Own || ev.Flow.Mark != 7 {
		t.Errorf("replace NEW = %+v, want Own, mark 7", ev)
	}
	b.Mark = 8
	if res, err := k.Commit(ctx, []Flow{b}); err != nil || res.Updated != 1 {
		t.Fatalf("Commit existing = %+v, %v", res, err)
	}
	if ev := c.Wait(t, d, "own UPDATE", is(EventUpdate, b.Key)); !ev.Own || ev.Flow.Mark != 8 {
		t.Errorf("own UPDATE = %+v, want Own, mark 8", ev)
	}

	if _, err := k.Delete(ctx, []Key{a.Key}); err != nil {
		t.Fatal(err)
	}
	if ev := c.Wait(t, d, "own DESTROY", is(EventDestroy, a.Key)); !ev.Own {
		t.Errorf("own DESTROY not Own: %+v", ev)
	}
	if _, err := ns.Run(ctx, "conntrack", "-D", "-p", "tcp", "-s", "10.1.0.2", "-d", "10.2.0.1",
		"--sport", "2001", "--dport", "443"); err != nil {
		t.Fatal(err)
	}
	if ev := c.Wait(t, d, "foreign DESTROY", is(EventDestroy, b.Key)); ev.Own {
		t.Errorf("DESTROY from the conntrack tool marked Own: %+v", ev)
	}
	if s := k.Stats(); s.Overruns != 0 || s.DecodeErrors != 0 || s.EventBuffer < 64<<20 {
		t.Errorf("Stats = %+v, want no overrun or decode error, >= 64 MiB buffer", s)
	}
}

func TestPrivilegedEventsOverrun(t *testing.T) {
	testenv.RequirePrivileged(t)
	k, _ := ctnetlinktest.OpenKernel(t, KernelOptions{EventBuffer: 16 << 10, MaxEventBuffer: 64 << 10, OwnUpdateEvents: true})
	c := ctnetlinktest.Listen(t, k)
	c.Ready(t, k)
	before := k.Stats().EventBuffer
	// One write of 2000 creates queues 2000 events inside the sendmsg: far
	// more than a 16 KiB buffer holds.
	flows := make([]Flow, 2000)
	for i := range flows {
		flows[i] = ctnetlinktest.UDP("10.3.0.1", "10.4.0.1", uint16(1000+i), 53)
	}
	if res, err := k.Commit(ctnetlinktest.Ctx(t, 10*time.Second), flows); err != nil || res.Created != len(flows) {
		t.Fatalf("Commit = %+v, %v", res, err)
	}
	c.Wait(t, 5*time.Second, "overrun", func(e *Event) bool { return e.Type == EventOverrun })
	s := k.Stats()
	if s.Overruns == 0 || s.EventBuffer <= before {
		t.Errorf("Stats = %+v (buffer before %d), want an overrun and a grown buffer", s, before)
	}
}

// TestPrivilegedCommitExtras commits what the basic test does not: a
// helper, sequence adjustment, connlabels and an SCTP association.
func TestPrivilegedCommitExtras(t *testing.T) {
	testenv.RequirePrivileged(t)
	k, ns := ctnetlinktest.OpenKernel(t, KernelOptions{})
	ctx := ctnetlinktest.Ctx(t, 20*time.Second)
	// The kernel keeps labels only in a namespace where something uses
	// them (else it drops them silently): a ct label rule does.
	if _, err := ns.Run(ctx, "nft", "add table ip fwk; add chain ip fwk c { type filter hook prerouting priority 0; }; add rule ip fwk c ct label set 1"); err != nil {
		t.Fatal(err)
	}
	helper := ctnetlinktest.TCP("10.0.0.1", "10.0.0.2", 3000, 21)
	helper.Helper = "ftp"
	labels := ctnetlinktest.TCP("10.0.0.1", "10.0.0.2", 3001, 22)
	labels.Labels = []byte{1, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0}
	seq := ctnetlinktest.TCP("10.0.0.1", "10.0.0.2", 3002, 23)
	seq.HasSeqAdj = true
	seq.SeqAdjOrig = SeqAdj{CorrectionPos: 1, OffsetBefore: 2, OffsetAfter: 3}
	seq.SeqAdjReply = SeqAdj{CorrectionPos: 4, OffsetBefore: 5, OffsetAfter: 6}
	sctp := Flow{
		Key:    Key{Tuple: Tuple{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), SrcPort: 5000, DstPort: 6000, Proto: ProtoSCTP}},
		Status: IPSSeenReply | IPSAssured, Timeout: 200,
		ProtoState: 3, HasProtoState: true, SCTPVTagOrig: 0x01020304, SCTPVTagReply: 0x0a0b0c0d, // COOKIE_ECHOED
	}
	flows := []Flow{helper, labels, seq, sctp}
	if res, err := k.Commit(ctx, flows); err != nil || res.Created != len(flows) || len(res.Failed) != 0 {
		t.Fatalf("Commit = %+v, %v", res, err)
	}
	es := ctnetlinktest.List(t, ns)
	if e := ctnetlinktest.Find(t, es, &helper); !strings.Contains(e.Line, "helper=ftp") {
		t.Errorf("helper entry %q lacks helper=ftp", e.Line)
	}
	if e := ctnetlinktest.Find(t, es, &sctp); e.State != "COOKIE_ECHOED" {
		t.Errorf("sctp entry %q: state %q, want COOKIE_ECHOED", e.Line, e.State)
	}
	got, err := k.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byKey := map[Key]Flow{}
	for _, f := range got {
		byKey[f.Key] = f
	}
	if g := byKey[helper.Key]; g.Helper != "ftp" {
		t.Errorf("helper: dumped %q", g.Helper)
	}
	if g := byKey[labels.Key]; string(g.Labels) != string(labels.Labels) {
		t.Errorf("labels: dumped %x, want %x", g.Labels, labels.Labels)
	}
	if g := byKey[seq.Key]; !g.HasSeqAdj || g.SeqAdjOrig != seq.SeqAdjOrig || g.SeqAdjReply != seq.SeqAdjReply {
		t.Errorf("seqadj: dumped %v %+v %+v", g.HasSeqAdj, g.SeqAdjOrig, g.SeqAdjReply)
	}
	if g := byKey[sctp.Key]; g.ProtoState != 3 || g.SCTPVTagOrig != sctp.SCTPVTagOrig || g.SCTPVTagReply != sctp.SCTPVTagReply {
		t.Errorf("sctp: dumped state %d vtags %#x %#x", g.ProtoState, g.SCTPVTagOrig, g.SCTPVTagReply)
	}
}

// TestPrivilegedEventsLifecycle: one listener at a time; Close ends it.
func TestPrivilegedEventsLifecycle(t *testing.T) {
	testenv.RequirePrivileged(t)
	k, _ := ctnetlinktest.OpenKernel(t, KernelOptions{})
	done := make(chan error, 1)
	go func() { done <- k.Events(context.Background(), func([]Event) {}) }()
	deadline := time.Now().Add(5 * time.Second)
	for !k.Listening() {
		if time.Now().After(deadline) {
			t.Fatal("Events did not start")
		}
		time.Sleep(time.Millisecond)
	}
	if err := k.Events(context.Background(), func([]Event) {}); err == nil {
		t.Error("a second concurrent Events was accepted")
	}
	if err := k.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Events after Close = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Events did not return after Close")
	}
	if _, err := k.Commit(ctnetlinktest.Ctx(t, time.Second), []Flow{ctnetlinktest.UDP("10.0.0.1", "10.0.0.2", 1, 2)}); err == nil {
		t.Error("Commit after Close succeeded")
	}
}

// TestPrivilegedDumpCancel: a dump abandoned by its context does not
// spoil the next one.
func TestPrivilegedDumpCancel(t *testing.T) {
	testenv.RequirePrivileged(t)
	k, _ := ctnetlinktest.OpenKernel(t, KernelOptions{})
	ctx := ctnetlinktest.Ctx(t, 20*time.Second)
	flows := ctnetlinktest.BenchFlows(5000, ProtoTCP, false)
	if res, err := k.Commit(ctx, flows); err != nil || res.Created != len(flows) {
		t.Fatalf("Commit = %+v, %v", res, err)
	}
	// Start a dump and abandon it after its first datagram.
	if err := k.AbandonDump(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		got, err := k.Dump(ctx)
		if err != nil || len(got) != len(flows) {
			t.Fatalf("Dump after an abandoned one = %d flows, %v; want %d", len(got), err, len(flows))
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := k.Dump(cctx); err == nil {
		t.Fatal("Dump with a cancelled context succeeded")
	}
	if got, err := k.Dump(ctx); err != nil || len(got) != len(flows) {
		t.Fatalf("Dump after a cancelled one = %d flows, %v", len(got), err)
	}
}

// TestPrivilegedDumpEachBatches: DumpEach hands the table over in batches
// (a dump holds one batch in memory, not the table), every entry exactly
// once, and a dump its callback ends early does not spoil the next one.
func TestPrivilegedDumpEachBatches(t *testing.T) {
	testenv.RequirePrivileged(t)
	k, _ := ctnetlinktest.OpenKernel(t, KernelOptions{})
	ctx := ctnetlinktest.Ctx(t, 20*time.Second)
	flows := ctnetlinktest.BenchFlows(20000, ProtoUDP, false)
	if res, err := k.Commit(ctx, flows); err != nil || res.Created != len(flows) {
		t.Fatalf("Commit = %+v, %v", res, err)
	}
	seen := make(map[Key]int, len(flows))
	batches, largest := 0, 0
	err := k.DumpEach(ctx, func(b []Flow) error {
		batches++
		largest = max(largest, len(b))
		for i := range b {
			seen[b[i].Key]++
		}
		return nil
	})
	if err != nil {
		t.Fatalf("DumpEach: %v", err)
	}
	for i := range flows {
		if n := seen[flows[i].Key]; n != 1 {
			t.Fatalf("DumpEach gave %v %d times, want once", flows[i].Key, n)
		}
	}
	if len(seen) != len(flows) || batches < 2 || largest >= len(flows)/2 {
		t.Fatalf("DumpEach: %d entries in %d batches (largest %d), want %d in batches of a read each",
			len(seen), batches, largest, len(flows))
	}
	stop := errors.New("enough")
	if err := k.DumpEach(ctx, func([]Flow) error { return stop }); err != stop {
		t.Fatalf("DumpEach whose callback fails = %v, want its error", err)
	}
	if got, err := k.Dump(ctx); err != nil || len(got) != len(flows) {
		t.Fatalf("Dump after one ended early = %d flows, %v; want %d", len(got), err, len(flows))
	}
}

// TestPrivilegedEventsRestart: events left unread by a listener that
// stopped are not delivered to the next one.
func TestPrivilegedEventsRestart(t *testing.T) {
	testenv.RequirePrivileged(t)
	k, _ := ctnetlinktest.OpenKernel(t, KernelOptions{OwnUpdateEvents: true})
	ctx := ctnetlinktest.Ctx(t, 20*time.Second)
	lctx, cancel := context.WithCancel(ctx)
	first, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	var once sync.Once
	go func() {
		done <- k.Events(lctx, func([]Event) {
			once.Do(func() { close(first); <-release })
		})
	}()
	// Commit until the listener has taken a batch and blocks in the sink.
	for i := 0; ; i++ {
		if _, err := k.Commit(ctx, []Flow{ctnetlinktest.UDP("10.7.0.1", "10.8.0.1", uint16(100+i), 1)}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-first:
		case <-time.After(50 * time.Millisecond):
			if i > 100 {
				t.Fatal("listener never delivered")
			}
			continue
		}
		break
	}
	stale := ctnetlinktest.BenchFlows(50, ProtoUDP, false) // queued while the sink blocks
	if _, err := k.Commit(ctx, stale); err != nil {
		t.Fatal(err)
	}
	cancel()
	time.Sleep(50 * time.Millisecond) // let the cancel arm the read deadline
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("Events: %v", err)
	}
	c := ctnetlinktest.Listen(t, k)
	fresh := ctnetlinktest.UDP("10.9.0.1", "10.9.0.2", 1, 1)
	for i := 0; ; i++ {
		fresh.SrcPort = uint16(1 + i) // a new entry each time
		if _, err := k.Commit(ctx, []Flow{fresh}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		if len(c.Seen()) > 0 {
			break
		}
		if i > 100 {
			t.Fatalf("the new listener never delivered: %+v", k.Stats())
		}
	}
	for _, e := range c.Seen() {
		if e.Flow.Src != fresh.Src {
			t.Errorf("stale event delivered to the new listener: %v %+v", e.Type, e.Flow.Key)
		}
	}
}

// Events reads in batches: after a read that emptied the queue the reader
// pauses instead of being woken for each event (nlOpenEvents says why: a
// wake-up per event is paid inside the sendmsg that created the flow). A
// burst of 20,000 NEW events from another writer arrives in reads of many
// events, not one or two at a time.
func TestPrivilegedEventsBatched(t *testing.T) {
	testenv.RequirePrivileged(t)
	k, ns := ctnetlinktest.OpenKernel(t, KernelOptions{})
	w, err := NewKernel(KernelOptions{NetNS: ns.FD()}) // another writer: its events are not filtered as own
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var mu sync.Mutex
	reads, total := 0, 0
	got := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- k.Events(ctx, func(evs []Event) {
			mu.Lock()
			reads++
			total += len(evs)
			mu.Unlock()
			select {
			case got <- struct{}{}:
			default:
			}
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Events: %v", err)
		}
	}()
	// Wait until the listener has joined its groups.
	probe := ctnetlinktest.UDP("127.0.0.9", "127.0.0.8", 1000, 9)
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			mu.Lock()
			ok := cond()
			mu.Unlock()
			if ok {
				return
			}
			select {
			case <-got:
			case <-time.After(50 * time.Millisecond):
			case <-deadline:
				t.Fatalf("%s: %d events in %d reads", what, total, reads)
			}
		}
	}
	joined := false
	for i := 0; i < 100 && !joined; i++ {
		if _, err := w.Commit(ctnetlinktest.Ctx(t, 5*time.Second), []Flow{probe}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Delete(ctnetlinktest.Ctx(t, 5*time.Second), []Key{probe.Key}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-got:
			joined = true
		case <-time.After(100 * time.Millisecond):
		}
	}
	if !joined {
		t.Fatal("the listener never saw a probe")
	}
	wait("probe events drained", func() bool { return total >= 2 })
	mu.Lock()
	reads, total = 0, 0
	mu.Unlock()
	const n = 20000
	flows := make([]Flow, n)
	for i := range flows {
		flows[i] = ctnetlinktest.TCP("10.1.0.1", "10.2.0.1", uint16(1024+i), 443)
	}
	if res, err := w.Commit(ctnetlinktest.Ctx(t, 30*time.Second), flows); err != nil || res.Created != n {
		t.Fatalf("Commit = %+v, %v", res, err)
	}
	wait("all NEW events", func() bool { return total >= n })
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d events in %d reads (%.1f per read)", total, reads, float64(total)/float64(reads))
	if total/reads < 32 {
		t.Errorf("%d events in %d reads: the reader is woken for nearly every event", total, reads)
	}
}
