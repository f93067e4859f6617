package ctsync

// The direct-inject queue keeps the received states as the wire payloads
// they arrived in: one byte slice and an index of offsets, neither holding
// a pointer. As a slice of Flow (about 200 bytes with the pointers of its
// addresses, labels and helper) a queue of tens of thousands of states was
// scanned by every garbage collection while it waited: about a fifth of a
// direct-inject receiver's CPU in a burst (the bench's profiles), and the
// queue's memory twice over. The injector decodes each payload again, a
// chunk at a time (Engine.inject); the payload was validated when it
// arrived, so the second decode gives the same state.

// injectChunk is how many states the injector decodes and writes at a
// time (the kernel takes them in writes of 1024).
const injectChunk = 4096

// keepInjectMem is the largest queue (states) whose memory the injector
// keeps for the next batch; a burst's larger queue is given back.
const keepInjectMem = 8192

// injectItem indexes one queued state in injectQueue.buf.
type injectItem struct {
	off, n uint32
	del    bool
}

// injectQueue is the queue of received states for the injector.
type injectQueue struct {
	items []injectItem
	buf   []byte
}

// push queues a state by its wire payload (copied).
func (q *injectQueue) push(payload []byte, del bool) {
	q.items = append(q.items, injectItem{off: uint32(len(q.buf)), n: uint32(len(payload)), del: del})
	q.buf = append(q.buf, payload...)
}

// len returns the number of queued states.
func (q *injectQueue) len() int { return len(q.items) }

// payload returns the i-th state's wire payload.
func (q *injectQueue) payload(i int) []byte {
	it := q.items[i]
	return q.buf[it.off : it.off+it.n]
}

// emptied returns the queue emptied, keeping its memory unless a burst
// made it large.
func (q *injectQueue) emptied() injectQueue {
	if cap(q.items) > keepInjectMem {
		return injectQueue{}
	}
	return injectQueue{items: q.items[:0], buf: q.buf[:0]}
}
