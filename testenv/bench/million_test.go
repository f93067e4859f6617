package bench

import (
	"strings"
	"testing"
)

func TestMillionScaleAndVerdicts(t *testing.T) {
	if sc, err := ScaleByName("1m"); err != nil || sc.Name != Million.Name || sc.Flows != 1_000_000 {
		t.Fatalf("ScaleByName(1m) = %+v, %v", sc, err)
	}
	good := MillionRun{Flows: 1000, Replicated: 1000, RebootHeld: 1000, RebootMS: 1200, FW1Before: 1003, FW2After: 1002, Kept: 1000, SenderPerEntry: 250}
	if !good.Passed() {
		t.Fatal("a run that met every bar did not pass")
	}
	for name, bad := range map[string]func(m *MillionRun){
		"slow reboot": func(m *MillionRun) { m.RebootMS = 5001 },
		"lost flow":   func(m *MillionRun) { m.Kept = 999 },
		"short repl":  func(m *MillionRun) { m.Replicated = 999 },
		"error":       func(m *MillionRun) { m.Error = "x" },
	} {
		m := good
		bad(&m)
		if m.Passed() {
			t.Errorf("%s: passed", name)
		}
		rows := millionRows(&Results{Million: &m})
		missed := false
		for _, r := range rows {
			if r.Met != nil && !*r.Met || r.Failed > 0 {
				missed = true
			}
		}
		if !missed {
			t.Errorf("%s: no row says so", name)
		}
	}
	for _, r := range millionRows(&Results{Million: &good}) {
		if r.Met != nil && !*r.Met {
			t.Errorf("row %q missed on a good run: %s", r.Metric, r.Verdict)
		}
		if !strings.Contains(r.Group, "1000 flows") {
			t.Errorf("row group %q does not give the scale", r.Group)
		}
	}
}
