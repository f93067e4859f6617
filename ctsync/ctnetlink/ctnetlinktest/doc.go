// Package ctnetlinktest holds test fixtures for code that reads and writes
// the conntrack table through ctsync/ctnetlink: flow builders, and for
// privileged tests a LinuxKernel bound to a fresh lab namespace, an event
// collector and `conntrack -L` as an oracle independent of the package's
// decoder. It is imported by tests only.
package ctnetlinktest
