package bench

import (
	"time"

	"github.com/fwpair/fwpair/testenv"
)

// trace returns the echo arrival times of the probe in [from, to] relative
// to zero, for the chart.
func trace(p *testenv.Probe, zero, from, to time.Time) []time.Duration {
	var offsets []time.Duration
	for _, r := range p.Replies(from, to) {
		offsets = append(offsets, r.Sub(zero))
	}
	return offsets
}
