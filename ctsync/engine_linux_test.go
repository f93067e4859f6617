package ctsync

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fwpair/fwpair/ctsync/ctnetlink"
	"github.com/fwpair/fwpair/ctsync/ctnetlink/ctnetlinktest"
	"github.com/fwpair/fwpair/testenv"
)

// labNode is an Engine running on a real kernel inside a lab namespace.
type labNode struct {
	ns     *testenv.NS
	k      *ctnetlink.LinuxKernel
	e      *Engine
	cancel context.CancelFunc
	done   chan error
}

var (
	syncAddr1 = netip.MustParseAddr("10.0.0.1")
	syncAddr2 = netip.MustParseAddr("10.0.0.2")
)

func labKernel(t testing.TB, ns *testenv.NS) *ctnetlink.LinuxKernel {
	t.Helper()
	k, err := ctnetlink.NewKernel(ctnetlink.KernelOptions{NetNS: ns.FD()})
	if err != nil {
		t.Fatalf("ctnetlink.NewKernel in %s: %v", ns.Name, err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// startLabNode starts an engine in ns on the sync link (eth2).
func startLabNode(t testing.TB, ns *testenv.NS, local, peer netip.Addr, cfg Config, wrap func(Channel) Channel) *labNode {
	t.Helper()
	n := &labNode{ns: ns, k: labKernel(t, ns), done: make(chan error, 1)}
	cfg.Channels = []ChannelConfig{{Interface: "eth2", Local: local, Peer: peer, RecvBuffer: 8 << 20, SendBuffer: 8 << 20}}
	err := ns.Do(func() error {
		var opts Options
		opts.Kernel = n.k
		if wrap != nil {
			ch, err := OpenChannel(cfg.Channels[0])
			if err != nil {
				return err
			}
			opts.Channels = []Channel{wrap(ch)}
		}
		var err error
		n.e, err = New(cfg, opts)
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

func (n *labNode) stop() {
	if n.cancel == nil {
		return
	}
	n.cancel()
	n.cancel = nil
	if err := <-n.done; err != nil {
		panic(fmt.Sprintf("engine in %s: %v", n.ns.Name, err))
	}
	n.e.Close()
}

func labCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func flowMap(fs []Flow) map[Key]Flow {
	m := make(map[Key]Flow, len(fs))
	for _, f := range fs {
		m[f.Key] = f
	}
	return m
}

// containsAll checks that every flow of want is in got with the same state.
func containsAll(got []Flow, want []Flow) error {
	g := flowMap(got)
	for i := range want {
		f, ok := g[want[i].Key]
		if !ok {
			return fmt.Errorf("missing %v (have %d entries)", want[i].Key, len(got))
		}
		w := want[i]
		if f.Status&^ipsNATMask != w.Status&^ipsNATMask || f.Mark != w.Mark || f.ProtoState != w.ProtoState ||
			f.SNAT != w.SNAT || f.DNAT != w.DNAT || f.Zone != w.Zone {
			return fmt.Errorf("entry %v: got %+v, want %+v", w.Key, f, w)
		}
	}
	return nil
}

// ipsNATMask covers the bits the kernel sets itself: CONFIRMED, SRC_NAT,
// DST_NAT, SRC_NAT_DONE, DST_NAT_DONE.
const ipsNATMask = 0x8 | 0x30 | 0x180

// genFlows makes n distinct established TCP flows in 172.16.0.0/12.
func genFlows(n, base int, zone uint16) []Flow {
	out := make([]Flow, n)
	for i := range out {
		j := base + i
		out[i] = Flow{
			Key: Key{Tuple: Tuple{
				Src:     netip.AddrFrom4([4]byte{172, 16 + byte(j>>16&0x0f), byte(j >> 8), byte(j)}),
				Dst:     netip.MustParseAddr("198.51.100.7"),
				SrcPort: uint16(10000 + j%50000), DstPort: 443, Proto: protoTCP,
			}, Zone: zone},
			Status: 0x2 | 0x4 | 0x8, Timeout: 3600, ProtoState: 3, HasProtoState: true,
		}
	}
	return out
}

// TestPrivilegedReplication: flows created in fw1's kernel (TCP, UDP, ICMP,
// IPv4 and IPv6, SNAT, DNAT, mark, zone) reach fw2's external cache; after
// Commit on fw2 they are in fw2's kernel as the conntrack tool shows them;
// destroys propagate.
func TestPrivilegedReplication(t *testing.T) {
	testenv.RequirePrivileged(t)
	lab := testenv.NewLab(t, testenv.LabOptions{Prefix: "fwc", Masquerade: true})
	n1 := startLabNode(t, lab.FW1, syncAddr1, syncAddr2, Config{}, nil)
	n2 := startLabNode(t, lab.FW2, syncAddr2, syncAddr1, Config{}, nil)
	traffic := labKernel(t, lab.FW1) // another socket: its writes are not Own for n1
	flows := ctnetlinktest.CommitFlows()
	if _, err := traffic.Commit(labCtx(t, 10*time.Second), flows); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "flows in fw2's external cache", func() error {
		return containsAll(n2.e.Entries(CacheExternal), flows)
	})
	res, err := n2.e.Commit(labCtx(t, 10*time.Second))
	if err != nil {
		t.Fatalf("commit: %v (%+v)", err, res)
	}
	t.Logf("commit: %+v", res)
	es := ctnetlinktest.List(t, lab.FW2)
	for i := range flows {
		f := &flows[i]
		e := ctnetlinktest.Find(t, es, f)
		if f.Proto == protoTCP && e.State != "ESTABLISHED" {
			t.Errorf("%s: state %q", e.Line, e.State)
		}
		if want := fmt.Sprint(f.Mark); e.Mark != want {
			t.Errorf("%s: mark %s, want %s", e.Line, e.Mark, want)
		}
		if f.SNAT.Addr.IsValid() && e.Reply["dst"] != f.SNAT.Addr.String() {
			t.Errorf("%s: SNAT binding missing (reply dst %s, want %v)", e.Line, e.Reply["dst"], f.SNAT.Addr)
		}
		if f.SNAT.Port != 0 && e.Reply["dport"] != strconv.Itoa(int(f.SNAT.Port)) {
			t.Errorf("%s: SNAT port %s, want %d", e.Line, e.Reply["dport"], f.SNAT.Port)
		}
		if f.DNAT.Addr.IsValid() && e.Reply["src"] != f.DNAT.Addr.String() {
			t.Errorf("%s: DNAT binding missing (reply src %s, want %v)", e.Line, e.Reply["src"], f.DNAT.Addr)
		}
		if e.Timeout <= 0 || e.Timeout > int(f.Timeout) {
			t.Errorf("%s: timeout %d, sent %d", e.Line, e.Timeout, f.Timeout)
		}
	}
	// The commit's own events are not echoed back to fw1.
	if n := len(n1.e.Entries(CacheExternal)); n != 0 {
		t.Errorf("fw1's external cache has %d entries: commit echoed", n)
	}
	// Destroys propagate.
	keys := make([]Key, len(flows))
	for i := range flows {
		keys[i] = flows[i].Key
	}
	if _, err := traffic.Delete(labCtx(t, 10*time.Second), keys); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "destroys in fw2's external cache", func() error {
		g := flowMap(n2.e.Entries(CacheExternal))
		for _, k := range keys {
			if _, ok := g[k]; ok {
				return fmt.Errorf("%v still there", k)
			}
		}
		return nil
	})
	if st := n2.e.Stats(); len(st.Malformed) != 0 {
		t.Errorf("malformed: %v", st.Malformed)
	}
}

// addLoss drops 10% of the sync traffic entering ns (nftables numgen).
func addLoss(t testing.TB, ns *testenv.NS) func() {
	t.Helper()
	rules := `table inet fwcloss {
	chain in {
		type filter hook input priority -300; policy accept;
		iifname "eth2" udp dport 3780 numgen random mod 10 == 0 counter drop
	}
}
`
	if err := nftApply(t, ns, rules); err != nil {
		t.Fatal(err)
	}
	return func() {
		if _, err := ns.Run(labCtx(t, 10*time.Second), "nft", "delete", "table", "inet", "fwcloss"); err != nil {
			t.Fatal(err)
		}
	}
}

func nftApply(t testing.TB, ns *testenv.NS, rules string) error {
	cmd := ns.Cmd(labCtx(t, 10*time.Second), "nft", "-f", "-")
	cmd.Stdin = stringsReader(rules)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("nft: %v: %s", err, out)
	}
	return nil
}

// sameCaches compares the peer's external cache with the node's internal
// one, which must hold at least min entries (so that two empty caches do
// not pass before the events arrived).
func sameCaches(internal, external []Flow, min int) error {
	if len(internal) < min {
		return fmt.Errorf("internal cache has %d entries, want >= %d", len(internal), min)
	}
	return sameAs(external, flowMap(internal))
}

// TestPrivilegedReplicationLoss: 20,000 flows, 10% loss on the sync link,
// then the loss stops: the caches converge with nothing missing or stale.
// Also measures clean replication throughput and commit rate.
func TestPrivilegedReplicationLoss(t *testing.T) {
	testenv.RequirePrivileged(t)
	lab := testenv.NewLab(t, testenv.LabOptions{Prefix: "fwc"})
	n1 := startLabNode(t, lab.FW1, syncAddr1, syncAddr2, Config{}, nil)
	n2 := startLabNode(t, lab.FW2, syncAddr2, syncAddr1, Config{}, nil)
	traffic := labKernel(t, lab.FW1)

	// Clean throughput: 20,000 new flows until fw2's external cache has them.
	clean := genFlows(20000, 0, 0)
	start := time.Now()
	if _, err := traffic.Commit(labCtx(t, 20*time.Second), clean); err != nil {
		t.Fatal(err)
	}
	created := time.Since(start)
	for deadline := time.Now().Add(30 * time.Second); n2.e.Status().ExternalEntries < len(clean); {
		if time.Now().After(deadline) {
			t.Fatalf("clean replication: %d of %d", n2.e.Status().ExternalEntries, len(clean))
		}
		time.Sleep(2 * time.Millisecond) // fine-grained: this is a measurement
	}
	el := time.Since(start)
	t.Logf("creating them in fw1's kernel took %v", created)
	t.Logf("replication: %d flows in %v = %.0f flows/s", len(clean), el, float64(len(clean))/el.Seconds())

	// 10% loss into fw2 (data) and into fw1 (ACK/NACK).
	heal2 := addLoss(t, lab.FW2)
	heal1 := addLoss(t, lab.FW1)
	lossy := genFlows(20000, 20000, 5)
	if _, err := traffic.Commit(labCtx(t, 20*time.Second), lossy); err != nil {
		t.Fatal(err)
	}
	dels := make([]Key, 0, 5000)
	for i := 0; i < 10000; i += 2 {
		dels = append(dels, clean[i].Key)
	}
	if _, err := traffic.Delete(labCtx(t, 20*time.Second), dels); err != nil {
		t.Fatal(err)
	}
	var upd []Flow // surviving (odd) flows get a new mark
	for i := 1; i < 8000; i += 2 {
		f := clean[i]
		f.Mark = 77
		upd = append(upd, f)
	}
	if _, err := traffic.Commit(labCtx(t, 20*time.Second), upd); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "fw1 internal cache has every change", func() error {
		if n := n1.e.Status().InternalEntries; n != len(clean)+len(lossy)-len(dels) {
			return fmt.Errorf("%d entries", n)
		}
		return nil
	})
	heal2()
	heal1()
	healed := time.Now()
	waitFor(t, 60*time.Second, "convergence after the loss stops", func() error {
		return sameCaches(n1.e.Entries(CacheInternal), n2.e.Entries(CacheExternal), len(clean)+len(lossy)-len(dels))
	})
	st1, st2 := n1.e.Stats(), n2.e.Stats()
	t.Logf("converged %v after heal; fw1 retransmits %d, NACKs received %d; fw2 lost %d, NACKs sent %d",
		time.Since(healed), st1.Retransmits, st1.NACKsReceived, st2.Lost, st2.NACKsSent)
	if st1.Retransmits == 0 || st2.Lost == 0 {
		t.Error("no loss seen: is the nftables rule effective?")
	}
	// Commit figure: the whole external cache into fw2's kernel.
	res, err := n2.e.Commit(labCtx(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := res.Created + res.Updated
	t.Logf("commit: %d entries in %v = %.0f entries/s, failed %v", n, res.Duration, float64(n)/res.Duration.Seconds(), res.Failed)
	if len(res.Failed) != 0 {
		t.Errorf("commit failures: %v", res.Failed)
	}
}

// TestPrivilegedPeerRestart: a restarted node asks for a resync and gets
// the full state back.
func TestPrivilegedPeerRestart(t *testing.T) {
	testenv.RequirePrivileged(t)
	lab := testenv.NewLab(t, testenv.LabOptions{Prefix: "fwc"})
	n1 := startLabNode(t, lab.FW1, syncAddr1, syncAddr2, Config{}, nil)
	n2 := startLabNode(t, lab.FW2, syncAddr2, syncAddr1, Config{}, nil)
	traffic := labKernel(t, lab.FW1)
	if _, err := traffic.Commit(labCtx(t, 10*time.Second), genFlows(3000, 0, 0)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "initial", func() error {
		return sameCaches(n1.e.Entries(CacheInternal), n2.e.Entries(CacheExternal), 3000)
	})
	n2.stop()
	if _, err := traffic.Commit(labCtx(t, 10*time.Second), genFlows(1000, 3000, 0)); err != nil {
		t.Fatal(err)
	}
	n2 = startLabNode(t, lab.FW2, syncAddr2, syncAddr1, Config{}, nil)
	waitFor(t, 20*time.Second, "state back after restart", func() error {
		return sameCaches(n1.e.Entries(CacheInternal), n2.e.Entries(CacheExternal), 4000)
	})
	if n := n2.e.Status().ExternalEntries; n < 4000 {
		t.Errorf("external cache %d entries, want >= 4000", n)
	}
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }
