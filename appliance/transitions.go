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
//  4. afterTransition, off the critical path: flush the now stale external
//     cache, resync the internal cache from the kernel, bulk-send it to
//     the peer.
//
// BACKUP: VIPs removed (by the engine), purge of this node's entries
// scheduled, resync requested from the new MASTER. FAULT: VIPs removed,
// purge scheduled.

// beforeMaster is vrrp.Hooks.BeforeMaster.
func (d *Daemon) beforeMaster(ctx context.Context, t vrrp.Transition) error {
	rec := &api.Transition{From: t.From.String(), To: t.To.String(), Reason: t.Reason, At: t.At}
	var err error
	if d.sync != nil {
		// From now on this kernel's entries are the live ones: the peer's
		// states no longer overwrite them.
		d.sync.SetMaster(true)
	}
	if d.sync != nil && !d.sync.DirectInject() {
		timeout := d.config().Sync.CommitTimeout
		cctx, cancel := context.WithTimeout(ctx, timeout)
		start := time.Now()
		var res api.CommitResult
		res, err = d.sync.Commit(cctx)
		cancel()
		step := api.Step{Name: "commit", Seconds: time.Since(start).Seconds()}
		if err != nil {
			step.Error = err.Error()
			if errors.Is(err, context.DeadlineExceeded) {
				d.log.Warn("commit timed out: taking the VIPs anyway", "timeout", timeout)
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

// afterTransition is vrrp.Hooks.AfterTransition.
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

	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		d.followUp(t, rec, cfg)
	}()
}

// followUp does the work that must not delay the VIPs.
func (d *Daemon) followUp(t vrrp.Transition, rec *api.Transition, cfg *Config) {
	ctx := d.bgCtx
	if d.sync != nil {
		step := func(name string, fn func() error) {
			start := time.Now()
			err := fn()
			s := api.Step{Name: name, Seconds: time.Since(start).Seconds()}
			if err != nil {
				s.Error = err.Error()
				d.log.Warn("transition step failed", "step", name, "to", t.To.String(), "err", err)
			}
			d.mu.Lock()
			rec.Steps = append(rec.Steps, s)
			d.mu.Unlock()
		}
		switch t.To {
		case vrrp.StateMaster:
			if t.VIPsAdded {
				if !d.sync.DirectInject() {
					step("flush external", func() error { return d.sync.Flush("external") })
				}
				step("resync", func() error { return d.sync.Resync(ctx) })
				step("bulk send", d.sync.BulkSend)
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
				step("schedule purge", func() error { d.sync.SchedulePurge(cfg.Sync.PurgeDelay); return nil })
			}
			step("request resync", d.sync.RequestResync)
		case vrrp.StateFault:
			if t.From != vrrp.StateInit && !d.sync.DirectInject() {
				step("schedule purge", func() error { d.sync.SchedulePurge(cfg.Sync.PurgeDelay); return nil })
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
	runHook(ctx, d.log, cfg.Hooks.OnTransition, cfg.Hooks.Timeout, cfg.Node, t.From.String(), t.To.String(), t.Reason)
}

func sumMap(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
