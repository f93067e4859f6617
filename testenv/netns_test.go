package testenv

import (
	"os"
	"strings"
	"testing"
)

func TestRunIDNamesItsCreator(t *testing.T) {
	name := "fwl" + "cl-" + runID()
	pid, ok := creatorPID(name)
	if !ok || pid != os.Getpid() {
		t.Fatalf("creatorPID(%q) = %d, %v", name, pid, ok)
	}
	if !processAlive(pid) {
		t.Fatal("own process not alive")
	}
	for _, bad := range []string{"fwl-abc", "fwl-p-1", "fwl-px-12", "plain"} {
		if _, ok := creatorPID(bad); ok {
			t.Errorf("creatorPID(%q) accepted", bad)
		}
	}
	if len(name) > 40 || strings.ContainsAny(name, "/ ") {
		t.Errorf("bad namespace name %q", name)
	}
}
