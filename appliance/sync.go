package appliance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/fwpair/fwpair/appliance/api"
	"github.com/fwpair/fwpair/ctsync"
	"github.com/fwpair/fwpair/ctsync/ctnetlink"
)

// ctsyncEngine adapts ctsync.Engine and the Linux kernel adapter it runs
// on to what the daemon needs.
type ctsyncEngine struct {
	*ctsync.Engine
	kernel    *ctnetlink.LinuxKernel
	expect    *ctnetlink.LinuxExpect // nil: expectations not replicated
	closeOnce sync.Once
	closeErr  error
	direct    bool
	own       ownAddrs
}

// conntrackEventsSysctl decides when the kernel attaches the event
// extension to a conntrack entry. With 2 (the default of recent kernels)
// it does so only if a listener exists when the entry is created, so
// entries created while fwpaird was not running would never report their
// updates or their destruction; 1 attaches it always.
const conntrackEventsSysctl = "/proc/sys/net/netfilter/nf_conntrack_events"

// ensureConntrackEvents sets nf_conntrack_events to 1 when it is 2 (a file
// write in this namespace's /proc/sys, no tool involved) and says so.
func ensureConntrackEvents(log *slog.Logger) {
	b, err := os.ReadFile(conntrackEventsSysctl)
	if err != nil {
		log.Warn("cannot read nf_conntrack_events", "err", err)
		return
	}
	switch v := strings.TrimSpace(string(b)); v {
	case "1":
		return
	case "0":
		log.Warn("net.netfilter.nf_conntrack_events is 0: the kernel sends no conntrack events and nothing can be replicated until it is 1")
		return
	default:
		if err := os.WriteFile(conntrackEventsSysctl, []byte("1"), 0o644); err != nil {
			log.Warn("net.netfilter.nf_conntrack_events is "+v+": entries created before fwpaird started may never report updates; set it to 1", "err", err)
			return
		}
		log.Info("set net.netfilter.nf_conntrack_events=1 so that every entry reports its updates and destruction", "was", v)
	}
}

// conntrackMaxSysctl is the kernel's conntrack table limit.
const conntrackMaxSysctl = "/proc/sys/net/netfilter/nf_conntrack_max"

// warnExternalLimit says when the peer's table may not fit the external
// cache: the peer's states beyond sync.external_limit are dropped (and a
// resync asked for), so in commit mode a table larger than the limit
// loses the rest at the next takeover. The peer runs the same kernel
// settings as this node, as a pair should.
func warnExternalLimit(c *SyncConfig, log *slog.Logger, conntrackMax string) {
	b, err := os.ReadFile(conntrackMax)
	if err != nil {
		return // no conntrack module loaded yet: nothing to compare
	}
	ctMax, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || ctMax <= c.ExternalLimit {
		return
	}
	level := slog.LevelInfo
	if !c.DirectInject {
		level = slog.LevelWarn
	}
	log.Log(context.Background(), level, "sync.external_limit is below net.netfilter.nf_conntrack_max: the peer's states beyond it are dropped until there is room (in commit mode a larger table loses the rest at a takeover); raise sync.external_limit",
		"external_limit", c.ExternalLimit, "nf_conntrack_max", ctMax)
}

func newCtsyncEngine(c *SyncConfig, own ownAddrs, log *slog.Logger) (syncEngine, error) {
	ensureConntrackEvents(log)
	warnExternalLimit(c, log, conntrackMaxSysctl)
	k, err := ctnetlink.NewKernel(ctnetlink.KernelOptions{})
	if err != nil {
		return nil, fmt.Errorf("ctnetlink: %w", err)
	}
	filter, err := syncFilter(c.Filter, own)
	if err != nil {
		k.Close()
		return nil, err
	}
	opts := ctsync.Options{Logger: log, Kernel: k, Filter: filter}
	var xk *ctnetlink.LinuxExpect
	if c.Expectations {
		if xk, err = ctnetlink.NewExpectKernel(0); err != nil {
			k.Close()
			return nil, err
		}
		opts.Expect = xk
	}
	eng, err := ctsync.New(c.Config, opts)
	if err != nil {
		k.Close()
		if xk != nil {
			xk.Close()
		}
		return nil, err
	}
	return &ctsyncEngine{Engine: eng, kernel: k, expect: xk, direct: c.DirectInject, own: own}, nil
}

func (e *ctsyncEngine) Run(ctx context.Context) error {
	return e.Engine.Run(ctx)
}

// Close closes the sync channels and the ctnetlink sockets, once; the
// daemon calls it after Run has returned (or instead of Run).
func (e *ctsyncEngine) Close() error {
	e.closeOnce.Do(func() {
		e.closeErr = errors.Join(e.Engine.Close(), e.kernel.Close())
		if e.expect != nil {
			e.closeErr = errors.Join(e.closeErr, e.expect.Close())
		}
	})
	return e.closeErr
}

func (e *ctsyncEngine) Commit(ctx context.Context) (api.CommitResult, error) {
	res, err := e.Engine.Commit(ctx)
	return api.CommitResult{Created: res.Created, Updated: res.Updated, Failed: res.Failed, Seconds: res.Duration.Seconds()}, err
}

func (e *ctsyncEngine) Resync(ctx context.Context) error {
	_, err := e.Engine.Resync(ctx)
	return err
}

func cacheID(which string) (ctsync.CacheID, error) {
	switch which {
	case "internal":
		return ctsync.CacheInternal, nil
	case "external":
		return ctsync.CacheExternal, nil
	case "all", "":
		return ctsync.CacheAll, nil
	}
	return 0, fmt.Errorf("%w: cache %q is not internal, external or all", ErrBadRequest, which)
}

func (e *ctsyncEngine) Flush(which string) error {
	id, err := cacheID(which)
	if err != nil {
		return err
	}
	e.Engine.Flush(id)
	return nil
}

func (e *ctsyncEngine) BulkSend() error       { e.Engine.BulkSend(); return nil }
func (e *ctsyncEngine) RequestResync() error  { e.Engine.RequestResync(); return nil }
func (e *ctsyncEngine) DirectInject() bool    { return e.direct }
func (e *ctsyncEngine) SetMaster(master bool) { e.Engine.SetMaster(master) }

func (e *ctsyncEngine) SetFilter(c FilterConfig) error {
	f, err := syncFilter(c, e.own)
	if err != nil {
		return err
	}
	e.Engine.SetFilter(f)
	return nil
}

func (e *ctsyncEngine) Status() api.SyncStatus {
	s := e.Engine.Status()
	out := api.SyncStatus{
		Mode:            string(s.Mode),
		PeerAlive:       s.PeerAlive,
		InternalEntries: s.InternalEntries,
		ExternalEntries: s.ExternalEntries,
		DirectInject:    s.DirectInject,
	}
	for _, l := range s.Links {
		if l.Active {
			out.ActiveLink = l.Name
		}
	}
	if c := e.Engine.Consistency(); c.Enabled {
		out.Consistency = &api.Consistency{Repaired: c.Repaired, LastClean: c.LastClean, Checks: c.Checks, Resent: c.Resent}
	}
	return out
}

func (e *ctsyncEngine) Stats() map[string]uint64 { return ctsyncStats(e.Engine.Stats()) }

// ctsyncStats flattens the engine's counters; metrics.go maps each key
// to a Prometheus metric (syncCounters).
func ctsyncStats(s ctsync.Stats) map[string]uint64 {
	m := map[string]uint64{
		"messages_sent": s.MessagesSent, "messages_received": s.MessagesReceived,
		"datagrams_sent": s.DatagramsSent, "datagrams_received": s.DatagramsRecv,
		"bytes_sent": s.BytesSent, "bytes_received": s.BytesReceived,
		"send_errors": s.SendErrors, "receive_errors": s.RecvErrors,
		"retransmits": s.Retransmits, "nacks_sent": s.NACKsSent, "nacks_received": s.NACKsReceived, "renacks": s.Renacks,
		"window_waits": s.WindowWaits,
		"acks_sent":    s.ACKsSent, "acks_received": s.ACKsReceived,
		"lost": s.Lost, "before": s.Before, "resend_overflow": s.ResendOverflow,
		"seq_implausible": s.SeqImplausible, "seq_adopted": s.SeqAdopted, "renack_overflow": s.RenackOverflow,
		"resyncs": s.Resyncs, "resync_errors": s.ResyncErrors,
		"resync_requests_sent": s.ResyncRequestsSent, "resync_requests_received": s.ResyncRequestsReceived,
		"bulk_sends": s.BulkSends, "netlink_overruns": s.Overruns,
		"events_new": s.EventsNew, "events_update": s.EventsUpdate, "events_destroy": s.EventsDestroy,
		"events_own": s.EventsOwn, "events_filtered": s.EventsFiltered,
		"applied": s.Applied, "injected": s.Injected, "inject_failed": s.InjectFailed, "quiet_injects": s.QuietInjects,
		"commits": s.Commits, "link_failovers": s.Failovers, "purges": s.Purges, "purged": s.Purged,
		"refreshed": s.Refreshed, "refresh_passes": s.RefreshPasses, "converged": s.Converged,
		"expectations_sent": s.ExpectationsSent, "expectations_received": s.ExpectationsReceived,
		"expectations_created": s.ExpectationsCreated, "expectations_failed": s.ExpectationsFailed,
		"consistency_checks": s.ConsistencyChecks, "consistency_repaired": s.ConsistencyRepaired, "consistency_resent": s.ConsistencyResent,
	}
	for reason, n := range s.Malformed {
		m["malformed_"+reason] = n
	}
	return m
}

func (e *ctsyncEngine) Cache(which string) ([]api.CacheEntry, error) {
	id, err := cacheID(which)
	if err != nil || id == ctsync.CacheAll {
		return nil, fmt.Errorf("%w: cache %q is not internal or external", ErrBadRequest, which)
	}
	flows := e.Engine.Entries(id)
	out := make([]api.CacheEntry, 0, len(flows))
	for i := range flows {
		out = append(out, cacheEntry(&flows[i]))
	}
	return out, nil
}

func cacheEntry(f *ctsync.Flow) api.CacheEntry {
	e := api.CacheEntry{
		Proto:   ctsync.ProtoName(f.Proto),
		Src:     f.Src.String(),
		Dst:     f.Dst.String(),
		SrcPort: f.SrcPort,
		DstPort: f.DstPort,
		Zone:    f.Zone,
		Mark:    f.Mark,
		Timeout: f.Timeout,
	}
	if e.Proto == "tcp" && f.HasProtoState {
		e.State = ctsync.TCPStateName(f.ProtoState)
	}
	e.SNAT = natString(f.SNAT)
	e.DNAT = natString(f.DNAT)
	return e
}

func natString(n ctsync.NAT) string {
	if !n.Addr.IsValid() {
		return ""
	}
	if n.Port != 0 {
		return netip.AddrPortFrom(n.Addr, n.Port).String()
	}
	return n.Addr.String()
}

// syncFilter builds the replication filter: the operator's lists plus, by
// default (filter.ignore_own), the node's own traffic: flows that terminate
// on the node or were opened by it, decided from the NAT'd tuples against
// the node's addresses, every VIP of the configuration and the sync links
// (ctsync.Filter.Local). Forwarded flows are replicated whatever address
// they were sent to, port forwards to a VIP included.
func syncFilter(c FilterConfig, own ownAddrs) (interface{ Accept(*ctsync.Flow) bool }, error) {
	fc := c.FilterConfig
	fc.LocalAddrs = slices.Clone(fc.LocalAddrs)
	if c.IgnoreOwn {
		local, err := localAddresses()
		if err != nil {
			return nil, fmt.Errorf("sync filter: list the node's addresses: %w", err)
		}
		var vips []netip.Addr
		for _, p := range own.VIPs {
			vips = append(vips, p.Addr())
		}
		fc.LocalAddrs = append(fc.LocalAddrs, ctsync.DefaultLocal(local, vips, netip.Prefix{})...)
		fc.LocalAddrs = append(fc.LocalAddrs, own.SyncLink...)
	}
	f, err := ctsync.NewFilter(fc)
	if err != nil {
		return nil, fmt.Errorf("sync filter: %w", err)
	}
	return f, nil
}

// localAddresses lists the addresses configured on this namespace's
// interfaces when the daemon starts (VIPs it may hold are added by the
// caller from the configuration).
func localAddresses() ([]netip.Addr, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	var addrs []netlink.Addr
	// A dump interrupted by a concurrent change is incomplete: read again.
	for range 5 {
		addrs, err = h.AddrList(nil, netlink.FAMILY_ALL)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			out = append(out, ip.Unmap())
		}
	}
	return out, nil
}
