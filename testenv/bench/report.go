package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
)

// Stat is the spread of one figure over the repetitions.
type Stat struct {
	N      int     `json:"n"`
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	Max    float64 `json:"max"`
}

func stat(vs []float64) Stat {
	if len(vs) == 0 {
		return Stat{}
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Stat{N: len(s), Min: s[0], Median: med, Max: s[len(s)-1]}
}

// Row is one line of the comparison table.
type Row struct {
	Group     string  `json:"group"`
	Metric    string  `json:"metric"`
	Unit      string  `json:"unit"`
	FWPair    Stat    `json:"fwpair"`
	Reference Stat    `json:"reference"`
	Ratio     float64 `json:"ratio"` // fwpair median / reference median
	// LowerBetter tells how to read the ratio.
	LowerBetter bool   `json:"lower_better"`
	Target      string `json:"target,omitempty"`
	Met         *bool  `json:"met,omitempty"`
	Verdict     string `json:"verdict"`
	// Failed counts runs that ended in an error and are left out.
	Failed int `json:"failed,omitempty"`

	format func(float64) string
}

func fmtMS(v float64) string    { return fmt.Sprintf("%.0f ms", v) }
func fmtCount(v float64) string { return fmt.Sprintf("%.0f", v) }
func fmtRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM/s", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0fk/s", v/1e3)
	}
	return fmt.Sprintf("%.0f/s", v)
}
func fmtBytes(v float64) string { return fmt.Sprintf("%.0f B", v) }
func fmtSec(v float64) string   { return fmt.Sprintf("%.2f s", v) }
func fmtPct(v float64) string   { return fmt.Sprintf("%.0f%%", v) }

// cell formats a Stat as "median (min–max)".
func (r Row) cell(s Stat) string {
	f := r.format
	if f == nil {
		f = func(v float64) string { return fmt.Sprintf("%.3g %s", v, r.Unit) }
	}
	switch {
	case s.N == 0:
		return "–"
	case s.N == 1 || s.Min == s.Max:
		return f(s.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", f(s.Median), strings.TrimSuffix(f(s.Min), " "+r.Unit), f(s.Max))
}

type target struct {
	text string
	// check returns whether fwpair's figures meet it and by how much
	// they miss when not.
	check func(fw, ref Stat) (bool, string)
}

func newRow(group, metric, unit string, lower bool, format func(float64) string, fw, ref []float64, failed int, tg *target) Row {
	r := Row{Group: group, Metric: metric, Unit: unit, LowerBetter: lower, format: format,
		FWPair: stat(fw), Reference: stat(ref), Failed: failed}
	if r.FWPair.N > 0 && r.Reference.N > 0 && r.Reference.Median != 0 {
		r.Ratio = r.FWPair.Median / r.Reference.Median
	}
	var parts []string
	switch {
	case r.FWPair.N == 0:
		parts = append(parts, "no fwpair figure")
	case r.Reference.N == 0:
		parts = append(parts, "no reference figure")
	case r.FWPair.Median == r.Reference.Median:
		parts = append(parts, "same")
	case r.FWPair.Median <= 0 || r.Reference.Median <= 0:
		// A ratio means nothing across zero: say the difference.
		r.Ratio = 0
		d := r.FWPair.Median - r.Reference.Median
		better := (d < 0) == lower
		word := map[bool]string{true: "better", false: "worse"}[better]
		parts = append(parts, fmt.Sprintf("fwpair %s by %s", word, strings.TrimPrefix(format(math.Abs(d)), "-")))
	default:
		adv := r.Ratio
		if lower {
			adv = 1 / r.Ratio
		}
		switch {
		case r.Ratio == 0 || math.IsInf(adv, 0):
			if (r.FWPair.Median < r.Reference.Median) == lower {
				parts = append(parts, "fwpair better")
			} else {
				parts = append(parts, "fwpair worse")
			}
		case adv >= 1.1:
			parts = append(parts, fmt.Sprintf("fwpair %.1fx better", adv))
		case adv <= 1/1.1:
			parts = append(parts, fmt.Sprintf("fwpair %.1fx worse", 1/adv))
		default:
			parts = append(parts, "on par")
		}
	}
	if tg != nil && r.FWPair.N > 0 {
		r.Target = tg.text
		met, how := tg.check(r.FWPair, r.Reference)
		r.Met = &met
		if met {
			parts = append(parts, "target "+tg.text+": met")
		} else {
			parts = append(parts, "target "+tg.text+": MISSED "+how)
		}
	}
	if failed > 0 {
		parts = append(parts, fmt.Sprintf("%d run(s) failed", failed))
	}
	r.Verdict = strings.Join(parts, "; ")
	return r
}

func buildRows(res *Results) []Row {
	var rows []Row
	by := func(stack string, mode Mode, fault Fault) (ok []FailoverRun, failed int) {
		for _, f := range res.Failover {
			if f.Stack != stack || f.Mode != mode || f.Fault != fault {
				continue
			}
			if f.Error != "" {
				failed++
				continue
			}
			ok = append(ok, f)
		}
		return ok, failed
	}
	pick := func(runs []FailoverRun, get func(FailoverRun) float64) []float64 {
		var out []float64
		for _, r := range runs {
			out = append(out, get(r))
		}
		return out
	}
	faultName := map[Fault]string{Crash: "crash (SIGKILL + links down)", Term: "graceful (SIGTERM)", Link: "cable pull (eth0 down)"}
	fwTerm := map[Mode][]float64{}
	for _, mode := range res.Scale.Modes {
		for _, fault := range res.Scale.Faults {
			fw, f1 := by(FWPair, mode, fault)
			ref, f2 := by(Reference, mode, fault)
			failed := f1 + f2
			g := fmt.Sprintf("failover: %s, %s", faultName[fault], mode)
			var tg *target
			if fault == Link && len(fwTerm[mode]) > 0 {
				term := stat(fwTerm[mode])
				tg = &target{"≤ keepalived and ≤ fwpair's graceful (+50 ms)", func(f, r Stat) (bool, string) {
					lim := min(r.Median, term.Median+50)
					return f.Median <= lim, fmt.Sprintf("by %.0f ms (graceful %.0f ms)", f.Median-lim, term.Median)
				}}
			} else {
				tg = &target{"≤ keepalived", func(f, r Stat) (bool, string) {
					return r.N == 0 || f.Median <= r.Median, fmt.Sprintf("by %.0f ms", f.Median-r.Median)
				}}
			}
			take := func(r FailoverRun) float64 { return r.TakeoverMS }
			adv := func(r FailoverRun) float64 { return r.AfterAdvertMS }
			if fault == Term {
				fwTerm[mode] = pick(fw, adv)
			}
			rows = append(rows,
				newRow(g, "takeover (fault → VIPs on fw2)", "ms", true, fmtMS, pick(fw, take), pick(ref, take), failed, nil),
				newRow(g, "takeover after fw1's last advert", "ms", true, fmtMS, pick(fw, adv), pick(ref, adv), failed, tg),
				newRow(g, "probe gap (10 ms UDP)", "ms", true, fmtMS, pick(fw, func(r FailoverRun) float64 { return r.GapMS }), pick(ref, func(r FailoverRun) float64 { return r.GapMS }), failed, nil),
				newRow(g, fmt.Sprintf("sessions kept of %d", res.Scale.Sessions), "", false, fmtCount,
					pick(fw, func(r FailoverRun) float64 { return float64(r.Kept) }), pick(ref, func(r FailoverRun) float64 { return float64(r.Kept) }), failed,
					&target{"100%", func(f, _ Stat) (bool, string) {
						return f.Min == float64(res.Scale.Sessions), fmt.Sprintf("(worst run kept %.0f)", f.Min)
					}}),
				newRow(g, "longest session stall", "ms", true, fmtMS, pick(fw, func(r FailoverRun) float64 { return r.MaxStallMS }), pick(ref, func(r FailoverRun) float64 { return r.MaxStallMS }), failed, nil),
			)
		}
	}

	rows = append(rows, v3Rows(res)...)

	// Replication and footprint.
	repl := func(stack string, get func(ReplicationRun) float64) (vs []float64, failed int) {
		for _, r := range res.Replication {
			if r.Stack != stack {
				continue
			}
			if r.Error != "" || r.Arrived == 0 {
				failed++
				continue
			}
			vs = append(vs, get(r))
		}
		return vs, failed
	}
	replRowVs := func(fwStack, refStack, group, metric, unit string, lower bool, format func(float64) string, get func(ReplicationRun) float64, tg *target) Row {
		fw, f1 := repl(fwStack, get)
		ref, f2 := repl(refStack, get)
		r := newRow(group, metric, unit, lower, format, fw, ref, f1+f2, tg)
		var notes []string
		for _, st := range []string{fwStack, refStack} {
			inc := 0
			for _, x := range res.Replication {
				if x.Stack == st && x.Error == "" && x.Arrived > 0 && !x.Complete {
					inc++
				}
			}
			if inc > 0 {
				notes = append(notes, fmt.Sprintf("%s incomplete in %d run(s)", st, inc))
			}
		}
		if len(notes) > 0 && strings.Contains(metric, "last flow") {
			r.Verdict += "; " + strings.Join(notes, ", ") + ": the figure is the watch, a lower bound"
		}
		return r
	}
	replRow := func(fwStack, group, metric, unit string, lower bool, format func(float64) string, get func(ReplicationRun) float64, tg *target) Row {
		return replRowVs(fwStack, Reference, group, metric, unit, lower, format, get, tg)
	}
	n := res.Scale.Flows
	g := fmt.Sprintf("replication: %d new TCP flows created at once in the MASTER's kernel", n)
	// Issue #14's targets: into the peer's kernel within 50 ms; into the
	// external cache no later than conntrackd into its own.
	lagInject := &target{"≤ 50 ms", func(f, _ Stat) (bool, string) { return f.Median <= 50, fmt.Sprintf("by %.0f ms", f.Median-50) }}
	lagCache := &target{"≤ reference", func(f, r Stat) (bool, string) {
		if r.N == 0 {
			return f.Max <= 100, fmt.Sprintf("by %.0f ms (worst run, no reference: ≤ 100 ms)", f.Max-100)
		}
		return f.Median <= r.Median, fmt.Sprintf("(%.1fx reference)", f.Median/r.Median)
	}}
	missTarget := &target{"0", func(f, _ Stat) (bool, string) { return f.Max == 0, fmt.Sprintf("(up to %.0f missing)", f.Max) }}
	rate := func(r ReplicationRun) float64 { return r.FlowsPerSec }
	lag := func(r ReplicationRun) float64 { return r.LastLagMS }
	missing := func(r ReplicationRun) float64 { return float64(r.Missing) }
	creating := func(r ReplicationRun) float64 { return r.InjectMS }
	fromStart := func(r ReplicationRun) float64 { return r.InjectMS + r.LastLagMS }
	// Issue #14: the daemon must not slow the forwarding path. Both nodes
	// share the machine's cores in the lab, so the receiver's work (on a
	// real pair: the other machine) weighs on the creation too: the rows
	// below compare like with like as well. notSlower: fwpair's median no
	// higher than the reference's.
	notSlower := &target{"≤ reference", func(f, r Stat) (bool, string) {
		return r.N == 0 || f.Median <= r.Median, fmt.Sprintf("(%.2fx reference)", f.Median/r.Median)
	}}
	rows = append(rows,
		replRow(FWPair, g, "creating the flows in fw1's kernel (the stack listening)", "ms", true, fmtMS, creating, notSlower),
		replRow(FWPairCache, g, "creating the flows in fw1's kernel (both receivers keep an external cache)", "ms", true, fmtMS, creating, notSlower),
		replRow(FWPair, g, "flows/s into the peer (fwpair: its kernel, direct inject)", "/s", false, fmtRate, rate, nil),
		replRow(FWPair, g, "last flow at the peer after creation", "ms", true, fmtMS, lag, lagInject),
		replRow(FWPair, g, "flows missing when the watch ended", "", true, fmtCount, missing, missTarget),
		replRow(FWPairCache, g, "flows/s into the peer's cache (fwpair: direct_inject=false)", "/s", false, fmtRate, rate, nil),
		replRow(FWPairCache, g, "last flow in the peer's cache after creation (direct_inject=false)", "ms", true, fmtMS, lag, lagCache),
		replRow(FWPairCache, g, "flows missing when the watch ended (direct_inject=false)", "", true, fmtCount, missing, missTarget),
		// The lag after creation depends on how much the receiver slowed
		// the creation on the shared cores; from the start of the burst
		// it does not.
		replRow(FWPairCache, g, "last flow in the peer's cache from the start of the burst (both external cache)", "ms", true, fmtMS, fromStart, nil),
	)
	recvCPU := func(r ReplicationRun) float64 { return r.RecvCPUPer100k }
	injectRef := hasRepl(res, ReferenceInject)
	if injectRef {
		// Both write every received state into the kernel, so both pay
		// its insert cost: the fair comparison for the default mode.
		rows = append(rows,
			replRowVs(FWPair, ReferenceInject, g, "creating the flows in fw1's kernel (both receivers inject into the kernel)", "ms", true, fmtMS, creating, notSlower),
			replRowVs(FWPair, ReferenceInject, g, "last flow in the peer's kernel after creation (reference: conntrackd DisableExternalCache on)", "ms", true, fmtMS, lag, lagInject),
			replRowVs(FWPair, ReferenceInject, g, "last flow in the peer's kernel from the start of the burst (both injecting)", "ms", true, fmtMS, fromStart, nil),
			replRowVs(FWPair, ReferenceInject, g, "flows missing in the peer's kernel when the watch ended (reference: conntrackd DisableExternalCache on)", "", true, fmtCount, missing, missTarget),
		)
	}
	g = fmt.Sprintf("footprint at %d replicated entries", n)
	rows = append(rows,
		replRow(FWPairCache, g, "receiver RSS per cached entry (fwpair: direct_inject=false)", "B", true, fmtBytes, func(r ReplicationRun) float64 { return r.ReceiverPerEntry },
			&target{"≤ 300 B", func(f, _ Stat) (bool, string) { return f.Median <= 300, fmt.Sprintf("by %.0f B", f.Median-300) }}),
		replRow(FWPair, g, "receiver RSS per entry (fwpair default: kept in the kernel only)", "B", true, fmtBytes, func(r ReplicationRun) float64 { return r.ReceiverPerEntry }, nil),
		replRow(FWPair, g, "sender RSS per entry (internal cache)", "B", true, fmtBytes, func(r ReplicationRun) float64 { return r.SenderPerEntry },
			&target{"≤ 300 B", func(f, _ Stat) (bool, string) { return f.Median <= 300, fmt.Sprintf("by %.0f B", f.Median-300) }}),
		replRow(FWPair, g, "sender CPU per 100k replicated flows", "s", true, fmtSec, func(r ReplicationRun) float64 { return r.SenderCPUPer100k }, halfOfRef),
		replRow(FWPairCache, g, "receiver CPU per 100k replicated flows (fwpair: direct_inject=false)", "s", true, fmtSec, recvCPU, halfOfRef),
	)
	if injectRef {
		rows = append(rows, replRowVs(FWPair, ReferenceInject, g, "receiver CPU per 100k replicated flows, into the kernel (reference: conntrackd DisableExternalCache on)", "s", true, fmtSec, recvCPU, notSlower))
	} else {
		rows = append(rows, replRow(FWPair, g, "receiver CPU per 100k replicated flows (fwpair: inject into the kernel; reference: external cache)", "s", true, fmtSec, recvCPU, nil))
	}
	if hasRepl(res, FWPairKeyed) {
		rows = append(rows,
			replRow(FWPairKeyed, g, "sender CPU per 100k replicated flows (fwpair: keyed sync, HMAC-SHA256)", "s", true, fmtSec, func(r ReplicationRun) float64 { return r.SenderCPUPer100k }, nil),
			replRow(FWPairKeyed, g, "receiver CPU per 100k replicated flows (fwpair: keyed sync, HMAC-SHA256)", "s", true, fmtSec, func(r ReplicationRun) float64 { return r.RecvCPUPer100k }, nil),
		)
	}

	// Commit, from the failovers.
	var kern, kernL []float64
	for _, k := range res.Kernel {
		if k.Error != "" {
			continue
		}
		if k.Listener {
			kernL = append(kernL, k.PerSec)
		} else {
			kern = append(kern, k.PerSec)
		}
	}
	limit := stat(kern)
	commits := func(stack string, get func(FailoverRun) float64) (vs []float64, failed int) {
		for _, f := range res.Failover {
			if f.Stack != stack {
				continue
			}
			// A commit that gave up (0 entries) counts: it is what the
			// sessions met.
			if f.Error != "" || f.CommitMS <= 0 {
				failed++
				continue
			}
			vs = append(vs, get(f))
		}
		return vs, failed
	}
	commitRow := func(metric, unit string, lower bool, format func(float64) string, get func(FailoverRun) float64, tg *target) Row {
		fw, f1 := commits(FWPairCache, get)
		ref, f2 := commits(Reference, get)
		return newRow(fmt.Sprintf("commit of the external cache (%d+ entries) on takeover; fwpair with direct_inject=false, graceful strict failovers; reference: all its failovers", n), metric, unit, lower, format, fw, ref, f1+f2, tg)
	}
	crate := func(f FailoverRun) float64 { return float64(f.CommitEntries) / (f.CommitMS / 1000) }
	rows = append(rows,
		commitRow("commit rate", "/s", false, fmtRate, crate, &target{"≥ 3x reference and ≥ 70% of the kernel limit", func(f, r Stat) (bool, string) {
			ok3 := r.N == 0 || f.Median >= 3*r.Median
			ok70 := limit.N == 0 || f.Median >= 0.7*limit.Median
			var miss []string
			if !ok3 {
				miss = append(miss, fmt.Sprintf("%.1fx reference instead of 3x", f.Median/r.Median))
			}
			if !ok70 {
				miss = append(miss, fmt.Sprintf("%.0f%% of the kernel limit instead of 70%%", 100*f.Median/limit.Median))
			}
			return ok3 && ok70, strings.Join(miss, ", ")
		}}),
		commitRow("commit duration", "ms", true, fmtMS, func(f FailoverRun) float64 { return f.CommitMS }, nil),
		commitRow("entries committed", "", false, fmtCount, func(f FailoverRun) float64 { return float64(f.CommitEntries) }, nil),
		commitRow("commit done relative to VIPs up (< 0: before)", "ms", true, fmtMS, func(f FailoverRun) float64 { return f.CommitVsVIPsMS },
			&target{"< 0 (state before traffic)", func(f, _ Stat) (bool, string) { return f.Max < 0, fmt.Sprintf("(worst run %+.0f ms)", f.Max) }}),
	)
	{
		fw, f1 := by(FWPairCache, Strict, Term)
		ref, f2 := by(Reference, Strict, Term)
		kept := func(r FailoverRun) float64 { return float64(r.Kept) }
		rows = append(rows, newRow(rows[len(rows)-1].Group, fmt.Sprintf("sessions kept of %d, graceful strict (fwpair: direct_inject=false)", res.Scale.Sessions), "", false, fmtCount,
			pick(fw, kept), pick(ref, kept), f1+f2, &target{"100%", func(f, _ Stat) (bool, string) {
				return f.Min == float64(res.Scale.Sessions), fmt.Sprintf("(worst run kept %.0f)", f.Min)
			}}))
	}
	if limit.N > 0 {
		fw, _ := commits(FWPairCache, crate)
		ref, _ := commits(Reference, crate)
		pct := func(vs []float64) []float64 {
			var out []float64
			for _, v := range vs {
				out = append(out, 100*v/limit.Median)
			}
			return out
		}
		rows = append(rows, newRow(rows[len(rows)-1].Group, "commit rate as % of the kernel limit", "%", false, fmtPct, pct(fw), pct(ref), 0, nil))
	}
	g = "kernel: batched ctnetlink creates (ctsync, 1024 per write, errors only), context"
	rows = append(rows,
		newRow(g, "kernel limit, no listener", "/s", false, fmtRate, kern, nil, 0, nil),
		newRow(g, "kernel limit, one event listener attached", "/s", false, fmtRate, kernL, nil, 0, nil),
	)
	for i := len(rows) - 2; i < len(rows); i++ {
		rows[i].Verdict = "the physical ceiling for a commit on this machine"
	}
	rows = append(rows, millionRows(res)...)
	return rows
}

var halfOfRef = &target{"≤ ½ reference", func(f, r Stat) (bool, string) {
	if r.N == 0 {
		return true, ""
	}
	return f.Median <= r.Median/2, fmt.Sprintf("(%.0f%% of reference)", 100*f.Median/r.Median)
}}

// Table writes the comparison as a Markdown table.
func (res *Results) Table(w io.Writer) {
	fmt.Fprintf(w, "fwpair vs keepalived + conntrackd: %s scale (%d flows, %d sessions, %d failover reps, %d replication reps), Linux %s, %d CPUs, load average %.1f at start and %.1f at end, %s; %s; %s; run took %.0f s. Cells: median (min–max).\n\n",
		res.Scale.Name, res.Scale.Flows, res.Scale.Sessions, res.Scale.Reps, res.Scale.ReplReps, res.Host.Kernel, res.Host.CPUs, res.Host.LoadStart, res.Host.LoadEnd, res.Host.Go, res.Host.Keepalived, res.Host.Conntrackd, res.Seconds)
	if res.Note != "" {
		fmt.Fprintf(w, "Note: %s\n\n", res.Note)
	}
	fmt.Fprintln(w, "| measure | fwpair | reference | ratio | verdict |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---|")
	group := ""
	for _, r := range res.Rows {
		if r.Group != group {
			group = r.Group
			fmt.Fprintf(w, "| **%s** | | | | |\n", group)
		}
		ratio := "–"
		if r.Ratio != 0 {
			ratio = fmt.Sprintf("%.2f", r.Ratio)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", r.Metric, r.cell(r.FWPair), r.cell(r.Reference), ratio, r.Verdict)
	}
	var errs []string
	for _, f := range res.Failover {
		if f.Error != "" {
			errs = append(errs, fmt.Sprintf("failover %s %s %s rep %d: %s", f.Stack, f.Mode, f.Fault, f.Rep, firstLine(f.Error)))
		}
	}
	for _, r := range res.Replication {
		if r.Error != "" {
			errs = append(errs, fmt.Sprintf("replication %s rep %d: %s", r.Stack, r.Rep, firstLine(r.Error)))
		}
	}
	for _, k := range res.Kernel {
		if k.Error != "" {
			errs = append(errs, fmt.Sprintf("kernel listener=%v: %s", k.Listener, firstLine(k.Error)))
		}
	}
	if len(errs) > 0 {
		fmt.Fprintln(w, "\nRuns that failed (left out of the figures):")
		for _, e := range errs {
			fmt.Fprintln(w, "- "+e)
		}
	}
}

// Errors counts the runs that ended in an error.
func (res *Results) Errors() int {
	n := 0
	for _, f := range res.Failover {
		if f.Error != "" {
			n++
		}
	}
	for _, r := range res.Replication {
		if r.Error != "" {
			n++
		}
	}
	for _, k := range res.Kernel {
		if k.Error != "" {
			n++
		}
	}
	if m := res.Million; m != nil && !m.Passed() {
		n++
	}
	return n
}

// WriteJSON writes the raw figures.
func (res *Results) WriteJSON(path string) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
