package appliance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fwpair/fwpair/appliance/api"
	"github.com/fwpair/fwpair/vrrp"
)

// Options carries the daemon's dependencies. Nil fields get defaults.
type Options struct {
	// Logger is the daemon's logger; nil discards.
	Logger *slog.Logger
	// Level is the variable behind Logger's level, changed by
	// `fwpairctl log-level` and SIGHUP. Nil makes log-level refuse.
	Level *slog.LevelVar
	// Registry receives the metrics; nil keeps them unregistered.
	Registry prometheus.Registerer
	// Notifier sends systemd notifications; nil sends none.
	Notifier Notifier
	// Version is reported in status.
	Version string
	// Socket overrides the configured control socket path.
	Socket string
	// Gatherer is what the metrics server (metrics.listen) serves; nil
	// serves no metrics.
	Gatherer prometheus.Gatherer
	// ConfigPath is the file read again on each value from Hangup.
	ConfigPath string
	// Hangup asks for a reload of ConfigPath (SIGHUP); nil never reloads.
	Hangup <-chan os.Signal

	// noControl skips the control socket (simulated tests, where a real
	// socket would keep testing/synctest's clock from advancing).
	noControl bool
	// newVRRP and newSync build the engines; tests replace them.
	newVRRP func(cfg vrrp.Config, opts vrrp.Options) (vrrpGroup, error)
	newSync func(cfg *SyncConfig, own ownAddrs, log *slog.Logger) (syncEngine, error)
	// runHook runs the transition hook; tests replace it.
	runHook func(ctx context.Context, log *slog.Logger, command string, timeout time.Duration, node, from, to, reason string)
}

// vrrpGroup is what the daemon needs of vrrp.Group.
type vrrpGroup interface {
	Run(ctx context.Context) error
	Ready() <-chan struct{}
	Status() vrrp.Status
	SetPriority(name string, priority uint8) error
	SetGARP(c vrrp.GARPConfig)
	SetPreemptHold(hold bool) error
}

// syncEngine is what the daemon needs of the conntrack sync engine; the
// adapter over ctsync.Engine lives in sync.go.
type syncEngine interface {
	Run(ctx context.Context) error
	Ready() <-chan struct{}
	// Commit writes the external cache into the kernel (batched).
	Commit(ctx context.Context) (api.CommitResult, error)
	// Resync reloads the internal cache from the kernel.
	Resync(ctx context.Context) error
	Flush(which string) error
	BulkSend() error
	RequestResync() error
	// SchedulePurge deletes, after delay, the kernel entries this node
	// owned that the new MASTER does not know.
	SchedulePurge(delay time.Duration)
	// DirectInject tells whether received states go straight into the
	// kernel (then there is nothing to commit on takeover).
	DirectInject() bool
	// SetMaster stops (true) or resumes (false) writing the peer's states
	// into the kernel in direct-inject mode.
	SetMaster(master bool)
	// SetFilter applies a new replication filter (reload).
	SetFilter(c FilterConfig) error
	// SetAuthKeys applies rotated sync keys (reload).
	SetAuthKeys(keys [][]byte) error
	Status() api.SyncStatus
	Stats() map[string]uint64
	Cache(which string) ([]api.CacheEntry, error)
	// Close releases the engine's sockets; the daemon calls it once Run
	// has returned, or when New fails after building the engine.
	Close() error
	faultSync // faults.go
}

// ownAddrs are the addresses the sync filter ignores by default.
type ownAddrs struct {
	VIPs     []netip.Prefix
	SyncLink []netip.Prefix
}

// Daemon runs one node: the VRRP group, the sync engine, the control
// socket, metrics and systemd integration.
type Daemon struct {
	log      *slog.Logger
	level    *slog.LevelVar
	notifier Notifier
	version  string
	started  time.Time
	socket   string
	noCtl    bool

	mu   sync.Mutex // guards cfg and last
	cfg  *Config
	last *api.Transition

	vrrp    vrrpGroup
	sync    syncEngine
	metrics *metrics
	ready   readiness // faults.go

	// followUps runs the post-transition work (flush, resync, bulk,
	// hooks) off the critical path, in order (followup.go).
	followUps *followUpQueue
	runHook   func(ctx context.Context, log *slog.Logger, command string, timeout time.Duration, node, from, to, reason string)

	gatherer   prometheus.Gatherer
	configPath string
	hangup     <-chan os.Signal
}

// New builds a daemon from a validated configuration.
func New(cfg *Config, opts Options) (*Daemon, error) {
	d := &Daemon{
		log:      opts.Logger,
		level:    opts.Level,
		notifier: opts.Notifier,
		version:  opts.Version,
		started:  time.Now(),
		socket:   cfg.Control.Socket,
		cfg:      cfg,
		noCtl:    opts.noControl,

		followUps:  newFollowUpQueue(),
		runHook:    opts.runHook,
		gatherer:   opts.Gatherer,
		configPath: opts.ConfigPath,
		hangup:     opts.Hangup,
	}
	if d.runHook == nil {
		d.runHook = runHook
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.notifier == nil {
		d.notifier = discardNotifier{}
	}
	if opts.Socket != "" {
		d.socket = opts.Socket
	}
	d.metrics = newMetrics(d)
	if opts.Registry != nil {
		if err := opts.Registry.Register(d.metrics); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
		if err := opts.Registry.Register(newFaultMetrics(d)); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	newSync := opts.newSync
	if newSync == nil {
		newSync = newCtsyncEngine
	}
	newVRRP := opts.newVRRP
	if newVRRP == nil {
		newVRRP = func(c vrrp.Config, o vrrp.Options) (vrrpGroup, error) { return vrrp.New(c, o) }
	}
	if cfg.Sync != nil {
		eng, err := newSync(cfg.Sync, ownAddresses(cfg), d.log.With("engine", "sync"))
		if err != nil {
			return nil, fmt.Errorf("sync engine: %w", err)
		}
		d.sync = eng
	}
	if cfg.VRRP != nil {
		g, err := newVRRP(cfg.VRRP.Config, vrrp.Options{
			Logger:           d.log.With("engine", "vrrp"),
			RealtimePriority: cfg.VRRP.RealtimePriority,
			Callbacks: vrrp.Callbacks{
				BeforeMaster:     d.beforeMaster,
				AfterTransition:  d.afterTransition,
				BeforeReannounce: d.beforeReannounce,
			},
		})
		if err != nil {
			if d.sync != nil {
				d.sync.Close()
			}
			return nil, fmt.Errorf("vrrp: %w", err)
		}
		if holdsPreemption(cfg) {
			if err := g.SetPreemptHold(true); err != nil {
				return nil, fmt.Errorf("vrrp: %w", err)
			}
		}
		d.vrrp = g
	}
	return d, nil
}

func ownAddresses(cfg *Config) ownAddrs {
	var o ownAddrs
	if cfg.VRRP != nil {
		for _, in := range cfg.VRRP.Instances {
			for _, p := range in.VIPs {
				o.VIPs = append(o.VIPs, netip.PrefixFrom(p.Prefix.Addr(), p.Prefix.Addr().BitLen()))
			}
		}
	}
	if cfg.Sync != nil {
		for _, l := range cfg.Sync.Channels {
			if l.Local.IsValid() {
				o.SyncLink = append(o.SyncLink, netip.PrefixFrom(l.Local, l.Local.BitLen()))
			}
			if l.Peer.IsValid() {
				o.SyncLink = append(o.SyncLink, netip.PrefixFrom(l.Peer, l.Peer.BitLen()))
			}
		}
	}
	return o
}

// Run runs the node until ctx ends, then stops in the order that lets the
// peer take over at once. It owns every task of the node and returns only
// when all have returned and every socket is closed; doc.go tells the
// order and why.
func (d *Daemon) Run(ctx context.Context) error {
	var ctl *controlServer
	if !d.noCtl {
		var err error
		if ctl, err = newControlServer(d.socket, d.log, d); err != nil {
			d.closeSync()
			return err
		}
	}
	var msrv *metricsServer
	if addr := d.config().Metrics.Listen; addr != "" && d.gatherer != nil {
		var err error
		if msrv, err = newMetricsServer(addr, d.gatherer, d.log); err != nil {
			if ctl != nil {
				ctl.close()
			}
			d.closeSync()
			return err
		}
	}
	ctlCtx, ctlCancel := context.WithCancel(context.Background())
	syncCtx, syncCancel := context.WithCancel(context.Background())
	vrrpCtx, vrrpCancel := context.WithCancel(ctx)
	defer ctlCancel()
	defer syncCancel()
	defer vrrpCancel()

	var (
		wg      sync.WaitGroup
		errMu   sync.Mutex
		runErrs []error
	)
	fail := func(name string, err error) {
		if err == nil || errors.Is(err, context.Canceled) {
			return
		}
		errMu.Lock()
		runErrs = append(runErrs, fmt.Errorf("%s: %w", name, err))
		errMu.Unlock()
		d.log.Error("task failed, stopping", "task", name, "err", err)
		vrrpCancel()
	}
	// start runs a task on its own goroutine; the returned channel closes
	// when it has returned, so Run can stop the tasks in order.
	start := func(name string, ctx context.Context, run func(context.Context) error) <-chan struct{} {
		done := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done)
			fail(name, run(ctx))
		}()
		return done
	}
	wait := func(done <-chan struct{}) {
		if done != nil {
			<-done
		}
	}

	if ctl != nil {
		start("control", ctlCtx, ctl.Run)
	}
	if msrv != nil {
		start("metrics", ctlCtx, msrv.Run)
	}
	followUpsDone := start("follow-ups", context.Background(), func(context.Context) error { d.runFollowUps(); return nil })
	var ready []<-chan struct{}
	var syncDone, vrrpDone <-chan struct{}
	if d.sync != nil {
		syncDone = start("sync", syncCtx, d.sync.Run)
		ready = append(ready, d.sync.Ready())
	}
	if d.vrrp != nil {
		vrrpDone = start("vrrp", vrrpCtx, d.delayedVRRP(d.config().VRRP.StartupDelay))
		ready = append(ready, d.vrrp.Ready())
	}

	// READY=1 only once every engine has its sockets open.
	allReady := true
	for _, r := range ready {
		select {
		case <-r:
		case <-vrrpCtx.Done():
			allReady = false
		}
		if !allReady {
			break
		}
	}
	if allReady {
		d.log.Info("fwpaird ready", "node", d.config().Node, "socket", d.socket, "version", d.version)
		d.notifier.Notify(daemon.SdNotifyReady + "\n" + d.statusLine())
	}

	supervised := start("supervise", vrrpCtx, func(ctx context.Context) error { d.supervise(ctx); return nil })
	reloads := start("reload", vrrpCtx, func(ctx context.Context) error { d.reloadOnHangup(ctx); return nil })
	readied := start("readiness", vrrpCtx, func(ctx context.Context) error { d.watchReadiness(ctx); return nil })

	<-vrrpCtx.Done()
	d.notifier.Notify(daemon.SdNotifyStopping + "\nSTATUS=stopping")
	d.log.Info("stopping: VRRP first (priority-0 adverts, VIPs removed)")
	wait(vrrpDone)
	wait(supervised)
	wait(readied)
	wait(reloads)
	// Every transition is queued now: the worker runs what is left,
	// the last hook included, then returns.
	d.followUps.close()
	wait(followUpsDone)
	syncCancel()
	wait(syncDone)
	d.closeSync()
	ctlCancel()
	wg.Wait()
	d.log.Info("stopped")
	return errors.Join(runErrs...)
}

// closeSync releases the sync engine's sockets once it no longer runs.
func (d *Daemon) closeSync() {
	if d.sync == nil {
		return
	}
	if err := d.sync.Close(); err != nil {
		d.log.Warn("closing the sync engine", "err", err)
	}
}

// supervise keeps systemd informed: STATUS= on every state change and
// WATCHDOG=1 while the engines answer.
func (d *Daemon) supervise(ctx context.Context) {
	interval := time.Second
	watchdog, _ := daemon.SdWatchdogEnabled(false)
	if watchdog > 0 && watchdog/2 < interval {
		interval = watchdog / 2
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	last := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		line := d.statusLine() // reads both engines: proves they answer
		if line != last {
			d.notifier.Notify(line)
			last = line
		}
		if watchdog > 0 {
			d.notifier.Notify(daemon.SdNotifyWatchdog)
		}
	}
}

func (d *Daemon) statusLine() string {
	var parts []string
	if d.vrrp != nil {
		parts = append(parts, "vrrp "+d.vrrp.Status().State.String())
	}
	if d.sync != nil {
		s := d.sync.Status()
		peer := "peer down"
		if s.PeerAlive {
			peer = "peer alive"
		}
		parts = append(parts, fmt.Sprintf("sync %s, %s, %d internal, %d external", s.Mode, peer, s.InternalEntries, s.ExternalEntries))
	}
	return "STATUS=" + strings.Join(parts, "; ")
}

func (d *Daemon) config() *Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// delayedVRRP is the VRRP task, started after vrrp.startup_delay (as
// keepalived's vrrp_startup_delay): until then the node sends no advert and
// holds no VIP, so a node that just booted cannot take the group before its
// interfaces and routes have settled. READY=1 follows the VRRP start.
func (d *Daemon) delayedVRRP(delay time.Duration) func(context.Context) error {
	if delay <= 0 {
		return d.vrrp.Run
	}
	return func(ctx context.Context) error {
		d.log.Info("VRRP starts after vrrp.startup_delay", "delay", delay)
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil
		}
		return d.vrrp.Run(ctx)
	}
}
