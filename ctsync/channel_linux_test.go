package ctsync

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/fwpair/fwpair/ctsync/ctnetlink"
	"github.com/fwpair/fwpair/testenv"
)

// nsPair makes two namespaces joined by `links` veth pairs eth2, eth3, ...
// addressed 10.0.<i>.1/30 and 10.0.<i>.2/30, without any ruleset.
func nsPair(t *testing.T, links int) (a, b *testenv.NS) {
	t.Helper()
	a, b = testenv.NewNS(t, "fwc-a"), testenv.NewNS(t, "fwc-b")
	for i := range links {
		name := fmt.Sprintf("eth%d", 2+i)
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name, PeerNamespace: netlink.NsFd(b.FD())}
		if err := a.Handle().LinkAdd(v); err != nil {
			t.Fatal(err)
		}
		for j, ns := range []*testenv.NS{a, b} {
			h := ns.Handle()
			l, err := h.LinkByName(name)
			if err != nil {
				t.Fatal(err)
			}
			ip := net.IPv4(10, 0, byte(i), byte(1+j))
			if err := h.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: ip, Mask: net.CIDRMask(30, 32)}}); err != nil {
				t.Fatal(err)
			}
			if err := h.LinkSetUp(l); err != nil {
				t.Fatal(err)
			}
		}
	}
	return a, b
}

func linkAddr(i, side int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 0, byte(i), byte(1 + side)})
}

// startNSNode starts an engine in ns with the given channels.
func startNSNode(t *testing.T, ns *testenv.NS, cfg Config, kopts ctnetlink.KernelOptions) *labNode {
	t.Helper()
	return startNSNodeWith(t, ns, cfg, kopts, nil)
}

// startNSNodeWith is startNSNode that lets before adjust the engine
// before it runs.
func startNSNodeWith(t *testing.T, ns *testenv.NS, cfg Config, kopts ctnetlink.KernelOptions, before func(*Engine)) *labNode {
	t.Helper()
	kopts.NetNS = ns.FD()
	k, err := ctnetlink.NewKernel(kopts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	n := &labNode{ns: ns, k: k, done: make(chan error, 1)}
	if err := ns.Do(func() error {
		var err error
		n.e, err = New(cfg, Options{Kernel: k})
		return err
	}); err != nil {
		t.Fatalf("engine in %s: %v", ns.Name, err)
	}
	if before != nil {
		before(n.e)
	}
	ctx, cancel := contextWithCancel()
	n.cancel = cancel
	go func() { n.done <- n.e.Run(ctx) }()
	t.Cleanup(n.stop)
	select {
	case <-n.e.Ready():
	case err := <-n.done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	return n
}

func unicast(links, side int) []ChannelConfig {
	var out []ChannelConfig
	for i := range links {
		out = append(out, ChannelConfig{Interface: fmt.Sprintf("eth%d", 2+i), Local: linkAddr(i, side), Peer: linkAddr(i, 1-side)})
	}
	return out
}

// TestPrivilegedMulticast replicates over UDP multicast (225.0.0.50:3780).
func TestPrivilegedMulticast(t *testing.T) {
	testenv.RequirePrivileged(t)
	a, b := nsPair(t, 1)
	mc := []ChannelConfig{{Interface: "eth2", Group: DefaultGroup()}}
	na := startNSNode(t, a, Config{Channels: mc}, ctnetlink.KernelOptions{})
	nb := startNSNode(t, b, Config{Channels: mc}, ctnetlink.KernelOptions{})
	traffic := labKernel(t, a)
	flows := genFlows(2000, 0, 0)
	if _, err := traffic.Commit(labCtx(t, 10*time.Second), flows); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "multicast replication", func() error {
		return sameCaches(na.e.Entries(CacheInternal), nb.e.Entries(CacheExternal), 2000)
	})
	if nb.e.Status().ExternalEntries != 2000 {
		t.Errorf("external entries %d", nb.e.Status().ExternalEntries)
	}
}

// TestPrivilegedLinkFailover: two sync links; the active one goes down,
// replication continues on the other.
func TestPrivilegedLinkFailover(t *testing.T) {
	testenv.RequirePrivileged(t)
	a, b := nsPair(t, 2)
	na := startNSNode(t, a, Config{Channels: unicast(2, 0)}, ctnetlink.KernelOptions{})
	nb := startNSNode(t, b, Config{Channels: unicast(2, 1)}, ctnetlink.KernelOptions{})
	traffic := labKernel(t, a)
	if _, err := traffic.Commit(labCtx(t, 10*time.Second), genFlows(500, 0, 0)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "on link eth2", func() error {
		return sameCaches(na.e.Entries(CacheInternal), nb.e.Entries(CacheExternal), 500)
	})
	l, err := a.Handle().LinkByName("eth2")
	if err == nil {
		err = a.Handle().LinkSetDown(l)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := traffic.Commit(labCtx(t, 10*time.Second), genFlows(500, 500, 0)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "after eth2 went down", func() error {
		return sameCaches(na.e.Entries(CacheInternal), nb.e.Entries(CacheExternal), 1000)
	})
	if st := na.e.Stats(); st.Failovers == 0 {
		t.Errorf("no failover counted: %+v", na.e.Status().Links)
	}
	waitFor(t, 5*time.Second, "peer switched to eth3 (received on it)", func() error {
		if s := nb.e.Status(); !s.Links[1].Active {
			return fmt.Errorf("%+v", s.Links)
		}
		return nil
	})
}

// TestPrivilegedDirectInject: received states go straight into the
// kernel (DisableExternalCache).
func TestPrivilegedDirectInject(t *testing.T) {
	testenv.RequirePrivileged(t)
	a, b := nsPair(t, 1)
	startNSNode(t, a, Config{Channels: unicast(1, 0)}, ctnetlink.KernelOptions{})
	nb := startNSNode(t, b, Config{Channels: unicast(1, 1), DirectInject: true}, ctnetlink.KernelOptions{})
	traffic := labKernel(t, a)
	flows := genFlows(3000, 0, 0)
	if _, err := traffic.Commit(labCtx(t, 10*time.Second), flows); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "injected into b's kernel", func() error {
		got, err := nb.k.Dump(labCtx(t, 10*time.Second))
		if err != nil {
			return err
		}
		return containsAll(got, flows)
	})
	keys := make([]Key, 1000)
	for i := range keys {
		keys[i] = flows[i].Key
	}
	if _, err := traffic.Delete(labCtx(t, 10*time.Second), keys); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "deletes injected", func() error {
		got, err := nb.k.Dump(labCtx(t, 10*time.Second))
		if err != nil {
			return err
		}
		if len(got) != 2000 {
			return fmt.Errorf("%d entries in b's kernel, want 2000", len(got))
		}
		return nil
	})
	if st := nb.e.Stats(); st.Injected == 0 || st.InjectFailed != 0 || nb.e.Status().ExternalEntries != 0 {
		t.Errorf("inject stats: %+v", st)
	}
}

// TestPrivilegedOverrunResync: a tiny event buffer overflows during a
// burst; the engine counts the overrun, dumps the kernel again and the
// peer converges.
func TestPrivilegedOverrunResync(t *testing.T) {
	testenv.RequirePrivileged(t)
	a, b := nsPair(t, 1)
	na := startNSNode(t, a, Config{Channels: unicast(1, 0), OverrunResyncDelay: 50 * time.Millisecond},
		ctnetlink.KernelOptions{EventBuffer: 64 << 10, MaxEventBuffer: 64 << 10})
	nb := startNSNode(t, b, Config{Channels: unicast(1, 1)}, ctnetlink.KernelOptions{})
	traffic := labKernel(t, a)
	flows := genFlows(8000, 0, 0)
	if _, err := traffic.Commit(labCtx(t, 20*time.Second), flows); err != nil {
		t.Fatal(err)
	}
	keys := make([]Key, 3000)
	for i := range keys {
		keys[i] = flows[2*i].Key
	}
	if _, err := traffic.Delete(labCtx(t, 20*time.Second), keys); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "convergence after overrun", func() error {
		kern, err := traffic.Dump(labCtx(t, 10*time.Second))
		if err != nil {
			return err
		}
		if err := sameCaches(kern, na.e.Entries(CacheInternal), 5000); err != nil {
			return fmt.Errorf("internal vs kernel: %w", err)
		}
		return sameCaches(kern, nb.e.Entries(CacheExternal), 5000)
	})
	st := na.e.Stats()
	t.Logf("overruns %d, resyncs %d", st.Overruns, st.Resyncs)
	if st.Overruns == 0 {
		t.Error("no overrun with a 64 KiB event buffer")
	}
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

// TestPrivilegedChannelRecvContexts: a Recv blocked on a UDP link returns
// when its context ends, and a later Recv with another context receives
// again (the end of the first context left a read deadline behind, which
// the second must clear); the hook on a context is registered once for
// many Recvs, not once per datagram.
func TestPrivilegedChannelRecvContexts(t *testing.T) {
	testenv.RequirePrivileged(t)
	a, b := nsPair(t, 1)
	open := func(ns *testenv.NS, side int) Channel {
		var ch Channel
		if err := ns.Do(func() error {
			var err error
			ch, err = OpenChannel(unicast(1, side)[0])
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ch.Close() })
		return ch
	}
	tx, rx := open(a, 0), open(b, 1)
	buf := make([]byte, 2048)

	ctx1, cancel1 := context.WithCancel(context.Background())
	got := make(chan error, 1)
	go func() {
		_, err := rx.Recv(ctx1, buf)
		got <- err
	}()
	cancel1()
	select {
	case err := <-got:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Recv after its context ended = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Recv did not return when its context ended")
	}

	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	for i := range 3 {
		msg := []byte{byte(i), 1, 2, 3}
		if err := tx.Send(msg); err != nil {
			t.Fatal(err)
		}
		n, err := rx.Recv(ctx2, buf)
		if err != nil || n != len(msg) || buf[0] != byte(i) {
			t.Fatalf("Recv %d with a new context = %d bytes, %v; want datagram %d", i, n, err, i)
		}
	}
}
