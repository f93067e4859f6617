package main

import (
	"github.com/fwpair/fwpair/manpage"
)

// command documents one fwpairctl command: the source of fwpairctl(8).
// TestCommandsDocumented checks it against what run and dispatch accept.
type command struct {
	name, args, doc string
	local           bool // handled without the daemon
}

var commands = []command{
	{name: "status", doc: "Group state, instances, sync engine, last transition with the timing of its steps."},
	{name: "stats", doc: "Every counter of both engines."},
	{name: "cache", args: "internal|external", doc: "List a cache: this node's connections (internal) or the peer's (external)."},
	{name: "commit", doc: "Commit the external cache into the kernel."},
	{name: "resync", doc: "Reload the internal cache from the kernel."},
	{name: "flush", args: "[internal|external]", doc: "Flush a cache (default: both)."},
	{name: "bulk", doc: "Send the whole internal cache to the peer."},
	{name: "request-resync", doc: "Ask the peer for its whole state."},
	{name: "log-level", args: "LEVEL", doc: "Set the daemon's log level: debug, info, warn or error."},
	{name: "version", doc: "Print fwpairctl's version.", local: true},
	{name: "import", args: "[-keepalived FILE] [-conntrackd FILE] [-node NAME] [-sync-peer ADDR] [-o FILE] [-v]", local: true,
		doc: "Convert an existing keepalived.conf and conntrackd.conf into a commented fwpair.toml that passes fwpaird -check, listing on standard error every directive approximated or refused and why (-v: also those carried over or not needed). Exit status 1 when the input cannot make a valid file, 2 for malformed input (with file:line)."},
	{name: "manpage", doc: "Print this manual page (roff).", local: true},
}

// conntrackdFlagDocs documents conntrackdFlags.
var conntrackdFlagDocs = map[string]string{
	"-c": "commit", "-f": "flush [internal|external]", "-R": "resync", "-B": "bulk",
	"-n": "request-resync", "-i": "cache internal", "-e": "cache external", "-s": "stats",
}

func manPage() manpage.Page {
	var cmds []manpage.Block
	for _, c := range commands {
		tag := c.name
		if c.args != "" {
			tag += " " + c.args
		}
		cmds = append(cmds, manpage.Item(tag, c.doc))
	}
	var ct []manpage.Block
	for _, f := range []string{"-c", "-f", "-R", "-B", "-n", "-i", "-e", "-s"} {
		ct = append(ct, manpage.Item(f, "Same as "+conntrackdFlagDocs[f]+"."))
	}
	return manpage.Page{
		Name: "fwpairctl", Section: "8", Source: "fwpair " + version, Manual: "System Manager's Manual",
		Summary: "control fwpaird, convert keepalived and conntrackd configurations",
		Sections: []manpage.Section{
			{Heading: "Synopsis", Blocks: []manpage.Block{
				manpage.P("fwpairctl [-socket PATH] [--json] COMMAND [ARG]"),
				manpage.P("fwpairctl import [-keepalived FILE] [-conntrackd FILE] [-node NAME] [-sync-peer ADDR] [-o FILE]"),
			}},
			{Heading: "Description", Blocks: []manpage.Block{
				manpage.P("fwpairctl talks to a running fwpaird(8) through its control socket (%s by default, or $FWPAIR_SOCKET, or -socket PATH). --json prints the daemon's answer as JSON for scripts.", defaultSocket),
			}},
			{Heading: "Commands", Blocks: cmds},
			{Heading: "conntrackd compatibility", Blocks: append([]manpage.Block{
				manpage.P("conntrackd's one-letter actions work too, so scripts written for conntrackd -C keep working:"),
			}, ct...)},
			{Heading: "Exit status", Blocks: []manpage.Block{
				manpage.P("0 success, 1 the daemon refused or failed the request, 2 usage error, 3 the daemon is not reachable."),
			}},
			{Heading: "See also", Blocks: []manpage.Block{manpage.P("fwpaird(8), fwpair.toml(5), conntrackd(8)")}},
		},
	}
}
