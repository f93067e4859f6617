package bench

import (
	"fmt"
	"html"
	"io"
	"os"
	"strings"
)

// WriteSVG draws the probe's echoes around each failover, one lane per
// stack and scenario (the first successful repetition): a bar where
// traffic flowed, a red gap where it did not, and the moment fw2 held the
// VIPs.
func (res *Results) WriteSVG(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	res.svg(f)
	return f.Close()
}

func (res *Results) svg(w io.Writer) {
	type lane struct {
		label string
		run   *FailoverRun
	}
	var lanes []lane
	xmax := 3000.0
	for _, mode := range res.Scale.Modes {
		for _, fault := range res.Scale.Faults {
			for _, stack := range []string{FWPair, Reference} {
				l := lane{label: fmt.Sprintf("%s · %s · %s", stack, fault, mode)}
				for i := range res.Failover {
					r := &res.Failover[i]
					if r.Stack == stack && r.Mode == mode && r.Fault == fault && r.Error == "" {
						l.run = r
						xmax = max(xmax, r.TakeoverMS+r.GapMS+500)
						break
					}
				}
				lanes = append(lanes, l)
			}
		}
	}
	xmax = min(xmax, 12000)
	const (
		left, right, top, laneH = 230.0, 30.0, 60.0, 34.0
		width                   = 1100.0
		xmin                    = -1000.0
	)
	plotW := width - left - right
	x := func(t float64) float64 { return left + (t-xmin)/(xmax-xmin)*plotW }
	height := top + laneH*float64(len(lanes)) + 60
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="22" font-size="15" font-weight="bold">Traffic through the VIPs around a failover: 10 ms UDP probe echoes (fwpair vs keepalived + conntrackd)</text>`+"\n", left-200)
	fmt.Fprintf(&b, `<text x="%.0f" y="40" fill="#555">bar: echoes arriving; red: no echo for over 40 ms (labelled from 200 ms); black tick: fw2 holds both VIPs; t = 0: the fault on fw1. %d flows synced, %d sessions.</text>`+"\n", left-200, res.Scale.Flows, res.Scale.Sessions)
	// A grid line every second.
	for t := -1000.0; t <= xmax; t += 1000 {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="%s"/>`+"\n", x(t), top-6, x(t), top+laneH*float64(len(lanes)), map[bool]string{true: "#333", false: "#ddd"}[t == 0])
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle" fill="#555">%.0f s</text>`+"\n", x(t), top+laneH*float64(len(lanes))+16, t/1000)
	}
	for i, l := range lanes {
		y := top + laneH*float64(i)
		colour := "#1f77b4"
		if strings.HasPrefix(l.label, Reference) {
			colour = "#ff7f0e"
		}
		if i%2 == 0 {
			fmt.Fprintf(&b, `<rect x="0" y="%.0f" width="%.0f" height="%.0f" fill="#f7f7f7"/>`+"\n", y, width, laneH*2)
		}
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="end">%s</text>`+"\n", left-8, y+laneH/2+4, html.EscapeString(l.label))
		if l.run == nil {
			fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" fill="#999">no successful run</text>`+"\n", left+4, y+laneH/2+4)
			continue
		}
		by, bh := y+8, laneH-16
		pts := l.run.Probe
		// Runs of echoes no more than 40 ms apart make one bar (a loaded
		// machine delays a few echoes by tens of milliseconds).
		segStart := -1.0
		prev := xmin
		flush := func(end float64) {
			if segStart >= 0 {
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", x(segStart), by, max(x(end)-x(segStart), 1), bh, colour)
			}
		}
		for _, p := range pts {
			if p > xmax {
				break
			}
			if segStart < 0 {
				segStart = p
			} else if p-prev > 40 {
				flush(prev)
				gapLabel(&b, x(prev), x(p), by, bh, p-prev)
				segStart = p
			}
			prev = p
		}
		flush(prev)
		// The record ends where the run stopped watching (unknown in
		// older results: no trailing gap drawn then).
		end := min(xmax, l.run.ProbeEndMS)
		if prev < end-40 && len(pts) > 0 {
			gapLabel(&b, x(prev), x(end), by, bh, end-prev)
		}
		tx := x(l.run.TakeoverMS)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black" stroke-width="2"/>`+"\n", tx, y+3, tx, y+laneH-3)
	}
	b.WriteString("</svg>\n")
	_, _ = io.WriteString(w, b.String())
}

func gapLabel(b *strings.Builder, x1, x2, y, h, ms float64) {
	fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#d62728" opacity="0.35"/>`+"\n", x1, y, max(x2-x1, 1), h)
	if ms >= 200 {
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="11" fill="#a00">%.0f ms</text>`+"\n", (x1+x2)/2, y+h-4, ms)
	}
}
