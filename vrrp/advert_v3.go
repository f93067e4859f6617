package vrrp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"
)

// Wire constants of VRRPv3 (RFC 9568 §5).
const (
	// Version3 is VRRP version 3 (RFC 9568, which obsoletes RFC 5798).
	Version3 = 3
	// Centisecond is the unit of the VRRPv3 Max Adver Int field.
	Centisecond = 10 * time.Millisecond
	// MinAdvertIntervalV3 and MaxAdvertIntervalV3 are the bounds of the
	// 12-bit Max Adver Int field: 1 to 4095 centiseconds.
	MinAdvertIntervalV3 = Centisecond
	MaxAdvertIntervalV3 = 4095 * Centisecond

	headerLenV3     = 8      // version/type, VRID, priority, count, rsvd/interval, checksum
	maxAdverIntMask = 0x0fff // the low 12 bits of octets 4-5
	ipv6AddrLen     = 16
	ipv4AddrLen     = 4
)

// GroupAddress6 is the IPv6 multicast group of VRRPv3 adverts (RFC 9568
// §5.1.2.2), sent with hop limit 255.
var GroupAddress6 = netip.MustParseAddr("ff02::12")

// AdvertisementV3 is a decoded VRRPv3 ADVERTISEMENT (RFC 9568 §5.2).
// Version and type are implied (3 and 1). There is no authentication.
// The address family of the message is the family of the IP packet that
// carries it: the addresses are all IPv4 or all IPv6, and for IPv6 the
// first one is link-local (checked by the config, not by the codec).
type AdvertisementV3 struct {
	VRID     uint8
	Priority uint8
	// MaxAdvertInterval is the 12-bit Max Adver Int in centiseconds. Zero
	// is representable but meaningless; receivers ignore such adverts.
	MaxAdvertInterval uint16
	// Checksum is the checksum as found on the wire by
	// ParseAdvertisementV3; AppendBinary ignores it.
	Checksum  uint16
	Addresses []netip.Addr
}

// Interval returns the advertised Max Adver Int as a duration.
func (a *AdvertisementV3) Interval() time.Duration {
	return time.Duration(a.MaxAdvertInterval) * Centisecond
}

// CentisecondsV3 converts an advert interval to the Max Adver Int field.
// It reports false if d is not a whole number of centiseconds in
// 10 ms..40.95 s.
func CentisecondsV3(d time.Duration) (uint16, bool) {
	if d < MinAdvertIntervalV3 || d > MaxAdvertIntervalV3 || d%Centisecond != 0 {
		return 0, false
	}
	return uint16(d / Centisecond), true
}

// Len returns the encoded length of a in octets.
func (a *AdvertisementV3) Len() int {
	n := ipv4AddrLen
	if len(a.Addresses) > 0 && a.Addresses[0].Is6() {
		n = ipv6AddrLen
	}
	return headerLenV3 + n*len(a.Addresses)
}

// AppendBinary appends the wire form of a to b with a fresh checksum.
// src and dst are the IP source and destination the message will be
// sent with: the checksum covers their pseudo-header, and their family
// must be the family of the addresses. Appending to a buffer with
// capacity to spare does not allocate.
func (a *AdvertisementV3) AppendBinary(b []byte, src, dst netip.Addr) ([]byte, error) {
	if len(a.Addresses) > MaxAddresses {
		return b, fmt.Errorf("vrrp: %d addresses exceed the maximum of %d", len(a.Addresses), MaxAddresses)
	}
	if a.MaxAdvertInterval > maxAdverIntMask {
		return b, fmt.Errorf("vrrp: max advert interval %d cs does not fit in 12 bits", a.MaxAdvertInterval)
	}
	if !src.IsValid() || !dst.IsValid() || src.Is4() != dst.Is4() {
		return b, fmt.Errorf("vrrp: source %v and destination %v are not addresses of one family", src, dst)
	}
	start := len(b)
	b = append(b,
		Version3<<4|TypeAdvertisement,
		a.VRID,
		a.Priority,
		uint8(len(a.Addresses)),
		uint8(a.MaxAdvertInterval>>8), uint8(a.MaxAdvertInterval),
		0, 0, // checksum, filled below
	)
	for _, addr := range a.Addresses {
		switch {
		case src.Is4() && addr.Is4():
			v4 := addr.As4()
			b = append(b, v4[:]...)
		case src.Is6() && addr.Is6() && !addr.Is4In6():
			v6 := addr.As16()
			b = append(b, v6[:]...)
		default:
			return b[:start], fmt.Errorf("vrrp: address %v is not of the packet's family (source %v)", addr, src)
		}
	}
	binary.BigEndian.PutUint16(b[start+6:], ChecksumV3(b[start:], src, dst))
	return b, nil
}

// ParseAdvertisementV3 decodes the VRRPv3 message b, the payload of an IP
// packet from src to dst (whose family sets the address length). It
// checks the structure: length exact for the address count, version 3,
// type ADVERTISEMENT, and the checksum. The checksum is accepted over the
// pseudo-header (RFC 9568 for IPv6; keepalived's default and most
// implementations for IPv4) and, for IPv4 only, also over the message
// alone (RFC 9568's reading for IPv4, keepalived's v3_checksum_as_v2).
// The reserved bits are ignored, as the RFC asks.
func ParseAdvertisementV3(b []byte, src, dst netip.Addr) (*AdvertisementV3, error) {
	if len(b) < headerLenV3 {
		return nil, &ParseError{Field: "header", Offset: 0, Err: ErrShort}
	}
	if v := b[0] >> 4; v != Version3 {
		return nil, &ParseError{Field: "version", Offset: 0, Err: fmt.Errorf("%w %d", ErrVersion, v)}
	}
	if t := b[0] & 0x0f; t != TypeAdvertisement {
		return nil, &ParseError{Field: "type", Offset: 0, Err: fmt.Errorf("%w %d", ErrType, t)}
	}
	alen := ipv4AddrLen
	if src.Is6() && !src.Is4In6() {
		alen = ipv6AddrLen
	}
	count := int(b[3])
	want := headerLenV3 + alen*count
	switch {
	case len(b) < want:
		return nil, &ParseError{Field: "addresses", Offset: headerLenV3, Err: fmt.Errorf("%w: %d addresses need %d octets, have %d", ErrShort, count, want, len(b))}
	case len(b) > want:
		return nil, &ParseError{Field: "addresses", Offset: want, Err: fmt.Errorf("%w: %d addresses need %d octets, have %d", ErrLong, count, want, len(b))}
	}
	if ChecksumV3(b, src, dst) != 0 && (alen != ipv4AddrLen || Checksum(b) != 0) {
		return nil, &ParseError{Field: "checksum", Offset: 6, Err: ErrChecksum}
	}
	a := &AdvertisementV3{
		VRID:              b[1],
		Priority:          b[2],
		MaxAdvertInterval: binary.BigEndian.Uint16(b[4:6]) & maxAdverIntMask,
		Checksum:          binary.BigEndian.Uint16(b[6:8]),
		Addresses:         make([]netip.Addr, count),
	}
	for i := range count {
		off := headerLenV3 + alen*i
		if alen == ipv4AddrLen {
			a.Addresses[i] = netip.AddrFrom4([4]byte(b[off : off+4]))
		} else {
			a.Addresses[i] = netip.AddrFrom16([16]byte(b[off : off+16]))
		}
	}
	return a, nil
}

// ChecksumV3 returns the Internet checksum of the VRRPv3 message b sent
// from src to dst: the RFC 1071 sum over the IPv4 (RFC 768 style: source,
// destination, zero, protocol 112, length) or IPv6 (RFC 8200 §8.1:
// source, destination, 32-bit length, three zero octets, next header 112)
// pseudo-header followed by the message. Over a message that carries a
// correct checksum the result is 0.
func ChecksumV3(b []byte, src, dst netip.Addr) uint16 {
	var sum uint32
	add := func(p []byte) {
		for len(p) >= 2 {
			sum += uint32(p[0])<<8 | uint32(p[1])
			p = p[2:]
		}
		if len(p) == 1 {
			sum += uint32(p[0]) << 8
		}
	}
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		add(s[:])
		add(d[:])
	} else {
		s, d := src.As16(), dst.As16()
		add(s[:])
		add(d[:])
		sum += uint32(len(b)) >> 16 // upper half of the 32-bit length
	}
	sum += uint32(len(b)) & 0xffff
	sum += IPProtocol
	add(b)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// SkewTimeV3 returns RFC 9568 Skew_Time, ((256 - Priority) *
// Master_Adver_Interval) / 256. Computed exactly (not rounded down to
// whole centiseconds, as keepalived does too), so that priorities one
// apart still time out in order at 10 ms adverts.
func SkewTimeV3(priority uint8, masterAdverInterval time.Duration) time.Duration {
	return time.Duration(256-int(priority)) * masterAdverInterval / 256
}

// MasterDownIntervalV3 returns RFC 9568 Master_Down_Interval,
// 3 * Master_Adver_Interval + Skew_Time, where Master_Adver_Interval is the
// interval the current master advertises (our own until one is heard).
func MasterDownIntervalV3(masterAdverInterval time.Duration, priority uint8) time.Duration {
	return 3*masterAdverInterval + SkewTimeV3(priority, masterAdverInterval)
}
