package ctsync

import (
	"bytes"
	"net/netip"
	"time"
)

// ckey is the compact, comparable form of Key used inside the caches:
// addresses as 16 raw bytes plus a family byte (netip.Addr carries a zone
// pointer and would cost 48 bytes per key instead of 32).
type ckey struct {
	src, dst                   [16]byte
	sport, dport, icmpID, zone uint16
	proto, icmpType, icmpCode  uint8
	fam                        uint8 // bits 0-1: src family, bits 2-3: dst family (0 none, 1 v4, 2 v6)
}

func famOf(a netip.Addr) uint8 {
	switch {
	case a.Is4():
		return 1
	case a.Is6():
		return 2
	}
	return 0
}

func addrOf(fam uint8, b [16]byte) netip.Addr {
	switch fam {
	case 1:
		return netip.AddrFrom4([4]byte(b[12:16]))
	case 2:
		return netip.AddrFrom16(b)
	}
	return netip.Addr{}
}

func compactKey(k *Key) ckey {
	return ckey{
		src: k.Src.As16(), dst: k.Dst.As16(),
		sport: k.SrcPort, dport: k.DstPort, icmpID: k.ICMPID, zone: k.Zone,
		proto: k.Proto, icmpType: k.ICMPType, icmpCode: k.ICMPCode,
		fam: famOf(k.Src) | famOf(k.Dst)<<2,
	}
}

func (c *ckey) key() Key {
	return Key{
		Tuple: Tuple{
			Src: addrOf(c.fam&3, c.src), Dst: addrOf(c.fam>>2&3, c.dst),
			SrcPort: c.sport, DstPort: c.dport, ICMPID: c.icmpID,
			ICMPType: c.icmpType, ICMPCode: c.icmpCode, Proto: c.proto,
		},
		Zone: c.zone,
	}
}

// centry is the cached state of one flow, without the key. Rare fields
// (NAT, sequence adjustment, labels, helper) live behind ext.
type centry struct {
	status, timeout, mark uint32
	vtagOrig, vtagReply   uint32
	stamp                 uint32 // unix seconds of the last update
	// refreshAt (unix seconds, 0: stamp + timeout/2) is when refresh.go
	// looks at the entry again after it found the kernel's copy no
	// fresher than the peer's.
	refreshAt                  uint32
	protoState, wsOrig, wsRepl uint8
	dccpRole, flags            uint8
	ext                        *centryExt
}

const (
	cfHasState = 1 << iota
	cfHasWScale
	cfHasSeqAdj
	// cfInjected marks an internal-cache entry last written by the
	// daemon itself (an injected peer state), for digest.go's view.
	cfInjected
)

// markInjected flags k's entry as written by the daemon.
func (c *Cache) markInjected(k *Key) {
	ck := compactKey(k)
	if e, ok := c.m[ck]; ok && e.flags&cfInjected == 0 {
		e.flags |= cfInjected
		c.m[ck] = e
		c.dig.injectedAdd(&ck, &e)
	}
}

type centryExt struct {
	snat, dnat             NAT
	seqAdjOrig, seqAdjRepl SeqAdj
	labels                 []byte
	helper                 string
}

func packEntry(f *Flow, now time.Time) centry {
	e := centry{
		status: f.Status, timeout: f.Timeout, mark: f.Mark,
		vtagOrig: f.SCTPVTagOrig, vtagReply: f.SCTPVTagReply,
		stamp:      uint32(now.Unix()),
		protoState: f.ProtoState, wsOrig: f.TCPWScaleOrig, wsRepl: f.TCPWScaleReply,
		dccpRole: f.DCCPRole,
	}
	if f.HasProtoState {
		e.flags |= cfHasState
	}
	if f.HasTCPWScale {
		e.flags |= cfHasWScale
	}
	if f.HasSeqAdj {
		e.flags |= cfHasSeqAdj
	}
	if f.SNAT != (NAT{}) || f.DNAT != (NAT{}) || f.HasSeqAdj || len(f.Labels) > 0 || f.Helper != "" {
		e.ext = &centryExt{snat: f.SNAT, dnat: f.DNAT, helper: f.Helper}
		if f.HasSeqAdj {
			e.ext.seqAdjOrig, e.ext.seqAdjRepl = f.SeqAdjOrig, f.SeqAdjReply
		}
		if len(f.Labels) > 0 {
			e.ext.labels = bytes.Clone(f.Labels)
		}
	}
	return e
}

func (e *centry) flow(k *ckey) Flow {
	f := Flow{
		Key:    k.key(),
		Status: e.status, Timeout: e.timeout, Mark: e.mark,
		ProtoState: e.protoState, HasProtoState: e.flags&cfHasState != 0,
		TCPWScaleOrig: e.wsOrig, TCPWScaleReply: e.wsRepl, HasTCPWScale: e.flags&cfHasWScale != 0,
		DCCPRole: e.dccpRole, SCTPVTagOrig: e.vtagOrig, SCTPVTagReply: e.vtagReply,
		HasSeqAdj: e.flags&cfHasSeqAdj != 0,
	}
	if x := e.ext; x != nil {
		f.SNAT, f.DNAT, f.Helper = x.snat, x.dnat, x.helper
		f.SeqAdjOrig, f.SeqAdjReply = x.seqAdjOrig, x.seqAdjRepl
		if x.labels != nil {
			f.Labels = bytes.Clone(x.labels)
		}
	}
	return f
}

// Cache is a table of flows keyed by original tuple and zone: the internal
// cache (this node's flows) or the external cache (the peer's). It is not
// safe for concurrent use; the Engine serialises access.
type Cache struct {
	m map[ckey]centry
	// dig, when set, keeps the consistency check's bucket sums up to date
	// (cache_digest.go).
	dig *cacheDigest
}

// NewCache returns an empty cache.
func NewCache() *Cache { return &Cache{m: make(map[ckey]centry)} }

// Len returns the number of entries.
func (c *Cache) Len() int { return len(c.m) }

// Put inserts or replaces the state of f; it reports whether the entry is new.
func (c *Cache) Put(f *Flow, now time.Time) (created bool) {
	k := compactKey(&f.Key)
	old, ok := c.m[k]
	e := packEntry(f, now)
	c.m[k] = e
	if c.dig != nil {
		if ok {
			c.dig.remove(&k, &old)
		}
		c.dig.add(&k, &e)
	}
	return !ok
}

// Get returns the state cached for k.
func (c *Cache) Get(k Key) (Flow, bool) {
	ck := compactKey(&k)
	e, ok := c.m[ck]
	if !ok {
		return Flow{}, false
	}
	return e.flow(&ck), true
}

// Has reports whether k is cached.
func (c *Cache) Has(k Key) bool {
	_, ok := c.m[compactKey(&k)]
	return ok
}

// Delete removes k and reports whether it was present.
func (c *Cache) Delete(k Key) bool {
	ck := compactKey(&k)
	return c.deleteCK(ck)
}

// deleteCK is Delete by compact key.
func (c *Cache) deleteCK(ck ckey) bool {
	old, ok := c.m[ck]
	if !ok {
		return false
	}
	delete(c.m, ck)
	if c.dig != nil {
		c.dig.remove(&ck, &old)
	}
	return true
}

// Clear removes every entry.
func (c *Cache) Clear() {
	c.m = make(map[ckey]centry)
	if c.dig != nil {
		*c.dig = cacheDigest{}
	}
}

// Range calls fn for every entry with the time of its last update, in no
// particular order, until fn returns false.
func (c *Cache) Range(fn func(f *Flow, updated time.Time) bool) {
	for k, e := range c.m {
		f := e.flow(&k)
		if !fn(&f, time.Unix(int64(e.stamp), 0)) {
			return
		}
	}
}

// Keys returns every key.
func (c *Cache) Keys() []Key {
	out := make([]Key, 0, len(c.m))
	for k := range c.m {
		out = append(out, k.key())
	}
	return out
}

// Flows returns a copy of every entry.
func (c *Cache) Flows() []Flow {
	out := make([]Flow, 0, len(c.m))
	for k, e := range c.m {
		out = append(out, e.flow(&k))
	}
	return out
}

// sameState reports whether a and b carry the same replicated state,
// ignoring the timeout (which counts down between two reads).
func sameState(a, b *Flow) bool {
	if a.Key != b.Key || a.Status != b.Status || a.Mark != b.Mark ||
		a.ProtoState != b.ProtoState || a.HasProtoState != b.HasProtoState ||
		a.TCPWScaleOrig != b.TCPWScaleOrig || a.TCPWScaleReply != b.TCPWScaleReply || a.HasTCPWScale != b.HasTCPWScale ||
		a.DCCPRole != b.DCCPRole || a.SCTPVTagOrig != b.SCTPVTagOrig || a.SCTPVTagReply != b.SCTPVTagReply ||
		a.SNAT != b.SNAT || a.DNAT != b.DNAT || a.HasSeqAdj != b.HasSeqAdj || a.Helper != b.Helper ||
		!bytes.Equal(a.Labels, b.Labels) {
		return false
	}
	return !a.HasSeqAdj || (a.SeqAdjOrig == b.SeqAdjOrig && a.SeqAdjReply == b.SeqAdjReply)
}
