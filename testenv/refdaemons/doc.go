// Package refdaemons writes the configuration of, starts and stops the
// reference daemons fwpair is measured and tested against: Debian's
// keepalived 2.2.7 and conntrackd 1.4.7, each in a namespace built by
// testenv. The interop tests of ctsync and vrrp and the benchmark's
// reference stack (testenv/bench) all use it, so a config key or a start
// flag lives in one place. It imports only testenv, so that ctsync's and
// vrrp's own tests can import it without a cycle.
package refdaemons
