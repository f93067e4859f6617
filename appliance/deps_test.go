package appliance

import (
	"os/exec"
	"strings"
	"testing"
)

// The engines stay leaves (docs/architecture.md, "Packages and import
// direction"): ctsync and vrrp never import each other, appliance,
// Prometheus or a log handler package; only appliance knows both.
func TestEnginesImportDirection(t *testing.T) {
	for _, engine := range []string{"ctsync", "vrrp"} {
		out, err := exec.Command("go", "list", "-deps", "github.com/fwpair/fwpair/"+engine).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v: %s", engine, err, out)
		}
		other := map[string]string{"ctsync": "vrrp", "vrrp": "ctsync"}[engine]
		for _, pkg := range strings.Fields(string(out)) {
			for _, banned := range []string{"github.com/fwpair/fwpair/appliance", "github.com/fwpair/fwpair/" + other, "github.com/prometheus/", "github.com/coreos/"} {
				if strings.HasPrefix(pkg, banned) {
					t.Errorf("%s depends on %s", engine, pkg)
				}
			}
		}
	}
}
