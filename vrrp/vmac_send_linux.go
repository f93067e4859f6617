package vrrp

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/mdlayher/packet"
)

// Adverts from the virtual router MAC (RFC 9568 §7.2) on Linux: the
// frame is built here and written through an AF_PACKET socket on the
// instance's parent interface, opened on first use.

var (
	_ VMACSender = (*rawConn)(nil)
	_ VMACSender = (*rawConn6)(nil)
)

// frameSender writes whole Ethernet frames on one interface.
type frameSender struct {
	p      *linuxPlatform
	ifname string
	index  int

	mu  sync.Mutex // the event loop and the pacer both send
	pc  *packet.Conn
	buf []byte
	dst packet.Addr
}

func (f *frameSender) init(p *linuxPlatform, ifname string, index int) {
	f.p, f.ifname, f.index = p, ifname, index
}

// conn opens the AF_PACKET socket; f.mu is held.
func (f *frameSender) conn() (*packet.Conn, error) {
	if f.pc != nil {
		return f.pc, nil
	}
	ifi := &net.Interface{Index: f.index, Name: f.ifname}
	err := f.p.inNamespace(func() error {
		var err error
		// Protocol 0: send only.
		f.pc, err = packet.Listen(ifi, packet.Raw, 0, nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("vrrp: %s: virtual MAC advert socket: %w", f.ifname, err)
	}
	return f.pc, nil
}

func (f *frameSender) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pc != nil {
		_ = f.pc.Close()
		f.pc = nil
	}
}

// send writes the VRRP message b from (mac, src) to the multicast group
// dst with TTL / hop limit 255 and TOS / traffic class 0xc0.
func (f *frameSender) send(mac net.HardwareAddr, b []byte, src, dst netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	pc, err := f.conn()
	if err != nil {
		return err
	}
	frame, dstMAC, err := appendAdvertFrame(f.buf[:0], mac, b, src, dst)
	if err != nil {
		return err
	}
	f.buf = frame
	f.dst.HardwareAddr = dstMAC[:]
	_, err = pc.WriteTo(frame, &f.dst)
	return err
}

// appendAdvertFrame appends to buf the Ethernet frame carrying the VRRP
// message b from src to the multicast group dst, and returns the frame's
// destination MAC (RFC 1112 / RFC 2464 mapping).
func appendAdvertFrame(buf []byte, srcMAC net.HardwareAddr, b []byte, src, dst netip.Addr) ([]byte, [6]byte, error) {
	var dstMAC [6]byte
	if src.Is4() != dst.Is4() || !dst.IsMulticast() {
		return buf, dstMAC, fmt.Errorf("vrrp: frame from %v to %v: want a multicast group of the source's family", src, dst)
	}
	d := dst.AsSlice()
	etherType := uint16(0x0800)
	if dst.Is4() {
		dstMAC = [6]byte{0x01, 0x00, 0x5e, d[1] & 0x7f, d[2], d[3]}
	} else {
		etherType = 0x86dd
		dstMAC = [6]byte{0x33, 0x33, d[12], d[13], d[14], d[15]}
	}
	buf = append(buf, dstMAC[:]...)
	buf = append(buf, srcMAC...)
	buf = binary.BigEndian.AppendUint16(buf, etherType)
	if dst.Is4() {
		h := len(buf)
		buf = append(buf, 0x45, 0xc0)
		buf = binary.BigEndian.AppendUint16(buf, uint16(20+len(b)))
		buf = append(buf, 0, 0, 0, 0, RequiredTTL, IPProtocol, 0, 0) // ID, flags+fragment, TTL, protocol, checksum
		s4, d4 := src.As4(), dst.As4()
		buf = append(buf, s4[:]...)
		buf = append(buf, d4[:]...)
		binary.BigEndian.PutUint16(buf[h+10:], ipChecksum(buf[h:h+20]))
	} else {
		// Version 6, traffic class 0xc0, flow label 0.
		buf = append(buf, 0x6c, 0x00, 0x00, 0x00)
		buf = binary.BigEndian.AppendUint16(buf, uint16(len(b)))
		buf = append(buf, IPProtocol, RequiredTTL)
		s16, d16 := src.As16(), dst.As16()
		buf = append(buf, s16[:]...)
		buf = append(buf, d16[:]...)
	}
	return append(buf, b...), dstMAC, nil
}

// ipChecksum is the Internet checksum of an IPv4 header.
func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

func (c *rawConn) WriteAdvertFrom(mac net.HardwareAddr, b []byte, dst netip.Addr) error {
	return c.frames.send(mac, b, c.local, dst)
}

func (c *rawConn6) WriteAdvertFrom(mac net.HardwareAddr, b []byte, dst netip.Addr) error {
	return c.frames.send(mac, b, c.local, dst)
}
