package ctsync

// The address lists of a Filter, matched on every kernel event and every
// received state. A profile of the receiver had netip.Prefix.Contains, one
// call per prefix and per address, at 8% of its CPU. A node's lists are
// mostly single addresses (its own, the VIPs) and a few real prefixes
// (the sync link): the single addresses are kept as sorted integers and
// found by binary search, the prefixes as masks, all without allocation.

import (
	"encoding/binary"
	"net/netip"
	"slices"
)

// addrSet is an immutable set of prefixes.
type addrSet struct {
	v4 []uint32  // /32 addresses, sorted
	v6 []addr128 // /128 addresses, sorted
	p4 []prefix4 // shorter IPv4 prefixes
	p6 []netip.Prefix
}

type addr128 struct{ hi, lo uint64 }

type prefix4 struct{ addr, mask uint32 }

func cmp128(a, b addr128) int {
	switch {
	case a.hi < b.hi:
		return -1
	case a.hi > b.hi:
		return 1
	case a.lo < b.lo:
		return -1
	case a.lo > b.lo:
		return 1
	}
	return 0
}

func to128(a netip.Addr) addr128 {
	b := a.As16()
	return addr128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func to32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

// newAddrSet builds the set of ps (masked, IPv4 not mapped: see
// filterPrefixes).
func newAddrSet(ps []netip.Prefix) addrSet {
	var s addrSet
	for _, p := range ps {
		a := p.Addr()
		switch {
		case a.Is4() && p.Bits() == 32:
			s.v4 = append(s.v4, to32(a))
		case a.Is4():
			// A shift by 32 (0.0.0.0/0) gives 0 in Go: matches all.
			s.p4 = append(s.p4, prefix4{addr: to32(a), mask: ^uint32(0) << (32 - p.Bits())})
		case p.Bits() == 128:
			s.v6 = append(s.v6, to128(a))
		default:
			s.p6 = append(s.p6, p)
		}
	}
	slices.Sort(s.v4)
	s.v4 = slices.Compact(s.v4)
	slices.SortFunc(s.v6, cmp128)
	s.v6 = slices.CompactFunc(s.v6, func(a, b addr128) bool { return a == b })
	return s
}

func (s *addrSet) empty() bool {
	return len(s.v4) == 0 && len(s.v6) == 0 && len(s.p4) == 0 && len(s.p6) == 0
}

// has reports whether a (unmapped) lies in the set.
func (s *addrSet) has(a netip.Addr) bool {
	if a.Is4() {
		x := to32(a)
		if _, ok := slices.BinarySearch(s.v4, x); ok {
			return true
		}
		for _, p := range s.p4 {
			if x&p.mask == p.addr {
				return true
			}
		}
		return false
	}
	if !a.Is6() {
		return false
	}
	if len(s.v6) > 0 {
		if _, ok := slices.BinarySearchFunc(s.v6, to128(a), cmp128); ok {
			return true
		}
	}
	for _, p := range s.p6 {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// hasEither reports whether a or b lies in the set.
func (s *addrSet) hasEither(a, b netip.Addr) bool { return s.has(a) || s.has(b) }
