package ctsync

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/fwpair/fwpair/ctsync/ctnetlink/ctnetlinktest"
	"github.com/fwpair/fwpair/testenv"
)

// labelsInUse makes the namespace's conntrack entries carry the connlabel
// extension (the kernel adds it only while a rule uses ct label), as a
// ruleset with `ct label set` does.
func labelsInUse(t *testing.T, ns *testenv.NS) {
	t.Helper()
	rules := `table inet fwpairlabels {
	chain c {
		ct label 100 counter
	}
}
`
	if err := ns.LoadRuleset(rules); err != nil {
		t.Fatalf("nft: %v", err)
	}
}

// TestPrivilegedConntrackdLabels: a conntrack label travels both ways
// between fwpair and conntrackd 1.4.7 (NTA_LABELS), and `conntrackd -c`
// writes it into the kernel.
func TestPrivilegedConntrackdLabels(t *testing.T) {
	testenv.RequirePrivileged(t)
	lab := testenv.NewLab(t, testenv.LabOptions{Prefix: "fwl"})
	labelsInUse(t, lab.FW1)
	labelsInUse(t, lab.FW2)
	ctd := startConntrackd(t, lab.FW2, "FTFW", syncAddr2, syncAddr1)
	n1 := startLabNode(t, lab.FW1, syncAddr1, syncAddr2, Config{}, nil)

	// Labels 1, 33 and 127: one bit in the first, second and last word.
	labels := make([]byte, 16)
	labels[0] = 1 << 1
	labels[4] = 1 << 1
	labels[15] = 1 << 7

	// fwpair -> conntrackd -> kernel.
	ours := ctnetlinktest.TCP("192.168.0.10", "192.168.1.20", 40100, 443)
	ours.Labels = labels
	k1 := labKernel(t, lab.FW1)
	if _, err := k1.Commit(labCtx(t, 10*time.Second), []Flow{ours}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "our labelled flow in conntrackd -e", func() error {
		out, err := ctd.run(t, "-e")
		if err != nil {
			return err
		}
		if findLine(out, flowPattern(&ours)) == "" {
			return fmt.Errorf("not yet:\n%s", out)
		}
		return nil
	})
	if out, err := ctd.run(t, "-c"); err != nil {
		t.Fatalf("conntrackd -c: %v: %s", err, out)
	}
	k2 := labKernel(t, lab.FW2)
	got, err := k2.Dump(labCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	f, ok := flowMap(got)[ours.Key]
	if !ok {
		t.Fatalf("conntrackd -c did not create %v", ours.Key)
	}
	if !bytes.Equal(f.Labels, labels) {
		t.Errorf("labels after conntrackd -c: %x, want %x", f.Labels, labels)
	}

	// conntrackd -> fwpair.
	theirs := ctnetlinktest.UDP("192.168.0.11", "192.168.1.21", 40101, 53)
	theirs.Labels = labels
	if _, err := k2.Commit(labCtx(t, 10*time.Second), []Flow{theirs}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "conntrackd's labelled flow in our external cache", func() error {
		f, ok := flowMap(n1.e.Entries(CacheExternal))[theirs.Key]
		if !ok {
			return fmt.Errorf("missing")
		}
		if !bytes.Equal(f.Labels, labels) {
			return fmt.Errorf("labels %x, want %x", f.Labels, labels)
		}
		return nil
	})
	if st := n1.e.Stats(); len(st.Malformed) != 0 {
		t.Errorf("rejected: %v", st.Malformed)
	}
}
