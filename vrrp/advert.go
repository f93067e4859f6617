package vrrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Wire constants of RFC 3768 §5.
const (
	// IPProtocol is the IP protocol number of VRRP (§5.2.4).
	IPProtocol = 112
	// Version2 is the only protocol version this package speaks.
	Version2 = 2
	// TypeAdvertisement is the only VRRPv2 packet type (§5.3.2).
	TypeAdvertisement = 1
	// RequiredTTL is the TTL every advert is sent with and the TTL a
	// multicast advert must arrive with (§5.2.3).
	RequiredTTL = 255
	// OwnerPriority is the priority of the router that owns the virtual
	// addresses (§5.3.4).
	OwnerPriority = 255
	// ShutdownPriority is the priority a master sends when it stops (§5.3.4).
	ShutdownPriority = 0

	headerLen   = 8 // version/type, VRID, priority, count, auth type, interval, checksum
	authDataLen = 8 // Authentication Data, kept for RFC 2338 compatibility
	// MinAdvertLen is the length of an advert without addresses.
	MinAdvertLen = headerLen + authDataLen
	// MaxAddresses is the largest address count the one-octet field can hold.
	MaxAddresses = 255
)

// GroupAddress is the IPv4 multicast group VRRP adverts are sent to (§5.2.2).
var GroupAddress = netip.AddrFrom4([4]byte{224, 0, 0, 18})

// AuthType is the RFC 2338 authentication type, kept by RFC 3768 only for
// compatibility; keepalived still speaks type 1.
type AuthType uint8

const (
	// AuthNone means no authentication (the RFC 3768 value).
	AuthNone AuthType = 0
	// AuthSimple is RFC 2338 simple text password (keepalived "PASS").
	AuthSimple AuthType = 1
	// AuthIPAH is RFC 2338 IP Authentication Header; not supported here.
	AuthIPAH AuthType = 2
)

func (t AuthType) String() string {
	switch t {
	case AuthNone:
		return "none"
	case AuthSimple:
		return "simple"
	case AuthIPAH:
		return "ah"
	}
	return fmt.Sprintf("auth(%d)", uint8(t))
}

// Advertisement is a decoded VRRPv2 ADVERTISEMENT (RFC 3768 §5.1).
// The Version and Type fields are implied (always 2 and 1): a packet with
// other values does not parse.
type Advertisement struct {
	VRID     uint8
	Priority uint8
	// AuthType and AuthData carry RFC 2338 authentication. For AuthSimple,
	// AuthData is the password padded with zero bytes to 8 octets.
	AuthType AuthType
	// AdvertInterval is the advertisement interval in whole seconds.
	AdvertInterval uint8
	// Checksum is the checksum as found on the wire by ParseAdvertisement.
	// AppendBinary ignores it and computes a fresh one.
	Checksum uint16
	// Addresses are the virtual IPv4 addresses, in wire order.
	Addresses []netip.Addr
	AuthData  [authDataLen]byte
}

// Len returns the encoded length of a in octets.
func (a *Advertisement) Len() int { return MinAdvertLen + 4*len(a.Addresses) }

// AppendBinary appends the wire form of a to b, with a freshly computed
// checksum. It fails if a cannot be represented (too many or non-IPv4
// addresses).
func (a *Advertisement) AppendBinary(b []byte) ([]byte, error) {
	if len(a.Addresses) > MaxAddresses {
		return b, fmt.Errorf("vrrp: %d addresses exceed the maximum of %d", len(a.Addresses), MaxAddresses)
	}
	start := len(b)
	b = append(b,
		Version2<<4|TypeAdvertisement,
		a.VRID,
		a.Priority,
		uint8(len(a.Addresses)),
		uint8(a.AuthType),
		a.AdvertInterval,
		0, 0, // checksum, filled below
	)
	for _, addr := range a.Addresses {
		if !addr.Is4() {
			return b[:start], fmt.Errorf("vrrp: address %v is not IPv4", addr)
		}
		v4 := addr.As4()
		b = append(b, v4[:]...)
	}
	b = append(b, a.AuthData[:]...)
	binary.BigEndian.PutUint16(b[start+6:], Checksum(b[start:]))
	return b, nil
}

// MarshalBinary returns the wire form of a.
func (a *Advertisement) MarshalBinary() ([]byte, error) {
	return a.AppendBinary(make([]byte, 0, a.Len()))
}

// Errors wrapped by *ParseError; test with errors.Is.
var (
	ErrShort    = errors.New("packet shorter than its fields")
	ErrLong     = errors.New("packet longer than its fields")
	ErrVersion  = errors.New("unsupported VRRP version")
	ErrType     = errors.New("unknown VRRP packet type")
	ErrChecksum = errors.New("bad checksum")
)

// ParseError describes why bytes are not a valid VRRPv2 advertisement.
type ParseError struct {
	Field  string // the field being checked, e.g. "checksum"
	Offset int    // offset of that field in the VRRP message
	Err    error  // one of ErrShort, ErrLong, ErrVersion, ErrType, ErrChecksum
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("vrrp: parse %s at offset %d: %v", e.Field, e.Offset, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// Reason maps the error to the discard counter it belongs to.
func (e *ParseError) Reason() DiscardReason {
	switch {
	case errors.Is(e.Err, ErrVersion):
		return DiscardVersion
	case errors.Is(e.Err, ErrType):
		return DiscardType
	case errors.Is(e.Err, ErrChecksum):
		return DiscardChecksum
	}
	return DiscardLength
}

// ParseAdvertisement decodes the VRRP message b (the IP payload, without
// the IP header). It checks the structure only: lengths (b must be exactly
// as long as the address count says, RFC 3768 §7.1 and keepalived's exact
// length check), version, type and checksum. The policy checks that depend
// on local configuration are in Validate.
func ParseAdvertisement(b []byte) (*Advertisement, error) {
	if len(b) < MinAdvertLen {
		return nil, &ParseError{Field: "header", Offset: 0, Err: ErrShort}
	}
	if v := b[0] >> 4; v != Version2 {
		return nil, &ParseError{Field: "version", Offset: 0, Err: fmt.Errorf("%w %d", ErrVersion, v)}
	}
	if t := b[0] & 0x0f; t != TypeAdvertisement {
		return nil, &ParseError{Field: "type", Offset: 0, Err: fmt.Errorf("%w %d", ErrType, t)}
	}
	count := int(b[3])
	want := MinAdvertLen + 4*count
	switch {
	case len(b) < want:
		return nil, &ParseError{Field: "addresses", Offset: headerLen, Err: fmt.Errorf("%w: %d addresses need %d octets, have %d", ErrShort, count, want, len(b))}
	case len(b) > want:
		return nil, &ParseError{Field: "addresses", Offset: want, Err: fmt.Errorf("%w: %d addresses need %d octets, have %d", ErrLong, count, want, len(b))}
	}
	if Checksum(b) != 0 {
		return nil, &ParseError{Field: "checksum", Offset: 6, Err: ErrChecksum}
	}
	a := &Advertisement{
		VRID:           b[1],
		Priority:       b[2],
		AuthType:       AuthType(b[4]),
		AdvertInterval: b[5],
		Checksum:       binary.BigEndian.Uint16(b[6:8]),
		Addresses:      make([]netip.Addr, count),
	}
	for i := range count {
		a.Addresses[i] = netip.AddrFrom4([4]byte(b[headerLen+4*i : headerLen+4*i+4]))
	}
	copy(a.AuthData[:], b[want-authDataLen:want])
	return a, nil
}

// Checksum returns the RFC 1071 Internet checksum of b. VRRPv2 computes it
// over the whole VRRP message with no pseudo-header (RFC 3768 §5.3.8).
// Over a message that carries a correct checksum the result is 0.
func Checksum(b []byte) uint16 {
	var sum uint32
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// SimplePassword returns the 8-octet Authentication Data for an RFC 2338
// simple password. Like keepalived, only the first 8 octets are used.
func SimplePassword(password string) [authDataLen]byte {
	var d [authDataLen]byte
	copy(d[:], password)
	return d
}
