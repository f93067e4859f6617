package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/fwpair/fwpair/appliance"
	"github.com/fwpair/fwpair/manpage"
)

// Manual pages fwpaird prints with -manpage NAME (make man writes them).
const (
	manFwpaird = "fwpaird.8"
	manConfig  = "fwpair.toml.5"
)

// manPage builds fwpaird(8) from the flag set and fwpair.toml(5) from
// appliance.ConfigKeys: the same definitions the program uses.
func manPage(name string, fs *flag.FlagSet) (manpage.Page, error) {
	src := "fwpair " + version
	switch name {
	case manFwpaird:
		var opts []manpage.Block
		synopsis := "fwpaird"
		fs.VisitAll(func(f *flag.Flag) {
			arg, usage := flag.UnquoteUsage(f)
			tag := "-" + f.Name
			if arg != "" {
				tag += " " + arg
			}
			synopsis += " [" + tag + "]"
			if f.DefValue != "" && f.DefValue != "false" {
				usage += " (default " + f.DefValue + ")"
			}
			opts = append(opts, manpage.Item(tag, usage+"."))
		})
		return manpage.Page{
			Name: "fwpaird", Section: "8", Source: src, Manual: "System Manager's Manual",
			Summary: "VRRP and conntrack state sync for a firewall pair",
			Sections: []manpage.Section{
				{Heading: "Synopsis", Blocks: []manpage.Block{manpage.P("%s", synopsis)}},
				{Heading: "Description", Blocks: []manpage.Block{
					manpage.P("fwpaird turns two Linux firewalls into a highly available pair with one daemon per node. Its VRRPv2 engine (RFC 3768) elects the MASTER and owns the virtual addresses of one sync group; its conntrack sync engine replicates the kernel's connection table to the peer over a dedicated link, wire-compatible with conntrackd 1.4.7 (FTFW and NOTRACK). On every transition to MASTER it makes sure the replicated connections are in the kernel before it adds the virtual addresses, so established sessions survive the failover."),
					manpage.P("It runs in the foreground and logs to standard error; the systemd unit fwpaird.service runs it with CAP_NET_ADMIN and CAP_NET_RAW only, as Type=notify with a watchdog."),
				}},
				{Heading: "Options", Blocks: opts},
				{Heading: "Signals", Blocks: []manpage.Block{
					manpage.Item("SIGTERM, SIGINT", "Stop gracefully: priority-0 adverts so the peer takes over at once, virtual addresses removed, then the sync engine."),
					manpage.Item("SIGHUP", "Reload the configuration: priorities, log level, hook, sync filter and gratuitous ARP settings apply live; other changes are logged as needing a restart. A file that does not validate leaves the running configuration untouched."),
				}},
				{Heading: "Exit status", Blocks: []manpage.Block{
					manpage.P("0 on a clean stop or a valid configuration (-check), 1 on an invalid configuration or a runtime failure, 2 on a usage error."),
				}},
				{Heading: "Files", Blocks: []manpage.Block{
					manpage.Item("/etc/fwpair/fwpair.toml", "The configuration, see fwpair.toml(5)."),
					manpage.Item(appliance.DefaultSocket, "The control socket, see fwpairctl(8)."),
					manpage.Item("/usr/share/doc/fwpair/", "Example configurations, the nftables ruleset, alerting rules and the migration guide from keepalived and conntrackd."),
				}},
				{Heading: "See also", Blocks: []manpage.Block{manpage.P("fwpairctl(8), fwpair.toml(5), keepalived(8), conntrackd(8), nft(8)")}},
			},
		}, nil
	case manConfig:
		var keys []manpage.Block
		section := ""
		for _, k := range appliance.ConfigKeys {
			table := k.Key[:strings.LastIndexByte(k.Key, '.')]
			if table != section {
				section = table
				head := "[" + table + "]"
				if table == "vrrp.instance" || table == "sync.link" {
					head = "[[" + table + "]]"
				}
				keys = append(keys, manpage.P("Table %s:", head))
			}
			keys = append(keys, manpage.Item(k.Key[len(table)+1:]+" ("+k.Type+")", k.Doc+" Default: "+k.Default+"."))
		}
		return manpage.Page{
			Name: "fwpair.toml", Section: "5", Source: src, Manual: "File Formats Manual",
			Summary: "configuration of fwpaird",
			Sections: []manpage.Section{
				{Heading: "Description", Blocks: []manpage.Block{
					manpage.P("fwpaird(8) reads one TOML file per node, /etc/fwpair/fwpair.toml by default. Either [vrrp] or [sync] may be left out: fwpaird then replaces keepalived or conntrackd alone. Unknown keys are errors, and every error names the file, the line and the key. fwpaird -check -c FILE validates a file; fwpairctl import converts a keepalived.conf and a conntrackd.conf into one."),
					manpage.P("Durations are strings such as \"1s\" or \"200ms\"."),
				}},
				{Heading: "Keys", Blocks: keys},
				{Heading: "Example", Blocks: []manpage.Block{manpage.Example(exampleConfig)}},
				{Heading: "Files", Blocks: []manpage.Block{
					manpage.Item("/usr/share/doc/fwpair/fwpair.toml.example", "Every key with its default."),
					manpage.Item("/usr/share/doc/fwpair/node1.toml, node2.toml", "The two nodes of the reference pair."),
				}},
				{Heading: "See also", Blocks: []manpage.Block{manpage.P("fwpaird(8), fwpairctl(8)")}},
			},
		}, nil
	}
	return manpage.Page{}, fmt.Errorf("no manual page %q (%s or %s)", name, manFwpaird, manConfig)
}

const exampleConfig = `[node]
name = "fw1"

[vrrp]
group = "fw"

[[vrrp.instance]]
name = "inside"
interface = "eth0"
vrid = 51
priority = 150
vips = ["192.168.0.100/24"]

[sync]
mode = "ftfw"

[[sync.link]]
interface = "eth2"
local = "10.0.0.1"
peer = "10.0.0.2"`
