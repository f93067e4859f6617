package vrrp

import (
	"context"
	"fmt"
)

// IPv6Dialer is implemented by Dialers that can open VRRPv3-over-IPv6
// sockets: protocol 112 to and from ff02::12 with hop limit 255, the
// interface's link-local address as source and LocalAddr. The Linux
// dialer implements it; a Dialer without it cannot run IPv6 instances.
type IPv6Dialer interface {
	DialIPv6(ctx context.Context, ifname string) (Conn, error)
}

// dialFamily opens the socket of ifc in its address family.
func (e *engine) dialFamily(ctx context.Context, ifc *iface) (Conn, error) {
	if !ifc.ipv6 {
		return e.dialer.Dial(ctx, ifc.name)
	}
	d, ok := e.dialer.(IPv6Dialer)
	if !ok {
		return nil, fmt.Errorf("vrrp: the dialer %T cannot open IPv6 sockets", e.dialer)
	}
	return d.DialIPv6(ctx, ifc.name)
}
