package ctsync

import "testing"

// TestKeyQueue: FIFO order across blocks while pushing and popping in
// turns, each in order from the head, and every block but one spare
// dropped as soon as its keys are out.
func TestKeyQueue(t *testing.T) {
	key := func(i int) ckey { return ckey{sport: uint16(i), dport: uint16(i >> 16), proto: 6} }
	var q keyQueue
	next, want := 0, 0
	for round := range 5 {
		for range 3*keyBlock + round*100 {
			q.push(key(next))
			next++
		}
		if got := len(q.blocks); got > 5 {
			t.Fatalf("round %d: %d keys in %d blocks", round, q.len(), got)
		}
		i := want
		q.each(func(k *ckey) {
			if *k != key(i) {
				t.Fatalf("round %d: each gave %v at %d, want %v", round, *k, i, key(i))
			}
			i++
		})
		if i != next {
			t.Fatalf("round %d: each visited up to %d, want %d", round, i, next)
		}
		for range q.len() - round*7 {
			if k := q.pop(); k != key(want) {
				t.Fatalf("round %d: popped %v, want %v", round, k, key(want))
			}
			want++
		}
		if q.len() != next-want {
			t.Fatalf("round %d: len %d, want %d", round, q.len(), next-want)
		}
	}
	for q.len() > 0 {
		if k := q.pop(); k != key(want) {
			t.Fatalf("popped %v, want %v", k, key(want))
		}
		want++
	}
	if len(q.blocks) != 0 || cap(q.spare) != keyBlock {
		t.Errorf("drained queue keeps %d blocks and a spare of %d keys, want 0 and one block", len(q.blocks), cap(q.spare))
	}
}
