package appliance

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fwpair/fwpair/appliance/api"
	"github.com/fwpair/fwpair/vrrp"
)

// This file is the one place where the two engines meet. The order of the
// MASTER transition is what keeps established connections alive:
//
//  1. the VRRP engine already advertises as MASTER (adverts never wait);
//  2. beforeMaster commits the replicated connections into the kernel,
//     bounded by sync.commit_timeout;
//  3. the VRRP engine adds the VIPs and sends gratuitous ARP: traffic is
//     attracted only now, so no established flow meets an empty table;
//  4. afterTransition queues the follow-up, off the critical path: flush
//     the now stale external cache, resync the internal cache from the
//     kernel, bulk-send it to the peer, then the operator's hook.
//
// BACKUP: VIPs removed (by the engine), purge of this node's entries
// scheduled, resync requested from the new MASTER. FAULT: VIPs removed,
// purge scheduled. Follow-ups run one at a time in transition order, a
// newer transition superseding an older one's sync steps (followup.go).
//
// The commit timeout (sync.commit_timeout) has one owner: the sync
// engine's Commit applies it (ctsync.Config.CommitTimeout).

// beforeMaster is vrrp.Callbacks.BeforeMaster.
func (d *Daemon) beforeMaster(ctx context.Context, t vrrp.Transition) error {
	rec := &api.Transition{From: t.From.String(), To: t.To.String(), Reason: t.Reason, At: t.At}
	// Nothing queued for the state this node leaves may run from now on
	// (a BACKUP's purge, a resync request).
	d.followUps.supersede()
	var err error
	if d.sync != nil {
		// From now on this kernel's entries are the live ones: the peer's
		// states no longer overwrite them.
		d.sync.SetMaster(true)
	}
	if d.sync != nil && !d.sync.DirectInject() {
		start := time.Now()
		var res api.CommitResult
		res, err = d.sync.Commit(ctx)
		step := api.Step{Name: "commit", Seconds: time.Since(start).Seconds()}
		if err != nil {
			step.Error = err.Error()
			if errors.Is(err, context.DeadlineExceeded) {
				d.log.Warn("commit timed out: taking the VIPs anyway", "timeout", d.config().Sync.CommitTimeout)
			}
		}
		rec.Steps = append(rec.Steps, step)
		rec.CommitEntries = res.Created + res.Updated
		rec.CommitFailed = res.Failed
		rec.CommitSeconds = step.Seconds
		d.metrics.observeCommit(step.Seconds)
		d.log.Info("committed external cache before taking the VIPs",
			"created", res.Created, "updated", res.Updated, "failed", sumMap(res.Failed), "seconds", step.Seconds)
	} else if d.sync != nil {
		rec.Steps = append(rec.Steps, api.Step{Name: "commit (direct inject: already in the kernel)"})
	}
	d.mu.Lock()
	d.last = rec
	d.mu.Unlock()
	return err
}

// afterTransition is vrrp.Callbacks.AfterTransition.
func (d *Daemon) afterTransition(t vrrp.Transition) {
	d.mu.Lock()
	rec := d.last
	if t.To != vrrp.StateMaster || rec == nil || rec.At != t.At {
		rec = &api.Transition{From: t.From.String(), To: t.To.String(), Reason: t.Reason, At: t.At}
	}
	if t.To == vrrp.StateMaster {
		rec.VIPsSeconds = time.Since(t.At).Seconds()
		step := api.Step{Name: "vips+garp", Seconds: rec.VIPsSeconds - rec.CommitSeconds}
		if !t.VIPsAdded {
			step.Error = "VIPs not added: the group left MASTER"
		}
		rec.Steps = append(rec.Steps, step)
	}
	d.last = rec
	cfg := d.cfg
	d.mu.Unlock()
	if d.sync != nil && t.To != vrrp.StateMaster {
		// At once, not in the follow-up: the new MASTER's states may
		// already be arriving.
		d.sync.SetMaster(false)
	}
	d.metrics.countTransition(t.To.String(), t.Reason)
	d.log.Info("transition", "from", t.From.String(), "to", t.To.String(), "reason", t.Reason,
		"commit_entries", rec.CommitEntries, "commit_seconds", rec.CommitSeconds, "vips_seconds", rec.VIPsSeconds)
	d.notifier.Notify(d.statusLine())

	d.followUps.push(followUp{t: t, rec: rec, cfg: cfg})
}

// followUp does the work that must not delay the VIPs, on the follow-up
// worker: the sync steps unless superseded, then the hook.
func (d *Daemon) followUp(f followUp) {
	t, rec, cfg := f.t, f.rec, f.cfg
	if d.sync != nil {
		step := func(name string, fn func(ctx context.Context) error) {
			start := time.Now()
			var err error
			if !d.followUps.step(f.gen, func(ctx context.Context) { err = fn(ctx) }) {
				d.log.Info("transition step skipped: a newer transition superseded it", "step", name, "to", t.To.String())
				d.mu.Lock()
				rec.Steps = append(rec.Steps, api.Step{Name: name, Error: "skipped: superseded by a newer transition"})
				d.mu.Unlock()
				return
			}
			s := api.Step{Name: name, Seconds: time.Since(start).Seconds()}
			if err != nil {
				s.Error = err.Error()
				d.log.Warn("transition step failed", "step", name, "to", t.To.String(), "err", err)
			}
			d.mu.Lock()
			rec.Steps = append(rec.Steps, s)
			d.mu.Unlock()
		}
		purge := func(context.Context) error { d.sync.SchedulePurge(cfg.Sync.PurgeDelay); return nil }
		switch t.To {
		case vrrp.StateMaster:
			if t.VIPsAdded {
				if !d.sync.DirectInject() {
					step("flush external", func(context.Context) error { return d.sync.Flush("external") })
				}
				step("resync", d.sync.Resync)
				step("bulk send", func(context.Context) error { return d.sync.BulkSend() })
			}
		case vrrp.StateBackup:
			// At start the engine asks the peer for its state by itself and
			// this node owned nothing yet: nothing to purge or request.
			if t.From == vrrp.StateInit {
				break
			}
			// With direct inject the peer's states live in this kernel: a
			// purge would delete them.
			if !d.sync.DirectInject() {
				step("schedule purge", purge)
			}
			step("request resync", func(context.Context) error { return d.sync.RequestResync() })
		case vrrp.StateFault:
			if t.From != vrrp.StateInit && !d.sync.DirectInject() {
				step("schedule purge", purge)
			}
		}
	}
	d.mu.Lock()
	steps := make([]any, 0, 2*len(rec.Steps)+2)
	steps = append(steps, "to", t.To.String())
	for _, st := range rec.Steps {
		steps = append(steps, st.Name, fmt.Sprintf("%.3fs", st.Seconds))
	}
	d.mu.Unlock()
	d.log.Info("transition steps done", steps...)
	// Never cancelled, superseded or not, stopping or not: bounded by
	// hooks.timeout alone.
	d.runHook(context.Background(), d.log, cfg.Hooks.OnTransition, cfg.Hooks.Timeout, cfg.Node, t.From.String(), t.To.String(), t.Reason)
}

func sumMap(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
