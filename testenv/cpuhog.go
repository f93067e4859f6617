package testenv

import (
	"context"
	"fmt"
	"os/exec"
)

// CPUHog keeps n processes in ns spinning on the CPU (a shell busy loop),
// the "both cores saturated" load of the timing tests, until Stop.
type CPUHog struct {
	cancel context.CancelFunc
	cmds   []*exec.Cmd
}

// StartCPUHog starts n busy processes in ns.
func StartCPUHog(ns *NS, n int) (*CPUHog, error) {
	ctx, cancel := context.WithCancel(context.Background())
	h := &CPUHog{cancel: cancel}
	for range n {
		cmd := ns.Cmd(ctx, "sh", "-c", "while :; do :; done")
		if err := cmd.Start(); err != nil {
			h.Stop()
			return nil, fmt.Errorf("testenv: CPU hog in %s: %w", ns.Name, err)
		}
		h.cmds = append(h.cmds, cmd)
	}
	return h, nil
}

// Stop kills the hog's processes and waits for them.
func (h *CPUHog) Stop() {
	h.cancel()
	for _, c := range h.cmds {
		_ = c.Wait()
	}
	h.cmds = nil
}
