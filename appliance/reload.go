package appliance

// Reload: SIGHUP (systemctl reload) and the control API apply a new
// configuration file; what can change live is applied, the rest is
// logged as needing a restart.

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

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
		v.GARP = next.VRRP.GARP
		v.Instances = slices.Clone(cur.VRRP.Instances)
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
	for _, k := range []struct {
		key     string
		changed bool
	}{
		{"vrrp.group", cur.Group != next.Group},
		{"vrrp.startup_delay", cur.StartupDelay != next.StartupDelay},
		{"vrrp.realtime_priority", cur.RealtimePriority != next.RealtimePriority},
	} {
		if k.changed {
			needRestart = append(needRestart, k.key)
		}
	}
	if cur.GARP != next.GARP {
		d.vrrp.SetGARP(next.GARP)
		applied = append(applied, "vrrp.garp_*")
	}
	return applied, needRestart
}
