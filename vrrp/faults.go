package vrrp

import (
	"errors"
	"log/slog"
	"time"
)

// faultStatus is what the engine reports about faults between the nodes;
// guarded by Group.mu.
type faultStatus struct {
	partition   string
	partitions  uint64
	preemptHeld bool
}

// SetPreemptHold holds (true) or allows (false) the preemption of a
// lower-priority master, e.g. until this node holds the peer's
// connections. A held group still takes over when no master is heard. It
// may be called before Run; a stopped group refuses it.
func (g *Group) SetPreemptHold(hold bool) error {
	g.mu.Lock()
	g.faults.preemptHeld = hold
	if !g.started {
		g.mu.Unlock()
		return nil
	}
	g.mu.Unlock()
	applied := make(chan struct{})
	select {
	case g.cmds <- func(e *engine, now time.Time) {
		e.machine.SetPreemptHold(hold)
		close(applied)
	}:
		<-applied
		return nil
	case <-g.done:
		return errors.New("vrrp: group stopped")
	}
}

// reportFault logs and records a PartitionChange or PreemptHeld action.
func (e *engine) reportFault(a Action) {
	switch a := a.(type) {
	case PartitionChange:
		e.mu.Lock()
		if a.Partial {
			e.faults.partition = a.Reason
			e.faults.partitions++
		} else {
			e.faults.partition = ""
		}
		e.mu.Unlock()
		if a.Partial {
			e.log.Warn("partial partition: staying BACKUP while the master is still heard on another member",
				"detail", a.Reason)
		} else {
			e.log.Info("partial partition over", "detail", a.Reason)
		}
	case PreemptHeld:
		in := e.insts[a.Instance]
		e.logLimited(slog.LevelInfo, "preempt-held:"+in.cfg.Name,
			"not preempting the lower-priority master: preemption held (this node is not ready)",
			"instance", in.cfg.Name, "their_priority", a.Priority)
	}
}
