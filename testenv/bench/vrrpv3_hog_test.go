package bench

import (
	"os"
	"strings"
	"testing"

	"github.com/fwpair/fwpair/testenv"
)

// V3HogEnv names the variable that runs the bench's no-false-failover
// scenario alone (not part of make test): FWPAIR_BENCH_V3_HOG=fwpair-v3,
// or reference-v3, or both separated by a comma.
const V3HogEnv = "FWPAIR_BENCH_V3_HOG"

// TestPrivilegedBenchV3Hog runs the VRRPv3 CPU-hog rows of the bench at
// the small scale (10,000 flows replicated under the hogs, 20 s), for
// the stacks named in V3HogEnv, and logs them as the bench would.
func TestPrivilegedBenchV3Hog(t *testing.T) {
	testenv.RequirePrivileged(t)
	stacks := os.Getenv(V3HogEnv)
	if stacks == "" {
		t.Skipf("set %s=%s[,%s] to run the bench's VRRPv3 CPU-hog scenario alone", V3HogEnv, FWPairV3, ReferenceV3)
	}
	dir := t.TempDir()
	bin, err := testenv.Binaries(dir)
	if err != nil {
		t.Fatal(err)
	}
	jan := &Janitor{}
	defer jan.Close()
	e := &env{scale: Small, bin: bin, dir: dir, jan: jan, log: t.Output()}
	for _, name := range strings.Split(stacks, ",") {
		if name != FWPairV3 && name != ReferenceV3 {
			t.Fatalf("%s: %q is neither %s nor %s", V3HogEnv, name, FWPairV3, ReferenceV3)
		}
		h := e.hogRun(name)
		t.Logf("MEASURED no-false-failover %-12s: %d spurious transitions in %.0f s, advert p50 %.1f p99 %.1f max %.1f ms (%d adverts), %d flows, host load %.1f %s",
			h.Stack, h.Transitions, h.HogSeconds, h.AdvertP50MS, h.AdvertP99MS, h.AdvertMaxMS, h.Adverts, h.Flows, loadAvg(), h.Error)
		if h.Error != "" {
			t.Errorf("%s: %s", name, h.Error)
		}
	}
}
