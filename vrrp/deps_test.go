package vrrp_test

import (
	"os/exec"
	"strings"
	"testing"
)

// vrrp must stay a leaf engine (docs/architecture.md): no appliance, no
// ctsync, no Prometheus; the logger is injected.
func TestImportDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/fwpair/fwpair/vrrp").CombinedOutput()
	if err != nil {
		t.Skipf("go list unavailable: %v: %s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/fwpair/fwpair/appliance", "github.com/fwpair/fwpair/ctsync", "github.com/prometheus/"} {
			if strings.HasPrefix(pkg, banned) {
				t.Errorf("vrrp depends on %s", pkg)
			}
		}
	}
}
