package vrrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ErrKilled is returned by Run after Kill.
var ErrKilled = errors.New("vrrp: group killed")

// Options carries what the engine needs from its environment. Nil
// adapters are replaced by the Linux implementations working in NetNS.
type Options struct {
	// Logger receives transition logs (info) and per-packet problems
	// (debug, rate-limited). Nil discards.
	Logger *slog.Logger
	// Callbacks let the caller act on transitions (see Callbacks).
	Callbacks Callbacks
	// NetNS is the path of the network namespace the Linux adapters work
	// in, e.g. "/var/run/netns/fw1". Empty means the namespace of the OS
	// thread that calls New: a caller that wants another namespace can
	// also call New from a goroutine locked into it (testenv's NS.Do).
	// Sockets are always created inside that namespace, so Run may be
	// called from any goroutine.
	NetNS string

	// RealtimePriority, 1-99, runs the event loop (timers, adverts, the
	// state machine) and the socket readers each on an OS thread of its
	// own under SCHED_RR at this priority, like keepalived's
	// vrrp_rt_priority, so that adverts leave and are heard on time on a
	// busy machine. It needs CAP_SYS_NICE; without it the engine logs a
	// warning and runs at normal priority. Zero (default) leaves the
	// scheduling alone.
	RealtimePriority int

	Dialer    Dialer
	Addresser Addresser
	Announcer Announcer
	Links     LinkSource
}

// Callbacks are called by the engine around group transitions. Both are
// optional. They are called from one goroutine, in transition order.
type Callbacks struct {
	// BeforeMaster runs when the group has become MASTER, before the VIPs
	// are added. The engine keeps advertising as MASTER while it runs
	// (adverts never wait for it). When it returns, the engine adds the
	// VIPs and starts gratuitous ARP, even if it returned an error (which
	// is logged): holding the addresses matters more than a perfect
	// conntrack table. If the group leaves MASTER meanwhile, ctx is
	// cancelled and the VIPs are not added; BeforeMaster must then return
	// promptly.
	//
	// This is where fwpair commits the replicated conntrack cache into
	// the kernel, so no established flow meets an empty table.
	BeforeMaster func(ctx context.Context, t Transition) error
	// AfterTransition is called for every group transition once the
	// engine has acted on it: for MASTER after the VIPs were added and the
	// first GARP sent (or after giving up because the group left MASTER),
	// for the other states after the VIPs were removed.
	AfterTransition func(t Transition)
	// BeforeReannounce runs when a MASTER heard another, lower-priority
	// MASTER (a split brain healing), before it sends gratuitous ARP to
	// pull the traffic back. fwpair adopts there the connection states
	// that moved to the other node during the split. It runs on the GARP
	// goroutine of the MASTER epoch; ctx ends with the epoch.
	BeforeReannounce func(ctx context.Context)
}

// Transition is a change of the group state.
type Transition struct {
	From, To State
	// Reason names the instance that caused it and why, e.g.
	// "vi_lan: priority 0 received".
	Reason string
	At     time.Time
	// VIPsAdded is set in AfterTransition for MASTER when the addresses
	// were installed.
	VIPsAdded bool
}

// Group runs the VRRP instances of one node as a sync group.
type Group struct {
	cfg Config
	// garp is cfg.GARP, replaceable while running (SetGARP).
	garp atomic.Pointer[GARPConfig]
	opts Options
	log  *slog.Logger
	// defaults provides the Linux adapters for those Options left nil; nil
	// if the caller supplied all four.
	defaults platform

	insts  []*instance
	ifaces []*iface

	ready   chan struct{}
	killed  chan struct{}
	kill    sync.Once
	started bool          // guarded by mu: Run may be called once
	done    chan struct{} // closed when Run returns
	cmds    chan func(e *engine, now time.Time)

	mu     sync.Mutex // guards the status fields below and the counters
	gstate State
	since  time.Time
	reason string
	faults faultStatus
}

// platform builds the default adapters, all bound to one network
// namespace. Only Linux has one (platform_linux.go).
type platform interface {
	dialer() Dialer
	addresser() Addresser
	announcer() Announcer
	linkSource() LinkSource
	close() error
}

type instance struct {
	cfg    InstanceConfig
	index  int
	iface  *iface
	policy receivePolicy
	advert Advertisement    // template: priority filled per send
	v3     *AdvertisementV3 // VRRPv3 template instead of advert; nil for v2
	links  []string         // own interface + tracked
	vmac   net.HardwareAddr // the virtual router MAC adverts leave from; nil without UseVMAC
	linkUp bool             // last LinkChanged given to the machine

	// guarded by Group.mu
	state    State
	priority uint8
	counters counters
	// paced counts the pacer's sends, lock-free: the real-time pacer must
	// never wait for Group.mu, which normal-priority threads hold.
	paced pacedCounters
}

type iface struct {
	name  string
	ipv6  bool                // VRRPv3 over IPv6: a separate socket on the same interface
	insts map[uint8]*instance // by VRID
	conn  Conn
	gen   int // incremented on every dial, so reads from old conns are ignored
	up    bool

	// guarded by Group.mu
	counters  counters
	localAddr netip.Addr
}

type counters struct {
	received, sent, zeroReceived, zeroSent, sendErrors, addrMismatch, vipFailures uint64
	discarded                                                                     [numDiscardReasons]uint64
}

func (c *counters) snapshot() Counters {
	out := Counters{
		AdvertsReceived:      c.received,
		AdvertsSent:          c.sent,
		PriorityZeroReceived: c.zeroReceived,
		PriorityZeroSent:     c.zeroSent,
		SendErrors:           c.sendErrors,
		AddressListMismatch:  c.addrMismatch,
		VIPFailures:          c.vipFailures,
		Discarded:            map[string]uint64{},
	}
	for r, n := range c.discarded {
		if n > 0 {
			out.Discarded[DiscardReason(r).String()] = n
		}
	}
	return out
}

// New validates cfg and prepares a Group; nothing is opened until Run,
// except the handle on the caller's network namespace when the default
// Linux adapters are used (see Options.NetNS).
func New(cfg Config, opts Options) (*Group, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	g := &Group{
		cfg:    cfg,
		opts:   opts,
		log:    opts.Logger,
		ready:  make(chan struct{}),
		killed: make(chan struct{}),
		done:   make(chan struct{}),
		cmds:   make(chan func(*engine, time.Time)),
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if opts.Dialer == nil || opts.Addresser == nil || opts.Announcer == nil || opts.Links == nil {
		p, err := newPlatform(opts.NetNS, cfg, g.log)
		if err != nil {
			return nil, fmt.Errorf("vrrp: default adapters: %w", err)
		}
		g.defaults = p
	}
	byName := map[string]*iface{} // by socketKey: one socket per interface and family
	for _, in := range cfg.Instances {
		if byName[in.socketKey()] == nil {
			ifc := &iface{name: in.Interface, ipv6: in.ipv6(), insts: map[uint8]*instance{}, up: true}
			byName[in.socketKey()] = ifc
			g.ifaces = append(g.ifaces, ifc)
		}
	}
	for i, in := range cfg.Instances {
		vips := vipAddrs(in.VIPs)
		sorted := slices.Clone(vips)
		slices.SortFunc(sorted, netip.Addr.Compare)
		inst := &instance{
			cfg:   in,
			index: i,
			iface: byName[in.socketKey()],
			policy: receivePolicy{
				owner:    in.Priority == OwnerPriority,
				interval: uint8(in.AdvertInterval / time.Second),
				vips:     sorted,
				unicast:  len(in.UnicastPeers) > 0,
				peers:    in.UnicastPeers,
			},
			advert: Advertisement{
				VRID:           in.VRID,
				AdvertInterval: uint8(in.AdvertInterval / time.Second),
				Addresses:      vips,
			},
			links:    append([]string{in.Interface}, in.TrackInterfaces...),
			linkUp:   true,
			priority: in.Priority,
		}
		if in.AuthPassword != "" {
			inst.policy.authType, inst.advert.AuthType = AuthSimple, AuthSimple
			inst.policy.authData = SimplePassword(in.AuthPassword)
			inst.advert.AuthData = inst.policy.authData
		}
		if in.Version == Version3 {
			inst.setupV3()
		}
		if in.UseVMAC {
			inst.vmac = VirtualMAC(in.VRID, in.ipv6())
		}
		inst.iface.insts[in.VRID] = inst
		g.insts = append(g.insts, inst)
	}
	garp := g.cfg.GARP
	g.garp.Store(&garp)
	return g, nil
}

// Ready is closed once Run has removed leftover VIPs and opened the
// sockets (those that could be opened: an interface that is missing or
// down is retried and its instance is in FAULT meanwhile).
func (g *Group) Ready() <-chan struct{} { return g.ready }

// Kill makes Run return ErrKilled as if the process had been killed: no
// priority-0 adverts, VIPs left in place, sockets closed. It is for tests
// and for an appliance that must hand over without touching the network.
func (g *Group) Kill() { g.kill.Do(func() { close(g.killed) }) }

// SetPriority changes the priority (1-254) of a running or not yet
// started instance; it does not apply to the address owner. The new value
// is used from the next advert and election, without a restart (a restart
// would go through BACKUP and could flap).
func (g *Group) SetPriority(name string, priority uint8) error {
	if priority == 0 || priority == OwnerPriority {
		return fmt.Errorf("vrrp: priority %d: must be 1-254", priority)
	}
	idx := slices.IndexFunc(g.insts, func(in *instance) bool { return in.cfg.Name == name })
	if idx < 0 {
		return fmt.Errorf("vrrp: no instance %q", name)
	}
	inst := g.insts[idx]
	if inst.cfg.Priority == OwnerPriority {
		return fmt.Errorf("vrrp: instance %q is the address owner (priority 255)", name)
	}
	g.mu.Lock()
	if !g.started {
		// Run reads the priority under mu after setting started.
		inst.priority = priority
		g.mu.Unlock()
		return nil
	}
	g.mu.Unlock()
	applied := make(chan struct{})
	select {
	case g.cmds <- func(e *engine, now time.Time) {
		e.step(now, idx, PriorityChanged{Priority: priority})
		close(applied)
	}:
		<-applied
		return nil
	case <-g.done:
		return errors.New("vrrp: group stopped")
	}
}

// SetGARP replaces the gratuitous ARP settings while the group runs (a
// configuration reload). Zero values take the defaults, as in Config. The
// next burst uses them; a refresh already ticking keeps its period until
// the group next becomes MASTER.
func (g *Group) SetGARP(c GARPConfig) {
	c = Config{GARP: c}.withDefaults().GARP
	g.garp.Store(&c)
}

// Run runs the group until ctx is done (graceful stop: priority-0 adverts
// from every MASTER instance, VIPs removed, sockets closed; returns nil)
// or Kill is called (returns ErrKilled). Before opening sockets it
// removes any configured VIP found on the interfaces, left behind by a
// killed predecessor: a node that is not MASTER must not hold them.
func (g *Group) Run(ctx context.Context) error {
	g.mu.Lock()
	if g.started {
		g.mu.Unlock()
		return errors.New("vrrp: Run called twice")
	}
	g.started = true
	g.mu.Unlock()
	defer close(g.done)
	defer func() {
		if g.defaults != nil {
			_ = g.defaults.close()
		}
	}()

	e := &engine{Group: g, rx: make(chan received, 64), linkUpdates: make(chan LinkUpdate, 16),
		vipFailed: make(chan vipFailure, len(g.insts)), reannounce: make(chan struct{}, 1)}
	return e.runScheduled(ctx)
}

// Status is a snapshot of the group for the control API and metrics.
type Status struct {
	State  State // "INIT", "BACKUP", "MASTER" or "FAULT" in text and JSON
	Since  time.Time
	Reason string
	// Partition describes a partial partition ("" if none): a member
	// hears no master while another does, so the group stays BACKUP.
	Partition string
	// Partitions counts the partial partitions seen since Run started.
	Partitions uint64
	// PreemptHeld is set while preemption is held (SetPreemptHold).
	PreemptHeld bool
	Instances   []InstanceStatus
	Interfaces  []InterfaceStatus
}

// InstanceStatus is the state of one instance.
type InstanceStatus struct {
	Name      string
	Interface string
	VRID      uint8
	State     State
	Priority  uint8
	VIPs      []VIP
	Unicast   bool
	Counters  Counters
}

// InterfaceStatus holds what is counted before an advert is matched to an
// instance (bad packets, unknown VRIDs).
type InterfaceStatus struct {
	Name      string
	IPv6      bool // the VRRPv3-over-IPv6 socket of the interface
	Up        bool
	LocalAddr netip.Addr
	Counters  Counters
}

// Key names the socket uniquely: the interface name, with "/ipv6" for
// the VRRPv3-over-IPv6 socket of an interface that has both.
func (s InterfaceStatus) Key() string {
	if s.IPv6 {
		return s.Name + "/ipv6"
	}
	return s.Name
}

// Counters count adverts. Discarded is keyed by DiscardReason.String().
type Counters struct {
	AdvertsReceived      uint64
	AdvertsSent          uint64
	PriorityZeroReceived uint64
	PriorityZeroSent     uint64
	SendErrors           uint64
	// AddressListMismatch counts adverts whose address list differs from
	// ours; they are accepted (as keepalived does) and logged.
	AddressListMismatch uint64
	VIPFailures         uint64
	Discarded           map[string]uint64
}

// MarshalText makes State print as its name in JSON and text formats.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Status returns a snapshot; it is safe to call at any time.
func (g *Group) Status() Status {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := Status{State: g.gstate, Since: g.since, Reason: g.reason,
		Partition: g.faults.partition, Partitions: g.faults.partitions, PreemptHeld: g.faults.preemptHeld}
	for _, in := range g.insts {
		st.Instances = append(st.Instances, InstanceStatus{
			Name:      in.cfg.Name,
			Interface: in.cfg.Interface,
			VRID:      in.cfg.VRID,
			State:     in.state,
			Priority:  in.priority,
			VIPs:      slices.Clone(in.cfg.VIPs),
			Unicast:   in.policy.unicast,
			Counters:  in.paced.addTo(in.counters.snapshot()),
		})
	}
	for _, ifc := range g.ifaces {
		st.Interfaces = append(st.Interfaces, InterfaceStatus{
			Name: ifc.name, IPv6: ifc.ipv6, Up: ifc.up, LocalAddr: ifc.localAddr, Counters: ifc.counters.snapshot(),
		})
	}
	return st
}
