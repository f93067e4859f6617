package appliance

// ConfigKey documents one key of fwpair.toml. ConfigKeys is the source of
// fwpair.toml(5); TestConfigKeysDocumented checks it against the keys the
// loader accepts, so a new key cannot go undocumented.
type ConfigKey struct {
	Key     string // dotted, with [[array]] tables as "vrrp.instance.priority"
	Type    string // string, integer, boolean, duration, list of strings
	Default string // empty: required or none (Doc says which)
	Doc     string
}

// ConfigKeys lists every key, in file order.
//
// Adding a key:
//  1. a field in the raw table it belongs to (config.go: rawVRRP,
//     rawInstance, rawSync, rawLink, rawFilter; rawAuth in syncauth.go)
//     with its toml tag and, when the value goes as it is into a field of
//     what the table builds (vrrp.Config, vrrp.InstanceConfig,
//     ctsync.Config, ctsync.ChannelConfig, the appliance's VRRPConfig,
//     SyncConfig or FilterConfig), a to:"Field" tag: a plain key needs
//     nothing else in the code. A range or a check against other keys goes
//     in the table's builder (vrrp, sync, filter, syncAuth);
//  2. its default where the engine owns it: vrrp.DefaultInstance,
//     vrrp.DefaultGARP, ctsync.DefaultConfig or ctsync.DefaultChannel
//     (nothing for a zero default);
//  3. its row here; the tests then ask for its line in etc/fwpair.toml and
//     its row in keyMappings (configkeys_engine_test.go), which proves the
//     documented default and a set value reach the engine.
var ConfigKeys = []ConfigKey{
	{"node.name", "string", "the host name", "Name shown in logs, metrics and fwpairctl status."},
	{"log.level", "string", `"info"`, "debug, info, warn or error. Changed by reload or fwpairctl log-level."},
	{"log.format", "string", `"text"`, "text (no timestamps under journald) or json."},
	{"control.socket", "string", `"/run/fwpair/fwpaird.sock"`, "Absolute path of the control socket fwpairctl talks to (mode 0660, owner root)."},
	{"metrics.listen", "string", "off", `Address and port of the Prometheus endpoint /metrics, e.g. "127.0.0.1:9723".`},
	{"hooks.on_transition", "string", "none", "Program run after every transition with the new state (MASTER, BACKUP, FAULT) as its argument and FWPAIR_NODE, FWPAIR_FROM, FWPAIR_STATE, FWPAIR_REASON in its environment. Never on the critical path; its failure is logged."},
	{"hooks.timeout", "duration", `"10s"`, "Longest time the hook may run before it is killed."},
	{"vrrp.group", "string", `"fwpair"`, "Name of the sync group: every instance of the node moves together."},
	{"vrrp.version", "integer", "2", "VRRP version of every instance: 2 (RFC 3768) or 3 (RFC 9568: sub-second adverts, IPv6 virtual addresses, no authentication; interoperates with keepalived's vrrp_version 3)."},
	{"vrrp.garp_burst", "integer", "5", "Gratuitous ARPs sent per virtual address on becoming MASTER (0 turns them off)."},
	{"vrrp.garp_spacing", "duration", `"200ms"`, "Time between the gratuitous ARPs of a burst."},
	{"vrrp.garp_refresh", "duration", `"0s"`, "Periodic gratuitous ARP while MASTER; 0s turns it off."},
	{"vrrp.track_interfaces", "list of strings", "none", "Interfaces whose link every instance tracks: the group goes to FAULT when one is down."},
	{"vrrp.startup_delay", "duration", `"0s"`, "Wait this long after start before the VRRP instances start (no adverts, no VIPs), like keepalived's vrrp_startup_delay; READY=1 follows the VRRP start."},
	{"vrrp.realtime_priority", "integer", "0", "1..99 runs the VRRP threads (timers and adverts, socket readers) under SCHED_RR at this priority, like keepalived's vrrp_rt_priority, so that adverts leave and are heard on time on a busy machine; needs CAP_SYS_NICE (else a warning). 0 leaves the scheduling alone."},
	{"vrrp.instance.name", "string", `"INTERFACE-VRID"`, "Name of the instance in logs, metrics and status."},
	{"vrrp.instance.interface", "string", "required", "Interface the instance runs on and adds its addresses to."},
	{"vrrp.instance.vrid", "integer", "required", "Virtual router ID, 1..255, unique per interface."},
	{"vrrp.instance.priority", "integer", "100", "1..255; 255 means this node owns the addresses."},
	{"vrrp.instance.advert_interval", "duration", `"1s"`, "Advertisement interval: whole seconds from 1s to 255s for VRRPv2; a multiple of 10ms from 10ms to 40.95s for VRRPv3."},
	{"vrrp.instance.vips", "list of strings", "required", `Virtual addresses with their prefix length, e.g. ["192.168.0.100/24"]; one family per instance. IPv6 needs VRRPv3 and starts with the virtual router's link-local address, e.g. ["fe80::51/64", "fd00::100/64"].`},
	{"vrrp.instance.vip_label", "string", "none", `Label of the virtual addresses (e.g. "eth0:vip"), at most 15 bytes.`},
	{"vrrp.instance.preempt", "boolean", "true", "Take over from a MASTER of lower priority."},
	{"vrrp.instance.preempt_delay", "duration", `"0s"`, "Wait this long before preempting."},
	{"vrrp.instance.track_interfaces", "list of strings", "none", "Interfaces this instance tracks (FAULT when one is down)."},
	{"vrrp.instance.unicast_peers", "list of strings", "none (multicast to 224.0.0.18)", "Send adverts to these addresses instead of the multicast group."},
	{"vrrp.instance.unicast_source", "string", "the interface's address", "Source address of unicast adverts."},
	{"vrrp.instance.auth_password", "string", "none", "Simple-password authentication (type 1, at most 8 characters), for peers that use it; VRRPv2 only."},
	{"vrrp.instance.use_vmac", "boolean", "false", "Hold the virtual addresses on a macvlan interface vrrp.VRID (vrrp6.VRID for IPv6) with the virtual router MAC 00:00:5e:00:01:VRID (00:00:5e:00:02:VRID), created on becoming MASTER and removed on leaving, so that hosts ignoring gratuitous ARP follow a failover; firewall rules matching the inside interface must match it too. Sets arp_ignore = 1 on the interface."},
	{"vrrp.instance.accept_mode", "boolean", "true", "RFC 9568 Accept_Mode. true: the MASTER accepts packets addressed to the virtual addresses (ping, SSH to a VIP), as fwpair always did and keepalived does without vrrp_strict. false: a MASTER that is not the address owner (priority 255) drops them, through its own nf_tables table inet fwpair_accept (input hook; put back if a ruleset reload removes it); ARP, Neighbor Discovery, traffic routed through the VIP and DNAT port forwards on it keep working. The RFC's default is false."},
	{"sync.mode", "string", `"ftfw"`, "ftfw (reliable: acknowledged, retransmitted) or notrack (best effort)."},
	{"sync.ack_window", "integer", "300", "Acknowledge every N in-order messages (FTFW)."},
	{"sync.resend_queue", "integer", "131072", "Messages kept for retransmission (FTFW)."},
	{"sync.external_limit", "integer", "262144", "Most of the peer's states held in the external cache (direct_inject = false; a MASTER in either mode keeps what the peer sends there too), 1024 to 16777216. A state beyond it is dropped, counted (malformed external_full) and a resync is asked for once there is room: set it at least to the peer's net.netfilter.nf_conntrack_max."},
	{"sync.auth.key_files", "list of strings", "none (unauthenticated, conntrackd-compatible)", "Absolute paths of shared HMAC-SHA256 key files (mode 0600, hex, at least 32 bytes); two during a key rotation. Turns on authenticated sync: every datagram carries a MAC and a replay-window counter. Not understood by conntrackd."},
	{"sync.auth.max_clock_skew", "duration", `"2m"`, "Largest difference between the two nodes' clocks an authenticated datagram may show (1s..1h)."},
	{"sync.commit_timeout", "duration", `"5s"`, "Longest a commit of the external cache into the kernel may take on becoming MASTER."},
	{"sync.purge_delay", "duration", `"60s"`, "On becoming BACKUP, delete the connections the new MASTER does not know after this delay."},
	{"sync.ready_timeout", "duration", `"60s"`, "Longest a node that does not yet hold the peer's full state (resync answered, no sequence gap) refrains from preempting; \"0s\" preempts at once, at most 1h."},
	{"sync.direct_inject", "boolean", "true", "Write received states straight into the kernel (conntrackd's DisableExternalCache) instead of holding them in the external cache and committing it on takeover."},
	{"sync.startup_resync", "boolean", "true", "Ask the peer for its whole state at start."},
	{"sync.peer_version", "string", `"1.4.7"`, "conntrackd version of the peer (1.4.2 to 1.4.9), for wire compatibility while a pair is migrated one node at a time. Setting it turns the consistency check off unless sync.consistency_check is set."},
	{"sync.consistency_check", "duration", `"2s"`, "Period of the continuous consistency check between two fwpaird nodes (per-bucket digests, repair without a full resync); \"0s\" turns it off, as does peer_version when this key is not set. A fwpair extension: off with a conntrackd peer."},
	{"sync.expectations", "boolean", "true; false when peer_version is set", "Replicate conntrack expectations (FTP, SIP... helpers), so a data connection announced before a failover is accepted as RELATED on the new MASTER. conntrackd's ExpectationSync: with a conntrackd peer turn it on there too."},
	{"sync.link.interface", "string", "required", "Interface of the dedicated sync link. Up to 4 [[sync.link]] tables; the first is preferred, the others take over when its interface goes down."},
	{"sync.link.local", "string", "required", "Local address on the sync link."},
	{"sync.link.peer", "string", "none", "Unicast peer address; leave out for multicast."},
	{"sync.link.multicast_group", "string", `"225.0.0.50" when peer is not set`, "Multicast group of the sync link."},
	{"sync.link.port", "integer", "3780", "UDP port."},
	{"sync.link.accept_from", "list of strings", `[peer]; required for multicast`, "Addresses sync datagrams are accepted from on this link; datagrams from any other source are dropped before parsing and counted (foreign_source)."},
	{"sync.link.send_buffer", "integer", "4194304", "Socket send buffer in bytes."},
	{"sync.link.recv_buffer", "integer", "4194304", "Socket receive buffer in bytes."},
	{"sync.filter.accept_addresses", "list of strings", "all", "Replicate only connections with an address in these CIDRs."},
	{"sync.filter.ignore_addresses", "list of strings", "none", "Never replicate connections with an address in these CIDRs."},
	{"sync.filter.protocols", "list of strings", "all", "Replicate only these protocols: tcp, udp, icmp, icmpv6, sctp, dccp, udplite, gre."},
	{"sync.filter.tcp_states", "list of strings", "all", "Replicate TCP connections only in these states (e.g. ESTABLISHED)."},
	{"sync.filter.ignore_own", "boolean", "true", "Ignore the node's own addresses, the virtual addresses and the sync links."},
}
