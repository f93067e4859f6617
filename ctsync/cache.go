package ctsync

import (
	"bytes"
	"net/netip"
	"time"
)

// ckey is the compact, comparable form of Key used inside the caches and
// the session's queues: addresses as 16 raw bytes plus a family byte
// (netip.Addr carries a zone pointer and would cost 48 bytes per key
// instead of 32). The cache's table keeps IPv4 flows under the shorter
// ckey4 (cache_table.go).
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

// centry is the cached state of one flow, without the key: 40 bytes and
// no pointers (a slot with its key: 60 bytes for IPv4, 84 for IPv6). NAT addresses are interned (Cache.addrs); the rare
// attributes (sequence adjustment, SCTP verification tags, DCCP role,
// labels, helper) live in Cache.rare, only for the entries that have any.
type centry struct {
	status, timeout, mark uint32
	stamp                 uint32 // unix seconds of the last update
	// refreshAt (unix seconds, 0: stamp + timeout/2) is when refresh.go
	// looks at the entry again after it found the kernel's copy no
	// fresher than the peer's.
	refreshAt uint32
	// snat and dnat index Cache.addrs (0: no address); the ports are the
	// NAT bindings' ports.
	snat, dnat         uint32
	snatPort, dnatPort uint16
	// rare indexes Cache.rare (slot + 1; 0: none).
	rare                       uint32
	protoState, wsOrig, wsRepl uint8
	flags                      uint8
}

const (
	cfHasState = 1 << iota
	cfHasWScale
	cfHasSeqAdj
	// cfInjected marks an internal-cache entry last written by the
	// daemon itself (an injected peer state), for digest.go's view.
	cfInjected
	// cfQueued marks an entry whose key waits in the session's TX queue,
	// cfQueuedNew one waiting as a new flow (session.go, queueMarks).
	// Put keeps both.
	cfQueued
	cfQueuedNew
	// cfSeen marks an internal-cache entry the resync under way found in
	// the kernel's dump (engine.go, resyncOnce); the sweep at its end
	// clears every mark. Put drops it: an event's key is in e.touched.
	cfSeen
	// cfUsed marks a live slab slot (cache_table.go).
	cfUsed = 1 << 7
)

// crare holds the attributes few flows have.
type crare struct {
	seqAdjOrig, seqAdjRepl SeqAdj
	vtagOrig, vtagReply    uint32
	// labels and helper index Cache.strs (0: none).
	labels, helper uint32
	dccpRole       uint8
}

// markInjected flags k's entry as written by the daemon.
func (c *Cache) markInjected(k *Key) {
	ck := compactKey(k)
	if e := c.at(&ck); e != nil && e.flags&cfInjected == 0 {
		e.flags |= cfInjected
		if c.dig != nil {
			b, h := c.entryHashes(&ck, e)
			c.dig.injected[b] += h
		}
	}
}

// pack returns f's entry, taking references on the interned values it
// needs (release drops them).
func (c *Cache) pack(f *Flow, now time.Time) centry {
	e := centry{
		status: f.Status, timeout: f.Timeout, mark: f.Mark,
		stamp:      uint32(now.Unix()),
		protoState: f.ProtoState, wsOrig: f.TCPWScaleOrig, wsRepl: f.TCPWScaleReply,
		snatPort: f.SNAT.Port, dnatPort: f.DNAT.Port,
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
	if f.SNAT.Addr.IsValid() {
		e.snat = c.addrs.ref(f.SNAT.Addr)
	}
	if f.DNAT.Addr.IsValid() {
		e.dnat = c.addrs.ref(f.DNAT.Addr)
	}
	if f.HasSeqAdj || f.SCTPVTagOrig != 0 || f.SCTPVTagReply != 0 || f.DCCPRole != 0 || len(f.Labels) > 0 || f.Helper != "" {
		r := crare{vtagOrig: f.SCTPVTagOrig, vtagReply: f.SCTPVTagReply, dccpRole: f.DCCPRole}
		if f.HasSeqAdj {
			r.seqAdjOrig, r.seqAdjRepl = f.SeqAdjOrig, f.SeqAdjReply
		}
		if len(f.Labels) > 0 {
			r.labels = c.strs.ref(string(f.Labels))
		}
		if f.Helper != "" {
			r.helper = c.strs.ref(f.Helper)
		}
		if n := len(c.rareFree); n > 0 {
			e.rare = c.rareFree[n-1]
			c.rareFree = c.rareFree[:n-1]
			c.rare[e.rare-1] = r
		} else {
			c.rare = append(c.rare, r)
			e.rare = uint32(len(c.rare))
		}
	}
	return e
}

// release drops the references e holds.
func (c *Cache) release(e *centry) {
	c.addrs.unref(e.snat)
	c.addrs.unref(e.dnat)
	if e.rare != 0 {
		r := &c.rare[e.rare-1]
		c.strs.unref(r.labels)
		c.strs.unref(r.helper)
		*r = crare{}
		c.rareFree = append(c.rareFree, e.rare)
	}
}

// flowOf unpacks an entry.
func (c *Cache) flowOf(k *ckey, e *centry) Flow {
	f := Flow{
		Key:    k.key(),
		Status: e.status, Timeout: e.timeout, Mark: e.mark,
		ProtoState: e.protoState, HasProtoState: e.flags&cfHasState != 0,
		TCPWScaleOrig: e.wsOrig, TCPWScaleReply: e.wsRepl, HasTCPWScale: e.flags&cfHasWScale != 0,
		HasSeqAdj: e.flags&cfHasSeqAdj != 0,
		SNAT:      NAT{Addr: c.addrs.get(e.snat), Port: e.snatPort},
		DNAT:      NAT{Addr: c.addrs.get(e.dnat), Port: e.dnatPort},
	}
	if e.rare != 0 {
		r := &c.rare[e.rare-1]
		f.SCTPVTagOrig, f.SCTPVTagReply, f.DCCPRole = r.vtagOrig, r.vtagReply, r.dccpRole
		f.SeqAdjOrig, f.SeqAdjReply = r.seqAdjOrig, r.seqAdjRepl
		if r.labels != 0 {
			f.Labels = []byte(c.strs.get(r.labels))
		}
		f.Helper = c.strs.get(r.helper)
	}
	return f
}

// Cache is a table of flows keyed by original tuple and zone: the internal
// cache (this node's flows) or the external cache (the peer's). It is not
// safe for concurrent use; the Engine serialises access.
type Cache struct {
	// t4 holds the flows from an IPv4 to an IPv4 address, t6 the others.
	t4 ctable[ckey4]
	t6 ctable[ckey]
	// addrs interns NAT addresses, strs labels and helper names.
	addrs pool[netip.Addr]
	strs  pool[string]
	// rare holds the rare attributes of the entries that have any;
	// rareFree its free slots (slot + 1).
	rare     []crare
	rareFree []uint32
	// dig, when set, keeps the consistency check's bucket sums up to date
	// (cache_digest.go).
	dig *cacheDigest
}

// NewCache returns an empty cache.
func NewCache() *Cache { return &Cache{} }

// Len returns the number of entries.
func (c *Cache) Len() int { return c.t4.n + c.t6.n }

// at returns ck's entry in place, nil when absent.
func (c *Cache) at(ck *ckey) *centry {
	if k4, ok := ck.short(); ok {
		if s, _, ok := c.t4.find(&k4); ok {
			return &c.t4.slot(s).e
		}
		return nil
	}
	if s, _, ok := c.t6.find(ck); ok {
		return &c.t6.slot(s).e
	}
	return nil
}

func (c *Cache) insert(ck *ckey, e centry) {
	if k4, ok := ck.short(); ok {
		c.t4.insert(&k4, e)
		return
	}
	c.t6.insert(ck, e)
}

func (c *Cache) remove(ck *ckey) {
	if k4, ok := ck.short(); ok {
		if s, pos, ok := c.t4.find(&k4); ok {
			c.t4.remove(s, pos)
		}
		return
	}
	if s, pos, ok := c.t6.find(ck); ok {
		c.t6.remove(s, pos)
	}
}

// each calls fn for every entry until it returns false (see
// ctable.each).
func (c *Cache) each(fn func(k *ckey, e *centry) bool) {
	more := true
	c.t4.each(func(s *cslot4) bool {
		k := s.k.long()
		more = fn(&k, &s.e)
		return more
	})
	if more {
		c.t6.each(func(s *cslot) bool { return fn(&s.k, &s.e) })
	}
}

// Put inserts or replaces the state of f; it reports whether the entry is new.
func (c *Cache) Put(f *Flow, now time.Time) (created bool) {
	k := compactKey(&f.Key)
	return c.putCK(&k, f, now)
}

// putCK is Put with f's compact key k.
func (c *Cache) putCK(k *ckey, f *Flow, now time.Time) (created bool) {
	return c.putFlagged(k, f, now, 0)
}

// putFlagged is putCK that also sets the marks in flags (cfSeen).
func (c *Cache) putFlagged(k *ckey, f *Flow, now time.Time, flags uint8) (created bool) {
	e := c.pack(f, now)
	e.flags |= flags
	old := c.at(k)
	if old == nil {
		if c.dig != nil {
			c.digAdd(k, &e)
		}
		c.insert(k, e)
		return true
	}
	if c.dig != nil {
		c.digRemove(k, old)
		c.digAdd(k, &e)
	}
	c.release(old)
	e.flags |= cfUsed | old.flags&(cfQueued|cfQueuedNew)
	*old = e
	return false
}

// markQueued implements queueMarks for the internal cache.
func (c *Cache) markQueued(ck *ckey, isNew bool) (slot, queued bool) {
	e := c.at(ck)
	if e == nil {
		return false, false
	}
	queued = e.flags&cfQueued != 0
	e.flags |= cfQueued
	if isNew {
		e.flags |= cfQueuedNew
	}
	return true, queued
}

// unmarkQueued implements queueMarks for the internal cache.
func (c *Cache) unmarkQueued(ck *ckey) (queued, isNew bool) {
	e := c.at(ck)
	if e == nil || e.flags&cfQueued == 0 {
		return false, false
	}
	isNew = e.flags&cfQueuedNew != 0
	e.flags &^= cfQueued | cfQueuedNew
	return true, isNew
}

// Get returns the state cached for k.
func (c *Cache) Get(k Key) (Flow, bool) {
	ck := compactKey(&k)
	return c.getCK(&ck)
}

// getCK is Get by compact key.
func (c *Cache) getCK(ck *ckey) (Flow, bool) {
	e := c.at(ck)
	if e == nil {
		return Flow{}, false
	}
	return c.flowOf(ck, e), true
}

// Has reports whether k is cached.
func (c *Cache) Has(k Key) bool {
	ck := compactKey(&k)
	return c.at(&ck) != nil
}

// entry returns the packed entry of ck.
func (c *Cache) entry(ck ckey) (centry, bool) {
	if e := c.at(&ck); e != nil {
		return *e, true
	}
	return centry{}, false
}

// setRefreshAt sets the refresh check time of ck's entry (refresh.go).
func (c *Cache) setRefreshAt(ck ckey, at uint32) {
	if e := c.at(&ck); e != nil {
		e.refreshAt = at
	}
}

// m ranges over every entry, key and packed state, in no particular
// order: `for k, e := range c.m`. The body may delete any entry.
func (c *Cache) m(yield func(ckey, centry) bool) {
	c.each(func(k *ckey, e *centry) bool { return yield(*k, *e) })
}

// Delete removes k and reports whether it was present.
func (c *Cache) Delete(k Key) bool {
	ck := compactKey(&k)
	return c.deleteCK(ck)
}

// deleteCK is Delete by compact key.
func (c *Cache) deleteCK(ck ckey) bool {
	e := c.at(&ck)
	if e == nil {
		return false
	}
	if c.dig != nil {
		c.digRemove(&ck, e)
	}
	c.release(e)
	c.remove(&ck)
	return true
}

// Clear removes every entry.
func (c *Cache) Clear() {
	*c = Cache{dig: c.dig}
	if c.dig != nil {
		*c.dig = cacheDigest{}
	}
}

// clone returns a copy of the cache (bulk copies of the table, no
// per-entry work), so a whole-cache walk can run without the engine
// lock. The copy keeps no digest.
func (c *Cache) clone() *Cache {
	return &Cache{
		t4: c.t4.clone(), t6: c.t6.clone(), addrs: c.addrs.clone(), strs: c.strs.clone(),
		rare: append([]crare(nil), c.rare...), rareFree: append([]uint32(nil), c.rareFree...),
	}
}

// Range calls fn for every entry with the time of its last update, in no
// particular order, until fn returns false.
func (c *Cache) Range(fn func(f *Flow, updated time.Time) bool) {
	c.each(func(k *ckey, e *centry) bool {
		f := c.flowOf(k, e)
		return fn(&f, time.Unix(int64(e.stamp), 0))
	})
}

// Keys returns every key.
func (c *Cache) Keys() []Key {
	out := make([]Key, 0, c.Len())
	c.each(func(k *ckey, _ *centry) bool {
		out = append(out, k.key())
		return true
	})
	return out
}

// Flows returns a copy of every entry.
func (c *Cache) Flows() []Flow {
	out := make([]Flow, 0, c.Len())
	c.each(func(k *ckey, e *centry) bool {
		out = append(out, c.flowOf(k, e))
		return true
	})
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
