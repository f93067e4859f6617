package ctsync

import (
	"math/bits"
	"math/rand/v2"
)

// The cache's table: entries live in a slab of fixed-size chunks (no
// pointers, so the garbage collector never scans them, and growth never
// copies the table), found through an open-addressing index of 8-byte
// slots (linear probing, backward-shift deletion, no tombstones). A Go
// map of the same entries costs 1.1 to 2.3 times the slot size per entry
// depending on where the table stands in its doubling cycle (its groups
// split in lockstep); the slab wastes at most one chunk and the index
// 8 to 16 bytes per entry.

// tkey is a key type of a table: the full compact key, or the shorter
// one of a flow whose addresses are both IPv4 (most of them).
type tkey interface {
	comparable
	hashWith(seed *[3]uint64) uint32
}

// gslot is one slab slot: a key and its entry. A free slot has no cfUsed
// flag and links the free list through its entry's timeout.
type gslot[K tkey] struct {
	k K
	e centry
}

// cslot and cslot4 are the slots of the two tables of a cache.
type (
	cslot  = gslot[ckey]
	cslot4 = gslot[ckey4]
)

// ckey4 is ckey for a flow whose source and destination are IPv4: 20
// bytes instead of 44.
type ckey4 struct {
	src, dst                   [4]byte
	sport, dport, icmpID, zone uint16
	proto, icmpType, icmpCode  uint8
}

const fam44 = 1 | 1<<2 // ckey.fam of an IPv4 to IPv4 key

func (k *ckey) short() (ckey4, bool) {
	if k.fam != fam44 {
		return ckey4{}, false
	}
	return ckey4{
		src: [4]byte(k.src[12:16]), dst: [4]byte(k.dst[12:16]),
		sport: k.sport, dport: k.dport, icmpID: k.icmpID, zone: k.zone,
		proto: k.proto, icmpType: k.icmpType, icmpCode: k.icmpCode,
	}, true
}

func (k *ckey4) long() ckey {
	c := ckey{
		sport: k.sport, dport: k.dport, icmpID: k.icmpID, zone: k.zone,
		proto: k.proto, icmpType: k.icmpType, icmpCode: k.icmpCode, fam: fam44,
	}
	c.src[10], c.src[11], c.dst[10], c.dst[11] = 0xff, 0xff, 0xff, 0xff
	copy(c.src[12:], k.src[:])
	copy(c.dst[12:], k.dst[:])
	return c
}

func le64(b []byte) uint64 {
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// hashWith is a keyed multiply-fold hash. The seed is drawn per table:
// keys come from an untrusted peer, so their positions must not be
// predictable.
func (k ckey) hashWith(seed *[3]uint64) uint32 {
	x := uint64(k.sport) | uint64(k.dport)<<16 | uint64(k.icmpID)<<32 | uint64(k.zone)<<48
	y := uint64(k.proto) | uint64(k.icmpType)<<8 | uint64(k.icmpCode)<<16 | uint64(k.fam)<<24
	h := mum(le64(k.src[0:8])^seed[0], le64(k.src[8:16])^seed[1])
	h = mum(h^le64(k.dst[0:8]), le64(k.dst[8:16])^seed[2])
	h = mum(h^x, y^seed[0]^0x9e3779b97f4a7c15)
	return uint32(h ^ h>>32)
}

func (k ckey4) hashWith(seed *[3]uint64) uint32 {
	a := uint64(k.src[0]) | uint64(k.src[1])<<8 | uint64(k.src[2])<<16 | uint64(k.src[3])<<24 |
		uint64(k.dst[0])<<32 | uint64(k.dst[1])<<40 | uint64(k.dst[2])<<48 | uint64(k.dst[3])<<56
	x := uint64(k.sport) | uint64(k.dport)<<16 | uint64(k.icmpID)<<32 | uint64(k.zone)<<48
	y := uint64(k.proto) | uint64(k.icmpType)<<8 | uint64(k.icmpCode)<<16
	h := mum(a^seed[0], x^seed[1])
	h = mum(h^y, seed[2]^0x9e3779b97f4a7c15)
	return uint32(h ^ h>>32)
}

const (
	chunkBits = 10
	chunkLen  = 1 << chunkBits
	// minIndex is the smallest index size (slots).
	minIndex = 16
)

// ctable is the slab and its index.
type ctable[K tkey] struct {
	chunks []*[chunkLen]gslot[K]
	n      int    // live entries
	hi     uint32 // slab slots handed out so far
	free   uint32 // head of the free list (slot + 1), 0: empty
	// idx holds tag<<32 | slot+1 (0: empty). The tag is the key hash's
	// upper half; its low bits are the home position, so neither growth
	// nor deletion hashes a key again.
	idx  []uint64
	seed [3]uint64
}

func (t *ctable[K]) slot(i uint32) *gslot[K] { return &t.chunks[i>>chunkBits][i&(chunkLen-1)] }

// find returns the slab slot of k and whether it is there; when it is
// not, pos is where it would go in the index.
func (t *ctable[K]) find(k *K) (s uint32, pos int, ok bool) {
	if len(t.idx) == 0 {
		return 0, 0, false
	}
	tag := (*k).hashWith(&t.seed)
	mask := len(t.idx) - 1
	for p := int(tag) & mask; ; p = (p + 1) & mask {
		v := t.idx[p]
		if v == 0 {
			return 0, p, false
		}
		if uint32(v>>32) == tag {
			if i := uint32(v) - 1; t.slot(i).k == *k {
				return i, p, true
			}
		}
	}
}

// insert adds k (absent) with e and returns its slab slot.
func (t *ctable[K]) insert(k *K, e centry) uint32 {
	if (t.n+1)*4 > len(t.idx)*3 {
		t.grow()
	}
	var i uint32
	if t.free != 0 {
		i = t.free - 1
		t.free = t.slot(i).e.timeout
	} else {
		i = t.hi
		if int(i>>chunkBits) == len(t.chunks) {
			t.chunks = append(t.chunks, new([chunkLen]gslot[K]))
		}
		t.hi++
	}
	e.flags |= cfUsed
	*t.slot(i) = gslot[K]{k: *k, e: e}
	tag := (*k).hashWith(&t.seed)
	mask := len(t.idx) - 1
	p := int(tag) & mask
	for t.idx[p] != 0 {
		p = (p + 1) & mask
	}
	t.idx[p] = uint64(tag)<<32 | uint64(i+1)
	t.n++
	return i
}

func (t *ctable[K]) grow() {
	old := t.idx
	t.idx = make([]uint64, max(minIndex, 2*len(old)))
	if len(old) == 0 {
		t.seed = [3]uint64{rand.Uint64(), rand.Uint64(), rand.Uint64()}
	}
	mask := len(t.idx) - 1
	for _, v := range old {
		if v == 0 {
			continue
		}
		p := int(v>>32) & mask
		for t.idx[p] != 0 {
			p = (p + 1) & mask
		}
		t.idx[p] = v
	}
}

// remove deletes the entry at index position pos (slab slot s).
func (t *ctable[K]) remove(s uint32, pos int) {
	sl := t.slot(s)
	*sl = gslot[K]{}
	sl.e.timeout = t.free
	t.free = s + 1
	t.n--
	// Backward-shift: move later entries of the probe run into the hole
	// when their home position allows it.
	mask := len(t.idx) - 1
	hole := pos
	for p := (pos + 1) & mask; ; p = (p + 1) & mask {
		v := t.idx[p]
		if v == 0 {
			break
		}
		home := int(v>>32) & mask
		// v may move to hole unless its home lies cyclically in (hole, p].
		if (p-home)&mask >= (p-hole)&mask {
			t.idx[hole] = v
			hole = p
		}
	}
	t.idx[hole] = 0
}

// each calls fn for every live slot in slab order until it returns
// false. fn may delete any entry or insert; an entry inserted during the
// walk may or may not be visited.
func (t *ctable[K]) each(fn func(s *gslot[K]) bool) {
	for i := uint32(0); i < t.hi; i++ {
		s := t.slot(i)
		if s.e.flags&cfUsed != 0 && !fn(s) {
			return
		}
	}
}

func (t *ctable[K]) clone() ctable[K] {
	c := *t
	c.chunks = make([]*[chunkLen]gslot[K], len(t.chunks))
	for i, ch := range t.chunks {
		cp := *ch
		c.chunks[i] = &cp
	}
	c.idx = append([]uint64(nil), t.idx...)
	return c
}

// pool interns values referenced by many entries (NAT addresses, labels,
// helper names) with a reference count, so an entry holds a 4-byte index
// (value + 1; 0 is none) and a value no entry uses is dropped.
type pool[T comparable] struct {
	vals []T
	refs []uint32
	ids  map[T]uint32
	free []uint32
}

func (p *pool[T]) ref(v T) uint32 {
	if i, ok := p.ids[v]; ok {
		p.refs[i-1]++
		return i
	}
	if p.ids == nil {
		p.ids = make(map[T]uint32)
	}
	var i uint32
	if n := len(p.free); n > 0 {
		i = p.free[n-1]
		p.free = p.free[:n-1]
		p.vals[i-1], p.refs[i-1] = v, 1
	} else {
		p.vals = append(p.vals, v)
		p.refs = append(p.refs, 1)
		i = uint32(len(p.vals))
	}
	p.ids[v] = i
	return i
}

func (p *pool[T]) unref(i uint32) {
	if i == 0 {
		return
	}
	if p.refs[i-1]--; p.refs[i-1] == 0 {
		delete(p.ids, p.vals[i-1])
		var zero T
		p.vals[i-1] = zero
		p.free = append(p.free, i)
	}
}

func (p *pool[T]) get(i uint32) (v T) {
	if i == 0 {
		return v
	}
	return p.vals[i-1]
}

func (p *pool[T]) clone() pool[T] {
	c := pool[T]{
		vals: append([]T(nil), p.vals...), refs: append([]uint32(nil), p.refs...),
		free: append([]uint32(nil), p.free...), ids: make(map[T]uint32, len(p.ids)),
	}
	for k, v := range p.ids {
		c.ids[k] = v
	}
	return c
}
