package bench

// CPU profiles of the replication burst (BENCH_PROFILE=1, or `make
// profile`): perf(1) samples the sender's and the receiver's sync process
// from just before the flows are created until the last one has arrived,
// kernel stacks included, since much of the cost of a sync daemon is the
// kernel's (netlink, conntrack, event building, UDP). Each profile is
// written as results/profile/<stack>-<role>-rep<N>.perf.data with a text
// report next to it (.txt: self time by symbol, and by DSO). The files are
// not committed (results/ is ignored).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/fwpair/fwpair/testenv"
)

// profileDir is where profiles go, "" when BENCH_PROFILE is not set.
func profileDir() (string, error) {
	if v := os.Getenv("BENCH_PROFILE"); v == "" || v == "0" {
		return "", nil
	}
	gomod, err := testenv.RepoFile("go.mod")
	if err != nil {
		return "", err
	}
	dir := filepath.Join(filepath.Dir(gomod), "results", "profile")
	return dir, os.MkdirAll(dir, 0o755)
}

// profiler is the perf processes of one replication burst.
type profiler struct {
	cmds  []*exec.Cmd
	files []string
	log   func(string, ...any)
}

// startProfiles starts perf on each pid (sender, receiver) when profiling
// is on; the result's stop is safe to call when it is off.
func (e *env) startProfiles(stack string, rep int, pids [2]int) *profiler {
	p := &profiler{log: e.logf}
	dir, err := profileDir()
	if err != nil {
		e.logf("profile: %v", err)
		return p
	}
	if dir == "" {
		return p
	}
	for i, role := range []string{"sender", "receiver"} {
		out := filepath.Join(dir, fmt.Sprintf("%s-%s-rep%d.perf.data", stack, role, rep))
		cmd := exec.Command("perf", "record", "-q", "-F", "997", "-g", "-o", out, "-p", strconv.Itoa(pids[i]))
		if err := cmd.Start(); err != nil {
			e.logf("profile: perf record: %v", err)
			continue
		}
		e.jan.push(func() {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
		})
		p.cmds = append(p.cmds, cmd)
		p.files = append(p.files, out)
	}
	// perf attaches asynchronously; give it its first sample period.
	time.Sleep(100 * time.Millisecond)
	return p
}

// stop ends the recordings and writes the text reports.
func (p *profiler) stop() {
	for i, cmd := range p.cmds {
		_ = cmd.Process.Signal(syscall.SIGINT)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if err := perfReport(p.files[i]); err != nil {
			p.log("profile: %s: %v", p.files[i], err)
			continue
		}
		p.log("profile: %s (+ .txt)", p.files[i])
	}
}

// perfReport writes <file>.txt: self time by DSO, then by symbol.
func perfReport(file string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var text []byte
	for _, sort := range []string{"dso", "dso,sym"} {
		out, err := exec.CommandContext(ctx, "perf", "report", "-i", file, "--stdio", "--no-children",
			"-g", "none", "--percent-limit", "0.3", "--sort", sort).CombinedOutput()
		if err != nil {
			return errors.Join(err, errors.New(string(out)))
		}
		text = append(text, out...)
	}
	return os.WriteFile(file+".txt", text, 0o644)
}
