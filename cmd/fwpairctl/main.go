// Command fwpairctl controls a running fwpaird through its control socket.
//
//	fwpairctl [-socket PATH] [--json] COMMAND [ARG]
//
// Commands: status, stats, cache internal|external, commit, resync,
// flush [internal|external|all], bulk, request-resync, log-level LEVEL.
// conntrackd-style flags work too, for operators migrating scripts:
// -c commit, -f [internal|external] flush, -R resync, -B bulk,
// -n request resync, -i internal cache, -e external cache, -s stats.
//
// Exit status: 0 success, 1 the daemon refused or failed the request,
// 2 usage error, 3 the daemon is not reachable.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fwpair/fwpair/appliance/api"
	"github.com/fwpair/fwpair/appliance/client"
	"github.com/fwpair/fwpair/manpage"
)

var version = "dev"

const defaultSocket = "/run/fwpair/fwpaird.sock"

const (
	exitOK = iota
	exitRefused
	exitUsage
	exitUnreachable
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: fwpairctl [-socket PATH] [--json] COMMAND [ARG]

commands:
  status                      group state, instances, sync engine, last transition
  stats                       every counter
  cache internal|external     list a cache
  commit                      commit the external cache into the kernel
  resync                      resync the internal cache from the kernel
  flush [internal|external]   flush a cache (default: both)
  bulk                        send the internal cache to the peer
  request-resync              ask the peer for its whole state
  log-level LEVEL             debug, info, warn or error
  version                     print fwpairctl's version
  import -keepalived F -conntrackd F   convert keepalived.conf/conntrackd.conf to fwpair.toml
  manpage                     print fwpairctl(8)

conntrackd-style flags: -c commit, -f [internal|external] flush, -R resync,
-B bulk, -n request-resync, -i internal cache, -e external cache, -s stats.
`

// conntrackdFlags maps conntrackd's one-letter actions to commands.
var conntrackdFlags = map[string][]string{
	"-c": {"commit"},
	"-f": {"flush"},
	"-R": {"resync"},
	"-B": {"bulk"},
	"-n": {"request-resync"},
	"-i": {"cache", "internal"},
	"-e": {"cache", "external"},
	"-s": {"stats"},
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "import" {
		return runImport(args[1:], stdout, stderr)
	}
	socket := os.Getenv("FWPAIR_SOCKET")
	if socket == "" {
		socket = defaultSocket
	}
	asJSON := false
	var cmd []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-socket" || a == "--socket" || a == "-S":
			if i+1 >= len(args) {
				fmt.Fprintf(stderr, "fwpairctl: %s needs a path\n", a)
				return exitUsage
			}
			i++
			socket = args[i]
		case strings.HasPrefix(a, "-socket=") || strings.HasPrefix(a, "--socket="):
			socket = a[strings.Index(a, "=")+1:]
		case a == "-json" || a == "--json":
			asJSON = true
		case a == "-h" || a == "-help" || a == "--help" || a == "help":
			fmt.Fprint(stdout, usage)
			return exitOK
		case conntrackdFlags[a] != nil && len(cmd) == 0:
			cmd = append(cmd, conntrackdFlags[a]...)
			if a == "-f" && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				i++
				cmd = append(cmd, args[i])
			}
		case strings.HasPrefix(a, "-") && len(a) > 1:
			fmt.Fprintf(stderr, "fwpairctl: unknown flag %s\n%s", a, usage)
			return exitUsage
		default:
			cmd = append(cmd, a)
		}
	}
	if len(cmd) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	if cmd[0] == "version" {
		fmt.Fprintln(stdout, "fwpairctl", version)
		return exitOK
	}
	if cmd[0] == "manpage" {
		if err := manpage.Write(stdout, manPage()); err != nil {
			return exitRefused
		}
		return exitOK
	}
	c := client.New(socket)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := dispatch(ctx, c, cmd)
	if err != nil {
		var ue usageError
		var re *client.RefusedError
		switch {
		case errors.As(err, &ue):
			fmt.Fprintf(stderr, "fwpairctl: %v\n%s", err, usage)
			return exitUsage
		case errors.Is(err, client.ErrUnreachable):
			fmt.Fprintf(stderr, "fwpairctl: %v (is fwpaird running? use -socket PATH)\n", err)
			return exitUnreachable
		case errors.As(err, &re):
			fmt.Fprintf(stderr, "fwpairctl: %v\n", err)
			return exitRefused
		default:
			fmt.Fprintf(stderr, "fwpairctl: %v\n", err)
			return exitRefused
		}
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(out)
		return exitOK
	}
	printHuman(stdout, out)
	return exitOK
}

type usageError string

func (u usageError) Error() string { return string(u) }

func dispatch(ctx context.Context, c *client.Client, cmd []string) (any, error) {
	arg := func(n int) error {
		if len(cmd)-1 > n {
			return usageError(fmt.Sprintf("%s takes at most %d argument(s)", cmd[0], n))
		}
		return nil
	}
	switch cmd[0] {
	case "status":
		if err := arg(0); err != nil {
			return nil, err
		}
		return c.Status(ctx)
	case "stats":
		if err := arg(0); err != nil {
			return nil, err
		}
		return c.Stats(ctx)
	case "cache":
		if len(cmd) != 2 || (cmd[1] != "internal" && cmd[1] != "external") {
			return nil, usageError("cache needs internal or external")
		}
		return c.Cache(ctx, cmd[1])
	case "commit":
		if err := arg(0); err != nil {
			return nil, err
		}
		return c.Commit(ctx)
	case "resync":
		if err := arg(0); err != nil {
			return nil, err
		}
		return c.Resync(ctx)
	case "flush":
		which := "all"
		if len(cmd) == 2 {
			which = cmd[1]
		}
		if len(cmd) > 2 || (which != "all" && which != "internal" && which != "external") {
			return nil, usageError("flush takes internal, external or nothing (both)")
		}
		return c.Flush(ctx, which)
	case "bulk":
		if err := arg(0); err != nil {
			return nil, err
		}
		return c.Bulk(ctx)
	case "request-resync":
		if err := arg(0); err != nil {
			return nil, err
		}
		return c.RequestResync(ctx)
	case "log-level":
		if len(cmd) != 2 {
			return nil, usageError("log-level needs debug, info, warn or error")
		}
		return c.SetLogLevel(ctx, cmd[1])
	}
	return nil, usageError(fmt.Sprintf("unknown command %q", cmd[0]))
}

func printHuman(w io.Writer, v any) {
	switch v := v.(type) {
	case api.Status:
		printStatus(w, v)
	case api.Stats:
		for _, group := range []struct {
			name string
			m    map[string]uint64
		}{{"vrrp", v.VRRP}, {"sync", v.Sync}} {
			if len(group.m) == 0 {
				continue
			}
			fmt.Fprintf(w, "%s:\n", group.name)
			keys := make([]string, 0, len(group.m))
			for k := range group.m {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(w, "  %-40s %d\n", k, group.m[k])
			}
		}
	case api.Cache:
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, e := range v.Entries {
			line := fmt.Sprintf("%s\t%s", e.Proto, e.Src)
			if e.SrcPort != 0 || e.DstPort != 0 {
				line = fmt.Sprintf("%s:%d\t-> %s:%d", line, e.SrcPort, e.Dst, e.DstPort)
			} else {
				line += "\t-> " + e.Dst
			}
			line += "\t" + e.State + fmt.Sprintf("\ttimeout=%d", e.Timeout)
			if e.Mark != 0 {
				line += fmt.Sprintf(" mark=%d", e.Mark)
			}
			if e.Zone != 0 {
				line += fmt.Sprintf(" zone=%d", e.Zone)
			}
			if e.SNAT != "" {
				line += " snat=" + e.SNAT
			}
			if e.DNAT != "" {
				line += " dnat=" + e.DNAT
			}
			fmt.Fprintln(tw, line)
		}
		tw.Flush()
		fmt.Fprintf(w, "%d entries in the %s cache\n", len(v.Entries), v.Which)
	case api.CommitResult:
		fmt.Fprintf(w, "committed: %d created, %d updated, %d failed in %.3fs\n", v.Created, v.Updated, sumFailed(v.Failed), v.Seconds)
		for reason, n := range v.Failed {
			fmt.Fprintf(w, "  failed %s: %d\n", reason, n)
		}
	case api.Result:
		if v.Message != "" {
			fmt.Fprintln(w, v.Message)
		} else {
			fmt.Fprintln(w, "ok")
		}
	}
}

func sumFailed(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func printStatus(w io.Writer, s api.Status) {
	fmt.Fprintf(w, "node %s (fwpaird %s, up since %s)\n", s.Node, s.Version, s.StartedAt.Format(time.RFC3339))
	fmt.Fprintf(w, "ready: %v (%s)\n", s.Ready, s.ReadyReason)
	if v := s.VRRP; v != nil {
		fmt.Fprintf(w, "vrrp group %s: %s\n", v.Group, v.GroupState)
		if v.PartialPartition != "" {
			fmt.Fprintf(w, "  PARTIAL PARTITION: %s\n", v.PartialPartition)
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  instance\tinterface\tvrid\tstate\tpriority\tvips")
		for _, in := range v.Instances {
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\t%d\t%s\n", in.Name, in.Interface, in.VRID, in.State, in.Priority, strings.Join(in.VIPs, ","))
		}
		tw.Flush()
	}
	if y := s.Sync; y != nil {
		peer := "down"
		if y.PeerAlive {
			peer = "alive"
		}
		fmt.Fprintf(w, "sync %s: peer %s, internal %d entries, external %d entries", y.Mode, peer, y.InternalEntries, y.ExternalEntries)
		if y.ActiveLink != "" {
			fmt.Fprintf(w, ", link %s", y.ActiveLink)
		}
		fmt.Fprintln(w)
		if c := y.Consistency; c != nil {
			last := "never"
			if !c.LastClean.IsZero() {
				last = c.LastClean.Format(time.RFC3339)
			}
			fmt.Fprintf(w, "consistency check: %d repaired, last clean check %s (%d checks, %d re-sent)\n", c.Repaired, last, c.Checks, c.Resent)
		}
	}
	if t := s.LastTransition; t != nil {
		fmt.Fprintf(w, "last transition %s -> %s at %s (%s): commit %d entries in %.3fs, VIPs up after %.3fs\n",
			t.From, t.To, t.At.Format(time.RFC3339Nano), t.Reason, t.CommitEntries, t.CommitSeconds, t.VIPsSeconds)
		for _, st := range t.Steps {
			line := fmt.Sprintf("  %-14s %.3fs", st.Name, st.Seconds)
			if st.Error != "" {
				line += "  error: " + st.Error
			}
			fmt.Fprintln(w, line)
		}
	}
}
