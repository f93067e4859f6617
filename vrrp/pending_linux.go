package vrrp

import (
	"net/netip"

	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// ReadPending reads one packet already queued on the socket, without
// waiting: the event loop calls it before acting on a Master_Down expiry,
// so that an advert the kernel received in time is not ignored because
// the reader goroutine has not been scheduled yet (a false takeover on a
// saturated machine). A raw IPv4 socket returns the IP header, from which
// source, destination and TTL are taken.
func (c *rawConn) ReadPending(b []byte) (int, RecvMeta, bool) {
	var (
		n    int
		rerr error
	)
	// Control, not Read: Read would wait for the reader goroutine's
	// lock on the socket.
	err := c.raw.Control(func(fd uintptr) {
		n, _, rerr = unix.Recvfrom(int(fd), b, unix.MSG_DONTWAIT)
	})
	if err != nil || rerr != nil || n < 20 || b[0]>>4 != 4 {
		return 0, RecvMeta{}, false
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < 20 || n < ihl {
		return 0, RecvMeta{}, false
	}
	m := RecvMeta{
		Src: netip.AddrFrom4([4]byte(b[12:16])),
		Dst: netip.AddrFrom4([4]byte(b[16:20])),
		TTL: int(b[8]),
	}
	n = copy(b, b[ihl:n])
	return n, m, true
}

// ReadPending is rawConn's for IPv6: the payload comes alone, hop limit
// and destination in control messages.
func (c *rawConn6) ReadPending(b []byte) (int, RecvMeta, bool) {
	var (
		n, oobn int
		from    unix.Sockaddr
		rerr    error
		oob     [128]byte
	)
	err := c.raw.Control(func(fd uintptr) {
		n, oobn, _, from, rerr = unix.Recvmsg(int(fd), b, oob[:], unix.MSG_DONTWAIT)
	})
	if err != nil || rerr != nil {
		return 0, RecvMeta{}, false
	}
	var m RecvMeta
	if sa, ok := from.(*unix.SockaddrInet6); ok {
		m.Src = netip.AddrFrom16(sa.Addr)
	}
	var cm ipv6.ControlMessage
	if cm.Parse(oob[:oobn]) == nil {
		m.TTL = cm.HopLimit
		m.IfIndex = cm.IfIndex
		m.Dst, _ = netip.AddrFromSlice(cm.Dst)
	}
	return n, m, true
}
