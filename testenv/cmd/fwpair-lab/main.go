// Command fwpair-lab builds the reference lab in network namespaces and
// runs the failover demonstration (`make lab`). It needs root.
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/fwpair/fwpair/testenv"
)

func main() {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "fwpair-lab: needs root (network namespaces, nftables, conntrack)")
		os.Exit(2)
	}
	if stale := testenv.RemoveStale("fwdemo"); len(stale) > 0 {
		fmt.Printf("removed %d namespaces left by an interrupted run\n", len(stale))
	}
	if err := stateExperiment(); err != nil {
		fmt.Fprintln(os.Stderr, "fwpair-lab:", err)
		os.Exit(1)
	}
}

const topology = `topology (each box a network namespace):

  client 192.168.0.10 ──┐ lan0 192.168.0.0/24      lan1 192.168.1.0/24 ┌── server 192.168.1.10
                        ├── fw1 eth0 .1 ── fw1 ── eth1 .1 ──┤
                        └── fw2 eth0 .2 ── fw2 ── eth1 .2 ──┘
      VIP 192.168.0.100      fw1 eth2 10.0.0.1 ══ sync ══ 10.0.0.2 fw2 eth2      VIP 192.168.1.100
  strict nftables ruleset on both firewalls, nf_conntrack_tcp_loose=0
`

// stateExperiment shows why state sync matters: a VIP move without the
// conntrack state breaks established sessions, with it they survive.
func stateExperiment() error {
	fmt.Print(topology)
	fmt.Println()
	const sessions = 20
	results := make([]testenv.ExperimentResult, 0, 2)
	for _, copyState := range []bool{false, true} {
		lab, err := testenv.BuildLab(testenv.LabOptions{Prefix: "fwdemo"})
		if err != nil {
			return err
		}
		res, err := testenv.MoveExperiment(lab, sessions, copyState, 3*time.Second)
		lab.Close()
		if err != nil {
			return err
		}
		results = append(results, res)
	}
	fmt.Printf("%-40s %s\n", "VIPs moved fw1 -> fw2", "result")
	fmt.Printf("%-40s %v\n", "without conntrack state", results[0].Verdict)
	fmt.Printf("%-40s %v\n", fmt.Sprintf("with %d entries copied first", results[1].Copied), results[1].Verdict)
	ok := results[0].Verdict.Kept == 0 && results[1].Verdict.Kept == results[1].Verdict.Total
	if ok {
		fmt.Println("verdict: the lab is strict: sessions break without state and survive with it")
		return nil
	}
	return fmt.Errorf("verdict: unexpected outcome, the lab cannot judge a failover")
}
