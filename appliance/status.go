package appliance

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"

	"github.com/fwpair/fwpair/appliance/api"
)

// Status is the node's status for the control API.
func (d *Daemon) Status() api.Status {
	cfg := d.config()
	s := api.Status{Node: cfg.Node, Version: d.version, StartedAt: d.started}
	if d.vrrp != nil {
		st := d.vrrp.Status()
		v := &api.VRRPStatus{Group: cfg.VRRP.Group, GroupState: st.State.String(), PartialPartition: st.Partition}
		for _, in := range st.Instances {
			inst := api.Instance{
				Name:            in.Name,
				Interface:       in.Interface,
				VRID:            int(in.VRID),
				State:           in.State.String(),
				Priority:        int(in.Priority),
				AdvertsSent:     in.Counters.AdvertsSent,
				AdvertsReceived: in.Counters.AdvertsReceived,
				Discarded:       in.Counters.Discarded,
			}
			for _, vip := range in.VIPs {
				inst.VIPs = append(inst.VIPs, vip.Prefix.String())
			}
			v.Instances = append(v.Instances, inst)
		}
		s.VRRP = v
	}
	if d.sync != nil {
		st := d.sync.Status()
		s.Sync = &st
	}
	s.Ready, s.ReadyReason = d.ready.get()
	d.mu.Lock()
	if d.last != nil {
		t := *d.last
		t.Steps = append([]api.Step(nil), d.last.Steps...)
		s.LastTransition = &t
	}
	d.mu.Unlock()
	return s
}

// Stats returns every counter.
func (d *Daemon) Stats() api.Stats {
	var out api.Stats
	if d.vrrp != nil {
		out.VRRP = map[string]uint64{}
		st := d.vrrp.Status()
		for _, in := range st.Instances {
			c := in.Counters
			p := in.Name + "."
			out.VRRP[p+"adverts_sent"] = c.AdvertsSent
			out.VRRP[p+"adverts_received"] = c.AdvertsReceived
			out.VRRP[p+"priority_zero_sent"] = c.PriorityZeroSent
			out.VRRP[p+"priority_zero_received"] = c.PriorityZeroReceived
			out.VRRP[p+"send_errors"] = c.SendErrors
			out.VRRP[p+"address_list_mismatch"] = c.AddressListMismatch
			out.VRRP[p+"vip_failures"] = c.VIPFailures
			for r, n := range c.Discarded {
				out.VRRP[p+"discarded_"+r] = n
			}
		}
		for _, ifc := range st.Interfaces {
			for r, n := range ifc.Counters.Discarded {
				out.VRRP[ifc.Key()+".discarded_"+r] = n
			}
		}
	}
	if d.sync != nil {
		out.Sync = d.sync.Stats()
	}
	return out
}

func (d *Daemon) needSync() error {
	if d.sync == nil {
		return fmt.Errorf("%w: no [sync] section in %s: the sync engine is not running", ErrUnavailable, d.config().File)
	}
	return nil
}

// Cache lists the internal or external cache.
func (d *Daemon) Cache(which string) (api.Cache, error) {
	if err := d.needSync(); err != nil {
		return api.Cache{}, err
	}
	entries, err := d.sync.Cache(which)
	return api.Cache{Which: which, Entries: entries}, err
}

// Commit commits the external cache into the kernel (fwpairctl commit).
func (d *Daemon) Commit(ctx context.Context) (api.CommitResult, error) {
	if err := d.needSync(); err != nil {
		return api.CommitResult{}, err
	}
	// The engine bounds the commit by sync.commit_timeout.
	res, err := d.sync.Commit(ctx)
	if err == nil {
		d.metrics.observeCommit(res.Seconds)
	}
	return res, err
}

// Resync reloads the internal cache from the kernel.
func (d *Daemon) Resync(ctx context.Context) error {
	if err := d.needSync(); err != nil {
		return err
	}
	return d.sync.Resync(ctx)
}

// Flush empties the internal, external or both caches.
func (d *Daemon) Flush(which string) error {
	if err := d.needSync(); err != nil {
		return err
	}
	return d.sync.Flush(which)
}

// Bulk sends the internal cache to the peer.
func (d *Daemon) Bulk() error {
	if err := d.needSync(); err != nil {
		return err
	}
	return d.sync.BulkSend()
}

// RequestResync asks the peer for its whole state.
func (d *Daemon) RequestResync() error {
	if err := d.needSync(); err != nil {
		return err
	}
	return d.sync.RequestResync()
}

// ParseLevel maps a config or CLI level name to a slog level.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%w: log level %q is not debug, info, warn or error", ErrBadRequest, s)
}

// SetLogLevel changes the log level at run time.
func (d *Daemon) SetLogLevel(level string) error {
	l, err := ParseLevel(level)
	if err != nil {
		return err
	}
	if d.level == nil {
		return fmt.Errorf("%w: the log level is fixed in this process", ErrUnavailable)
	}
	d.level.Set(l)
	d.log.Info("log level changed", "level", l.String())
	return nil
}

// reloadOnHangup is a task of Run: each value from Options.Hangup
// (SIGHUP) reads Options.ConfigPath again and applies it.
func (d *Daemon) reloadOnHangup(ctx context.Context) {
	if d.hangup == nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.hangup:
			d.reloadFile(d.configPath)
		}
	}
}

// reloadFile loads path and applies it with Reload, logging the outcome;
// a file that does not load leaves the running configuration as it is.
func (d *Daemon) reloadFile(path string) {
	next, err := LoadConfig(path)
	if err != nil {
		d.log.Error("reload refused: keeping the running configuration", "err", err)
		return
	}
	applied, restart, err := d.Reload(next)
	if err != nil {
		d.log.Error("reload failed: keeping the running configuration", "err", err)
		return
	}
	d.log.Info("configuration reloaded", "applied", strings.Join(applied, ","), "needs_restart", strings.Join(restart, ","))
	if len(restart) > 0 {
		d.log.Warn("some changes take effect only after a restart", "keys", strings.Join(restart, ","))
	}
}

// Reload applies a new configuration read on SIGHUP. Safe changes
// (priorities, log level, hook) apply live; everything else is reported as
// needing a restart and the running configuration is kept for it.
func (d *Daemon) Reload(next *Config) (applied, needRestart []string, err error) {
	cur := d.config()
	if next.Log.Level != cur.Log.Level {
		if err := d.SetLogLevel(next.Log.Level); err == nil {
			applied = append(applied, "log.level")
		}
	}
	if next.Log.Format != cur.Log.Format {
		needRestart = append(needRestart, "log.format")
	}
	if next.Control != cur.Control {
		needRestart = append(needRestart, "control.socket")
	}
	if next.Metrics != cur.Metrics {
		needRestart = append(needRestart, "metrics.listen")
	}
	if next.Hooks != cur.Hooks {
		applied = append(applied, "hooks")
	}
	if (next.VRRP == nil) != (cur.VRRP == nil) {
		needRestart = append(needRestart, "[vrrp]")
	} else if next.VRRP != nil {
		a, r := d.reloadVRRP(cur.VRRP, next.VRRP)
		applied = append(applied, a...)
		needRestart = append(needRestart, r...)
	}
	authApplied := false
	if (next.Sync == nil) != (cur.Sync == nil) {
		needRestart = append(needRestart, "[sync]")
	} else if next.Sync != nil {
		if !reflect.DeepEqual(cur.Sync.Filter, next.Sync.Filter) {
			if err := d.sync.SetFilter(next.Sync.Filter); err != nil {
				needRestart = append(needRestart, "sync.filter ("+err.Error()+")")
			} else {
				applied = append(applied, "sync.filter")
			}
		}
		authApplied = reloadSyncAuth(d.sync, cur.Sync, next.Sync, &applied, &needRestart)
		rest := *next.Sync
		rest.Filter = cur.Sync.Filter
		rest.Auth = cur.Sync.Auth
		if !reflect.DeepEqual(*cur.Sync, rest) {
			needRestart = append(needRestart, "sync")
		}
	}
	// The running configuration takes what was applied; whatever needs a
	// restart stays as it runs until then.
	merged := *cur
	merged.Log.Level, merged.Hooks, merged.Node = next.Log.Level, next.Hooks, next.Node
	if cur.Sync != nil && next.Sync != nil && (slices.Contains(applied, "sync.filter") || authApplied) {
		s := *cur.Sync
		if slices.Contains(applied, "sync.filter") {
			s.Filter = next.Sync.Filter
		}
		if authApplied {
			s.Auth = next.Sync.Auth
		}
		merged.Sync = &s
	}
	if cur.VRRP != nil && next.VRRP != nil {
		v := *cur.VRRP
		v.GARPBurst, v.GARPSpacing, v.GARPRefresh = next.VRRP.GARPBurst, next.VRRP.GARPSpacing, next.VRRP.GARPRefresh
		v.Instances = append([]InstanceConfig(nil), cur.VRRP.Instances...)
		for i := range v.Instances {
			if i < len(next.VRRP.Instances) && next.VRRP.Instances[i].Name == v.Instances[i].Name {
				v.Instances[i].Priority = next.VRRP.Instances[i].Priority
			}
		}
		merged.VRRP = &v
	}
	d.mu.Lock()
	d.cfg = &merged
	d.mu.Unlock()
	return applied, needRestart, nil
}

func (d *Daemon) reloadVRRP(cur, next *VRRPConfig) (applied, needRestart []string) {
	if len(cur.Instances) != len(next.Instances) {
		return nil, []string{"vrrp.instance (added or removed)"}
	}
	for i := range cur.Instances {
		c, n := cur.Instances[i], next.Instances[i]
		key := fmt.Sprintf("vrrp.instance[%d]", i)
		if c.Priority != n.Priority {
			if err := d.vrrp.SetPriority(c.Name, n.Priority); err != nil {
				needRestart = append(needRestart, key+".priority")
			} else {
				applied = append(applied, key+".priority")
			}
		}
		n.Priority = c.Priority
		if !reflect.DeepEqual(c, n) {
			needRestart = append(needRestart, key)
		}
	}
	if cur.GARPBurst != next.GARPBurst || cur.GARPSpacing != next.GARPSpacing || cur.GARPRefresh != next.GARPRefresh {
		d.vrrp.SetGARP(vrrpConfig(next).GARP)
		applied = append(applied, "vrrp.garp_*")
	}
	return applied, needRestart
}
