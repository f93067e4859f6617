package testenv

import "testing"

// forEachSyncMode runs an end-to-end test once per sync mode, as subtests
// named direct-inject (states injected on receipt) and commit (external
// cache committed on takeover).
func forEachSyncMode(t *testing.T, run func(t *testing.T, direct bool)) {
	for _, m := range []struct {
		name   string
		direct bool
	}{{"direct-inject", true}, {"commit", false}} {
		t.Run(m.name, func(t *testing.T) { run(t, m.direct) })
	}
}
