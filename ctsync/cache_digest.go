package ctsync

import "encoding/binary"

// cacheDigest keeps a cache's consistency-check bucket sums (digest.go) up
// to date on every change, so a digest costs O(buckets), not a walk of the
// table under the engine lock (about 25 ms per 100,000 entries).
type cacheDigest struct {
	// all sums every entry; injected only those flagged cfInjected.
	all, injected [digestBuckets]uint64
}

// digAdd and digRemove account for an entry entering or leaving the
// cache's digest.
func (c *Cache) digAdd(k *ckey, e *centry) {
	b, h := c.entryHashes(k, e)
	c.dig.all[b] += h
	if e.flags&cfInjected != 0 {
		c.dig.injected[b] += h
	}
}

func (c *Cache) digRemove(k *ckey, e *centry) {
	b, h := c.entryHashes(k, e)
	c.dig.all[b] -= h
	if e.flags&cfInjected != 0 {
		c.dig.injected[b] -= h
	}
}

// keyHash is the digest's hash of a key; its remainder by digestBuckets
// is the key's bucket.
func keyHash(k *ckey) uint64 {
	be := binary.BigEndian
	return hashWords(0x66777061697221, // "fwpair!"
		be.Uint64(k.src[0:8]), be.Uint64(k.src[8:16]), be.Uint64(k.dst[0:8]), be.Uint64(k.dst[8:16]),
		uint64(k.sport)<<48|uint64(k.dport)<<32|uint64(k.icmpID)<<16|uint64(k.zone),
		uint64(k.proto)<<24|uint64(k.icmpType)<<16|uint64(k.icmpCode)<<8|uint64(k.fam))
}

// stateHash folds the replicated state into a key's hash: mark, protocol
// state and, for an entry with any NAT binding, sequence adjustment,
// labels or helper, the NAT bindings and labels.
func stateHash(kh uint64, mark uint32, hasState bool, protoState uint8, ext bool, nat [2]NAT, labels []byte) uint64 {
	st := uint64(mark)
	if hasState {
		st |= 1<<40 | uint64(protoState)<<32
	}
	h := hashWords(kh, st)
	if !ext {
		return h
	}
	be := binary.BigEndian
	for _, n := range nat {
		var a [16]byte
		if n.Addr.IsValid() {
			a = n.Addr.Unmap().As16()
		}
		h = hashWords(h, be.Uint64(a[0:8]), be.Uint64(a[8:16]), uint64(n.Port))
	}
	if anySet(labels) {
		for i := 0; i < len(labels); i += 8 {
			var w [8]byte
			copy(w[:], labels[i:])
			h = hashWords(h, be.Uint64(w[:]))
		}
	}
	return h
}

// entryHashes returns the bucket of a cached key and the hash of key and
// state.
func (c *Cache) entryHashes(k *ckey, e *centry) (bucket uint8, sum uint64) {
	kh := keyHash(k)
	var labels []byte
	ext := e.snat != 0 || e.dnat != 0 || e.snatPort != 0 || e.dnatPort != 0 || e.flags&cfHasSeqAdj != 0
	if e.rare != 0 {
		r := &c.rare[e.rare-1]
		if r.labels != 0 {
			labels = []byte(c.strs.get(r.labels))
		}
		ext = ext || r.labels != 0 || r.helper != 0
	}
	nat := [2]NAT{{Addr: c.addrs.get(e.snat), Port: e.snatPort}, {Addr: c.addrs.get(e.dnat), Port: e.dnatPort}}
	return uint8(kh % digestBuckets), stateHash(kh, e.mark, e.flags&cfHasState != 0, e.protoState, ext, nat, labels)
}

// flowHashes is entryHashes of a flow not (necessarily) cached.
func flowHashes(f *Flow) (bucket uint8, sum uint64) {
	k := compactKey(&f.Key)
	kh := keyHash(&k)
	ext := f.SNAT != (NAT{}) || f.DNAT != (NAT{}) || f.HasSeqAdj || len(f.Labels) > 0 || f.Helper != ""
	return uint8(kh % digestBuckets), stateHash(kh, f.Mark, f.HasProtoState, f.ProtoState, ext, [2]NAT{f.SNAT, f.DNAT}, f.Labels)
}

// keyBucket is the digest bucket of a key.
func keyBucket(k *ckey) uint8 { return uint8(keyHash(k) % digestBuckets) }
