package vrrp

import (
	"errors"
	"log/slog"
	"net/netip"
	"time"
)

// setupV3 prepares a VRRPv3 instance: the advert template and the
// receive policy's interval (unused by checkV3, kept in step with the
// config for status).
func (in *instance) setupV3() {
	cs, _ := CentisecondsV3(in.cfg.AdvertInterval) // validated by Config.Validate
	in.v3 = &AdvertisementV3{
		VRID:              in.cfg.VRID,
		MaxAdvertInterval: cs,
		Addresses:         in.advert.Addresses,
	}
	in.policy.interval = 0
}

// groupAddress is the multicast destination of the instance's adverts:
// 224.0.0.18, or ff02::12 for a VRRPv3 instance with IPv6 addresses.
func (in *instance) groupAddress() netip.Addr {
	if in.v3 != nil && len(in.v3.Addresses) > 0 && in.v3.Addresses[0].Is6() {
		return GroupAddress6
	}
	return GroupAddress
}

// encodeV3 encodes the instance's v3 advert with priority prio for dst
// into the engine's send buffer. Only the event loop calls it; with the
// buffer grown once it does not allocate.
func (e *engine) encodeV3(in *instance, conn Conn, prio uint8, dst netip.Addr) []byte {
	src := in.cfg.UnicastSource
	if !src.IsValid() {
		src = conn.LocalAddr()
	}
	adv := *in.v3
	adv.Priority = prio
	b, err := adv.AppendBinary(e.sendBuf[:0], src, dst)
	if err != nil { // the config was validated: this is a bug
		panic(err)
	}
	e.sendBuf = b
	return b
}

// handleV3 is handleReceived for a VRRPv3 message.
func (e *engine) handleV3(ifc *iface, data []byte, m RecvMeta, discard func(*counters, DiscardReason, ...any)) {
	a, err := ParseAdvertisementV3(data, m.Src, m.Dst)
	if err != nil {
		reason := DiscardLength
		var pe *ParseError
		if errors.As(err, &pe) {
			reason = pe.Reason()
		}
		discard(&ifc.counters, reason, "err", err)
		return
	}
	in := ifc.insts[a.VRID]
	if in == nil {
		discard(&ifc.counters, DiscardUnknownVRID, "vrid", a.VRID)
		return
	}
	if in.v3 == nil {
		discard(&in.counters, DiscardVersion, "instance", in.cfg.Name, "version", Version3)
		return
	}
	reason, mismatch := in.policy.checkV3(a, m)
	if !e.admit(in, reason, mismatch, a.Priority, a.Addresses, m, discard) {
		return
	}
	if a.MaxAdvertInterval != in.v3.MaxAdvertInterval {
		// RFC 9568 §7.1: log, do not drop; the backup follows the master.
		e.logLimited(slog.LevelInfo, "interval:"+in.cfg.Name, "advert interval differs from ours; following the master's",
			"instance", in.cfg.Name, "src", m.Src, "theirs", a.Interval(), "ours", in.cfg.AdvertInterval)
	}
	e.step(time.Now(), in.index, AdvertReceived{Priority: a.Priority, Src: m.Src, Interval: a.Interval()})
}
