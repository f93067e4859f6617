package ctsync

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/fwpair/fwpair/ctsync/ctnetlink/ctnetlinktest"
)

// TestCacheDigestIncremental: the bucket sums kept on every change equal a
// full walk of the cache after any sequence of puts, state changes,
// deletions, injected flags and clears.
func TestCacheDigestIncremental(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	c := NewCache()
	c.dig = &cacheDigest{}
	now := time.Now()
	flow := func(i int) Flow {
		f := ctnetlinktest.TCP("192.168.0.10", fmt.Sprintf("192.168.1.%d", i%50), uint16(1000+i), 443)
		f.Mark = uint32(r.IntN(3))
		if r.IntN(4) == 0 {
			f.Labels = []byte{byte(r.IntN(4)), 0, 0, 0}
		}
		return f
	}
	for step := range 20000 {
		i := r.IntN(300)
		switch op := r.IntN(10); {
		case op < 6:
			f := flow(i)
			c.Put(&f, now)
		case op < 8:
			f := flow(i)
			c.Delete(f.Key)
		case op < 9:
			f := flow(i)
			c.markInjected(&f.Key)
		case step%1000 == 0:
			c.Clear()
		}
		if step%500 == 0 || step == 19999 {
			var all, inj [digestBuckets]uint64
			for k, e := range c.m {
				b, h := c.entryHashes(&k, &e)
				all[b] += h
				if e.flags&cfInjected != 0 {
					inj[b] += h
				}
			}
			if all != c.dig.all || inj != c.dig.injected {
				t.Fatalf("step %d: incremental digest differs from a full walk", step)
			}
		}
	}
}
