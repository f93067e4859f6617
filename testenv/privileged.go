package testenv

import (
	"os"
	"sync"
	"testing"
)

var staleOnce sync.Once

// PrivilegedEnv is the variable that makes privileged tests mandatory.
const PrivilegedEnv = "FWPAIR_PRIVILEGED_TESTS"

// RequirePrivileged gates a test that needs root and network namespaces.
// Without FWPAIR_PRIVILEGED_TESTS=1 the test is skipped with the reason;
// with it set (make test, CI), being unable to run is a failure, so such
// tests can never pass by being skipped silently.
func RequirePrivileged(t testing.TB) {
	t.Helper()
	if os.Getenv(PrivilegedEnv) != "1" {
		t.Skipf("privileged test: set %s=1 and run as root", PrivilegedEnv)
	}
	if os.Geteuid() != 0 {
		t.Fatalf("%s=1 but not running as root", PrivilegedEnv)
	}
	staleOnce.Do(func() {
		if gone := RemoveStale(""); len(gone) > 0 {
			t.Logf("removed %d namespaces left by killed runs: %v", len(gone), gone)
		}
	})
	ns, err := CreateNS("fwprobe")
	if err != nil {
		t.Fatalf("%s=1 but network namespaces are unavailable: %v", PrivilegedEnv, err)
	}
	ns.Close()
}
