package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/fwpair/fwpair/importer"
)

const importUsage = `usage: fwpairctl import [-keepalived FILE] [-conntrackd FILE] [-node NAME] [-sync-peer ADDR] [-o FILE] [-v]

Converts an existing keepalived.conf and conntrackd.conf into a commented
fwpair.toml (standard output, or -o FILE) that passes fwpaird -check, and
lists on standard error every directive that was approximated or refused,
and why. A multicast sync channel needs -sync-peer (repeatable): fwpair
accepts sync datagrams only from the peer's address(es). Exit status: 0 converted, 1 the input cannot make a valid
fwpair.toml (the reasons are listed), 2 usage error or malformed input.
`

// runImport is `fwpairctl import`: it works on files, without the daemon.
// importOpts are the flags of fwpairctl import.
type importOpts struct {
	in      importer.Input
	out     string
	verbose bool
}

func importFlags(stderr io.Writer) (*flag.FlagSet, *importOpts) {
	o := &importOpts{}
	fs := flag.NewFlagSet("fwpairctl import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, importUsage) }
	fs.StringVar(&o.in.Keepalived, "keepalived", "", "keepalived.conf to convert (VRRP)")
	fs.StringVar(&o.in.Conntrackd, "conntrackd", "", "conntrackd.conf to convert (sync)")
	fs.StringVar(&o.in.Node, "node", "", "node name (default: keepalived's router_id, else the host name)")
	fs.Func("sync-peer", "the peer's address on a multicast sync link (repeat for several); required for a multicast channel", func(v string) error {
		o.in.SyncPeers = append(o.in.SyncPeers, v)
		return nil
	})
	fs.StringVar(&o.out, "o", "", "write the result to this file instead of standard output")
	fs.BoolVar(&o.verbose, "v", false, "also list the directives carried over and ignored")
	return fs, o
}

func runImport(args []string, stdout, stderr io.Writer) int {
	fs, o := importFlags(stderr)
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	in, out, verbose := &o.in, o.out, o.verbose
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "fwpairctl import: unexpected argument %q\n%s", fs.Arg(0), importUsage)
		return exitUsage
	}
	if in.Keepalived == "" && in.Conntrackd == "" {
		fmt.Fprint(stderr, importUsage)
		return exitUsage
	}
	res, err := importer.Import(*in)
	if res == nil {
		// malformed or unreadable input: nothing was converted
		fmt.Fprintln(stderr, "fwpairctl import:", err)
		return exitUsage
	}
	for _, n := range res.Notes {
		if verbose || n.Outcome == importer.Approximated || n.Outcome == importer.Refused {
			fmt.Fprintln(stderr, n)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitRefused
	}
	if out == "" {
		_, _ = stdout.Write(res.TOML)
		return exitOK
	}
	if err := os.WriteFile(out, res.TOML, 0o640); err != nil {
		fmt.Fprintln(stderr, "fwpairctl import:", err)
		return exitRefused
	}
	fmt.Fprintf(stderr, "wrote %s (check it with: fwpaird -check -c %s)\n", out, out)
	return exitOK
}
