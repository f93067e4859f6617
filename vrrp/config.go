package vrrp

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Config describes the VRRP instances of one node. All instances form one
// sync group (see SyncGroup); a single instance is a group of one.
type Config struct {
	Instances []InstanceConfig
	GARP      GARPConfig
}

// InstanceConfig is one VRRP virtual router on one interface.
type InstanceConfig struct {
	// Name identifies the instance in logs, status and reasons (like
	// keepalived's vrrp_instance name). Unique in the group.
	Name string
	// Interface is the interface adverts are sent and received on and the
	// VIPs are added to.
	Interface string
	// VRID is the virtual router ID, 1-255, unique per interface.
	VRID uint8
	// Version is the VRRP version: 2 (RFC 3768; zero means 2) or 3 (RFC
	// 9568: centisecond intervals, no authentication, timers that follow
	// the master's interval). Instances of one group may differ.
	Version uint8
	// Priority is 1-255; 255 makes this node the address owner. Zero means
	// the RFC default, 100.
	Priority uint8
	// AdvertInterval is the advertisement interval. VRRPv2 carries whole
	// seconds: it must be a multiple of a second, 1-255 s. VRRPv3 carries
	// centiseconds: a multiple of 10 ms from 10 ms to 40.95 s. Zero means
	// 1 s.
	AdvertInterval time.Duration
	// VIPs are the virtual addresses, IPv4, with their prefix length (/32
	// unless the subnet route matters) and an optional label.
	VIPs []VIP
	// Preempt lets a higher-priority backup take over from a
	// lower-priority master. RFC 3768 defaults to true; Go's zero value is
	// false, so callers must set it (the appliance config defaults it to
	// true). The address owner always preempts.
	Preempt bool
	// PreemptDelay tolerates a lower-priority master for this long before
	// preempting it, e.g. to let conntrack state sync first.
	PreemptDelay time.Duration
	// TrackInterfaces are other interfaces whose link must be up; if one
	// is down the instance (and so the group) is in FAULT. The instance's
	// own Interface is always tracked.
	TrackInterfaces []string
	// UnicastPeers switches the instance to unicast adverts, sent to each
	// peer instead of 224.0.0.18 (for networks that block multicast).
	// Received adverts must then come from one of the peers; their TTL is
	// not checked (as in keepalived).
	UnicastPeers []netip.Addr
	// UnicastSource is the source address of unicast adverts; zero means
	// the interface's primary address.
	UnicastSource netip.Addr
	// UseVMAC puts the VIPs on a macvlan interface with the virtual
	// router MAC (00-00-5E-00-01-{VRID}, IPv6 00-00-5E-00-02-{VRID}, RFC
	// 9568 §7.3), created on the parent Interface when the node becomes
	// MASTER and removed when it leaves: hosts that ignore gratuitous ARP
	// keep a valid neighbour entry across a failover, and the switch
	// relearns the MAC from the new MASTER's first GARP. The interface is
	// VMACInterface; firewall rules that match the inside interface must
	// match it too. Multicast adverts leave through Interface with the
	// virtual MAC as their Ethernet source (RFC 9568 §7.2).
	UseVMAC bool
	// NoAccept is RFC 9568's Accept_Mode = false (keepalived's
	// no_accept): while MASTER, a node that is not the address owner
	// (priority 255) does not accept packets addressed to the VIPs; it
	// still answers ARP and Neighbor Discovery for them and still
	// forwards traffic through them (accept.go). The zero value accepts,
	// as fwpair always did and as keepalived does without vrrp_strict.
	NoAccept bool
	// AuthPassword enables RFC 2338 simple password authentication (auth
	// type 1, keepalived "auth_type PASS"). Only the first 8 bytes count.
	// Empty means no authentication, the RFC 3768 behaviour.
	AuthPassword string
}

// VIP is a virtual address with its prefix and an optional address label
// (which Linux requires to start with the interface name, e.g. "eth0:vip").
type VIP struct {
	Prefix netip.Prefix
	Label  string
}

// GARPConfig controls gratuitous ARP after becoming MASTER.
type GARPConfig struct {
	// Count is the number of gratuitous ARPs per VIP in the burst sent on
	// becoming MASTER. Zero means 5 (keepalived's default); negative
	// disables GARP.
	Count int
	// Spacing is the time between two GARPs of a burst; zero means 200 ms.
	Spacing time.Duration
	// Refresh repeats one GARP per VIP at this interval while MASTER, so
	// that switch FDBs and ARP caches that aged out are refreshed. Zero
	// disables it.
	Refresh time.Duration
}

// Defaults: withDefaults applies them to zero fields, DefaultInstance and
// DefaultGARP return them. The appliance configuration documents and
// reuses these.
const (
	DefaultVersion        = Version2
	DefaultPriority       = 100
	DefaultAdvertInterval = time.Second
	// DefaultPreempt is RFC 3768's; Go's zero value is false, so it is
	// applied by DefaultInstance, not by withDefaults.
	DefaultPreempt     = true
	DefaultGARPCount   = 5
	DefaultGARPSpacing = 200 * time.Millisecond
)

// Allowed values of the knobs an operator sets (advert intervals: see
// CentisecondsV3 and MaxAdvertIntervalV2).
const (
	MaxAdvertIntervalV2 = 255 * time.Second
	// MaxAuthPassword is the length of the RFC 2338 password field.
	MaxAuthPassword = 8
	// MaxLabel is the longest Linux address label (IFNAMSIZ - 1).
	MaxLabel = 15
)

// DefaultInstance is an instance with every default applied; the caller
// sets its name, interface, VRID and VIPs.
func DefaultInstance() InstanceConfig {
	return InstanceConfig{
		Version:        DefaultVersion,
		Priority:       DefaultPriority,
		AdvertInterval: DefaultAdvertInterval,
		Preempt:        DefaultPreempt,
	}
}

// DefaultGARP is the gratuitous ARP burst of a node that sets nothing.
func DefaultGARP() GARPConfig {
	return GARPConfig{Count: DefaultGARPCount, Spacing: DefaultGARPSpacing}
}

// withDefaults returns a copy of c with zero values replaced by defaults.
func (c Config) withDefaults() Config {
	out := c
	out.Instances = slices.Clone(c.Instances)
	for i := range out.Instances {
		in := &out.Instances[i]
		if in.Priority == 0 {
			in.Priority = DefaultPriority
		}
		if in.Version == 0 {
			in.Version = Version2
		}
		if in.AdvertInterval == 0 {
			in.AdvertInterval = DefaultAdvertInterval
		}
		in.VIPs = slices.Clone(in.VIPs)
	}
	if out.GARP.Count == 0 {
		out.GARP.Count = DefaultGARPCount
	}
	if out.GARP.Spacing == 0 {
		out.GARP.Spacing = DefaultGARPSpacing
	}
	return out
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if len(c.Instances) == 0 {
		errs = append(errs, errors.New("no instances"))
	}
	names := map[string]bool{}
	vrids := map[string]bool{}
	for i, in := range c.Instances {
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("instance %d (%q): %s", i, in.Name, fmt.Sprintf(format, args...)))
		}
		if in.Name == "" {
			bad("empty name")
		} else if names[in.Name] {
			bad("duplicate name")
		}
		names[in.Name] = true
		if in.Interface == "" {
			bad("no interface")
		}
		if in.VRID == 0 {
			bad("VRID must be 1-255")
		}
		// IPv4 and IPv6 have separate VRID spaces (RFC 9568 §5.2.3).
		key := fmt.Sprintf("%s/%d", in.socketKey(), in.VRID)
		if vrids[key] {
			bad("VRID %d used twice on %s", in.VRID, in.socketKey())
		}
		vrids[key] = true
		switch in.Version {
		case Version2:
			if in.AdvertInterval%time.Second != 0 || in.AdvertInterval < time.Second || in.AdvertInterval > MaxAdvertIntervalV2 {
				bad("advert interval %v is not 1-255 whole seconds (VRRPv2)", in.AdvertInterval)
			}
		case Version3:
			if _, ok := CentisecondsV3(in.AdvertInterval); !ok {
				bad("advert interval %v is not a multiple of 10ms from 10ms to 40.95s (VRRPv3)", in.AdvertInterval)
			}
			if in.AuthPassword != "" {
				bad("VRRPv3 has no authentication (RFC 9568); remove the password")
			}
		default:
			bad("VRRP version %d is not supported (2 or 3)", in.Version)
		}
		if len(in.VIPs) == 0 {
			bad("no VIPs")
		}
		if len(in.VIPs) > MaxAddresses {
			bad("%d VIPs, at most %d fit in an advert", len(in.VIPs), MaxAddresses)
		}
		ipv6 := in.ipv6()
		for j, v := range in.VIPs {
			switch {
			case !v.Prefix.IsValid() || v.Prefix.Addr().Is4In6() || v.Prefix.Addr().Zone() != "":
				bad("VIP %v is not an IPv4 or IPv6 prefix", v.Prefix)
			case in.Version != Version3 && !v.Prefix.Addr().Is4():
				bad("VIP %v is not an IPv4 prefix (IPv6 needs VRRPv3)", v.Prefix)
			case v.Prefix.Addr().Is6() != ipv6:
				bad("VIP %v: all VIPs of an instance must be of one family (RFC 9568); use one instance per family", v.Prefix)
			case ipv6 && j == 0 && !v.Prefix.Addr().IsLinkLocalUnicast():
				bad("first IPv6 VIP %v must be the virtual router's link-local address (fe80::/10, RFC 9568 §5.2.9)", v.Prefix)
			case ipv6 && v.Label != "":
				bad("label %q on IPv6 VIP %v: Linux labels only IPv4 addresses", v.Label, v.Prefix)
			}
			if in.UseVMAC && v.Label != "" {
				bad("label %q: labels are not supported with use_vmac", v.Label)
			}
			if v.Label != "" && !strings.HasPrefix(v.Label, in.Interface) {
				bad("label %q must start with the interface name %q", v.Label, in.Interface)
			}
			if len(v.Label) > MaxLabel {
				bad("label %q longer than 15 bytes", v.Label)
			}
		}
		if in.PreemptDelay < 0 {
			bad("negative preempt delay")
		}
		family := "IPv4"
		if ipv6 {
			family = "IPv6"
		}
		for _, p := range in.UnicastPeers {
			if p.Is6() != ipv6 || p.Is4In6() {
				bad("unicast peer %v is not %s like the VIPs", p, family)
			}
		}
		if in.UnicastSource.IsValid() && (in.UnicastSource.Is6() != ipv6 || in.UnicastSource.Is4In6()) {
			bad("unicast source %v is not %s like the VIPs", in.UnicastSource, family)
		}
		if in.UnicastSource.IsValid() && len(in.UnicastPeers) == 0 {
			bad("unicast source without unicast peers")
		}
	}
	if c.GARP.Spacing < 0 || c.GARP.Refresh < 0 {
		errs = append(errs, errors.New("negative GARP spacing or refresh"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("vrrp config: %w", err)
	}
	return nil
}

// ipv6 reports whether the instance runs VRRPv3 over IPv6 (its first VIP
// is IPv6).
func (in InstanceConfig) ipv6() bool {
	return in.Version == Version3 && len(in.VIPs) > 0 && in.VIPs[0].Prefix.Addr().Is6()
}

// socketKey names the socket an instance uses: one per interface and
// address family.
func (in InstanceConfig) socketKey() string {
	if in.ipv6() {
		return in.Interface + "/ipv6"
	}
	return in.Interface
}

// interfaces returns the distinct instance interfaces, in config order.
func (c Config) interfaces() []string {
	var out []string
	for _, in := range c.Instances {
		if !slices.Contains(out, in.Interface) {
			out = append(out, in.Interface)
		}
	}
	return out
}

// watchedLinks returns every interface whose link state matters.
func (c Config) watchedLinks() []string {
	out := c.interfaces()
	for _, in := range c.Instances {
		for _, l := range in.TrackInterfaces {
			if !slices.Contains(out, l) {
				out = append(out, l)
			}
		}
	}
	return out
}

func vipAddrs(vips []VIP) []netip.Addr {
	out := make([]netip.Addr, len(vips))
	for i, v := range vips {
		out[i] = v.Prefix.Addr()
	}
	return out
}
