package bench

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fwpair/fwpair/testenv"
)

// ReferenceFaultsEnv enables TestPrivilegedReferenceFaults: the faults of
// testenv's fault matrix run on keepalived + conntrackd, for the figures
// side by side with fwpair's (not part of make test).
const ReferenceFaultsEnv = "FWPAIR_REFERENCE_FAULTS"

// TestPrivilegedReferenceFaults runs keepalived 2.2.7 + conntrackd 1.4.7
// (the bench's reference stack) through the LAN cut, the split brain and
// the frozen MASTER, with 200 sessions, and logs the same figures as
// testenv.TestPrivilegedFaultMatrix. It fails only if the lab or the stack
// cannot run: the reference's results are figures, not requirements.
func TestPrivilegedReferenceFaults(t *testing.T) {
	testenv.RequirePrivileged(t)
	if os.Getenv(ReferenceFaultsEnv) != "1" {
		t.Skipf("set %s=1 to measure the reference stack under faults", ReferenceFaultsEnv)
	}
	var lines []string
	for _, name := range []string{"lan0-cut", "split-brain", "master-frozen"} {
		t.Run(name, func(t *testing.T) {
			line := referenceFault(t, name)
			t.Log(line)
			lines = append(lines, line)
		})
	}
	t.Logf("reference under faults:\n%s", strings.Join(lines, "\n"))
}

func referenceFault(t *testing.T, name string) string {
	lab := testenv.NewLab(t, testenv.LabOptions{Prefix: "fwr"})
	s, err := newReference(lab, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	for n := 1; n <= 2; n++ {
		if err := s.start(n); err != nil {
			t.Fatal(err)
		}
	}
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ok, err := s.ready()
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("reference not ready\n%s\n%s", s.diag(1), s.diag(2))
		}
	}
	echo, err := testenv.StartEchoServer(lab.Server, netip.AddrPortFrom(testenv.ServerAddr.Addr(), testenv.EchoPort))
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	ss, err := testenv.OpenSessions(lab.Client, netip.AddrPortFrom(testenv.ServerAddr.Addr(), testenv.EchoPort), 200, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	if v := ss.WaitKept(time.Now(), 10*time.Second); v.Kept != v.Total {
		t.Fatalf("sessions not flowing: %v", v)
	}
	w, err := lab.StartFaultWatch()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	time.Sleep(2 * time.Second) // let keepalived's GARP burst end (no counter here to wait on)
	var inv0, garp0 [2]uint64
	var states0 [2]int
	for i := range 2 {
		inv0[i], _ = lab.InvalidDrops(i + 1)
		garp0[i], _ = lab.GARPs(i + 1)
		states0[i] = countLines(s.nodes[i].states)
	}
	start := time.Now()
	switch name {
	case "lan0-cut":
		if err := lab.SetCut(testenv.Cut{LAN: [2]bool{true, false}}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(15 * time.Second)
	case "split-brain":
		if err := lab.SetCut(testenv.Cut{VRRP: true}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Second)
	case "master-frozen":
		pids := []int{s.nodes[0].ctd.Pid(), s.nodes[0].ka.Pid()}
		if b, err := os.ReadFile(filepath.Join(s.nodes[0].dir, "vrrp.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
				pids = append(pids, pid)
			}
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGSTOP)
		}
		time.Sleep(5 * time.Second)
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	if err := lab.SetCut(testenv.Cut{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second) // settle: the reference has no status to wait on
	v := ss.WaitKept(time.Now().Add(200*time.Millisecond), 10*time.Second)
	end := time.Now()
	both, neither, _ := w.Longest(start, end)
	var inv, garps [2]uint64
	var trans [2]int
	for i := range 2 {
		n, _ := lab.InvalidDrops(i + 1)
		inv[i] = n - inv0[i]
		g, _ := lab.GARPs(i + 1)
		garps[i] = g - garp0[i]
		trans[i] = countLines(s.nodes[i].states) - states0[i]
	}
	return fmt.Sprintf("%-14s keepalived+conntrackd: kept %d/%d (reset %d), invalid drops fw1 %d fw2 %d, group transitions fw1 %d fw2 %d, "+
		"longest VIPs on both %s / on neither %s, GARPs fw1 %d fw2 %d",
		name, v.Kept, v.Total, v.Reset, inv[0], inv[1], trans[0], trans[1],
		both.Round(time.Millisecond), neither.Round(time.Millisecond), garps[0], garps[1])
}

func countLines(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\n")
}
