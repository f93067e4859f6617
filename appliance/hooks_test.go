package appliance

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRunHook(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	script := filepath.Join(dir, "hook.sh")
	body := "#!/bin/sh\necho \"$1 $FWPAIR_NODE $FWPAIR_FROM $FWPAIR_REASON\" > " + out + "\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	runHook(context.Background(), log, script, 5*time.Second, "fw1", "BACKUP", "MASTER", "priority 0 received")
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(got)) != "MASTER fw1 BACKUP priority 0 received" {
		t.Errorf("hook saw %q", got)
	}

	// A hook that hangs is killed at its timeout and the failure logged.
	slow := filepath.Join(dir, "slow.sh")
	os.WriteFile(slow, []byte("#!/bin/sh\nexec sleep 30\n"), 0o755)
	start := time.Now()
	runHook(context.Background(), log, slow, 200*time.Millisecond, "fw1", "BACKUP", "MASTER", "x")
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("hung hook held for %v", took)
	}
	if !strings.Contains(logs.String(), "killed after 200ms") {
		t.Errorf("timeout not logged: %s", logs.String())
	}

	// A failing hook is logged with its output.
	bad := filepath.Join(dir, "bad.sh")
	os.WriteFile(bad, []byte("#!/bin/sh\necho oops >&2\nexit 3\n"), 0o755)
	runHook(context.Background(), log, bad, time.Second, "fw1", "MASTER", "BACKUP", "x")
	if !strings.Contains(logs.String(), "oops") || !strings.Contains(logs.String(), "exit status 3") {
		t.Errorf("failure not logged: %s", logs.String())
	}
	// No command: nothing happens.
	runHook(context.Background(), log, "", time.Second, "fw1", "MASTER", "BACKUP", "x")
}
