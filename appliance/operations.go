package appliance

import (
	"context"
	"fmt"
	"log/slog"
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
