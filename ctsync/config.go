package ctsync

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Config is the validated sync configuration.
type Config struct {
	// Mode is ModeFTFW (default) or ModeNotrack.
	Mode Mode
	// Channels are the redundant sync links, at most MaxChannels; the first
	// is active at start. Ignored when Options.Channels is set.
	Channels []ChannelConfig
	// ACKWindow (default DefaultACKWindow) and ResendQueueSize (default
	// DefaultResendQueue) are conntrackd's ACKWindowSize and
	// ResendQueueSize.
	ACKWindow       int
	ResendQueueSize int
	// CommitTimeout bounds one Commit (default DefaultCommitTimeout).
	CommitTimeout time.Duration
	// PurgeDelay is the default delay of SchedulePurge (conntrackd's
	// PurgeTimeout, default DefaultPurgeDelay).
	PurgeDelay time.Duration
	// DirectInject injects received states straight into the
	// kernel (conntrackd's DisableExternalCache); Commit is then a no-op.
	DirectInject bool
	// NoStartupResync disables asking the peer for its state at start.
	NoStartupResync bool
	// OverrunResyncDelay is how long after a netlink overrun the kernel
	// table is dumped again (default 1 s; overruns in between re-arm it).
	OverrunResyncDelay time.Duration
	// MaxTimeouts caps the timeout of received states per protocol (zero:
	// DefaultMaxTimeouts).
	MaxTimeouts MaxTimeouts
	// ExternalLimit bounds the external cache (default
	// DefaultExternalLimit); InjectQueueLimit bounds the direct-inject
	// queue (default DefaultInjectQueueLimit).
	ExternalLimit, InjectQueueLimit int
	// Auth, when set, authenticates every datagram (see auth.go). It
	// applies to the channels opened from Channels; channels passed in
	// Options.Channels are used as they are.
	Auth *AuthConfig
	// RefreshInterval is the longest time between two passes that re-send
	// the entries whose copy on the peer is half-way to expiry while the
	// kernel's entry lives on (refresh.go; default DefaultRefreshInterval,
	// negative: off). RefreshBurst caps the states one pass re-sends
	// (default DefaultRefreshBurst).
	RefreshInterval time.Duration
	RefreshBurst    int
	// ConsistencyInterval, when positive, runs the continuous consistency
	// check (digest.go, a fwpair extension: leave it 0 with a conntrackd
	// peer) at that period.
	ConsistencyInterval time.Duration
	// Wire holds the compat knobs: the peer's NTA_MAX (MaxAttr), IPv4 NAT
	// byte order of <= 1.4.6 peers (LegacyNATv4), a big-endian peer, and
	// leaving NTA_TIMEOUT out.
	Wire WireOptions
}

// Defaults of Config: validate applies them to zero fields, DefaultConfig
// returns them. The appliance configuration documents and reuses these.
const (
	// DefaultCommitTimeout bounds the commit of the external cache on
	// becoming MASTER. The commit runs before the VIPs are taken, so the
	// bound is a bound on the outage a slow commit can add.
	DefaultCommitTimeout = 5 * time.Second
	// DefaultPurgeDelay is conntrackd's PurgeTimeout.
	DefaultPurgeDelay         = 60 * time.Second
	DefaultOverrunResyncDelay = time.Second
	// DefaultConsistencyInterval is the period of the consistency check
	// between two fwpair nodes (DefaultConfig only: zero in a Config is
	// off, as a conntrackd peer needs).
	DefaultConsistencyInterval = 2 * time.Second
	// DefaultSocketBuffer is a sync channel's send and receive buffer.
	DefaultSocketBuffer = 4 << 20
	// DefaultPeerVersion is the conntrackd version whose wire format the
	// zero WireOptions speak.
	DefaultPeerVersion = "1.4.7"
)

// Allowed values of the knobs an operator sets.
const (
	MinACKWindow, MaxACKWindow         = 1, 1 << 20
	MinResendQueue, MaxResendQueue     = 16, 1 << 24
	MinExternalLimit, MaxExternalLimit = 1024, 1 << 24
	MinSocketBuffer, MaxSocketBuffer   = 4096, 1 << 30
	MinConsistencyInterval             = 100 * time.Millisecond
	MinAuthMaxSkew, MaxAuthMaxSkew     = time.Second, time.Hour
)

// DefaultConfig is the configuration of a node that sets nothing: FTFW,
// conntrackd's window and queue, direct inject (received states go
// straight into the kernel, so taking over needs no commit) and the
// consistency check. Channels are left to the caller (see DefaultChannel).
func DefaultConfig() Config {
	return Config{
		Mode:                ModeFTFW,
		ACKWindow:           DefaultACKWindow,
		ResendQueueSize:     DefaultResendQueue,
		ExternalLimit:       DefaultExternalLimit,
		CommitTimeout:       DefaultCommitTimeout,
		PurgeDelay:          DefaultPurgeDelay,
		DirectInject:        true,
		ConsistencyInterval: DefaultConsistencyInterval,
	}
}

// DefaultChannel is a sync channel with the default port and buffers; the
// caller sets the interface, the addresses and Peer or Group.
func DefaultChannel() ChannelConfig {
	return ChannelConfig{Port: DefaultPort, SendBuffer: DefaultSocketBuffer, RecvBuffer: DefaultSocketBuffer}
}

// Modes lists the sync modes, the default first.
func Modes() []string { return []string{string(ModeFTFW), string(ModeNotrack)} }

// PeerVersions lists the conntrackd versions WireFor speaks to.
func PeerVersions() []string {
	return []string{"1.4.2", "1.4.3", "1.4.4", "1.4.5", "1.4.6", "1.4.7", "1.4.8", "1.4.9"}
}

// WireFor returns the wire compat knobs for a conntrackd peer of the given
// version (one of PeerVersions).
func WireFor(peerVersion string) (WireOptions, error) {
	var w WireOptions
	switch peerVersion {
	case "1.4.2", "1.4.3":
		w.MaxAttr, w.LegacyNATv4 = 29, true
	case "1.4.4":
		w.MaxAttr, w.LegacyNATv4 = 31, true
	case "1.4.5", "1.4.6":
		w.MaxAttr, w.LegacyNATv4 = 32, true
	case "1.4.7", "1.4.8", "1.4.9":
	default:
		return w, fmt.Errorf("ctsync: unknown conntrackd version %q", peerVersion)
	}
	return w, nil
}

// FilterProtocols lists the protocol names a filter is configured with
// (ParseProto maps them).
func FilterProtocols() []string {
	return []string{"tcp", "udp", "icmp", "icmpv6", "sctp", "dccp", "udplite", "gre"}
}

// FilterTCPStates lists the TCP state names a filter is configured with,
// conntrackd's spelling (ParseTCPState maps them).
func FilterTCPStates() []string {
	return []string{"SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2"}
}

// Validate reports what New would refuse in c (its channels included),
// without changing c.
func (c Config) Validate() error {
	return c.validate(false)
}

func (c *Config) validate(haveChannels bool) error {
	switch c.Mode {
	case "":
		c.Mode = ModeFTFW
	case ModeFTFW, ModeNotrack:
	default:
		return fmt.Errorf("ctsync: unknown mode %q (want ftfw or notrack)", c.Mode)
	}
	if !haveChannels {
		if len(c.Channels) == 0 {
			return errors.New("ctsync: no sync channel configured")
		}
		for i := range c.Channels {
			if err := c.Channels[i].validate(); err != nil {
				return err
			}
		}
	}
	if len(c.Channels) > MaxChannels {
		return fmt.Errorf("ctsync: %d channels, at most %d", len(c.Channels), MaxChannels)
	}
	if c.ACKWindow < 0 || c.ResendQueueSize < 0 {
		return errors.New("ctsync: negative ACK window or resend queue size")
	}
	if c.ACKWindow > MaxACKWindow || c.ResendQueueSize > MaxResendQueue {
		return fmt.Errorf("ctsync: ACK window above %d or resend queue above %d", MaxACKWindow, MaxResendQueue)
	}
	if c.Wire.MaxAttr != 0 && (c.Wire.MaxAttr < 28 || c.Wire.MaxAttr > NTAMax147) {
		return fmt.Errorf("ctsync: max attribute %d out of range 28..%d", c.Wire.MaxAttr, NTAMax147)
	}
	if c.CommitTimeout <= 0 {
		c.CommitTimeout = DefaultCommitTimeout
	}
	if c.MaxTimeouts == (MaxTimeouts{}) {
		c.MaxTimeouts = DefaultMaxTimeouts()
	}
	if c.ExternalLimit <= 0 {
		c.ExternalLimit = DefaultExternalLimit
	}
	if c.InjectQueueLimit <= 0 {
		c.InjectQueueLimit = DefaultInjectQueueLimit
	}
	if c.PurgeDelay <= 0 {
		c.PurgeDelay = DefaultPurgeDelay
	}
	if c.OverrunResyncDelay <= 0 {
		c.OverrunResyncDelay = DefaultOverrunResyncDelay
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = DefaultRefreshInterval
	}
	if c.RefreshBurst <= 0 {
		c.RefreshBurst = DefaultRefreshBurst
	}
	return nil
}

// Options are the Engine's collaborators.
type Options struct {
	// Logger; nil discards.
	Logger *slog.Logger
	// Kernel is the local conntrack table (required). The caller owns it.
	Kernel Kernel
	// Filter selects the local flows to replicate; nil accepts all.
	Filter interface{ Accept(*Flow) bool }
	// Expect, when set, replicates expectations (conntrackd's
	// ExpectationSync) through it; nil leaves them out.
	Expect ExpectKernel
	// Channels, when set, replace Config.Channels (tests, custom links).
	// The Engine closes them in Close.
	Channels []Channel
}
