package ctsync

// Whole-table walks that do not stall the hot paths.
//
// The engine's state is guarded by one mutex, e.mu, which the hot paths
// take for a short, bounded time each: the kernel event reader (onEvents,
// one netlink batch), the receivers (handleDatagram, one datagram), the
// transmitter (txLoop, at most 512 messages), the injector's cache update
// and the status readers. The O(n) work (the resync merge of a kernel
// dump, the bulk send, the commit snapshot, a RESYNC request's convergence
// round, the refresh and convergence passes, the consistency check's
// repairs, purge, Entries, AdoptPeer) walks the caches or a dump in chunks
// of walkChunk entries and releases e.mu between two chunks, so an event
// batch waits for at most one chunk, whatever the table size.
//
// Rules for a walk (every function documented "yields" follows them):
//   - it holds e.mu while it runs a chunk and re-checks, after each
//     yield, whatever it assumed before it (another goroutine may have
//     changed anything e.mu guards meanwhile);
//   - a Go map may be ranged over across a yield: every access to it is
//     under e.mu, and an entry deleted meanwhile and not yet reached is
//     not produced, an entry added meanwhile may or may not be; the value
//     of the entry at the yield is read again;
//   - Flush and SetMaster replace a cache's table (Cache.Clear): the walk
//     notices it (e.clears) and stops, or restarts, instead of writing
//     into the new table what it read from the old one.

// walkChunk is how many entries a walk handles per hold of e.mu: a median
// of 0.2-0.8 ms of work at 100,000 entries, the longest an event batch
// waits behind a walk.
const walkChunk = 1024

// yieldLocked lets the other holders of e.mu in between two chunks of a
// walk. Callers hold e.mu; it is held again on return. No Gosched: a
// goroutine that has waited for e.mu for a millisecond puts sync.Mutex in
// starvation mode, which hands the lock over at this Unlock; yielding the
// processor as well cost whole scheduler slices per chunk on a loaded host.
func (e *Engine) yieldLocked(done int) {
	e.mu.Unlock()
	if h := e.walkYield; h != nil {
		h(done)
	}
	e.mu.Lock()
}

// walker counts the entries of a walk and yields every walkChunk of them.
type walker struct {
	e      *Engine
	n      int
	clears uint64
}

func (e *Engine) newWalker() walker { return walker{e: e, clears: e.clears} }

// step counts one entry, yielding first when a chunk is complete. It
// reports false when a cache was cleared since the walk began.
func (w *walker) step() bool {
	w.n++
	if w.n%walkChunk == 0 {
		w.e.yieldLocked(w.n)
	}
	return w.e.clears == w.clears
}

// walkLocked calls fn for every entry of c until fn returns false, and
// yields every walkChunk entries. fn gets the entry as it is when it is
// reached. It reports false when a cache was cleared during the walk (the
// rest was not walked). Callers hold e.mu.
func (e *Engine) walkLocked(c *Cache, fn func(k *ckey, v *centry) bool) bool {
	w := e.newWalker()
	for k, v := range c.m {
		if w.n++; w.n%walkChunk == 0 {
			e.yieldLocked(w.n)
			if e.clears != w.clears {
				return false
			}
			cur, ok := c.entry(k)
			if !ok {
				continue
			}
			v = cur
		}
		if !fn(&k, &v) {
			return true
		}
	}
	return true
}

// keysLocked returns every key of c; it yields.
func (e *Engine) keysLocked(c *Cache) []Key {
	keys := make([]Key, 0, c.Len())
	e.walkLocked(c, func(k *ckey, _ *centry) bool {
		keys = append(keys, k.key())
		return true
	})
	return keys
}

// flowsLocked appends every entry of c to out; it yields.
func (e *Engine) flowsLocked(c *Cache, out []Flow) []Flow {
	e.walkLocked(c, func(k *ckey, v *centry) bool {
		out = append(out, c.flowOf(k, v))
		return true
	})
	return out
}

// deleteKeysLocked removes keys from c; it yields. It returns how many
// were present.
func (e *Engine) deleteKeysLocked(c *Cache, keys []Key) int {
	w := e.newWalker()
	n := 0
	for i := range keys {
		w.step()
		if c.Delete(keys[i]) {
			n++
		}
	}
	return n
}
