package ctsync

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Authenticated sync (optional; fwpair-only, not understood by conntrackd).
//
// Every datagram gets a 28-byte trailer:
//
//	key id (1) | zero (3) | counter (8, big endian) | HMAC-SHA256, first 16 bytes
//
// The MAC covers the sender's link address (16 bytes, IPv4 mapped), the
// datagram and the first 12 bytes of the trailer, with the shared key the
// id names. The address binds a datagram to its sender, so a captured
// datagram cannot be reflected back to the node that sent it. The counter
// is the sender's clock in seconds (high 32 bits) and a datagram number
// within that second (low 32 bits): it only grows, also across restarts.
//
// The receiver accepts a datagram only if the key id is one of its keys,
// the MAC verifies for a configured peer address, the counter's second is
// within AuthConfig.MaxSkew of its own clock, and the counter is new: above
// every counter seen, or one of the last authWindow ones not yet seen
// within the newest second. Everything else is dropped and counted
// (auth_short, auth_unknown_key, auth_bad_mac, auth_stale, auth_replay)
// before the engine sees it. If the peer's clock stepped back across a
// restart, its authentic datagrams look old; when nothing has been
// accepted for authResetAfter and an authentic, fresh datagram arrives,
// the window restarts from it (auth_window_reset).
//
// Key rotation: a node signs with the first key and accepts any of its
// (at most two) keys, so a pair moves from key A to key B without a gap by
// giving both nodes [A, B], then [B, A], then [B] (README: "Authenticated
// sync").

const (
	authTrailerLen = 28
	authMACLen     = 16
	// AuthKeyMinLen is the shortest accepted key (256 bits).
	AuthKeyMinLen = 32
	// AuthMaxKeys is how many keys are accepted at once (rotation).
	AuthMaxKeys = 2
	// DefaultAuthMaxSkew is the largest clock difference between the two
	// nodes keyed sync tolerates (they should run NTP).
	DefaultAuthMaxSkew = 2 * time.Minute
	authWindow         = 1024
	authResetAfter     = 3 * time.Second
)

// Reasons counted by the authenticating channel.
const (
	ReasonAuthShort       = "auth_short"
	ReasonAuthUnknownKey  = "auth_unknown_key"
	ReasonAuthBadMAC      = "auth_bad_mac"
	ReasonAuthStale       = "auth_stale"
	ReasonAuthReplay      = "auth_replay"
	ReasonAuthWindowReset = "auth_window_reset"
)

var authReasons = []string{ReasonAuthShort, ReasonAuthUnknownKey, ReasonAuthBadMAC, ReasonAuthStale, ReasonAuthReplay, ReasonAuthWindowReset}

// AuthConfig configures authenticated sync.
type AuthConfig struct {
	// Keys are the shared keys, at least AuthKeyMinLen bytes each: the
	// first signs, every one verifies. At most AuthMaxKeys.
	Keys [][]byte
	// MaxSkew is DefaultAuthMaxSkew when 0.
	MaxSkew time.Duration
	// Now replaces time.Now (tests).
	Now func() time.Time
}

// AuthKeyID is the id a key is sent under: the first byte of its SHA-256.
func AuthKeyID(key []byte) byte {
	h := sha256.Sum256(key)
	return h[0]
}

// Validate checks the keys.
func (c *AuthConfig) Validate() error {
	if len(c.Keys) == 0 || len(c.Keys) > AuthMaxKeys {
		return fmt.Errorf("ctsync: auth needs 1 to %d keys, got %d", AuthMaxKeys, len(c.Keys))
	}
	for i, k := range c.Keys {
		if len(k) < AuthKeyMinLen {
			return fmt.Errorf("ctsync: auth key %d has %d bytes, at least %d are needed", i+1, len(k), AuthKeyMinLen)
		}
	}
	if len(c.Keys) == 2 && AuthKeyID(c.Keys[0]) == AuthKeyID(c.Keys[1]) {
		return errors.New("ctsync: the two auth keys have the same key id (first byte of their SHA-256); generate another new key")
	}
	if c.MaxSkew < 0 {
		return errors.New("ctsync: negative auth clock skew")
	}
	return nil
}

type authKey struct {
	id   byte
	send hash.Hash // used under sendMu
	recv hash.Hash // used under recvMu
}

// authChannel wraps a Channel with the HMAC trailer.
type authChannel struct {
	inner   Channel
	keys    atomic.Pointer[[]authKey] // replaced whole by SetKeys
	self    [16]byte
	peers   [][16]byte
	skew    time.Duration
	now     func() time.Time
	rejects [6]atomic.Uint64
	last    atomic.Pointer[string]

	sendMu  sync.Mutex
	epoch   uint32
	n       uint32
	sendBuf []byte

	recvMu     sync.Mutex
	recvBuf    []byte
	high       uint64
	seen       [authWindow / 64]uint64 // bit i: counter high-i was accepted
	haveHigh   bool
	lastAccept time.Time
}

// NewAuthChannel authenticates inner: self is this node's address on the
// link, peers the addresses datagrams are accepted from (at least one).
func NewAuthChannel(inner Channel, cfg AuthConfig, self netip.Addr, peers []netip.Addr) (Channel, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !self.IsValid() || len(peers) == 0 {
		return nil, fmt.Errorf("ctsync: auth on %s needs the local address and the peer addresses", inner)
	}
	c := &authChannel{inner: inner, self: self.As16(), skew: cfg.MaxSkew, now: cfg.Now}
	if c.skew == 0 {
		c.skew = DefaultAuthMaxSkew
	}
	if c.now == nil {
		c.now = time.Now
	}
	for _, p := range peers {
		c.peers = append(c.peers, p.As16())
	}
	c.setKeys(cfg.Keys)
	return c, nil
}

func (c *authChannel) setKeys(keys [][]byte) {
	ring := make([]authKey, 0, len(keys))
	for _, k := range keys {
		ring = append(ring, authKey{id: AuthKeyID(k), send: hmac.New(sha256.New, k), recv: hmac.New(sha256.New, k)})
	}
	c.keys.Store(&ring)
}

// SetAuthKeys replaces the keys of every authenticated link (a key
// rotation applied by a reload): the first signs from the next datagram
// on, every one verifies. It fails, changing nothing, when the keys are
// invalid or the links are not authenticated.
func (e *Engine) SetAuthKeys(keys [][]byte) error {
	cfg := AuthConfig{Keys: keys}
	if err := cfg.Validate(); err != nil {
		return err
	}
	var acs []*authChannel
	for _, l := range e.links {
		ac, ok := l.(*authChannel)
		if !ok {
			return fmt.Errorf("ctsync: link %s is not authenticated; enabling authentication needs a restart", l)
		}
		acs = append(acs, ac)
	}
	for _, ac := range acs {
		ac.setKeys(keys)
	}
	return nil
}

func (c *authChannel) counter() uint64 {
	now := uint32(c.now().Unix())
	switch {
	case now > c.epoch:
		c.epoch, c.n = now, 0
	case c.n == ^uint32(0):
		c.epoch, c.n = c.epoch+1, 0
	default:
		c.n++
	}
	return uint64(c.epoch)<<32 | uint64(c.n)
}

func mac(h hash.Hash, addr *[16]byte, data, hdr []byte, out []byte) []byte {
	h.Reset()
	h.Write(addr[:])
	h.Write(data)
	h.Write(hdr)
	return h.Sum(out)
}

// Send implements Channel.
func (c *authChannel) Send(p []byte) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	k := &(*c.keys.Load())[0]
	b := append(c.sendBuf[:0], p...)
	var hdr [12]byte
	hdr[0] = k.id
	binary.BigEndian.PutUint64(hdr[4:], c.counter())
	var sum [sha256.Size]byte
	m := mac(k.send, &c.self, p, hdr[:], sum[:0])
	b = append(b, hdr[:]...)
	b = append(b, m[:authMACLen]...)
	c.sendBuf = b
	return c.inner.Send(b)
}

// Recv implements Channel: it returns the next authentic, fresh datagram
// without its trailer.
func (c *authChannel) Recv(ctx context.Context, p []byte) (int, error) {
	c.recvMu.Lock()
	defer c.recvMu.Unlock()
	if c.recvBuf == nil {
		c.recvBuf = make([]byte, 65536+authTrailerLen)
	}
	for {
		n, err := c.inner.Recv(ctx, c.recvBuf)
		if err != nil {
			return 0, err
		}
		d, reason := c.verify(c.recvBuf[:n])
		if reason != "" {
			c.count(reason)
			continue
		}
		return copy(p, d), nil
	}
}

func (c *authChannel) count(reason string) {
	for i, r := range authReasons {
		if r == reason {
			c.rejects[i].Add(1)
		}
	}
	if reason != ReasonAuthWindowReset {
		c.last.Store(&reason)
	}
}

// verify checks one datagram and returns its payload, or the reason it is
// rejected.
func (c *authChannel) verify(b []byte) ([]byte, string) {
	if len(b) < authTrailerLen+headerLen {
		return nil, ReasonAuthShort
	}
	data, tr := b[:len(b)-authTrailerLen], b[len(b)-authTrailerLen:]
	hdr, got := tr[:12], tr[12:]
	var k *authKey
	ring := *c.keys.Load()
	for i := range ring {
		if ring[i].id == hdr[0] {
			k = &ring[i]
		}
	}
	if k == nil || hdr[1]|hdr[2]|hdr[3] != 0 {
		return nil, ReasonAuthUnknownKey
	}
	ok := false
	var sum [sha256.Size]byte
	for i := range c.peers {
		if hmac.Equal(mac(k.recv, &c.peers[i], data, hdr, sum[:0])[:authMACLen], got) {
			ok = true
			break
		}
	}
	if !ok {
		return nil, ReasonAuthBadMAC
	}
	ctr := binary.BigEndian.Uint64(hdr[4:])
	now := c.now()
	sec := time.Unix(int64(ctr>>32), 0)
	if sec.Before(now.Add(-c.skew)) || sec.After(now.Add(c.skew)) {
		return nil, ReasonAuthStale
	}
	if !c.fresh(ctr) {
		if !c.lastAccept.IsZero() && now.Sub(c.lastAccept) < authResetAfter {
			return nil, ReasonAuthReplay
		}
		// Nothing accepted for a while, yet an authentic datagram from
		// this very minute is "old": the peer's clock went back across a
		// restart. Start the window again from it.
		c.count(ReasonAuthWindowReset)
		c.haveHigh = false
		c.fresh(ctr)
	}
	c.lastAccept = now
	return data, ""
}

// fresh records ctr and reports whether it was not seen before.
func (c *authChannel) fresh(ctr uint64) bool {
	switch {
	case !c.haveHigh || ctr > c.high:
		shift := uint64(authWindow)
		if c.haveHigh {
			shift = min(ctr-c.high, authWindow)
		}
		c.shift(shift)
		c.high, c.haveHigh = ctr, true
		c.seen[0] |= 1
		return true
	case c.high-ctr >= authWindow || c.high>>32 != ctr>>32:
		return false
	default:
		i := c.high - ctr
		w, bit := i/64, uint64(1)<<(i%64)
		if c.seen[w]&bit != 0 {
			return false
		}
		c.seen[w] |= bit
		return true
	}
}

// shift moves the window by n counters (bit i becomes bit i+n).
func (c *authChannel) shift(n uint64) {
	if n >= authWindow {
		clear(c.seen[:])
		return
	}
	words, bits := int(n/64), n%64
	for i := len(c.seen) - 1; i >= 0; i-- {
		var v uint64
		if j := i - words; j >= 0 {
			v = c.seen[j] << bits
			if bits > 0 && j > 0 {
				v |= c.seen[j-1] >> (64 - bits)
			}
		}
		c.seen[i] = v
	}
}

// Rejected implements RejectCounter, with the inner channel's counts.
func (c *authChannel) Rejected() (map[string]uint64, string) {
	m := map[string]uint64{}
	last := ""
	if rc, ok := c.inner.(RejectCounter); ok {
		im, il := rc.Rejected()
		for r, n := range im {
			m[r] += n
		}
		last = il
	}
	for i, r := range authReasons {
		if n := c.rejects[i].Load(); n > 0 {
			m[r] = n
		}
	}
	if p := c.last.Load(); p != nil {
		last = *p
	}
	return m, last
}

func (c *authChannel) Up() bool        { return c.inner.Up() }
func (c *authChannel) MaxPayload() int { return c.inner.MaxPayload() - authTrailerLen }
func (c *authChannel) String() string  { return c.inner.String() + "+hmac" }
func (c *authChannel) Close() error    { return c.inner.Close() }
