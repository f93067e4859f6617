package vrrp

// Accept_Mode (RFC 9568 §6.1): whether a MASTER that is not the address
// owner accepts packets addressed to its VIPs. The decision is pure and
// lives here; the Linux filter that enforces it is in accept_linux.go.

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// AcceptFilter is implemented by Addressers that can keep the node from
// accepting packets addressed to some of its addresses (the Linux one
// does, with an nf_tables table of its own). The engine calls it with
// the VIPs of every instance with NoAccept that is not the address owner
// when Run starts, and with none on a graceful stop. An address that is
// not assigned to the node is never the destination of a packet it
// accepts, so the filter may be in place before the VIPs are added and
// while the group is BACKUP: there is no moment when a MASTER holds a
// VIP without it.
type AcceptFilter interface {
	// RefuseLocal replaces the set of refused addresses: packets whose
	// destination is one of them are not delivered to local sockets,
	// except Neighbor Discovery (ARP is not IP and is never refused);
	// forwarded and NATed traffic is not affected. An empty list removes
	// the filter. It is idempotent.
	RefuseLocal(ctx context.Context, addrs []netip.Addr) error
	// RefusingLocal reports whether the filter RefuseLocal installed is
	// still in place: an operator's "flush ruleset" (a firewall reload)
	// removes it with everything else.
	RefusingLocal(ctx context.Context) (bool, error)
}

// acceptCheckInterval is how often the engine checks that the accept
// filter survived firewall reloads, and puts it back if not.
const acceptCheckInterval = 2 * time.Second

// refusedVIPs returns the addresses a MASTER of these instances must not
// accept packets for: the VIPs of the instances with NoAccept, except the
// address owner's (priority 255: the VIPs are its own addresses, RFC 9568
// §6.1), sorted and without duplicates. Priorities changed at run time
// never reach or leave 255 (SetPriority), so the set is fixed for a Run.
func refusedVIPs(instances []InstanceConfig) []netip.Addr {
	var out []netip.Addr
	for _, in := range instances {
		if !in.NoAccept || in.Priority == OwnerPriority {
			continue
		}
		out = append(out, vipAddrs(in.VIPs)...)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// applyAcceptMode installs (or, with addrs empty, removes) the accept
// filter. Without a filter-capable Addresser, instances with NoAccept
// are an error: the node would silently accept what it must refuse.
func (e *engine) applyAcceptMode(ctx context.Context, addrs []netip.Addr) error {
	f, ok := e.addresser.(AcceptFilter)
	if !ok {
		if len(addrs) == 0 {
			return nil
		}
		return fmt.Errorf("vrrp: accept mode off, but the addresser %T cannot refuse packets to the VIPs", e.addresser)
	}
	ctx, cancel := context.WithTimeout(ctx, osTimeout)
	defer cancel()
	if err := f.RefuseLocal(ctx, addrs); err != nil {
		return fmt.Errorf("vrrp: accept mode: %w", err)
	}
	return nil
}

// keepAcceptMode puts the accept filter back whenever it disappears (a
// firewall reload with "flush ruleset"), until ctx ends. It runs on a
// goroutine of its own: nf_tables requests never delay the event loop.
func (e *engine) keepAcceptMode(ctx context.Context, f AcceptFilter, addrs []netip.Addr) {
	tick := time.NewTicker(acceptCheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		cctx, cancel := context.WithTimeout(ctx, osTimeout)
		present, err := f.RefusingLocal(cctx)
		if err == nil && !present {
			e.log.Warn("the accept filter was removed (firewall reload?); putting it back")
			err = f.RefuseLocal(cctx, addrs)
		}
		cancel()
		if err != nil && ctx.Err() == nil {
			e.log.Error("accept mode: cannot check or restore the filter", "err", err)
		}
	}
}
