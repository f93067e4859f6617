package ctsync

// Flow filters, as conntrackd's Filter block: which kernel flows are
// replicated. A flow passes when it passes every configured category
// (address, protocol, TCP state); within a category an accept list, when
// not empty, admits only what it lists, and an ignore list drops what it
// lists. Addresses are matched against both ends of the original tuple.
//
// Independently of those lists, LocalAddrs says which addresses are the
// node's own (its interface addresses, every VIP of the pair, the sync
// link): a flow that terminates on the node or was opened by it is not
// replicated, every flow the node forwards is, whatever address it was sent
// to. See Filter.Local for the rule.

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/fwpair/fwpair/ctsync/ctnetlink"
)

// FilterConfig lists what to replicate. Empty lists do not filter.
type FilterConfig struct {
	// AcceptAddrs, when not empty, admits only flows whose original source
	// or destination lies in one of the prefixes (a single address is a
	// /32 or /128 prefix). IgnoreAddrs drops such flows.
	AcceptAddrs, IgnoreAddrs []netip.Prefix
	// AcceptProtos / IgnoreProtos filter by L4 protocol number
	// (see ParseProto).
	AcceptProtos, IgnoreProtos []uint8
	// AcceptTCPStates / IgnoreTCPStates filter TCP flows by their
	// TCP_CONNTRACK_* state (see ParseTCPState); other protocols, and TCP
	// flows without a state, are not affected.
	AcceptTCPStates, IgnoreTCPStates []uint8
	// LocalAddrs are the node's own addresses (a single address is a /32
	// or /128 prefix): its interface addresses, the VIPs of the pair
	// (whoever holds them now), loopback and the sync link. A flow that
	// terminates on one of them after NAT, or was opened from one, is the
	// node's own traffic and is not replicated (see Filter.Local).
	LocalAddrs []netip.Prefix
}

// Filter decides which flows are replicated. A nil *Filter accepts
// everything. It is immutable and safe for concurrent use.
type Filter struct {
	acceptAddrs, ignoreAddrs addrSet
	// Protocols and states are bitmaps: 256 bits for protocols, 16 for
	// TCP states.
	acceptProtos, ignoreProtos [4]uint64
	anyAcceptProto             bool
	acceptStates, ignoreStates uint16
	local                      addrSet
}

// tcpStateMax is TCP_CONNTRACK_MAX: states are 0..tcpStateMax-1.
const tcpStateMax = 10

// NewFilter validates cfg and builds a Filter.
func NewFilter(cfg FilterConfig) (*Filter, error) {
	f := &Filter{}
	for _, l := range []struct {
		dst  *addrSet
		in   []netip.Prefix
		what string
	}{{&f.acceptAddrs, cfg.AcceptAddrs, "accept"}, {&f.ignoreAddrs, cfg.IgnoreAddrs, "ignore"}, {&f.local, cfg.LocalAddrs, "local"}} {
		ps, err := filterPrefixes(l.in)
		if err != nil {
			return nil, fmt.Errorf("filter: %s address: %w", l.what, err)
		}
		*l.dst = newAddrSet(ps)
	}
	for _, p := range cfg.AcceptProtos {
		f.acceptProtos[p/64] |= 1 << (p % 64)
		f.anyAcceptProto = true
	}
	for _, p := range cfg.IgnoreProtos {
		f.ignoreProtos[p/64] |= 1 << (p % 64)
	}
	for _, s := range cfg.AcceptTCPStates {
		if s >= tcpStateMax {
			return nil, fmt.Errorf("filter: accept TCP state %d out of range", s)
		}
		f.acceptStates |= 1 << s
	}
	for _, s := range cfg.IgnoreTCPStates {
		if s >= tcpStateMax {
			return nil, fmt.Errorf("filter: ignore TCP state %d out of range", s)
		}
		f.ignoreStates |= 1 << s
	}
	return f, nil
}

// filterPrefixes checks and normalises prefixes (masked, IPv4-mapped IPv6
// turned into IPv4).
func filterPrefixes(in []netip.Prefix) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(in))
	for _, p := range in {
		if !p.IsValid() {
			return nil, fmt.Errorf("invalid prefix %v", p)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Accept reports whether the flow is to be replicated.
func (f *Filter) Accept(fl *Flow) bool {
	if f == nil {
		return true
	}
	p := fl.Proto
	if f.anyAcceptProto && f.acceptProtos[p/64]&(1<<(p%64)) == 0 {
		return false
	}
	if f.ignoreProtos[p/64]&(1<<(p%64)) != 0 {
		return false
	}
	if p == ctnetlink.ProtoTCP && fl.HasProtoState && fl.ProtoState < tcpStateMax {
		bit := uint16(1) << fl.ProtoState
		if f.acceptStates != 0 && f.acceptStates&bit == 0 {
			return false
		}
		if f.ignoreStates&bit != 0 {
			return false
		}
	}
	src, dst := fl.Src.Unmap(), fl.Dst.Unmap()
	if !f.acceptAddrs.empty() && !f.acceptAddrs.hasEither(src, dst) {
		return false
	}
	if f.ignoreAddrs.hasEither(src, dst) {
		return false
	}
	return !f.Local(fl)
}

// Local reports whether fl is the node's own traffic rather than a
// connection it forwards. The decision is taken on the NAT'd tuples, as the
// kernel sees the two directions:
//
//   - the reply tuple's source is the host that really answers (the
//     original destination, or the DNAT target): when it is a local
//     address, the flow terminates on the node (SSH or BGP to the firewall,
//     a REDIRECT to a local proxy, the sync link, VRRP adverts received);
//   - the original source is the host that opened the flow: when it is a
//     local address the node opened it (its own SSH, BGP, DNS, adverts),
//     whatever SNAT did to it afterwards;
//   - multicast, limited broadcast and link-local endpoints are never
//     forwarded.
//
// Everything else is forwarded and replicated: a port forward to a VIP
// (original destination VIP, reply source the inside host), SNAT or
// masquerade to a VIP (original source the client, reply destination the
// VIP), hairpin NAT. The original destination and the reply destination
// alone are not looked at: both are local addresses for forwarded flows
// with DNAT, respectively SNAT. With no LocalAddrs only the address classes
// of the last rule make a flow local.
func (f *Filter) Local(fl *Flow) bool {
	if f == nil {
		return false
	}
	origSrc := fl.Src.Unmap()
	replySrc := fl.Dst.Unmap()
	if fl.DNAT.Addr.IsValid() {
		replySrc = fl.DNAT.Addr.Unmap()
	}
	if neverForwarded(origSrc) || neverForwarded(replySrc) || neverForwarded(fl.Dst.Unmap()) {
		return true
	}
	return f.local.hasEither(origSrc, replySrc)
}

// neverForwarded reports addresses a router does not forward to or from:
// multicast, the limited broadcast, link-local, loopback, unspecified.
func neverForwarded(a netip.Addr) bool {
	if a.Is4() { // the same classes, on the integer (hot: every state)
		x := to32(a)
		return x>>28 == 0xe || x>>16 == 0xa9fe || x>>24 == 127 || x == 0 || x == 0xffffffff
	}
	return a.IsMulticast() || a.IsLinkLocalUnicast() || a.IsLoopback() || a.IsUnspecified() ||
		a == netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// DefaultLocal returns the node's own addresses as FilterConfig.LocalAddrs
// wants them: its interface addresses, every VIP of the pair (both nodes
// hold them at different times, so all of them, whoever holds them now) and
// the sync link prefix (an invalid address or prefix is skipped). Loopback,
// link-local and multicast need not be listed (see Filter.Local).
func DefaultLocal(own, vips []netip.Addr, syncLink netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, lists := range [][]netip.Addr{own, vips} {
		for _, a := range lists {
			if a.IsValid() {
				a = a.Unmap()
				out = append(out, netip.PrefixFrom(a, a.BitLen()))
			}
		}
	}
	if syncLink.IsValid() {
		out = append(out, syncLink.Masked())
	}
	return out
}

// tcpStateNames are conntrackd's names for the TCP_CONNTRACK_* states, by
// value.
var tcpStateNames = [tcpStateMax]string{
	"NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT",
	"CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "LISTEN",
}

// TCPStateName is the conntrackd name of a TCP_CONNTRACK_* value, or its
// number when out of range.
func TCPStateName(state uint8) string {
	if int(state) < len(tcpStateNames) {
		return tcpStateNames[state]
	}
	return strconv.Itoa(int(state))
}

// ProtoName is the lower-case name of an IP protocol number as ParseProto
// accepts it, or the number.
func ProtoName(proto uint8) string {
	switch proto {
	case ctnetlink.ProtoTCP:
		return "tcp"
	case ctnetlink.ProtoUDP:
		return "udp"
	case ctnetlink.ProtoUDPLite:
		return "udplite"
	case ctnetlink.ProtoSCTP:
		return "sctp"
	case ctnetlink.ProtoDCCP:
		return "dccp"
	case ctnetlink.ProtoICMP:
		return "icmp"
	case ctnetlink.ProtoICMPv6:
		return "icmpv6"
	case ctnetlink.ProtoGRE:
		return "gre"
	}
	return strconv.Itoa(int(proto))
}

// ParseTCPState maps a conntrackd TCP state name (case-insensitive;
// SYN_SENT2 and LISTEN are the same value, CLOSED is CLOSE) to its
// TCP_CONNTRACK_* value.
func ParseTCPState(name string) (uint8, error) {
	n := strings.ToUpper(strings.TrimSpace(name))
	switch n {
	case "CLOSED":
		n = "CLOSE"
	case "SYN_SENT2":
		n = "LISTEN"
	}
	for i, s := range tcpStateNames {
		if s == n {
			return uint8(i), nil
		}
	}
	return 0, fmt.Errorf("filter: unknown TCP state %q", name)
}

// ParseProto maps a protocol name as conntrackd's config accepts it
// (TCP, UDP, UDPLite, SCTP, DCCP, ICMP, IPv6-ICMP/ICMPv6, GRE;
// case-insensitive) or a decimal number to the IP protocol number.
func ParseProto(name string) (uint8, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "tcp":
		return ctnetlink.ProtoTCP, nil
	case "udp":
		return ctnetlink.ProtoUDP, nil
	case "udplite":
		return ctnetlink.ProtoUDPLite, nil
	case "sctp":
		return ctnetlink.ProtoSCTP, nil
	case "dccp":
		return ctnetlink.ProtoDCCP, nil
	case "icmp":
		return ctnetlink.ProtoICMP, nil
	case "ipv6-icmp", "icmpv6", "icmp6":
		return ctnetlink.ProtoICMPv6, nil
	case "gre":
		return ctnetlink.ProtoGRE, nil
	}
	if v, err := strconv.ParseUint(strings.TrimSpace(name), 10, 8); err == nil {
		return uint8(v), nil
	}
	return 0, fmt.Errorf("filter: unknown protocol %q", name)
}
