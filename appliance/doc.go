// Package appliance is the fwpair daemon: it reads and validates the TOML
// configuration, runs the VRRP group and the conntrack sync engine in one
// process, and is the only place that knows both. On every transition to
// MASTER it commits the replicated connections into the kernel before the
// virtual IPs are added, so no established flow meets an empty conntrack
// table. It also serves the control socket used by fwpairctl, Prometheus
// metrics and the systemd notify protocol.
//
// # Tasks
//
// New builds the engines (the sync engine opens its channels and
// ctnetlink sockets there; a failure later in New closes them again).
// Daemon.Run owns everything that runs; each task is a goroutine started
// by Run and waited for before Run returns:
//
//   - control: the control socket (control.go), listening before any
//     engine starts, so a second daemon on the same socket fails at once;
//   - metrics: /metrics on metrics.listen (metrics_server.go), its
//     listener also opened before the engines;
//   - follow-ups: the ordered worker for the post-transition sync steps
//     and the operator's hook (followup.go, transitions.go);
//   - sync: the conntrack sync engine (ctsync via sync.go);
//   - vrrp: the VRRP group, whose actuator calls beforeMaster and
//     afterTransition in transition order;
//   - supervise: systemd STATUS= and WATCHDOG=1 (daemon.go);
//   - reload: SIGHUP, i.e. each value of Options.Hangup (reload.go).
//
// READY=1 is sent once both engines have their sockets open. The
// fwpair_ready gauge says more: whether this node could take over now
// (ready.go).
//
// # Stop order
//
// When Run's context ends (SIGTERM, SIGINT) or a task fails, Run stops in
// the order that lets the peer take over at once and loses no state:
//
//  1. vrrp: priority-0 adverts, VIPs removed; its actuator has queued the
//     last transition (to INIT) when it returns. supervise and reload stop
//     with it.
//  2. follow-ups: the queue is drained, not dropped; superseded sync steps
//     are skipped, every hook runs, the last one (the stop itself) to
//     completion within hooks.timeout.
//  3. sync: the engine stops after VRRP so the peer, now MASTER, can still
//     be answered while it takes over; then its channels and ctnetlink
//     sockets are closed (Close).
//  4. control and metrics: last, so that fwpairctl and scrapes see the
//     whole stop.
//
// Nothing is left behind: a privileged test starts and stops a daemon
// in-process and checks that goroutines and file descriptors come back
// to their baseline (lifecycle_linux_test.go).
//
// # Reload
//
// SIGHUP (fwpaird) or Daemon.Reload reads the file again; a file that does
// not validate leaves everything as it runs. Applied live: log.level,
// [hooks] (the next transition's hook uses them), VRRP priorities and the
// garp_* keys, sync.filter and the sync authentication keys. Everything
// else (interfaces, VIPs, sync links and mode, control socket, metrics
// listener, log format) is reported as needing a restart and keeps its
// running value until then.
//
// See docs/architecture.md for the MASTER transition and the failure
// model.
package appliance
