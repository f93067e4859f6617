package vrrp

import (
	"crypto/subtle"
	"net/netip"
	"slices"
)

// DiscardReason says why a received packet was dropped. Every reason has
// its own counter in InstanceStatus and InterfaceStatus.
type DiscardReason uint8

// Discard reasons, in the order RFC 3768 §7.1 lists the checks.
const (
	DiscardNone           DiscardReason = iota // not discarded
	DiscardTTL                                 // multicast advert with IP TTL != 255 (§7.1 1)
	DiscardVersion                             // version != 2 (§7.1 2)
	DiscardLength                              // shorter or longer than its address count says (§7.1 3)
	DiscardChecksum                            // bad VRRP checksum (§7.1 4)
	DiscardType                                // type != ADVERTISEMENT (§5.3.2)
	DiscardUnknownVRID                         // VRID not configured on the receiving interface (§7.1 5)
	DiscardLocalOwner                          // we own the addresses (priority 255) (§7.1 5)
	DiscardAuthType                            // auth type differs from ours (§7.1 6, §5.3.6)
	DiscardAuthFailure                         // simple password differs (§7.1 6)
	DiscardInterval                            // Adver Int differs from ours (§7.1 8)
	DiscardWrongInterface                      // arrived on another interface than the socket's
	DiscardOwnAdvert                           // our own advert looped back (source is our address)
	DiscardUnknownPeer                         // unicast advert from an address that is not a configured peer
	DiscardDestination                         // multicast advert for a unicast instance or vice versa
	DiscardAddressList                         // address list differs from ours and priority is not 255 (§7.1 7)
	numDiscardReasons
)

var discardReasonNames = [numDiscardReasons]string{
	DiscardNone:           "none",
	DiscardTTL:            "ttl",
	DiscardVersion:        "version",
	DiscardLength:         "length",
	DiscardChecksum:       "checksum",
	DiscardType:           "type",
	DiscardUnknownVRID:    "unknown_vrid",
	DiscardLocalOwner:     "local_owner",
	DiscardAuthType:       "auth_type",
	DiscardAuthFailure:    "auth_failure",
	DiscardInterval:       "advert_interval",
	DiscardWrongInterface: "wrong_interface",
	DiscardOwnAdvert:      "own_advert",
	DiscardUnknownPeer:    "unknown_peer",
	DiscardDestination:    "destination",
	DiscardAddressList:    "address_list",
}

// String returns the stable snake_case name used in Status and logs.
func (r DiscardReason) String() string {
	if r < numDiscardReasons {
		return discardReasonNames[r]
	}
	return "unknown"
}

// DiscardReasons lists every real reason (without DiscardNone), for callers
// that export counters.
func DiscardReasons() []DiscardReason {
	rs := make([]DiscardReason, 0, numDiscardReasons-1)
	for r := DiscardNone + 1; r < numDiscardReasons; r++ {
		rs = append(rs, r)
	}
	return rs
}

// RecvMeta is what the socket layer knows about a received packet.
type RecvMeta struct {
	Src     netip.Addr // IP source: the sender's primary address (used for the tie-break)
	Dst     netip.Addr // IP destination: 224.0.0.18 or our unicast address
	TTL     int        // IP TTL
	IfIndex int        // receiving interface, 0 if unknown
}

// receivePolicy is the per-instance part of RFC 3768 §7.1: everything that
// depends on local configuration.
type receivePolicy struct {
	owner    bool // local priority 255
	authType AuthType
	authData [authDataLen]byte
	interval uint8
	vips     []netip.Addr // sorted
	unicast  bool
	peers    []netip.Addr
}

// check applies the configuration-dependent receive rules to a parsed
// advert. It returns the discard reason, or DiscardNone, and whether the
// address list differs from ours. Like keepalived we log and count an
// address-list mismatch. RFC 3768 §7.1: when the list does not match and
// the priority is not 255 the advert MUST be discarded, so it returns
// DiscardAddressList then; an address owner's advert (priority 255) with a
// different list is accepted and only flagged. keepalived obeys such
// adverts, which lets a neighbour with a stray VRID take the pair down.
func (p *receivePolicy) check(a *Advertisement, m RecvMeta) (reason DiscardReason, addrMismatch bool) {
	if r := p.checkTransport(m); r != DiscardNone {
		return r, false
	}
	if a.AuthType != p.authType {
		return DiscardAuthType, false
	}
	if a.AuthType == AuthSimple && subtle.ConstantTimeCompare(a.AuthData[:], p.authData[:]) != 1 {
		return DiscardAuthFailure, false
	}
	if a.AdvertInterval != p.interval {
		return DiscardInterval, false
	}
	return p.checkAddresses(a.Addresses, a.Priority)
}

// checkTransport is the rules of both versions on how an advert arrived,
// and the address owner's refusal of every advert.
func (p *receivePolicy) checkTransport(m RecvMeta) DiscardReason {
	if p.unicast {
		// Unicast adverts may cross routers, so like keepalived the TTL is
		// not checked; the source must be a configured peer instead.
		if m.Dst.IsMulticast() {
			return DiscardDestination
		}
		if !slices.Contains(p.peers, m.Src) {
			return DiscardUnknownPeer
		}
	} else {
		if !m.Dst.IsMulticast() {
			return DiscardDestination
		}
		if m.TTL != RequiredTTL {
			return DiscardTTL
		}
	}
	if p.owner {
		return DiscardLocalOwner
	}
	return DiscardNone
}

// checkAddresses is the address-list rule of both versions: a list that
// differs from ours is discarded unless the priority is 255, and flagged.
func (p *receivePolicy) checkAddresses(addrs []netip.Addr, prio uint8) (DiscardReason, bool) {
	if !sameAddresses(addrs, p.vips) {
		if prio != OwnerPriority {
			return DiscardAddressList, true
		}
		return DiscardNone, true
	}
	return DiscardNone, false
}

// sameAddresses reports whether got holds exactly the addresses of want
// (sorted), in any order.
func sameAddresses(got, want []netip.Addr) bool {
	if len(got) != len(want) {
		return false
	}
	sorted := slices.Clone(got)
	slices.SortFunc(sorted, netip.Addr.Compare)
	return slices.Equal(sorted, want)
}
