package appliance

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"time"
)

// runHook runs the operator's transition command off the critical path:
// bounded by timeout, its output and failure logged, never waited for by
// the transition itself.
func runHook(ctx context.Context, log *slog.Logger, command string, timeout time.Duration, node, from, to, reason string) {
	if command == "" {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, command, to)
	cmd.Env = append(os.Environ(),
		"FWPAIR_NODE="+node,
		"FWPAIR_FROM="+from,
		"FWPAIR_STATE="+to,
		"FWPAIR_REASON="+reason,
	)
	cmd.WaitDelay = time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("killed after %s: %w", timeout, err)
		}
		log.Warn("transition hook failed", "command", command, "state", to, "err", err, "output", string(out))
		return
	}
	log.Info("transition hook ran", "command", command, "state", to, "seconds", time.Since(start).Seconds())
}
