package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fwpair/fwpair/testenv"
	"github.com/fwpair/fwpair/testenv/refdaemons"
)

// ShippedScript is where Debian's conntrackd package ships conntrackd's
// keepalived notify script. The benchmark reads it at run time and only
// rewrites its three settings (binary, lock file, config file).
const ShippedScript = "/usr/share/doc/conntrackd/examples/sync/primary-backup.sh"

// conntrackd's UNIX socket action codes (include/conntrackd.h).
const ctdStats = 21

// refStack is the classic stack: keepalived (VRRP) calling conntrackd's
// primary-backup.sh, conntrackd (FTFW over UDP on eth2) on both nodes.
type refStack struct {
	lab        *testenv.Lab
	dir        string
	conntrackd string
	keepalived string
	nodes      [2]*refNode
	v3         time.Duration // VRRPv3 interval; 0 for VRRPv2 at 1 s
	// flows is the run's scale: conntrackd's HashLimit must hold them.
	flows int
	// inject runs conntrackd with DisableExternalCache on: received
	// states go straight into the BACKUP's kernel.
	inject bool
	// counts read each node's kernel table size (inject only).
	counts [2]*ctCount
}

type refNode struct {
	n   int
	dir string
	// Files of the node.
	ctdConf, kaConf, script, wrapper, timing, states, ctdLog, kaLog, socket string
	ctd                                                                     *refdaemons.Proc
	ka                                                                      *refdaemons.Keepalived
}

func newReference(lab *testenv.Lab, dir string) (*refStack, error) {
	s := &refStack{lab: lab, dir: dir}
	var err error
	if s.conntrackd, err = exec.LookPath("conntrackd"); err != nil {
		return nil, fmt.Errorf("reference stack: %w (make deps installs it)", err)
	}
	if s.keepalived, err = exec.LookPath("keepalived"); err != nil {
		return nil, fmt.Errorf("reference stack: %w (make deps installs it)", err)
	}
	return s, nil
}

func (s *refStack) name() string {
	if s.inject {
		return ReferenceInject
	}
	return Reference
}

func (s *refStack) start(n int) error {
	nd, err := s.writeNode(n)
	if err != nil {
		return err
	}
	s.nodes[n-1] = nd
	ns := s.lab.FW(n)
	if s.inject {
		if s.counts[n-1], err = openCTCount(ns); err != nil {
			return err
		}
	}
	// conntrackd first: the notify script expects it running (and would
	// start a daemonised copy of its own otherwise).
	if nd.ctd, err = refdaemons.StartConntrackd(ns, nd.ctdConf, nd.ctdLog+".out"); err != nil {
		return fmt.Errorf("fw%d: %w\n%s", n, err, s.diag(n))
	}
	return s.startKeepalived(n)
}

// startKeepalived (re)starts keepalived on node n, whose files exist.
func (s *refStack) startKeepalived(n int) error {
	nd := s.nodes[n-1]
	var err error
	nd.ka, err = refdaemons.StartKeepalived(s.lab.FW(n), nd.dir, nd.kaConf, nd.kaLog)
	if err != nil {
		return fmt.Errorf("fw%d: %w", n, err)
	}
	return nil
}

// writeNode writes node n's configs and scripts.
func (s *refStack) writeNode(n int) (*refNode, error) {
	d := filepath.Join(s.dir, fmt.Sprintf("ref%d", n))
	if err := os.MkdirAll(d, 0o755); err != nil {
		return nil, err
	}
	nd := &refNode{
		n: n, dir: d,
		ctdConf: filepath.Join(d, "conntrackd.conf"),
		kaConf:  filepath.Join(d, "keepalived.conf"),
		script:  filepath.Join(d, "primary-backup.sh"),
		wrapper: filepath.Join(d, "conntrackd-timed"),
		timing:  filepath.Join(d, "timing"),
		states:  filepath.Join(d, "states"),
		ctdLog:  filepath.Join(d, "conntrackd.log"),
		kaLog:   filepath.Join(d, "keepalived.log"),
		socket:  filepath.Join(d, "conntrackd.ctl"),
	}
	local, peer := testenv.FWAddrs[n-1][2].Addr(), testenv.FWAddrs[2-n][2].Addr()
	ctdConf := refdaemons.ConntrackdConf{
		Comment: fmt.Sprintf(`conntrackd for fw%d, written by fwpair's benchmark: FTFW over UDP on
the sync link, as fwpaird's [sync] section of etc/node%d.toml. The
netlink event buffer matches fwpaird's (64 MiB, growing to 4x on
overrun) so that overruns show processing speed, not configuration.
The ignore filter is fwpaird's default (ignore_own): loopback, the
node's own addresses, the VIPs and the sync link.`, n, n),
		Mode: "FTFW", Local: local, Peer: peer,
		HashSize: 32768, HashLimit: max(524288, 2*s.flows),
		NetlinkBuffer: 64 << 20, NetlinkBufferMax: 256 << 20,
		LogFile: nd.ctdLog, LockFile: filepath.Join(d, "conntrackd.lock"), Socket: nd.socket,
		Ignore:               ignoreList(n),
		DisableExternalCache: s.inject,
	}.Render()
	prio := 150
	if n == 2 {
		prio = 100
	}
	kaConf := refdaemons.KeepalivedConf{
		Comment: fmt.Sprintf(`keepalived for fw%d, written by fwpair's benchmark: the VRIDs,
priorities, advert interval and VIPs of etc/node%d.toml, one sync group,
conntrackd's primary-backup.sh as its notify scripts.`, n, n),
		RouterID:     fmt.Sprintf("fw%d", n),
		Globals:      v3Globals(s.v3),
		Group:        "fw",
		NotifyMaster: nd.script + " primary",
		NotifyBackup: nd.script + " backup",
		NotifyFault:  nd.script + " fault",
		Notify:       filepath.Join(d, "state.sh"),
		Instances: []refdaemons.Instance{
			{Name: "inside", Interface: "eth0", VRID: 51, Priority: prio, AdvertInt: advertInt(s.v3), VIP: testenv.VIP0},
			{Name: "outside", Interface: "eth1", VRID: 52, Priority: prio, AdvertInt: advertInt(s.v3), VIP: testenv.VIP1},
		},
	}.Render()
	script, err := notifyScript(nd.wrapper, filepath.Join(d, "conntrackd.lock"), nd.ctdConf)
	if err != nil {
		return nil, err
	}
	wrapper := fmt.Sprintf(`#!/bin/sh
# Times every conntrackd client call of the notify script.
echo "start $(date +%%s.%%N) $*" >> %s
%s "$@"
rc=$?
echo "end $(date +%%s.%%N) rc=$rc $*" >> %s
exit $rc
`, nd.timing, s.conntrackd, nd.timing)
	state := fmt.Sprintf("#!/bin/sh\n# keepalived sync-group notify: $1=GROUP $2=name $3=state\necho \"$3 $(date +%%s.%%N)\" >> %s\n", nd.states)
	files := []struct {
		path string
		body string
		mode os.FileMode
	}{
		{nd.ctdConf, ctdConf, 0o644},
		{nd.kaConf, kaConf, 0o644},
		{nd.script, script, 0o755},
		{nd.wrapper, wrapper, 0o755},
		{filepath.Join(d, "state.sh"), state, 0o755},
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, []byte(f.body), f.mode); err != nil {
			return nil, err
		}
	}
	return nd, nil
}

// ignoreList is the Address Ignore list of node n: what fwpaird's
// ignore_own leaves out.
func ignoreList(n int) []netip.Addr {
	addrs := []netip.Addr{netip.MustParseAddr("127.0.0.1"), testenv.VIP0.Addr(), testenv.VIP1.Addr(), testenv.FWAddrs[2-n][2].Addr()}
	for _, p := range testenv.FWAddrs[n-1] {
		addrs = append(addrs, p.Addr())
	}
	return addrs
}

// notifyScript is conntrackd's primary-backup.sh as installed, with its
// three settings pointed at this node's conntrackd (through the timing
// wrapper), lock file and config. Without the installed copy it falls
// back to the same documented sequence of conntrackd calls.
func notifyScript(bin, lock, conf string) (string, error) {
	b, err := os.ReadFile(ShippedScript)
	if errors.Is(err, os.ErrNotExist) {
		return fallbackScript(bin, lock, conf), nil
	}
	if err != nil {
		return "", err
	}
	return adaptScript(string(b), bin, lock, conf)
}

// adaptScript rewrites the three settings of primary-backup.sh.
func adaptScript(script, bin, lock, conf string) (string, error) {
	settings := map[string]string{"CONNTRACKD_BIN": bin, "CONNTRACKD_LOCK": lock, "CONNTRACKD_CONFIG": conf}
	lines := strings.Split(script, "\n")
	for i, line := range lines {
		for k, v := range settings {
			if strings.HasPrefix(line, k+"=") {
				lines[i] = k + "=" + v
				delete(settings, k)
			}
		}
	}
	if len(settings) != 0 {
		return "", fmt.Errorf("%s: settings %v not found: the script changed", ShippedScript, settings)
	}
	return strings.Join(lines, "\n"), nil
}

// fallbackScript is the primary/backup/fault sequence of conntrackd's
// script as documented (commit, flush, resync, bulk; check, purge timer,
// resync request; purge timer), for systems without the example files.
func fallbackScript(bin, lock, conf string) string {
	return fmt.Sprintf(`#!/bin/sh
C="%s -C %s"
case "$1" in
primary) $C -c; $C -f; $C -R; $C -B ;;
backup)
	if ! $C -s >/dev/null; then rm -f %s; $C -d || exit 1; fi
	$C -t; $C -n ;;
fault) $C -t ;;
*) exit 1 ;;
esac
exit 0
`, bin, conf, lock)
}

// ctdRequest sends one action to conntrackd's UNIX socket and returns
// its answer (the daemon closes the socket when done).
func ctdRequest(path string, action int32) (string, error) {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], uint32(action))
	if _, err := c.Write(b[:]); err != nil {
		return "", err
	}
	out, err := io.ReadAll(c)
	return string(out), err
}

var activeRE = regexp.MustCompile(`current active connections:\s+(\d+)`)

// parseCacheCount reads "current active connections" of the given cache
// ("internal" or "external") from conntrackd's -s output.
func parseCacheCount(out, cache string) (int, error) {
	i := strings.Index(out, "cache "+cache+":")
	if i < 0 {
		return 0, fmt.Errorf("no %s cache in conntrackd stats", cache)
	}
	m := activeRE.FindStringSubmatch(out[i:])
	if m == nil {
		return 0, fmt.Errorf("no active count in conntrackd stats")
	}
	return strconv.Atoi(m[1])
}

func (s *refStack) lastState(n int) string {
	b, _ := os.ReadFile(s.nodes[n-1].states)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if f := strings.Fields(lines[len(lines)-1]); len(f) > 0 {
		return f[0]
	}
	return ""
}

// timingEntry is one conntrackd call of the notify script.
type timingEntry struct {
	start, end time.Time
	args       string
	rc         string
}

// timings parses a node's timing file; calls still running have a zero
// end.
func timings(path string) []timingEntry {
	b, _ := os.ReadFile(path)
	var out []timingEntry
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		t, err := parseEpoch(f[1])
		if err != nil {
			continue
		}
		switch f[0] {
		case "start":
			out = append(out, timingEntry{start: t, args: strings.Join(f[2:], " ")})
		case "end":
			if len(f) < 3 {
				continue
			}
			args := strings.Join(f[3:], " ")
			for i := len(out) - 1; i >= 0; i-- {
				if out[i].args == args && out[i].end.IsZero() {
					out[i].end, out[i].rc = t, strings.TrimPrefix(f[2], "rc=")
					break
				}
			}
		}
	}
	return out
}

func parseEpoch(s string) (time.Time, error) {
	sec, frac, _ := strings.Cut(s, ".")
	secs, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	var ns int64
	if frac != "" {
		frac = (frac + "000000000")[:9]
		if ns, err = strconv.ParseInt(frac, 10, 64); err != nil {
			return time.Time{}, err
		}
	}
	return time.Unix(secs, ns), nil
}

// finished reports whether the notify script ran conntrackd with flag
// (e.g. "-B") to the end.
func finished(ts []timingEntry, flag string) bool {
	for _, t := range ts {
		if strings.HasSuffix(t.args, " "+flag) && !t.end.IsZero() {
			return true
		}
	}
	return false
}

func (s *refStack) ready() (bool, error) {
	if s.nodes[0] == nil || s.nodes[1] == nil {
		return false, nil
	}
	for i, nd := range s.nodes {
		if !nd.ctd.Running() || !nd.ka.Running() {
			return false, fmt.Errorf("fw%d: a daemon exited\n%s", i+1, s.diag(i+1))
		}
	}
	return s.lastState(1) == "MASTER" && s.lastState(2) == "BACKUP" &&
		finished(timings(s.nodes[0].timing), "-B") && finished(timings(s.nodes[1].timing), "-n"), nil
}

func (s *refStack) held(n int) (int, error) {
	if s.inject {
		// No external cache: the peer's states are in the kernel, and a
		// BACKUP forwards nothing, so every entry there was injected.
		return s.counts[n-1].read()
	}
	out, err := ctdRequest(s.nodes[n-1].socket, ctdStats)
	if err != nil {
		return 0, err
	}
	return parseCacheCount(out, "external")
}

func (s *refStack) fault(f Fault, n int) error {
	nd := s.nodes[n-1]
	switch f {
	case Crash:
		// The VRRP child first, so it cannot react to its parent's end.
		nd.ka.Kill()
		_ = nd.ctd.Signal(syscall.SIGKILL, 5*time.Second)
		return crashLinks(s.lab, n)
	case Term:
		if err := nd.ka.Signal(syscall.SIGTERM, 10*time.Second); err != nil {
			return fmt.Errorf("keepalived on fw%d: %w", n, err)
		}
		return nd.ctd.Signal(syscall.SIGTERM, 10*time.Second)
	case Link:
		return s.lab.LinkDown(s.lab.FW(n), "eth0")
	}
	return fmt.Errorf("unknown fault %q", f)
}

var (
	committedRE  = regexp.MustCompile(`Committed (\d+) new entries`)
	commitFailRE = regexp.MustCompile(`(\d+) entries can't be committed`)
	commitTookRE = regexp.MustCompile(`commit has taken ([0-9.]+) seconds`)
)

func lastMatch(re *regexp.Regexp, s string) string {
	m := re.FindAllStringSubmatch(s, -1)
	if len(m) == 0 {
		return ""
	}
	return m[len(m)-1][1]
}

func (s *refStack) commit(n int, since time.Time, timeout time.Duration) (commitInfo, error) {
	nd := s.nodes[n-1]
	end := time.Now().Add(timeout)
	for {
		for _, t := range timings(nd.timing) {
			if !strings.HasSuffix(t.args, " -c") || t.start.Before(since) || t.end.IsZero() {
				continue
			}
			info := commitInfo{Done: t.end, Seconds: t.end.Sub(t.start).Seconds()}
			b, _ := os.ReadFile(nd.ctdLog)
			log := string(b)
			if v := lastMatch(committedRE, log); v != "" {
				info.Entries, _ = strconv.Atoi(v)
			}
			if v := lastMatch(commitFailRE, log); v != "" {
				info.Failed, _ = strconv.Atoi(v)
			}
			if v := lastMatch(commitTookRE, log); v != "" {
				if sec, err := strconv.ParseFloat(v, 64); err == nil {
					info.Seconds = sec
				}
			}
			return info, nil
		}
		if time.Now().After(end) {
			return commitInfo{}, fmt.Errorf("fw%d: no finished conntrackd -c after %s within %s", n, since.Format(time.StampMilli), timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *refStack) syncPID(n int) (int, error) {
	nd := s.nodes[n-1]
	if nd == nil || nd.ctd == nil {
		return 0, fmt.Errorf("fw%d not started", n)
	}
	return nd.ctd.Pid(), nil
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func (s *refStack) diag(n int) string {
	nd := s.nodes[n-1]
	if nd == nil {
		return ""
	}
	return fmt.Sprintf("fw%d keepalived:\n%s\nfw%d conntrackd:\n%s%s\nfw%d notify calls:\n%s",
		n, tail(nd.kaLog, 1500), n, tail(nd.ctdLog, 1500), tail(nd.ctdLog+".out", 500), n, tail(nd.timing, 800))
}

func (s *refStack) close() {
	for _, nd := range s.nodes {
		if nd == nil {
			continue
		}
		if nd.ka != nil {
			nd.ka.Kill()
		}
		if nd.ctd != nil {
			_ = nd.ctd.Signal(syscall.SIGKILL, 5*time.Second)
		}
		// A notify script that found conntrackd gone starts a daemonised
		// copy (conntrackd -d) of its own: end those too, bounded.
		for range 10 {
			pid, err := findPID("conntrackd", "-C", nd.ctdConf)
			if err != nil {
				break
			}
			_ = syscall.Kill(pid, syscall.SIGKILL)
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, c := range s.counts {
		if c != nil {
			c.close()
		}
	}
}
