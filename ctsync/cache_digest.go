package ctsync

// cacheDigest keeps a cache's consistency-check bucket sums (digest.go) up
// to date on every change, so a digest costs O(buckets), not a walk of the
// table under the engine lock (about 25 ms per 100,000 entries).
type cacheDigest struct {
	// all sums every entry; injected only those flagged cfInjected.
	all, injected [digestBuckets]uint64
}

func (d *cacheDigest) add(k *ckey, c *centry) {
	b, h := entryHashes(k, c)
	d.all[b] += h
	if c.flags&cfInjected != 0 {
		d.injected[b] += h
	}
}

func (d *cacheDigest) remove(k *ckey, c *centry) {
	b, h := entryHashes(k, c)
	d.all[b] -= h
	if c.flags&cfInjected != 0 {
		d.injected[b] -= h
	}
}

// injectedAdd accounts for an entry newly flagged cfInjected.
func (d *cacheDigest) injectedAdd(k *ckey, c *centry) {
	if d == nil {
		return
	}
	b, h := entryHashes(k, c)
	d.injected[b] += h
}
