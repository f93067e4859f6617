package ctsync

import (
	"fmt"
	"net/netip"
)

// Received-state validation. The codec only checks that a message is well
// formed; a well-formed state can still be something no kernel ever had (a
// bit flip, a forgery). Every decoded state passes validateFlow before it
// reaches the external cache or the kernel, and a rejected one is counted
// by reason ("invalid_proto", ...) next to the codec's reasons.

// protoGRE is IPPROTO_GRE; the kernel tracks it (nf_conntrack_proto_gre).
const protoGRE = 47

// MaxTimeouts are the longest timeouts, in seconds, a received state may
// carry, per L4 protocol. The sender puts the entry's remaining lifetime on
// the wire, which never exceeds the timeout of its state; the caps are the
// kernel's largest default for the protocol with room for tuned sysctls:
//
//	TCP         432000 (5 days: nf_conntrack_tcp_timeout_established) for
//	            ESTABLISHED and for states the sender did not send;
//	            7200 for every other state (the kernel's are <= 300 s)
//	SCTP        432000 (the established timeout of kernels before 5.19)
//	DCCP        86400  (open: 12 h by default)
//	UDP/UDPLite 3600   (stream: 120 s by default; 180 s on older kernels)
//	GRE         3600   (stream: 180 s by default)
//	ICMP/ICMPv6 600    (30 s by default)
//
// A timeout of 0 means the sender left NTA_TIMEOUT out and is accepted.
type MaxTimeouts struct {
	TCPEstablished, TCPOther, SCTP, DCCP, UDP, GRE, ICMP uint32
}

// DefaultMaxTimeouts returns the caps documented on MaxTimeouts.
func DefaultMaxTimeouts() MaxTimeouts {
	return MaxTimeouts{
		TCPEstablished: 432000, TCPOther: 7200, SCTP: 432000, DCCP: 86400,
		UDP: 3600, GRE: 3600, ICMP: 600,
	}
}

// tcpEstablished is TCP_CONNTRACK_ESTABLISHED.
const tcpEstablished = 3

// InvalidStateError is a received state that failed validation.
type InvalidStateError struct {
	Reason string // invalid_proto, invalid_family, invalid_addr, invalid_port, invalid_state, invalid_timeout
	Detail string
}

func (e *InvalidStateError) Error() string {
	return "ctsync: received state rejected: " + e.Reason + ": " + e.Detail
}

func invalid(reason, format string, args ...any) error {
	return &InvalidStateError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// validateKey checks what a deletion carries too: the protocol, the
// addresses and the ports of the tuple.
func validateKey(k *Key) error {
	switch k.Proto {
	case protoTCP, protoUDP, protoUDPLite, protoSCTP, protoDCCP, protoGRE, protoICMP, protoICMPv6:
	default:
		return invalid("invalid_proto", "L4 protocol %d is not replicated", k.Proto)
	}
	if !k.Src.IsValid() || !k.Dst.IsValid() || k.Src.Is4() != k.Dst.Is4() {
		return invalid("invalid_family", "addresses %v and %v", k.Src, k.Dst)
	}
	if k.Proto == protoICMP && !k.Src.Is4() || k.Proto == protoICMPv6 && k.Src.Is4() {
		return invalid("invalid_family", "protocol %d with %v", k.Proto, k.Src)
	}
	if badHost(k.Src) || k.Src.IsMulticast() || isBroadcast(k.Src) {
		return invalid("invalid_addr", "source %v", k.Src)
	}
	if badHost(k.Dst) {
		return invalid("invalid_addr", "destination %v", k.Dst)
	}
	if hasPorts(k.Proto) && (k.SrcPort == 0 || k.DstPort == 0) {
		return invalid("invalid_port", "protocol %d with port 0 (%d -> %d)", k.Proto, k.SrcPort, k.DstPort)
	}
	if !hasPorts(k.Proto) && (k.SrcPort != 0 || k.DstPort != 0) {
		return invalid("invalid_port", "protocol %d with ports", k.Proto)
	}
	return nil
}

func badHost(a netip.Addr) bool { return a.IsUnspecified() || a.Is4In6() }

func isBroadcast(a netip.Addr) bool { return a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) }

// validateFlow checks a received state for creation or update.
func validateFlow(f *Flow, caps *MaxTimeouts) error {
	if err := validateKey(&f.Key); err != nil {
		return err
	}
	for _, n := range []NAT{f.SNAT, f.DNAT} {
		if n.Addr.IsValid() && (n.Addr.Is4() != f.Src.Is4() || badHost(n.Addr) || n.Addr.IsMulticast()) {
			return invalid("invalid_addr", "NAT address %v for a flow %v -> %v", n.Addr, f.Src, f.Dst)
		}
	}
	var maxT uint32
	switch f.Proto {
	case protoTCP:
		if f.HasProtoState && f.ProtoState >= tcpStateMax {
			return invalid("invalid_state", "TCP state %d", f.ProtoState)
		}
		maxT = caps.TCPOther
		if !f.HasProtoState || f.ProtoState == tcpEstablished {
			maxT = caps.TCPEstablished
		}
	case protoSCTP:
		maxT = caps.SCTP
	case protoDCCP:
		maxT = caps.DCCP
	case protoUDP, protoUDPLite:
		maxT = caps.UDP
	case protoGRE:
		maxT = caps.GRE
	default:
		maxT = caps.ICMP
	}
	if f.Timeout > maxT {
		return invalid("invalid_timeout", "%d s for protocol %d (at most %d)", f.Timeout, f.Proto, maxT)
	}
	return nil
}
