package ctnetlink

import (
	"os/exec"
	"strings"
	"testing"
)

// ctnetlink is a leaf (docs/architecture.md): it imports no other package
// of the module (not ctsync, whose model it defines, nor vrrp, appliance
// or testenv), no Prometheus and no log handler.
func TestImportDirection(t *testing.T) {
	const self = "github.com/fwpair/fwpair/ctsync/ctnetlink"
	out, err := exec.Command("go", "list", "-deps", self).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/fwpair/fwpair/", "github.com/prometheus/", "github.com/coreos/"} {
			if pkg != self && strings.HasPrefix(pkg, banned) {
				t.Errorf("ctnetlink depends on %s", pkg)
			}
		}
	}
}
