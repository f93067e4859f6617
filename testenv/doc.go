// Package testenv builds fwpair's test and demo environments out of Linux
// network namespaces: throwaway namespaces for privileged tests, and the
// reference lab (the same one etc/node1.toml and etc/node2.toml describe):
//
//	client ── lan0 (192.168.0.0/24, VIP .100) ── fw1 eth0 / fw2 eth0
//	fw1 eth1 / fw2 eth1 ── lan1 (192.168.1.0/24, VIP .100) ── server
//	fw1 eth2 ◄── sync link 10.0.0.0/30 ──► fw2 eth2
//
// Every namespace gets a unique per-run name, is bound under /run/netns so
// the ip, nft and conntrack tools can be used as oracles inside it, and is
// removed when the test (or the lab) ends, also after a failure. Code that
// must run inside a namespace does so on a fresh goroutine locked to its own
// OS thread; that thread is thrown away afterwards, so no goroutine of the
// caller ever ends up in a foreign namespace. Nothing here touches the root
// namespace's interfaces: the bridges live in namespaces of their own.
package testenv
