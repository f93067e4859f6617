package ctsync

// keyQueue is the session's TX queue of keys: a FIFO in blocks of
// keyBlock keys. A slice grown by append doubles, copies and leaves the
// old array behind, so a burst that queued a million keys held two to
// three times their 44 bytes each until the collector and the scavenger
// caught up, a large part of the sender's memory per entry at that scale;
// a block is allocated when the last one is full and dropped as soon as
// its keys are sent. The blocks hold no pointers.
type keyQueue struct {
	blocks [][]ckey // blocks[0][head:] first; every block but the last is full
	head   int
	n      int
	spare  []ckey // one emptied block kept for the next, so a queue
	// that fills and drains around a block boundary does not allocate
}

// keyBlock is the number of keys per block (44 KB for IPv6-sized keys).
const keyBlock = 1024

func (q *keyQueue) len() int { return q.n }

func (q *keyQueue) push(k ckey) {
	if len(q.blocks) == 0 || len(q.blocks[len(q.blocks)-1]) == keyBlock {
		b := q.spare
		q.spare = nil
		if b == nil {
			b = make([]ckey, 0, keyBlock)
		}
		q.blocks = append(q.blocks, b)
	}
	last := &q.blocks[len(q.blocks)-1]
	*last = append(*last, k)
	q.n++
}

// pop removes and returns the oldest key; the queue must not be empty.
func (q *keyQueue) pop() ckey {
	b := q.blocks[0]
	k := b[q.head]
	q.head++
	q.n--
	if q.head == len(b) {
		q.head = 0
		q.spare = b[:0]
		copy(q.blocks, q.blocks[1:])
		q.blocks[len(q.blocks)-1] = nil
		q.blocks = q.blocks[:len(q.blocks)-1]
	}
	return k
}

// each calls fn for every queued key, oldest first.
func (q *keyQueue) each(fn func(*ckey)) {
	for i, b := range q.blocks {
		start := 0
		if i == 0 {
			start = q.head
		}
		for j := start; j < len(b); j++ {
			fn(&b[j])
		}
	}
}

// reset empties the queue and gives its memory back.
func (q *keyQueue) reset() { *q = keyQueue{} }
