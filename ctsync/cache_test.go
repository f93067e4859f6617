package ctsync

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/fwpair/fwpair/ctsync/ctnetlink/ctnetlinktest"
)

// cacheFlow is randFlow with every attribute the cache keeps out of line
// drawn often, and the odd corners: a NAT port without an address, a
// 4-in-6 NAT address, an SCTP tag or DCCP role on any protocol.
func cacheFlow(r *rand.Rand) Flow {
	f := randFlow(r)
	switch r.IntN(12) {
	case 0:
		f.SNAT = NAT{Port: uint16(r.Uint32())}
	case 1:
		f.DNAT = NAT{Addr: netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: 192, 13: 0, 14: 2, 15: byte(r.Uint32())}), Port: 80}
	case 2:
		f.SCTPVTagReply = r.Uint32()
	case 3:
		f.DCCPRole = uint8(r.Uint32())
	case 4:
		f.Labels = []byte{byte(r.Uint32()), 0, 0, 0, 0, 0, 0, byte(r.Uint32())}
		f.Helper = "h" + fmt.Sprint(r.IntN(3))
	case 5:
		f.TCPWScaleOrig, f.TCPWScaleReply = uint8(r.Uint32()), uint8(r.Uint32())
	}
	if !f.HasSeqAdj {
		// Meaningless without HasSeqAdj; the cache does not keep them.
		f.SeqAdjOrig, f.SeqAdjReply = SeqAdj{}, SeqAdj{}
	}
	if len(f.Labels) == 0 {
		f.Labels = nil
	}
	return f
}

// TestCacheRoundTripEveryAttribute: every attribute of a flow comes back
// from the cache exactly as it went in, through Get, Range, Flows and
// Keys, including after the entry is replaced.
func TestCacheRoundTripEveryAttribute(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	c := NewCache()
	now := time.Unix(1_800_000_000, 0)
	want := map[Key]Flow{}
	for range 20000 {
		f := cacheFlow(r)
		if r.IntN(4) == 0 && len(want) > 0 {
			// Replace an existing entry with other attributes.
			for k := range want {
				f.Key = k
				break
			}
		}
		_, had := want[f.Key]
		if created := c.Put(&f, now); created == had {
			t.Fatalf("Put(%v) created=%v, had=%v", f.Key, created, had)
		}
		want[f.Key] = f
		got, ok := c.Get(f.Key)
		if !ok || !reflect.DeepEqual(got, f) {
			t.Fatalf("Get after Put:\n got %+v\nwant %+v", got, f)
		}
	}
	if c.Len() != len(want) {
		t.Fatalf("Len %d, want %d", c.Len(), len(want))
	}
	n := 0
	c.Range(func(f *Flow, updated time.Time) bool {
		n++
		if !reflect.DeepEqual(*f, want[f.Key]) || !updated.Equal(now) {
			t.Fatalf("Range: %+v at %v, want %+v at %v", *f, updated, want[f.Key], now)
		}
		return true
	})
	if n != len(want) {
		t.Fatalf("Range visited %d, want %d", n, len(want))
	}
	for _, f := range c.Flows() {
		if !reflect.DeepEqual(f, want[f.Key]) {
			t.Fatalf("Flows: %+v, want %+v", f, want[f.Key])
		}
	}
	keys := c.Keys()
	if len(keys) != len(want) {
		t.Fatalf("Keys: %d, want %d", len(keys), len(want))
	}
	for _, k := range keys {
		if _, ok := want[k]; !ok {
			t.Fatalf("Keys: stray %v", k)
		}
	}
	cl := c.clone()
	for k, f := range want {
		if got, ok := cl.Get(k); !ok || !reflect.DeepEqual(got, f) {
			t.Fatalf("clone: %+v, want %+v", got, f)
		}
	}
	// Returned labels are copies.
	for k, f := range want {
		if len(f.Labels) > 0 {
			got, _ := c.Get(k)
			got.Labels[0] ^= 0xff
			if again, _ := c.Get(k); !reflect.DeepEqual(again.Labels, f.Labels) {
				t.Fatal("a returned label slice aliases the cache")
			}
			break
		}
	}
}

// TestCacheRandomOps runs random operations against a plain map as the
// model, with checks of every entry along the way: puts, replacements,
// deletions (also during a walk), injected flags, clears. When the cache
// is empty again, nothing interned stays behind.
func TestCacheRandomOps(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	c := NewCache()
	c.dig = &cacheDigest{}
	model := map[Key]Flow{}
	var keys []Key
	now := time.Unix(1_800_000_000, 0)
	check := func(step int) {
		t.Helper()
		if c.Len() != len(model) {
			t.Fatalf("step %d: Len %d, model %d", step, c.Len(), len(model))
		}
		for k, f := range model {
			got, ok := c.Get(k)
			if !ok || !reflect.DeepEqual(got, f) || !c.Has(k) {
				t.Fatalf("step %d: Get(%v) = %+v, %v; want %+v", step, k, got, ok, f)
			}
		}
		seen := 0
		for k := range c.m {
			if _, ok := model[k.key()]; !ok {
				t.Fatalf("step %d: walk found stray %v", step, k.key())
			}
			seen++
		}
		if seen != len(model) {
			t.Fatalf("step %d: walk saw %d, model %d", step, seen, len(model))
		}
	}
	for step := range 60000 {
		switch op := r.IntN(20); {
		case op < 9 || len(keys) == 0:
			f := cacheFlow(r)
			if len(keys) > 0 && r.IntN(3) == 0 {
				f.Key = keys[r.IntN(len(keys))]
			}
			if _, ok := model[f.Key]; !ok {
				keys = append(keys, f.Key)
			}
			c.Put(&f, now)
			model[f.Key] = f
		case op < 16:
			i := r.IntN(len(keys))
			k := keys[i]
			_, had := model[k]
			if c.Delete(k) != had {
				t.Fatalf("step %d: Delete(%v) != %v", step, k, had)
			}
			delete(model, k)
			keys[i] = keys[len(keys)-1]
			keys = keys[:len(keys)-1]
		case op < 17:
			c.markInjected(&keys[r.IntN(len(keys))])
		case op < 18:
			// Delete every third entry while walking.
			i := 0
			for k := range c.m {
				if i%3 == 0 {
					c.deleteCK(k)
					delete(model, k.key())
				}
				i++
			}
			keys = keys[:0]
			for k := range model {
				keys = append(keys, k)
			}
		case op < 19 && step%5000 == 0:
			c.Clear()
			clear(model)
			keys = keys[:0]
		}
		if step%2000 == 0 {
			check(step)
		}
	}
	check(-1)
	for _, k := range keys {
		c.Delete(k)
	}
	if c.Len() != 0 || len(c.addrs.ids) != 0 || len(c.strs.ids) != 0 || len(c.rare) != len(c.rareFree) {
		t.Fatalf("empty cache keeps %d entries, %d addresses, %d strings, %d of %d rare slots",
			c.Len(), len(c.addrs.ids), len(c.strs.ids), len(c.rare)-len(c.rareFree), len(c.rare))
	}
	if c.dig.all != ([digestBuckets]uint64{}) || c.dig.injected != ([digestBuckets]uint64{}) {
		t.Fatal("empty cache keeps digest sums")
	}
}

// TestCacheSlotsHoldNoPointers: the table's slots and rare attributes are
// pointer-free, so the garbage collector never scans the cache.
func TestCacheSlotsHoldNoPointers(t *testing.T) {
	var hasPtr func(reflect.Type) bool
	hasPtr = func(t reflect.Type) bool {
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.String, reflect.Map, reflect.Interface, reflect.Func, reflect.Chan, reflect.UnsafePointer:
			return true
		case reflect.Array:
			return hasPtr(t.Elem())
		case reflect.Struct:
			for i := range t.NumField() {
				if hasPtr(t.Field(i).Type) {
					return true
				}
			}
		}
		return false
	}
	for _, v := range []any{cslot{}, cslot4{}, crare{}} {
		if hasPtr(reflect.TypeOf(v)) {
			t.Errorf("%T holds a pointer", v)
		}
	}
	if s := reflect.TypeOf(cslot{}).Size(); s > 84 {
		t.Errorf("a slot takes %d bytes, budget 84", s)
	}
	if s := reflect.TypeOf(cslot4{}).Size(); s > 60 {
		t.Errorf("an IPv4 slot takes %d bytes, budget 60", s)
	}
}

// TestCacheDigestMatchesFlowHash: the digest of a cached entry equals the
// digest of the flow computed without the cache (what a received state
// is compared with).
func TestCacheDigestMatchesFlowHash(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	c := NewCache()
	for range 5000 {
		f := cacheFlow(r)
		c.Put(&f, time.Now())
		ck := compactKey(&f.Key)
		e, _ := c.entry(ck)
		b1, h1 := c.entryHashes(&ck, &e)
		b2, h2 := flowHashes(&f)
		if b1 != b2 || h1 != h2 {
			t.Fatalf("%+v: cache hash %d/%x, flow hash %d/%x", f, b1, h1, b2, h2)
		}
	}
}

// TestCacheDigestGolden: the consistency check's hashes are part of the
// protocol between two nodes (digest.go): these values were computed by
// the release before the cache's layout changed, and must not move.
func TestCacheDigestGolden(t *testing.T) {
	a := ctnetlinktest.TCP("192.168.0.10", "192.168.1.20", 40000, 443)
	b := ctnetlinktest.TCP("192.168.0.11", "192.168.1.21", 40001, 80)
	b.Mark = 7
	b.SNAT = NAT{Addr: netip.MustParseAddr("192.168.1.100"), Port: 1025}
	b.Labels = []byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80}
	c := ctnetlinktest.TCP("2001:db8::1", "2001:db8:1::2", 5000, 21)
	c.Helper = "ftp"
	c.Zone = 3
	want := []struct {
		bucket uint8
		sum    uint64
	}{{38, 0x542e2226e716ad7c}, {87, 0x13a533f72e2a0a3b}, {4, 0xb7742bb819b2d74c}}
	cache := NewCache()
	for i, f := range []Flow{a, b, c} {
		cache.Put(&f, time.Now())
		ck := compactKey(&f.Key)
		e, _ := cache.entry(ck)
		for _, got := range [][2]uint64{
			func() [2]uint64 { b, s := cache.entryHashes(&ck, &e); return [2]uint64{uint64(b), s} }(),
			func() [2]uint64 { b, s := flowHashes(&f); return [2]uint64{uint64(b), s} }(),
		} {
			if got != [2]uint64{uint64(want[i].bucket), want[i].sum} {
				t.Errorf("flow %d: bucket %d sum %#x, want %d %#x", i, got[0], got[1], want[i].bucket, want[i].sum)
			}
		}
	}
}
