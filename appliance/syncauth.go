package appliance

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/fwpair/fwpair/ctsync"
)

type rawAuth struct {
	KeyFiles     []string `toml:"key_files"`
	MaxClockSkew duration `toml:"max_clock_skew" to:"MaxSkew"`
}

// acceptFrom validates sync.link[i].accept_from: the peer's addresses on
// the link. A unicast link defaults to its peer; a multicast link must
// name them (anyone on the segment could send to the group otherwise).
func (v *validator) acceptFrom(key string, list []string, l ctsync.ChannelConfig) []netip.Addr {
	var out []netip.Addr
	for i, s := range list {
		k := fmt.Sprintf("%s.accept_from[%d]", key, i)
		a := v.addr(k, s)
		if !a.IsValid() {
			continue
		}
		switch {
		case a.IsUnspecified() || a.IsMulticast():
			v.errorf(key+".accept_from", "%s is not a peer address", a)
		case a == l.Local:
			v.errorf(key+".accept_from", "%s is this node's own address on the link", a)
		case l.Local.IsValid() && a.Is4() != l.Local.Is4():
			v.errorf(key+".accept_from", "%s and local %s are not the same address family", a, l.Local)
		default:
			out = append(out, a)
		}
	}
	if len(out) == 0 && len(list) == 0 {
		if l.Peer.IsValid() {
			return []netip.Addr{l.Peer}
		}
		v.errorf(key+".interface", "a multicast link needs accept_from: the peer's address(es) on the link; datagrams from anyone else are dropped")
	}
	return out
}

// syncAuth validates [sync.auth] and reads the key files into the
// engine's authentication (HMAC-SHA256 over every datagram, ctsync/auth.go:
// the first key signs, every key verifies). A key file holds one key as
// hex (at least 32 bytes: `openssl rand -hex 32`), must be a regular file
// with mode 0600 or stricter and an absolute path.
func (v *validator) syncAuth(r *rawAuth) *ctsync.AuthConfig {
	a := &ctsync.AuthConfig{MaxSkew: ctsync.DefaultAuthMaxSkew}
	v.assign("sync.auth", r, a)
	if r.MaxClockSkew.set {
		if a.MaxSkew < ctsync.MinAuthMaxSkew || a.MaxSkew > ctsync.MaxAuthMaxSkew {
			v.errorf("sync.auth.max_clock_skew", "must be between %v and %v, got %v", ctsync.MinAuthMaxSkew, ctsync.MaxAuthMaxSkew, a.MaxSkew)
		}
	}
	switch n := len(r.KeyFiles); {
	case n == 0:
		v.errorf("sync.auth.key_files", "empty: name one key file (two while rotating keys)")
		return a
	case n > ctsync.AuthMaxKeys:
		v.errorf("sync.auth.key_files", "%d files, at most %d (the new and the old key during a rotation)", n, ctsync.AuthMaxKeys)
		return a
	}
	ids := map[byte]string{}
	for _, path := range r.KeyFiles {
		key, err := readKeyFile(path)
		if err != nil {
			v.errorf("sync.auth.key_files", "%v", err)
			continue
		}
		id := ctsync.AuthKeyID(key)
		if other, ok := ids[id]; ok {
			v.errorf("sync.auth.key_files", "%s and %s have the same key id %d (the same key, or a clash: generate another key)", other, path, id)
			continue
		}
		ids[id] = path
		a.Keys = append(a.Keys, key)
	}
	return a
}

func readKeyFile(path string) ([]byte, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("%s: not an absolute path", path)
	}
	st, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s: mode %04o lets group or others read the key; chmod 0600 it", path, perm)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	text := strings.TrimSpace(string(b))
	if strings.ContainsAny(text, " \t\n") {
		return nil, fmt.Errorf("%s: holds more than one line; one hex key per file", path)
	}
	key, err := hex.DecodeString(text)
	if err != nil {
		return nil, fmt.Errorf("%s: the key is not hex: %v", path, err)
	}
	if len(key) < ctsync.AuthKeyMinLen {
		return nil, fmt.Errorf("%s: %d-byte key, at least %d bytes (%d hex digits) are needed", path, len(key), ctsync.AuthKeyMinLen, 2*ctsync.AuthKeyMinLen)
	}
	return key, nil
}

// reloadSyncAuth applies a change of [sync.auth] keys live (a rotation
// step); turning authentication on or off, or changing the clock skew,
// needs a restart. It reports whether new keys were applied.
func reloadSyncAuth(eng syncEngine, cur, next *SyncConfig, applied, needRestart *[]string) bool {
	switch {
	case reflect.DeepEqual(cur.Auth, next.Auth):
		return false
	case cur.Auth == nil || next.Auth == nil || cur.Auth.MaxSkew != next.Auth.MaxSkew:
		*needRestart = append(*needRestart, "sync.auth")
		return false
	}
	if err := eng.SetAuthKeys(next.Auth.Keys); err != nil {
		*needRestart = append(*needRestart, "sync.auth ("+err.Error()+")")
		return false
	}
	*applied = append(*applied, "sync.auth.key_files")
	return true
}
