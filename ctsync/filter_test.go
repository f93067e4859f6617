package ctsync

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/fwpair/fwpair/ctsync/ctnetlink"
	"github.com/fwpair/fwpair/ctsync/ctnetlink/ctnetlinktest"
)

func TestFilterAccept(t *testing.T) {
	pfx := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	tcp := func(src, dst string, state uint8) *Flow {
		f := ctnetlinktest.TCP(src, dst, 1000, 80)
		f.ProtoState = state
		return &f
	}
	udp := func(src, dst string) *Flow {
		f := ctnetlinktest.UDP(src, dst, 1000, 53)
		return &f
	}
	ping := ctnetlinktest.Ping("192.168.0.10", "192.168.1.20", 1)
	defaults := FilterConfig{LocalAddrs: DefaultLocal(
		[]netip.Addr{netip.MustParseAddr("192.168.0.1"), netip.MustParseAddr("2001:db8::1")},
		[]netip.Addr{netip.MustParseAddr("192.168.0.100")},
		netip.MustParsePrefix("10.0.0.1/30"))}
	tests := []struct {
		name string
		cfg  FilterConfig
		flow *Flow
		want bool
	}{
		{"empty accepts all", FilterConfig{}, tcp("1.2.3.4", "5.6.7.8", ctnetlinktest.TCPEstablished), true},
		{"ignore src host", FilterConfig{IgnoreAddrs: pfx("1.2.3.4/32")}, tcp("1.2.3.4", "5.6.7.8", 3), false},
		{"ignore dst in CIDR", FilterConfig{IgnoreAddrs: pfx("5.6.0.0/16")}, tcp("1.2.3.4", "5.6.7.8", 3), false},
		{"ignore other CIDR", FilterConfig{IgnoreAddrs: pfx("5.7.0.0/16")}, tcp("1.2.3.4", "5.6.7.8", 3), true},
		{"ignore IPv6 CIDR", FilterConfig{IgnoreAddrs: pfx("2001:db8::/32")}, udp("2001:db8::5", "2001:db9::1"), false},
		{"IPv4 prefix does not match IPv6", FilterConfig{IgnoreAddrs: pfx("0.0.0.0/0")}, udp("2001:db8::5", "2001:db9::1"), true},
		{"IPv4-mapped prefix matches IPv4", FilterConfig{IgnoreAddrs: pfx("::ffff:1.2.3.0/120")}, udp("1.2.3.4", "9.9.9.9"), false},
		{"accept list hit", FilterConfig{AcceptAddrs: pfx("192.168.0.0/24")}, tcp("192.168.0.10", "8.8.8.8", 3), true},
		{"accept list hit on dst", FilterConfig{AcceptAddrs: pfx("8.8.8.0/24")}, tcp("192.168.0.10", "8.8.8.8", 3), true},
		{"accept list miss", FilterConfig{AcceptAddrs: pfx("10.0.0.0/8")}, tcp("192.168.0.10", "8.8.8.8", 3), false},
		{"accept and ignore", FilterConfig{AcceptAddrs: pfx("192.168.0.0/16"), IgnoreAddrs: pfx("192.168.0.10/32")}, tcp("192.168.0.10", "192.168.1.1", 3), false},
		{"NAT addresses are not matched", FilterConfig{IgnoreAddrs: pfx("192.168.1.100/32")}, func() *Flow {
			f := tcp("192.168.0.10", "8.8.8.8", 3)
			f.SNAT.Addr = netip.MustParseAddr("192.168.1.100")
			return f
		}(), true},
		{"accept protos hit", FilterConfig{AcceptProtos: []uint8{ctnetlink.ProtoTCP, ctnetlink.ProtoUDP}}, udp("1.1.1.1", "2.2.2.2"), true},
		{"accept protos miss", FilterConfig{AcceptProtos: []uint8{ctnetlink.ProtoTCP, ctnetlink.ProtoUDP}}, &ping, false},
		{"ignore protos", FilterConfig{IgnoreProtos: []uint8{ctnetlink.ProtoICMP}}, &ping, false},
		{"ignore protos other", FilterConfig{IgnoreProtos: []uint8{ctnetlink.ProtoICMP}}, udp("1.1.1.1", "2.2.2.2"), true},
		{"ignore high proto", FilterConfig{IgnoreProtos: []uint8{ctnetlink.ProtoUDPLite}}, func() *Flow { f := udp("1.1.1.1", "2.2.2.2"); f.Proto = ctnetlink.ProtoUDPLite; return f }(), false},
		{"accept states hit", FilterConfig{AcceptTCPStates: []uint8{ctnetlinktest.TCPEstablished}}, tcp("1.1.1.1", "2.2.2.2", ctnetlinktest.TCPEstablished), true},
		{"accept states miss", FilterConfig{AcceptTCPStates: []uint8{ctnetlinktest.TCPEstablished}}, tcp("1.1.1.1", "2.2.2.2", ctnetlinktest.TCPSynSent), false},
		{"states do not filter UDP", FilterConfig{AcceptTCPStates: []uint8{ctnetlinktest.TCPEstablished}}, udp("1.1.1.1", "2.2.2.2"), true},
		{"ignore states", FilterConfig{IgnoreTCPStates: []uint8{7, 8}}, tcp("1.1.1.1", "2.2.2.2", 7), false},
		{"ignore states other", FilterConfig{IgnoreTCPStates: []uint8{7, 8}}, tcp("1.1.1.1", "2.2.2.2", 3), true},
		{"default: own address", defaults, tcp("192.168.0.1", "192.168.0.50", 3), false},
		{"default: own IPv6", defaults, udp("2001:db8::7", "2001:db8::1"), false},
		{"default: VIP", defaults, tcp("192.168.0.50", "192.168.0.100", 3), false},
		{"default: sync link", defaults, udp("10.0.0.2", "10.0.0.1"), false},
		{"default: loopback", defaults, tcp("127.0.0.1", "127.0.0.1", 3), false},
		{"default: forwarded", defaults, tcp("192.168.0.50", "192.168.1.20", 3), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := NewFilter(tt.cfg)
			if err != nil {
				t.Fatalf("NewFilter: %v", err)
			}
			if got := f.Accept(tt.flow); got != tt.want {
				t.Errorf("Accept(%v -> %v proto %d state %d) = %v, want %v",
					tt.flow.Src, tt.flow.Dst, tt.flow.Proto, tt.flow.ProtoState, got, tt.want)
			}
		})
	}
}

func TestFilterNil(t *testing.T) {
	var f *Filter
	if !f.Accept(&Flow{}) {
		t.Error("nil filter rejected a flow")
	}
}

func TestNewFilterErrors(t *testing.T) {
	for _, cfg := range []FilterConfig{
		{AcceptAddrs: []netip.Prefix{{}}},
		{IgnoreAddrs: []netip.Prefix{{}}},
		{AcceptTCPStates: []uint8{10}},
		{IgnoreTCPStates: []uint8{200}},
	} {
		if _, err := NewFilter(cfg); err == nil {
			t.Errorf("NewFilter(%+v) accepted", cfg)
		}
	}
}

func TestDefaultLocal(t *testing.T) {
	got := DefaultLocal(
		[]netip.Addr{netip.MustParseAddr("::ffff:192.168.0.1"), {}},
		[]netip.Addr{netip.MustParseAddr("2001:db8::100")},
		netip.MustParsePrefix("10.0.0.1/30"))
	want := []string{"192.168.0.1/32", "2001:db8::100/128", "10.0.0.0/30"}
	if len(got) != len(want) {
		t.Fatalf("DefaultLocal = %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("DefaultLocal[%d] = %v, want %s", i, got[i], want[i])
		}
	}
	if n := len(DefaultLocal(nil, nil, netip.Prefix{})); n != 0 {
		t.Errorf("DefaultLocal with nothing = %d prefixes, want 0", n)
	}
}

// TestFilterForwardedVsLocal is the replication rule of docs/architecture.md
// ("What replicated must mean") on the reference lab's addresses, as
// fw1 sees the flows: fw1 has 192.168.0.1, 192.168.1.1, 10.0.0.1 and
// 2001:db8:0::1; fw2 has 192.168.0.2, 192.168.1.2, 10.0.0.2; the VIPs
// 192.168.0.100, 192.168.1.100 and 2001:db8:1::100 are on either node.
func TestFilterForwardedVsLocal(t *testing.T) {
	a := netip.MustParseAddr
	f, err := NewFilter(FilterConfig{LocalAddrs: DefaultLocal(
		[]netip.Addr{a("192.168.0.1"), a("192.168.1.1"), a("2001:db8::1")},
		[]netip.Addr{a("192.168.0.100"), a("192.168.1.100"), a("2001:db8:1::100")},
		netip.MustParsePrefix("10.0.0.1/30"))})
	if err != nil {
		t.Fatal(err)
	}
	tcp := func(src, dst string, sport, dport uint16, snat, dnat string, dnatPort uint16) Flow {
		fl := ctnetlinktest.TCP(src, dst, sport, dport)
		if snat != "" {
			fl.SNAT.Addr = a(snat)
			fl.Status |= ctnetlink.IPSSrcNAT
		}
		if dnat != "" {
			fl.DNAT = NAT{Addr: a(dnat), Port: dnatPort}
			fl.Status |= ctnetlink.IPSDstNAT
		}
		return fl
	}
	udp := func(src, dst string) Flow { return ctnetlinktest.UDP(src, dst, 5000, 53) }
	vrrp := ctnetlinktest.UDP("192.168.0.1", "224.0.0.18", 0, 0)
	vrrp.Proto, vrrp.SrcPort, vrrp.DstPort = 112, 0, 0
	vrrpPeer := vrrp
	vrrpPeer.Src = a("192.168.0.2")
	tests := []struct {
		name string
		fl   Flow
		want bool // replicated
	}{
		// Forwarded: replicated.
		{"forwarded, no NAT", tcp("192.168.0.50", "192.168.1.20", 40000, 80, "", "", 0), true},
		{"forwarded, SNAT to the outside VIP", tcp("192.168.1.20", "192.168.0.50", 40000, 80, "192.168.0.100", "", 0), true},
		{"forwarded, masquerade to this node's address", tcp("192.168.1.20", "192.168.0.50", 40000, 80, "192.168.0.1", "", 0), true},
		{"port forward to the outside VIP", tcp("192.168.0.50", "192.168.0.100", 40000, 8080, "", "192.168.1.20", 80), true},
		{"port forward to this node's own address", tcp("192.168.0.50", "192.168.0.1", 40000, 8080, "", "192.168.1.20", 80), true},
		{"hairpin: DNAT and SNAT to VIPs", tcp("192.168.1.30", "192.168.0.100", 40000, 8080, "192.168.1.100", "192.168.1.20", 80), true},
		{"forwarded to the peer node's LAN address", tcp("192.168.0.50", "192.168.1.2", 40000, 22, "", "", 0), true},
		{"ICMP echo forwarded", ctnetlinktest.Ping("192.168.0.50", "192.168.1.20", 7), true},
		{"IPv6 forwarded", ctnetlinktest.TCP("2001:db8::50", "2001:db8:1::20", 40000, 443), true},
		// Terminating on the node, or opened by it: not replicated.
		{"SSH to this node", tcp("192.168.0.50", "192.168.0.1", 40000, 22, "", "", 0), false},
		{"SSH to the VIP (held now)", tcp("192.168.0.50", "192.168.0.100", 40000, 22, "", "", 0), false},
		{"SSH to the inside VIP", tcp("192.168.0.50", "192.168.1.100", 40000, 22, "", "", 0), false},
		{"REDIRECT to a local proxy", tcp("192.168.1.20", "93.184.216.34", 40000, 80, "", "192.168.1.1", 3128), false},
		{"DNAT to the VIP itself", tcp("192.168.0.50", "192.168.0.9", 40000, 80, "", "192.168.0.100", 8080), false},
		{"BGP opened by this node", tcp("192.168.0.1", "192.168.0.254", 40000, 179, "", "", 0), false},
		{"opened by this node from a VIP, SNATed", tcp("192.168.0.100", "192.168.0.254", 40000, 179, "192.168.0.1", "", 0), false},
		{"DNS query from this node", udp("192.168.1.1", "192.168.1.53"), false},
		{"sync link, outgoing", udp("10.0.0.1", "10.0.0.2"), false},
		{"sync link, incoming", udp("10.0.0.2", "10.0.0.1"), false},
		{"VRRP advert sent", vrrp, false},
		{"VRRP advert received from the peer", vrrpPeer, false},
		{"IPv6 to this node", ctnetlinktest.TCP("2001:db8::50", "2001:db8::1", 40000, 22), false},
		{"IPv6 to the VIP", ctnetlinktest.TCP("2001:db8::50", "2001:db8:1::100", 40000, 22), false},
		{"IPv6 link-local", ctnetlinktest.UDP("fe80::2", "fe80::1", 546, 547), false},
		{"limited broadcast", ctnetlinktest.UDP("0.0.0.0", "255.255.255.255", 68, 67), false},
		{"loopback", tcp("127.0.0.1", "127.0.0.1", 40000, 9000, "", "", 0), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := f.Accept(&tt.fl); got != tt.want {
				t.Errorf("Accept(%v -> %v snat %v dnat %v) = %v, want %v", tt.fl.Src, tt.fl.Dst, tt.fl.SNAT, tt.fl.DNAT, got, tt.want)
			}
		})
	}
	// With no local addresses only the address classes are local.
	var none *Filter
	if none.Local(&tests[0].fl) {
		t.Error("nil filter calls a flow local")
	}
	empty, _ := NewFilter(FilterConfig{})
	if !empty.Accept(&tests[3].fl) || empty.Accept(&tests[len(tests)-1].fl) {
		t.Error("empty filter: want forwarded accepted, loopback not")
	}
}

func TestParseNames(t *testing.T) {
	states := map[string]uint8{"ESTABLISHED": 3, "established": 3, "SYN_SENT": 1, "CLOSED": 8, "CLOSE": 8,
		"TIME_WAIT": 7, "LISTEN": 9, "SYN_SENT2": 9, "NONE": 0}
	for name, want := range states {
		if got, err := ParseTCPState(name); err != nil || got != want {
			t.Errorf("ParseTCPState(%q) = %d, %v, want %d", name, got, err, want)
		}
	}
	if _, err := ParseTCPState("BOGUS"); err == nil {
		t.Error("ParseTCPState(BOGUS) accepted")
	}
	protos := map[string]uint8{"TCP": 6, "udp": 17, "ICMP": 1, "IPv6-ICMP": 58, "icmpv6": 58, "SCTP": 132,
		"DCCP": 33, "UDPLite": 136, "GRE": 47, "47": 47, "0": 0, "255": 255}
	for name, want := range protos {
		if got, err := ParseProto(name); err != nil || got != want {
			t.Errorf("ParseProto(%q) = %d, %v, want %d", name, got, err, want)
		}
	}
	for _, bad := range []string{"", "foo", "256", "-1", "0x6"} {
		if _, err := ParseProto(bad); err == nil {
			t.Errorf("ParseProto(%q) accepted", bad)
		}
	}
}

func TestNamesRoundTrip(t *testing.T) {
	for _, name := range []string{"tcp", "udp", "udplite", "sctp", "dccp", "icmp", "icmpv6", "gre"} {
		p, err := ParseProto(name)
		if err != nil || ProtoName(p) != name {
			t.Errorf("proto %s: %d %v -> %s", name, p, err, ProtoName(p))
		}
	}
	for st := uint8(0); st < tcpStateMax; st++ {
		if got, err := ParseTCPState(TCPStateName(st)); err != nil || got != st {
			t.Errorf("TCP state %d: %s -> %d %v", st, TCPStateName(st), got, err)
		}
	}
	if ProtoName(99) != "99" || TCPStateName(42) != "42" {
		t.Error("unknown values are not shown as numbers")
	}
}

// BenchmarkFilterAccept is the receive-side check of a forwarded flow
// against a node's typical local set (interface addresses, VIPs, the sync
// link): it must not allocate.
func BenchmarkFilterAccept(b *testing.B) {
	var own, vips []netip.Addr
	for i := range 6 {
		own = append(own, netip.AddrFrom4([4]byte{10, 0, byte(i), 1}))
		vips = append(vips, netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i)}))
	}
	own = append(own, netip.MustParseAddr("2001:db8::1"))
	f, err := NewFilter(FilterConfig{LocalAddrs: DefaultLocal(own, vips, netip.MustParsePrefix("169.254.100.0/30"))})
	if err != nil {
		b.Fatal(err)
	}
	fl := Flow{Key: Key{Tuple: Tuple{
		Src: netip.MustParseAddr("198.51.100.7"), Dst: netip.MustParseAddr("203.0.113.9"),
		SrcPort: 40000, DstPort: 443, Proto: ctnetlink.ProtoTCP,
	}}}
	b.ReportAllocs()
	for b.Loop() {
		if !f.Accept(&fl) {
			b.Fatal("a forwarded flow was filtered")
		}
	}
}

// TestAddrSetMatchesContains checks the filter's address set against
// netip.Prefix.Contains on random prefixes and addresses, both families,
// every prefix length, including addresses just outside each prefix.
func TestAddrSetMatchesContains(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	addr := func(v6 bool) netip.Addr {
		if v6 {
			var b [16]byte
			for i := range b {
				b[i] = byte(rng.IntN(4)) // a small space, so hits happen
			}
			return netip.AddrFrom16(b)
		}
		return netip.AddrFrom4([4]byte{10, byte(rng.IntN(3)), byte(rng.IntN(3)), byte(rng.IntN(4))})
	}
	for round := range 300 {
		var ps []netip.Prefix
		for range rng.IntN(6) {
			v6 := rng.IntN(2) == 0
			bits := 32
			if v6 {
				bits = 128
			}
			if rng.IntN(2) == 0 {
				bits = rng.IntN(bits + 1)
			}
			ps = append(ps, netip.PrefixFrom(addr(v6), bits).Masked())
		}
		s := newAddrSet(ps)
		for range 50 {
			a := addr(rng.IntN(2) == 0)
			want := false
			for _, p := range ps {
				want = want || p.Contains(a)
			}
			if got := s.has(a); got != want {
				t.Fatalf("round %d: %v in %v: got %v, want %v", round, a, ps, got, want)
			}
		}
	}
}
