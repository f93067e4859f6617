package importer

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"
)

// outConfig is the fwpair.toml being built; every value remembers its
// source for the comment next to it.
type outConfig struct {
	node      val
	group     val
	version   val
	garpBurst val
	garpRefr  val
	hook      val
	instances []*outInstance
	sync      *outSync
}

type outInstance struct {
	name, iface, vrid, priority, advert, preempt, preemptDelay val
	vipLabel, unicastSource, authPassword, useVMAC, accept     val
	vips, unicastPeers, track                                  []val
	from                                                       string
	// advertStmt is the advert_int line, resolved once the VRRP version
	// is known (resolveAdverts): v2 wants whole seconds, v3 centiseconds.
	advertStmt *stmt
	advertSecs float64
}

type outSync struct {
	mode, ackWindow, resendQueue, externalLimit, purgeDelay, directInject, startupResync, expectations val
	links                                                                                              []*outLink
	accept, ignore, protocols, tcpStates                                                               []val
	from                                                                                               string
}

type outLink struct {
	iface, local, peer, group, port, sndBuf, rcvBuf val
	acceptFrom                                      []val
	from                                            string
	isDefault                                       bool
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f || r == utf8.RuneError:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

type tomlWriter struct {
	b     strings.Builder
	strip []string // directory prefixes left out of the source comments
}

func (w *tomlWriter) comment(lines ...string) {
	for _, l := range lines {
		for _, part := range strings.Split(l, "\n") {
			w.b.WriteString(strings.TrimRight("# "+part, " ") + "\n")
		}
	}
}

func (w *tomlWriter) header(h string) {
	for _, p := range w.strip {
		h = strings.ReplaceAll(h, p, "")
	}
	w.b.WriteString("\n" + h + "\n")
}

// str writes key = "value" with its source.
func (w *tomlWriter) str(key string, v val) {
	if v.set() {
		w.line(key, tomlString(v.v), v.from)
	}
}

// raw writes key = value (a number, a boolean, already TOML).
func (w *tomlWriter) raw(key string, v val) {
	if v.set() {
		w.line(key, v.v, v.from)
	}
}

func (w *tomlWriter) list(key string, vs []val) {
	if len(vs) == 0 {
		return
	}
	var items []string
	var froms []string
	for _, v := range vs {
		items = append(items, tomlString(v.v))
		if len(froms) == 0 || froms[len(froms)-1] != v.from {
			froms = append(froms, v.from)
		}
	}
	from := froms[0]
	if len(froms) > 1 {
		from += " ... " + froms[len(froms)-1]
	}
	w.line(key, "["+strings.Join(items, ", ")+"]", from)
}

func (w *tomlWriter) line(key, value, from string) {
	for _, p := range w.strip {
		from = strings.ReplaceAll(from, p, "")
	}
	if from != "" {
		fmt.Fprintf(&w.b, "%s = %s  # %s\n", key, value, from)
		return
	}
	fmt.Fprintf(&w.b, "%s = %s\n", key, value)
}

func (o *outConfig) render(in Input, problems []Note) []byte {
	w := &tomlWriter{}
	for _, f := range []string{in.Keepalived, in.Conntrackd} {
		if d := filepath.Dir(f); f != "" && d != "." {
			w.strip = append(w.strip, d+string(filepath.Separator))
		}
	}
	var srcs []string
	for _, f := range []string{in.Keepalived, in.Conntrackd} {
		if f != "" {
			srcs = append(srcs, filepath.Base(f))
		}
	}
	w.comment("fwpair.toml converted by `fwpairctl import` from "+strings.Join(srcs, " and ")+".",
		"Each setting names the line it came from. Check it with `fwpaird -check -c FILE`;",
		"every key is described in fwpair.toml(5).")
	if len(problems) > 0 {
		w.comment("", "Not carried over as it was (the operator must review these):")
		for _, n := range problems {
			w.comment("  " + n.String())
		}
	} else {
		w.comment("", "Every directive was carried over or is not needed by fwpair.")
	}
	if o.node.set() {
		w.header("[node]")
		w.str("name", o.node)
	}
	if o.hook.set() {
		w.header("[hooks]")
		w.str("on_transition", o.hook)
	}
	if len(o.instances) > 0 {
		w.header("[vrrp]")
		w.str("group", o.group)
		w.raw("version", o.version)
		w.raw("garp_burst", o.garpBurst)
		w.str("garp_refresh", o.garpRefr)
		for _, in := range o.instances {
			w.header("[[vrrp.instance]]" + "  # " + in.from)
			w.str("name", in.name)
			w.str("interface", in.iface)
			w.raw("vrid", in.vrid)
			w.raw("priority", in.priority)
			w.str("advert_interval", in.advert)
			w.list("vips", in.vips)
			w.str("vip_label", in.vipLabel)
			w.raw("preempt", in.preempt)
			w.str("preempt_delay", in.preemptDelay)
			w.raw("use_vmac", in.useVMAC)
			w.raw("accept_mode", in.accept)
			w.list("track_interfaces", in.track)
			w.list("unicast_peers", in.unicastPeers)
			w.str("unicast_source", in.unicastSource)
			w.str("auth_password", in.authPassword)
		}
	}
	if s := o.sync; s != nil {
		w.header("[sync]  # " + s.from)
		w.str("mode", s.mode)
		w.raw("ack_window", s.ackWindow)
		w.raw("resend_queue", s.resendQueue)
		w.raw("external_limit", s.externalLimit)
		w.str("purge_delay", s.purgeDelay)
		w.raw("direct_inject", s.directInject)
		w.raw("startup_resync", s.startupResync)
		w.raw("expectations", s.expectations)
		for _, l := range s.links {
			w.header("[[sync.link]]  # " + l.from)
			w.str("interface", l.iface)
			w.str("local", l.local)
			w.str("peer", l.peer)
			w.str("multicast_group", l.group)
			w.list("accept_from", l.acceptFrom)
			w.raw("port", l.port)
			w.raw("send_buffer", l.sndBuf)
			w.raw("recv_buffer", l.rcvBuf)
		}
		if len(s.accept)+len(s.ignore)+len(s.protocols)+len(s.tcpStates) > 0 {
			w.header("[sync.filter]")
			w.list("accept_addresses", s.accept)
			w.list("ignore_addresses", s.ignore)
			w.list("protocols", s.protocols)
			w.list("tcp_states", s.tcpStates)
		}
	}
	return []byte(w.b.String())
}

func itoa(n int) string { return strconv.Itoa(n) }
