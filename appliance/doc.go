// Package appliance is the fwpair daemon: it reads and validates the TOML
// configuration, runs the VRRP group and the conntrack sync engine in one
// process, and is the only place that knows both. On every transition to
// MASTER it commits the replicated connections into the kernel before the
// virtual IPs are added, so no established flow meets an empty conntrack
// table. It also serves the control socket used by fwpairctl, Prometheus
// metrics and the systemd notify protocol.
package appliance
