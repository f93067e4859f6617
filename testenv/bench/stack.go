package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fwpair/fwpair/testenv"
)

// Fault is a way to take the MASTER down.
type Fault string

// The failover scenarios.
const (
	// Crash SIGKILLs every daemon of the stack on the MASTER, then takes
	// all its links down (a dead box, as testenv.Crash does).
	Crash Fault = "crash"
	// Term stops the stack on the MASTER with SIGTERM (a planned stop).
	Term Fault = "sigterm"
	// Link takes the MASTER's inside link (eth0) down; the daemons keep
	// running (a one-sided cable pull).
	Link Fault = "link"
)

// Stack names.
const (
	// FWPair is fwpaird as configured in etc/ (direct inject: received
	// states go straight into the BACKUP's kernel).
	FWPair = "fwpair"
	// FWPairCache is fwpaird with direct_inject = false: received states
	// wait in the external cache and are committed on takeover, as
	// conntrackd does. The commit and cache-footprint figures need it.
	FWPairCache = "fwpair-extcache"
	Reference   = "reference"
	// ReferenceInject is the reference with conntrackd's
	// DisableExternalCache on: its own direct-inject mode, the fair
	// comparison for fwpair's receiver, since both pay the kernel's
	// insert cost (replication runs only).
	ReferenceInject = "reference-inject"
)

// commitInfo is what a node reports about the commit of its last MASTER
// transition.
type commitInfo struct {
	Entries int
	Failed  int
	// Seconds is the commit's duration as the daemon reports it.
	Seconds float64
	// Done is when the commit finished.
	Done time.Time
}

// stack is one HA implementation running on fw1 and fw2 of a lab.
type stack interface {
	name() string
	// start starts the daemons of firewall n (1 or 2).
	start(n int) error
	// ready reports whether fw1 is MASTER with its MASTER follow-up work
	// done and fw2 is BACKUP.
	ready() (bool, error)
	// held is the number of the peer's entries node n holds: its external
	// cache plus, for direct inject, its kernel table (a BACKUP forwards
	// nothing, so every entry there was injected).
	held(n int) (int, error)
	// fault applies f to node n.
	fault(f Fault, n int) error
	// commit waits for the commit node n ran on becoming MASTER after
	// since.
	commit(n int, since time.Time, timeout time.Duration) (commitInfo, error)
	// syncPID is the process that replicates state on node n.
	syncPID(n int) (int, error)
	// diag returns the end of the node's logs, for error messages.
	diag(n int) string
	close()
}

func crashLinks(lab *testenv.Lab, n int) error {
	for _, ifname := range []string{"eth0", "eth1", "eth2"} {
		if err := lab.LinkDown(lab.FW(n), ifname); err != nil {
			return err
		}
	}
	return nil
}

// fwpairStack is fwpaird on both firewalls from etc/node1.toml and
// etc/node2.toml.
type fwpairStack struct {
	lab      *testenv.Lab
	bin      string
	dir      string
	extCache bool
	keyed    bool
	v3       time.Duration // VRRPv3 interval; 0 runs etc/'s VRRPv2
	nodes    [2]*testenv.Daemon
	counts   [2]*ctCount
}

func newFWPair(lab *testenv.Lab, bin, dir string, extCache bool) *fwpairStack {
	return &fwpairStack{lab: lab, bin: bin, dir: dir, extCache: extCache}
}

func (s *fwpairStack) name() string {
	if s.extCache {
		return FWPairCache
	}
	if s.keyed {
		return FWPairKeyed
	}
	return FWPair
}

func (s *fwpairStack) start(n int) error {
	cfg, err := testenv.RepoFile(fmt.Sprintf("etc/node%d.toml", n))
	if err != nil {
		return err
	}
	if s.extCache {
		if cfg, err = withExternalCache(cfg, s.dir, n); err != nil {
			return err
		}
	}
	if s.keyed {
		if cfg, err = withSyncKey(cfg, s.dir, n); err != nil {
			return err
		}
	}
	if s.v3 > 0 {
		if cfg, err = testenv.WithVRRPv3(cfg, s.dir, n, s.v3, v3RTPriority); err != nil {
			return err
		}
	}
	if s.counts[n-1], err = openCTCount(s.lab.FW(n)); err != nil {
		return err
	}
	d, err := testenv.StartDaemon(s.lab.FW(n), s.bin, fmt.Sprintf("fw%d", n), cfg, s.dir)
	if err != nil {
		return err
	}
	s.nodes[n-1] = d
	return nil
}

func (s *fwpairStack) status(n int) (groupState string, st *statusView, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	d := s.nodes[n-1]
	if d == nil {
		return "", nil, fmt.Errorf("fw%d not started", n)
	}
	raw, err := d.Status(ctx)
	if err != nil {
		return "", nil, err
	}
	v := &statusView{}
	if raw.VRRP != nil {
		groupState = raw.VRRP.GroupState
	}
	if raw.Sync != nil {
		v.external = raw.Sync.ExternalEntries
		v.peerAlive = raw.Sync.PeerAlive
	}
	if t := raw.LastTransition; t != nil {
		v.lastTo, v.lastAt = t.To, t.At
		v.commitEntries, v.commitSeconds, v.vipsSeconds = t.CommitEntries, t.CommitSeconds, t.VIPsSeconds
		for _, n := range t.CommitFailed {
			v.commitFailed += n
		}
		for _, step := range t.Steps {
			v.steps = append(v.steps, step.Name)
		}
	}
	return groupState, v, nil
}

// statusView is the part of fwpaird's status the benchmark reads.
type statusView struct {
	external      int
	peerAlive     bool
	lastTo        string
	lastAt        time.Time
	commitEntries int
	commitFailed  int
	commitSeconds float64
	vipsSeconds   float64
	steps         []string
}

func (s *fwpairStack) ready() (bool, error) {
	g1, v1, err := s.status(1)
	if err != nil {
		return false, nil
	}
	g2, v2, err := s.status(2)
	if err != nil {
		return false, nil
	}
	return g1 == "MASTER" && g2 == "BACKUP" && v1.lastTo == "MASTER" && slices.Contains(v1.steps, "bulk send") && v2.peerAlive, nil
}

func (s *fwpairStack) held(n int) (int, error) {
	_, v, err := s.status(n)
	if err != nil {
		return 0, err
	}
	k, err := s.counts[n-1].read()
	return v.external + k, err
}

// withExternalCache writes a copy of a node config with direct_inject =
// false in its [sync] section.
func withExternalCache(path, dir string, n int) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var out []string
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "direct_inject") {
			continue
		}
		out = append(out, line)
		if t == "[sync]" {
			out = append(out, "direct_inject = false")
			found = true
		}
	}
	if !found {
		return "", fmt.Errorf("%s: no [sync] section", path)
	}
	p := filepath.Join(dir, fmt.Sprintf("node%d-extcache.toml", n))
	return p, os.WriteFile(p, []byte(strings.Join(out, "\n")), 0o644)
}

func (s *fwpairStack) fault(f Fault, n int) error {
	d := s.nodes[n-1]
	switch f {
	case Crash:
		d.Kill()
		return crashLinks(s.lab, n)
	case Term:
		return d.Stop()
	case Link:
		return s.lab.LinkDown(s.lab.FW(n), "eth0")
	}
	return fmt.Errorf("unknown fault %q", f)
}

func (s *fwpairStack) commit(n int, since time.Time, timeout time.Duration) (commitInfo, error) {
	end := time.Now().Add(timeout)
	for {
		_, v, err := s.status(n)
		if err == nil && v.lastTo == "MASTER" && v.lastAt.After(since) && v.vipsSeconds > 0 {
			return commitInfo{
				Entries: v.commitEntries,
				Failed:  v.commitFailed,
				Seconds: v.commitSeconds,
				Done:    v.lastAt.Add(time.Duration(v.commitSeconds * float64(time.Second))),
			}, nil
		}
		if time.Now().After(end) {
			return commitInfo{}, fmt.Errorf("fw%d: no MASTER transition after %s within %s (%v)", n, since.Format(time.StampMilli), timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *fwpairStack) syncPID(n int) (int, error) {
	d := s.nodes[n-1]
	if d == nil {
		return 0, fmt.Errorf("fw%d not started", n)
	}
	return findPID("fwpaird", "-socket", d.Socket)
}

func (s *fwpairStack) diag(n int) string {
	if d := s.nodes[n-1]; d != nil {
		return fmt.Sprintf("%s (%s):\n%s", d.Name, filepath.Base(d.Log), d.LogTail(2000))
	}
	return ""
}

func (s *fwpairStack) close() {
	for i, d := range s.nodes {
		if d != nil && d.Running() {
			d.Kill()
		}
		if s.counts[i] != nil {
			s.counts[i].close()
		}
	}
}
