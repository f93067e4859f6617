package ctsync

// Continuous consistency check (fwpair extension, never sent to a
// conntrackd peer: off unless Config.ConsistencyInterval is set).
//
// Every ConsistencyInterval the MASTER sends a digest of its internal
// cache: the table is split into digestBuckets buckets by a hash of the
// key, and each bucket's digest is the sum of a 64-bit hash of each
// entry's key and replicated state (mark, protocol state, NAT bindings,
// labels; not the timeout or status bits, which the kernel sets its own
// way on injected entries). The BACKUP computes the same over its view of
// the peer's table (the external cache in commit mode; in direct-inject
// mode the kernel entries it injected, as its internal cache records
// them). A bucket that differs in two digests in a row (one is in-flight
// traffic) is asked for: the MASTER re-sends every entry of the bucket
// through the reliable session, which repairs missing and stale entries.
// The BACKUP counts the entries repaired and the time of the last digest
// that matched entirely.
//
// Deleting is where a consistency check can lose connections, so the
// BACKUP deletes an entry of its view (an extra: one the MASTER did not
// re-send) only on evidence that the MASTER re-sent the whole bucket and
// that all of it has arrived:
//   - every repair request carries an identifier, and the MASTER's digest
//     says which request it served last: a request lost on the way, or
//     refused by the MASTER's rate limit, is asked again, never taken as
//     answered;
//   - the digest says whether the MASTER was settled when it summed its
//     table: nothing queued or unacknowledged on the session (so what it
//     re-sent has been received), no resync from its kernel pending or
//     under way (so its table is complete). Only a settled digest that
//     names the BACKUP's latest request, and where the bucket still
//     differs, makes the BACKUP delete the bucket's entries the MASTER
//     did not re-send.
// Each request names every bucket still under repair, so "the MASTER
// served my latest request" covers all of them. A stale entry kept a
// little longer costs nothing; a live one deleted costs a connection at
// the next failover.
//
// Wire: standalone datagrams with the version-1 header, type
// msgDigestType (a type conntrackd rejects), seq 0, and a payload of a
// kind byte then, for kindDigest, digestBuckets big-endian uint64 sums,
// a flags byte (digestSettled) and the big-endian uint32 identifier of
// the last repair request served; for kindRepair, the request's uint32
// identifier and up to maxRepairBuckets bucket numbers. Kinds 1 and 2 were
// an earlier form without the evidence: they are counted as malformed.

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"time"
)

const (
	digestBuckets    = 128
	msgDigestType    = 11
	kindDigest       = 3
	kindRepair       = 4
	maxRepairBuckets = 16
	digestBodyLen    = 8*digestBuckets + 1 + 4
	digestPayloadLen = 1 + digestBodyLen
	// digestSettled: the MASTER had nothing queued or unacknowledged and
	// no kernel resync pending when it summed its table.
	digestSettled = 1
)

type digestState struct {
	// BACKUP side.
	mismatch [digestBuckets]uint8
	// failed counts repairs of a bucket that did not make it match (an
	// entry the BACKUP cannot hold): each doubles the wait before the next
	// request, so such a bucket costs little bandwidth.
	failed    [digestBuckets]uint8
	repairs   map[uint8]*bucketRepair
	repaired  uint64
	lastClean time.Time
	checks    uint64
	// comparing: compareDigestLocked's walk is under way (it yields).
	comparing bool
	// nextReq is the identifier of the last repair request sent (random
	// start, so that a restarted BACKUP's first identifiers do not match
	// what the MASTER served before); lastReq is when it was sent.
	nextReq uint32
	lastReq time.Time
	// MASTER side.
	lastRepair time.Time
	served     uint32 // identifier of the last repair request served
	resent     uint64
}

type bucketRepair struct {
	at   time.Time
	req  uint32 // the latest request that named this bucket
	seen map[ckey]struct{}
}

// mix64 is a 64-bit finaliser (murmur3's fmix64): a fixed function, so
// both nodes compute the same digests.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

func hashWords(h uint64, ws ...uint64) uint64 {
	for _, w := range ws {
		h = mix64(h ^ w + 0x9e3779b97f4a7c15)
	}
	return h
}

// viewLocked calls fn for every entry of this node's view of the peer's
// table (BACKUP) or of its own table (MASTER), with the cache that holds
// it. It yields (walk.go) and reports false when a cache was cleared
// meanwhile.
func (e *Engine) viewLocked(master bool, fn func(from *Cache, k *ckey, c *centry)) bool {
	switch {
	case master:
		return e.walkLocked(e.internal, func(k *ckey, c *centry) bool { fn(e.internal, k, c); return true })
	case e.cfg.DirectInject:
		return e.walkLocked(e.internal, func(k *ckey, c *centry) bool {
			if c.flags&cfInjected != 0 {
				fn(e.internal, k, c)
			}
			return true
		})
	default:
		return e.walkLocked(e.external, func(k *ckey, c *centry) bool { fn(e.external, k, c); return true })
	}
}

func (e *Engine) digestLocked(master bool) (d [digestBuckets]uint64) {
	switch {
	case master && e.internal.dig != nil:
		return e.internal.dig.all
	case !master && e.cfg.DirectInject && e.internal.dig != nil:
		return e.internal.dig.injected
	case !master && !e.cfg.DirectInject && e.external.dig != nil:
		return e.external.dig.all
	}
	e.viewLocked(master, func(from *Cache, k *ckey, c *centry) {
		b, s := from.entryHashes(k, c)
		d[b] += s
	})
	return d
}

func digestMessage(kind byte, body []byte) []byte {
	n := headerLen + 1 + len(body)
	m := make([]byte, 0, n)
	m = append(m, ProtocolVersion<<4|msgDigestType, 0)
	m = binary.BigEndian.AppendUint16(m, uint16(n))
	m = binary.BigEndian.AppendUint32(m, 0)
	m = append(m, kind)
	return append(m, body...)
}

// isDigestDatagram reports whether d is a consistency-check message.
func isDigestDatagram(d []byte) bool {
	return len(d) >= headerLen && d[0] == ProtocolVersion<<4|msgDigestType
}

// digestLoop sends the MASTER's digest every ConsistencyInterval.
func (e *Engine) digestLoop(ctx context.Context) error {
	if e.cfg.ConsistencyInterval <= 0 {
		return nil
	}
	t := time.NewTicker(e.cfg.ConsistencyInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		e.mu.Lock()
		if !e.holdInject {
			e.mu.Unlock()
			continue
		}
		d := e.digestLocked(true)
		var flags byte
		if e.settledLocked() {
			flags |= digestSettled
		}
		served := e.ds.served
		e.mu.Unlock()
		body := make([]byte, 0, digestBodyLen)
		for _, s := range d {
			body = binary.BigEndian.AppendUint64(body, s)
		}
		body = append(body, flags)
		body = binary.BigEndian.AppendUint32(body, served)
		e.sendAll([][]byte{digestMessage(kindDigest, body)})
	}
}

// settledLocked reports whether this MASTER's table and its peer's copy
// can be compared for deletions: nothing queued or waiting for an ACK on
// the session, no kernel resync pending or under way.
func (e *Engine) settledLocked() bool {
	tx, unacked := e.sess.Pending()
	return tx == 0 && unacked == 0 && e.resyncAt.IsZero() && e.touched == nil
}

// handleDigest processes a consistency-check datagram from the peer.
func (e *Engine) handleDigest(ctx context.Context, d []byte) {
	n := int(binary.BigEndian.Uint16(d[2:4]))
	e.mu.Lock()
	if e.cfg.ConsistencyInterval <= 0 || n != len(d) || n < headerLen+1 {
		e.malformed["digest"]++
		e.mu.Unlock()
		return
	}
	body := d[headerLen+1 : n]
	switch d[headerLen] {
	case kindDigest:
		if len(body) != digestBodyLen {
			e.malformed["digest"]++
			e.mu.Unlock()
			return
		}
		if e.holdInject || e.ds.comparing {
			// Both MASTER: the split-brain handling decides. Or the
			// previous digest is still being compared (its walk yields):
			// the next period looks again.
			e.mu.Unlock()
			return
		}
		req, extras := e.compareDigestLocked(time.Now(), body)
		var reqID uint32
		if len(req) > 0 {
			// Never 0 (what a MASTER that served nothing names); the
			// first at random (see nextReq).
			if e.ds.nextReq == 0 {
				e.ds.nextReq = rand.Uint32()
			}
			if e.ds.nextReq++; e.ds.nextReq == 0 {
				e.ds.nextReq = 1
			}
			reqID = e.ds.nextReq
			for _, b := range req {
				e.ds.repairs[b].req = reqID
			}
		}
		e.mu.Unlock()
		if len(extras) > 0 {
			e.deleteExtras(ctx, extras)
		}
		if len(req) > 0 {
			e.sendAll([][]byte{digestMessage(kindRepair, append(binary.BigEndian.AppendUint32(nil, reqID), req...))})
		}
	case kindRepair:
		now := time.Now()
		if len(body) < 5 || len(body) > 4+maxRepairBuckets || !e.holdInject ||
			now.Sub(e.ds.lastRepair) < e.cfg.ConsistencyInterval/2 {
			// A refused request is not served: the BACKUP asks again.
			if len(body) < 5 || len(body) > 4+maxRepairBuckets {
				e.malformed["digest"]++
			}
			e.mu.Unlock()
			return
		}
		e.ds.lastRepair = now
		e.ds.served = binary.BigEndian.Uint32(body)
		want := map[uint8]bool{}
		for _, b := range body[4:] {
			if b < digestBuckets {
				want[b] = true
			}
		}
		e.walkLocked(e.internal, func(k *ckey, c *centry) bool {
			if want[keyBucket(k)] {
				e.sess.enqueueCompact(*k, MsgCTUpd)
				e.ds.resent++
			}
			return true
		})
		e.mu.Unlock()
		e.wake(e.kick)
	default:
		e.malformed["digest"]++
		e.mu.Unlock()
	}
}

// compareDigestLocked compares the MASTER's digest with this node's view:
// it returns the buckets to ask for and the extras to delete.
func (e *Engine) compareDigestLocked(now time.Time, body []byte) (req []byte, extras []Key) {
	ds := &e.ds
	ds.checks++
	// The walks below yield (walk.go): the repairs stay in ds.repairs
	// meanwhile, so the states that arrive in between still count as
	// re-sent, and another digest is not compared at the same time.
	ds.comparing = true
	defer func() { ds.comparing = false }()
	mine := e.digestLocked(false)
	settled := body[8*digestBuckets]&digestSettled != 0
	served := binary.BigEndian.Uint32(body[8*digestBuckets+1:])
	clean := true
	var stale map[uint8]time.Time
	ask := false
	for b := range digestBuckets {
		if binary.BigEndian.Uint64(body[8*b:]) == mine[b] {
			ds.mismatch[b], ds.failed[b] = 0, 0
			delete(ds.repairs, uint8(b))
			continue
		}
		clean = false
		if ds.mismatch[b] < 255 {
			ds.mismatch[b]++
		}
		r := ds.repairs[uint8(b)]
		switch {
		case r == nil && int(ds.mismatch[b]) >= 2<<min(ds.failed[b], 6) && len(ds.repairs) < maxRepairBuckets:
			if ds.repairs == nil {
				ds.repairs = map[uint8]*bucketRepair{}
			}
			ds.repairs[uint8(b)] = &bucketRepair{at: now, seen: map[ckey]struct{}{}}
			ask = true
		case r != nil && settled && r.req == served:
			// The MASTER re-sent the whole bucket and all of it has
			// arrived: what it did not re-send is not in its table.
			if stale == nil {
				stale = map[uint8]time.Time{}
			}
			stale[uint8(b)] = r.at
		case r != nil && r.req != served && now.Sub(ds.lastReq) >= 2*e.cfg.ConsistencyInterval:
			// The request was lost or refused: ask again.
			ask = true
		}
	}
	if len(stale) > 0 {
		complete := e.viewLocked(false, func(_ *Cache, k *ckey, _ *centry) {
			b := keyBucket(k)
			if r := ds.repairs[b]; r != nil {
				if _, ok := stale[b]; ok {
					if _, seen := r.seen[*k]; !seen {
						extras = append(extras, k.key())
					}
				}
			}
		})
		if !complete {
			extras = nil // flushed meanwhile: nothing to compare against
		}
		for b := range stale {
			delete(ds.repairs, b)
			ds.mismatch[b] = 0
			if ds.failed[b] < 255 {
				ds.failed[b]++
			}
		}
	}
	if clean {
		ds.lastClean = now
	}
	if ask {
		// Every request names every bucket still under repair (see the
		// file comment), in bucket order.
		for b := range digestBuckets {
			if ds.repairs[uint8(b)] != nil {
				req = append(req, uint8(b))
			}
		}
		ds.lastReq = now
	}
	return req, extras
}

// digestSeenLocked notes a state received from the peer for the repair
// bookkeeping and counts it as a repair when it changes the view of a
// bucket being repaired.
func (e *Engine) digestSeenLocked(f *Flow, del bool) {
	if len(e.ds.repairs) == 0 {
		return
	}
	k := compactKey(&f.Key)
	b, sum := flowHashes(f)
	r := e.ds.repairs[b]
	if r == nil {
		return
	}
	r.seen[k] = struct{}{}
	from := e.external
	if e.cfg.DirectInject {
		from = e.internal
	}
	old, ok := from.entry(k)
	if e.cfg.DirectInject {
		ok = ok && old.flags&cfInjected != 0
	}
	if del {
		if ok {
			e.ds.repaired++
		}
		return
	}
	if _, s := from.entryHashes(&k, &old); !ok || s != sum {
		e.ds.repaired++
	}
}

// deleteExtras removes entries of the view the MASTER does not have.
func (e *Engine) deleteExtras(ctx context.Context, keys []Key) {
	if e.cfg.DirectInject {
		res, err := e.kernel.Delete(ctx, keys)
		if err != nil {
			e.log.Warn("consistency check: delete extra entries", "err", err)
		}
		e.mu.Lock()
		e.deleteKeysLocked(e.internal, keys)
		e.ds.repaired += uint64(res.Deleted)
		e.mu.Unlock()
	} else {
		e.mu.Lock()
		e.ds.repaired += uint64(e.deleteKeysLocked(e.external, keys))
		e.mu.Unlock()
	}
	sample := make([]string, 0, 4)
	for i := 0; i < len(keys) && i < cap(sample); i++ {
		sample = append(sample, keys[i].String())
	}
	e.log.Info("consistency check: removed entries the peer does not have", "entries", len(keys), "first", sample)
}

// ConsistencyStatus is the consistency check's state on this node.
type ConsistencyStatus struct {
	Enabled bool `json:"enabled"`
	// Checks counts the peer's digests compared (BACKUP).
	Checks uint64 `json:"checks"`
	// Repaired counts entries added, corrected or removed by repairs.
	Repaired uint64 `json:"repaired"`
	// LastClean is when a digest last matched entirely (zero: never).
	LastClean time.Time `json:"last_clean"`
	// Resent counts states re-sent on the peer's repair requests (MASTER).
	Resent uint64 `json:"resent"`
}

// Consistency returns the consistency check's state.
func (e *Engine) Consistency() ConsistencyStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	return ConsistencyStatus{
		Enabled: e.cfg.ConsistencyInterval > 0, Checks: e.ds.checks, Repaired: e.ds.repaired,
		LastClean: e.ds.lastClean, Resent: e.ds.resent,
	}
}
