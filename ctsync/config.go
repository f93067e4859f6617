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
	// ACKWindow (default 300) and ResendQueueSize (default 131072) are
	// conntrackd's ACKWindowSize and ResendQueueSize.
	ACKWindow       int
	ResendQueueSize int
	// CommitTimeout bounds one Commit (default 30 s).
	CommitTimeout time.Duration
	// PurgeDelay is the default delay of SchedulePurge (conntrackd's
	// PurgeTimeout, default 60 s).
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
	if c.Wire.MaxAttr != 0 && (c.Wire.MaxAttr < 28 || c.Wire.MaxAttr > NTAMax147) {
		return fmt.Errorf("ctsync: max attribute %d out of range 28..%d", c.Wire.MaxAttr, NTAMax147)
	}
	if c.CommitTimeout <= 0 {
		c.CommitTimeout = 30 * time.Second
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
		c.PurgeDelay = 60 * time.Second
	}
	if c.OverrunResyncDelay <= 0 {
		c.OverrunResyncDelay = time.Second
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
