package testenv

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/fwpair/fwpair/ctsync"
	"github.com/fwpair/fwpair/ctsync/ctnetlink"
)

// LiveFuzzEnv sets the total flood time of TestPrivilegedLiveSyncFuzz (a Go
// duration, split between the unkeyed and the keyed run; default 30s).
const LiveFuzzEnv = "FWPAIR_LIVE_FUZZ_TIME"

// Addresses of the attack on the sync segment (10.0.0.0/30: fw1 .1, fw2 .2).
var (
	fuzzStranger = netip.MustParseAddr("10.0.0.66")
	fuzzPeer     = netip.MustParseAddr("10.0.0.1")
	fuzzTarget   = netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), 3780)
	// Forged states name their origin in their source address.
	forgedByStranger = netip.MustParsePrefix("198.18.0.0/16")
	forgedBySpoofer  = netip.MustParsePrefix("198.19.0.0/16")
)

// TestPrivilegedLiveSyncFuzz: two fwpaird in the lab; for a bounded time
// the BACKUP's sync port gets random, mutated-from-capture, replayed and
// forged datagrams (well-formed states, far-ahead sequence numbers, RESYNC
// and NACK storms) from a stranger address on the sync segment and from
// the spoofed peer address, while the MASTER keeps replicating. Then: the
// daemon answers, replication of fresh flows recovers and works within a
// second, its peak RSS stayed under the bound, and its kernel holds no
// entry the MASTER does not have, except (unkeyed only) well-formed states
// sent from the spoofed peer address: without a key nothing can tell those
// from the peer, which is what keyed sync is for. Keyed: none at all.
func TestPrivilegedLiveSyncFuzz(t *testing.T) {
	RequirePrivileged(t)
	total := 30 * time.Second
	if v := os.Getenv(LiveFuzzEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("%s=%q: not a positive duration", LiveFuzzEnv, v)
		}
		total = d
	}
	for _, keyed := range []bool{false, true} {
		name := "unkeyed"
		if keyed {
			name = "keyed"
		}
		t.Run(name, func(t *testing.T) { liveSyncFuzz(t, keyed, total/2) })
	}
}

// fuzzRSSBound is the peak RSS the BACKUP may reach under the flood. The
// flood cannot grow any per-peer structure past its bound (ctsync/limits.go),
// so the daemon stays far below the unit's MemoryMax.
const fuzzRSSBound = 200 << 20

func liveSyncFuzz(t *testing.T, keyed bool, floodFor time.Duration) {
	bin, err := Binaries(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	lab := NewLab(t, LabOptions{Prefix: "fz"})
	dir := t.TempDir()
	var cfgs [2]string
	for i := range 2 {
		src, err := RepoFile(fmt.Sprintf("etc/node%d.toml", i+1))
		if err != nil {
			t.Fatal(err)
		}
		cfgs[i], err = rewriteConfig(src, dir, fmt.Sprintf("node%d.toml", i+1), func(text string) (string, error) {
			if !keyed {
				return text, nil
			}
			key := filepath.Join(dir, "sync.key")
			if err := os.WriteFile(key, []byte(strings.Repeat("5a", 32)+"\n"), 0o600); err != nil {
				return "", err
			}
			return strings.Replace(text, "\n[[sync.link]]", "\n[sync.auth]\nkey_files = [\""+key+"\"]\n\n[[sync.link]]", 1), nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var nodes [2]*Daemon
	for i := range 2 {
		d, err := StartDaemon(lab.FW(i+1), bin, fmt.Sprintf("fw%d", i+1), cfgs[i], dir)
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = d
		t.Cleanup(func() {
			_ = d.Stop()
			if t.Failed() {
				t.Logf("%s log:\n%s", d.Name, d.LogTail(40))
			}
		})
	}
	if _, err := nodes[0].WaitGroupState("MASTER", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[1].WaitGroupState("BACKUP", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	k1, k2 := fuzzKernel(t, lab.FW1), fuzzKernel(t, lab.FW2)
	gen := &genuineFlows{k: k1}
	if _, err := gen.replicate(k2, 20, 15*time.Second); err != nil {
		t.Fatalf("replication before the attack: %v", err)
	}

	// The attacker: a second address on fw1's sync interface (a stranger
	// on the segment) and the peer's own address, with rp_filter off on
	// the BACKUP so every datagram reaches its socket.
	link, err := lab.FW1.Handle().LinkByName("eth2")
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.FW1.Handle().AddrAdd(link, &netlink.Addr{IPNet: prefixToIPNet(netip.PrefixFrom(fuzzStranger, 32))}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"net/ipv4/conf/all/rp_filter", "net/ipv4/conf/eth2/rp_filter"} {
		if err := lab.FW2.Sysctl(k, "0"); err != nil {
			t.Fatal(err)
		}
	}
	stranger, spoofer := fuzzSocket(t, lab.FW1, fuzzStranger), fuzzSocket(t, lab.FW1, fuzzPeer)
	capt := startCapture(t, lab.FW1)

	ctx, cancel := context.WithTimeout(context.Background(), floodFor)
	defer cancel()
	var sent [2]int // stranger, spoofer
	floodDone := make(chan struct{})
	go func() {
		defer close(floodDone)
		r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for n := 0; ctx.Err() == nil && n < 10_000_000; n++ {
			from := r.IntN(2)
			d := fuzzDatagram(r, capt.sample(r), from == 0)
			conn := stranger
			if from == 1 {
				conn = spoofer
			}
			if _, err := conn.WriteToUDPAddrPort(d, fuzzTarget); err == nil {
				sent[from]++
			}
			if n%4 == 3 { // about 4,000 datagrams a second
				select {
				case <-ctx.Done():
				case <-tick.C:
				}
			}
		}
	}()
	// Meanwhile the MASTER keeps replicating, and the BACKUP must answer.
	answers := 0
	for ctx.Err() == nil {
		gen.create(5)
		sctx, scancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err := nodes[1].Status(sctx)
		scancel()
		if err != nil {
			t.Errorf("BACKUP does not answer during the flood: %v", err)
			break
		}
		answers++
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	<-floodDone
	capt.stop()
	t.Logf("flood of %v: %d datagrams from the stranger, %d from the spoofed peer, %d captured datagrams to mutate; %d status answers",
		floodFor, sent[0], sent[1], capt.count(), answers)

	// Replication recovers (unkeyed: the spoofed stream may have moved the
	// session; sequence sanity adopts the peer's stream again within a few
	// seconds) and then fresh flows reach the BACKUP within a second.
	rec, err := gen.replicate(k2, 20, 10*time.Second)
	if err != nil {
		t.Fatalf("replication after the flood: %v", err)
	}
	fresh, err := gen.replicate(k2, 20, time.Second)
	if err != nil {
		t.Fatalf("fresh flows after recovery: %v", err)
	}
	t.Logf("replication recovered %v after the flood; fresh flows then replicated in %v", rec, fresh)

	// Nothing the MASTER does not have, apart from the unkeyed spoofed case.
	master, err := k1.Dump(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	have := map[ctsync.Key]bool{}
	for _, f := range master {
		have[f.Key] = true
	}
	backup, err := k2.Dump(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	syncNet := netip.MustParsePrefix("10.0.0.0/24")
	var spoofed, other []string
	for _, f := range backup {
		if have[f.Key] || syncNet.Contains(f.Src) || syncNet.Contains(f.Dst) || f.Dst.IsMulticast() || f.Src.IsLoopback() {
			continue
		}
		desc := fmt.Sprintf("proto %d %v:%d -> %v:%d timeout %d", f.Proto, f.Src, f.SrcPort, f.Dst, f.DstPort, f.Timeout)
		if !keyed && !forgedByStranger.Contains(f.Src) {
			spoofed = append(spoofed, desc)
		} else {
			other = append(other, desc)
		}
	}
	if len(other) > 0 {
		t.Errorf("%d entries in the BACKUP's kernel that the MASTER does not have, e.g. %s", len(other), other[0])
	}
	if len(spoofed) > 0 {
		t.Logf("unkeyed: %d states sent from the spoofed peer address were injected (expected without a key), e.g. %s", len(spoofed), spoofed[0])
	}

	st, err := nodes[1].Client().Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("BACKUP rejects: foreign_source %d, auth_bad_mac %d, auth_replay %d, auth_unknown_key %d, invalid_timeout %d, invalid_proto %d, seq_implausible %d, seq_adopted %d",
		st.Sync["malformed_foreign_source"], st.Sync["malformed_auth_bad_mac"], st.Sync["malformed_auth_replay"], st.Sync["malformed_auth_unknown_key"],
		st.Sync["malformed_invalid_timeout"], st.Sync["malformed_invalid_proto"], st.Sync["seq_implausible"], st.Sync["seq_adopted"])
	if st.Sync["malformed_foreign_source"] == 0 {
		t.Error("no datagram from the stranger was seen (and dropped) by the BACKUP: the attack did not reach it")
	}
	if keyed && (st.Sync["malformed_auth_bad_mac"] == 0 || st.Sync["malformed_auth_replay"] == 0) {
		t.Error("keyed: no mutated datagram failed authentication, or no replay was caught")
	}

	hwm, err := peakRSS(nodes[1].PID())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("BACKUP peak RSS %.1f MiB (bound %d MiB)", float64(hwm)/(1<<20), fuzzRSSBound>>20)
	if hwm > fuzzRSSBound {
		t.Errorf("peak RSS %d bytes over the bound %d", hwm, fuzzRSSBound)
	}
}

func fuzzKernel(t *testing.T, ns *NS) *ctnetlink.LinuxKernel {
	t.Helper()
	k, err := ctnetlink.NewKernel(ctnetlink.KernelOptions{NetNS: ns.FD()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

func fuzzSocket(t *testing.T, ns *NS, from netip.Addr) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := ns.Do(func() error {
		var err error
		c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(from, 0)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// genuineFlows creates real entries in the MASTER's kernel (another
// ctnetlink socket than fwpaird's, so they are replicated like traffic).
type genuineFlows struct {
	k    *ctnetlink.LinuxKernel
	next int
}

func (g *genuineFlows) flow(i int) ctsync.Flow {
	return ctsync.Flow{
		Key: ctsync.Key{Tuple: ctsync.Tuple{
			Src:     netip.AddrFrom4([4]byte{172, 20, byte(i >> 8), byte(i)}),
			Dst:     netip.MustParseAddr("172.21.0.1"),
			SrcPort: uint16(20000 + i%40000), DstPort: 443, Proto: 6,
		}},
		Status: 0x2 | 0x4 | 0x8, Timeout: 600, ProtoState: 3, HasProtoState: true,
	}
}

func (g *genuineFlows) create(n int) []ctsync.Key {
	flows := make([]ctsync.Flow, n)
	keys := make([]ctsync.Key, n)
	for i := range flows {
		flows[i] = g.flow(g.next)
		keys[i] = flows[i].Key
		g.next++
	}
	_, _ = g.k.Commit(context.Background(), flows)
	return keys
}

// replicate creates n fresh flows on the MASTER and waits until the
// BACKUP's kernel has them all; it returns how long that took.
func (g *genuineFlows) replicate(backup *ctnetlink.LinuxKernel, n int, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	keys := g.create(n)
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		flows, err := backup.Dump(context.Background())
		if err != nil {
			return 0, err
		}
		got := map[ctsync.Key]bool{}
		for _, f := range flows {
			got[f.Key] = true
		}
		missing := 0
		for _, k := range keys {
			if !got[k] {
				missing++
			}
		}
		el := time.Since(start)
		if missing == 0 {
			return el, nil
		}
		if el > limit {
			return el, fmt.Errorf("%d of %d fresh flows missing on the BACKUP after %v", missing, n, el)
		}
		time.Sleep(wait)
	}
}

// capture records the MASTER's real sync datagrams (fwpaird sends from
// port 3780; the spoofer's socket has another port) for mutation and
// replay.
type capture struct {
	fd   int
	mu   sync.Mutex
	ring [][]byte
	n    int
	done chan struct{}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func startCapture(t *testing.T, ns *NS) *capture {
	t.Helper()
	c := &capture{done: make(chan struct{})}
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName("eth2")
		if err != nil {
			return err
		}
		// ETH_P_ALL: only those taps see outgoing packets.
		c.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		if err := unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100_000}); err != nil {
			return err
		}
		return unix.Bind(c.fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	})
	if err != nil {
		t.Fatal(err)
	}
	go c.run()
	t.Cleanup(c.stop)
	return c
}

func (c *capture) run() {
	buf := make([]byte, 65536)
	for {
		select {
		case <-c.done:
			return
		default:
		}
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil || n < 28 || buf[0]>>4 != 4 || buf[9] != 17 {
			continue
		}
		ihl := int(buf[0]&0x0f) * 4
		if n < ihl+8 || netip.AddrFrom4([4]byte(buf[12:16])) != fuzzPeer {
			continue
		}
		udp := buf[ihl:n]
		if binary.BigEndian.Uint16(udp[0:2]) != 3780 || binary.BigEndian.Uint16(udp[2:4]) != 3780 {
			continue
		}
		d := append([]byte(nil), udp[8:]...)
		c.mu.Lock()
		if len(c.ring) < 512 {
			c.ring = append(c.ring, d)
		} else {
			c.ring[c.n%512] = d
		}
		c.n++
		c.mu.Unlock()
	}
}

func (c *capture) sample(r *rand.Rand) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.ring) == 0 {
		return nil
	}
	// Mostly the newest ones: their sequence numbers are near the live one.
	i := (c.n - 1 - r.IntN(min(len(c.ring), 16))) % len(c.ring)
	if r.IntN(4) == 0 {
		i = r.IntN(len(c.ring))
	}
	return append([]byte(nil), c.ring[i]...)
}

func (c *capture) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func (c *capture) stop() {
	select {
	case <-c.done:
	default:
		close(c.done)
		unix.Close(c.fd)
	}
}

// fuzzDatagram makes one hostile datagram: random bytes, a mutated or
// replayed capture, well-formed forged states (sequence numbers near the
// live one, or far ahead), or a RESYNC/NACK storm.
func fuzzDatagram(r *rand.Rand, captured []byte, stranger bool) []byte {
	liveSeq := uint32(0)
	if len(captured) >= 8 {
		liveSeq = binary.BigEndian.Uint32(captured[4:8])
	}
	switch k := r.IntN(8); {
	case k == 0 || captured == nil && k < 3:
		b := make([]byte, 1+r.IntN(1472))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	case k == 1: // mutated capture
		b := captured
		for range 1 + r.IntN(8) {
			switch r.IntN(4) {
			case 0:
				b[r.IntN(len(b))] ^= 1 << r.IntN(8)
			case 1:
				b[r.IntN(len(b))] = byte(r.Uint32())
			case 2:
				b = b[:r.IntN(len(b))+1]
			default:
				if len(b) >= 8 {
					binary.BigEndian.PutUint32(b[4:8], liveSeq+uint32(r.IntN(1000)))
				}
			}
			if len(b) < 8 {
				break
			}
		}
		return b
	case k == 2: // replayed verbatim
		return captured
	case k <= 5: // forged well-formed states
		var w ctsync.WireOptions
		net := forgedBySpoofer
		if stranger {
			net = forgedByStranger
		}
		seq := liveSeq + uint32(r.IntN(200))
		if k == 5 {
			seq = liveSeq + 5_000_000
		}
		var b []byte
		for i := range 1 + r.IntN(20) {
			base := net.Addr().As4()
			f := ctsync.Flow{
				Key: ctsync.Key{Tuple: ctsync.Tuple{
					Src:     netip.AddrFrom4([4]byte{base[0], base[1], byte(r.Uint32()), byte(r.Uint32())}),
					Dst:     netip.MustParseAddr("172.21.0.1"),
					SrcPort: uint16(1024 + r.IntN(60000)), DstPort: 22, Proto: 6,
				}},
				Status: 0x2 | 0x4 | 0x8, Timeout: 432000, ProtoState: 3, HasProtoState: true,
			}
			b, _ = w.AppendCT(b, ctsync.MsgCTNew, 0, seq+uint32(i), &f)
		}
		if r.IntN(2) == 0 { // with a made-up HMAC trailer
			t := make([]byte, 28)
			for i := range t {
				t[i] = byte(r.Uint32())
			}
			b = append(b, t...)
		}
		return b
	case k == 6: // RESYNC storm
		var b []byte
		for i := range 91 {
			b = ctsync.AppendCtl(b, ctsync.FlagResync, liveSeq+uint32(i), 0, 0)
		}
		return b
	default: // NACK of everything
		return ctsync.AppendCtl(nil, ctsync.FlagNACK, liveSeq+1, 0, ^uint32(0))
	}
}

// peakRSS reads VmHWM (the peak resident set) of a process.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}
