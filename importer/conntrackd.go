package importer

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/fwpair/fwpair/ctsync"
)

// conntrackd directives fwpair does not need or cannot express. Keys are
// "section directive" with the enclosing section's name.
var conntrackdRefused = map[string]struct {
	outcome Outcome
	why     string
}{
	"General HashSize":                   {Ignored, "fwpair's caches size themselves"},
	"General LogFile":                    {Ignored, "fwpaird logs to stderr (journald); log.format selects text or json"},
	"General Syslog":                     {Ignored, "fwpaird logs to stderr (journald)"},
	"General LockFile":                   {Ignored, "systemd keeps fwpaird single"},
	"General UNIX":                       {Ignored, "fwpairctl talks to control.socket (default /run/fwpair/fwpaird.sock) and understands conntrackd's -c -f -R -B -n -i -e -s"},
	"General NetlinkBufferSize":          {Ignored, "fwpaird sizes its conntrack event socket itself (64 MiB, growing on overrun)"},
	"General NetlinkBufferSizeMaxGrowth": {Ignored, "fwpaird sizes its conntrack event socket itself"},
	"General NetlinkOverrunResync":       {Ignored, "fwpaird resyncs after every overrun"},
	"General NetlinkEventsReliable":      {Ignored, "fwpaird handles overruns by resyncing"},
	"General PollSecs":                   {Refused, "fwpair replicates from events, not by polling"},
	"General EventIterationLimit":        {Ignored, "not applicable"},
	"General Nice":                       {Ignored, "set Nice= in the systemd unit"},
	"General Scheduler":                  {Ignored, "set CPUSchedulingPolicy= in the systemd unit"},
	"General Systemd":                    {Ignored, "fwpaird always notifies systemd (Type=notify)"},
	"General StartupResync":              {Ignored, "see sync.startup_resync"},
	"Sync TCP":                           {Refused, "fwpair replicates over UDP or multicast; a TCP channel has no equivalent"},
	"Sync Options":                       {Refused, "unknown options block"},
	"Options TCPWindowTracking":          {Approximated, "fwpair replicates what the kernel reports; window tracking follows nf_conntrack_tcp_be_liberal"},
	"Options ExpectTimeout":              {Ignored, "an expectation keeps the timeout its helper gave it"},
	"Mode RefreshTime":                   {Refused, "ALARM mode is not supported"},
	"Mode CacheTimeout":                  {Refused, "ALARM mode is not supported"},
	"Mode CommitTimeout":                 {Ignored, "sync.commit_timeout bounds the commit (default 5s)"},
	"Mode PurgeTimeout":                  {Ignored, "handled above"},
	"Channel Checksum":                   {Ignored, "fwpair always checksums sync datagrams"},
	"Channel McastSndSocketBuffer":       {Ignored, "use send_buffer"},
	"Channel McastRcvSocketBuffer":       {Ignored, "use recv_buffer"},
	"Channel Default":                    {Carried, "the default channel is fwpair's first (preferred) link"},
	"Stats":                              {Refused, "fwpair has no flow statistics mode; use `conntrack -E` or the kernel's accounting"},
}

// conntrackd converts a conntrackd.conf.
func (im *importer) conntrackd(sts []*stmt) {
	for _, s := range sts {
		switch s.Name {
		case "Sync":
			im.syncSection(s)
		case "General":
			im.general(s)
		case "Stats":
			im.ctOther("", s)
		default:
			im.note(s, Refused, "unknown section")
		}
	}
	if im.out.sync == nil {
		return
	}
	if len(im.out.sync.links) == 0 {
		im.fatalf(nil, "conntrackd.conf has no UDP or Multicast channel: fwpair needs a sync link")
	}
	// conntrackd's Default channel is preferred: fwpair prefers its first.
	slices.SortStableFunc(im.out.sync.links, func(a, b *outLink) int {
		switch {
		case a.isDefault && !b.isDefault:
			return -1
		case b.isDefault && !a.isDefault:
			return 1
		}
		return 0
	})
}

func (im *importer) ctOther(section string, s *stmt) {
	key := section + " " + s.Name
	if section == "" {
		key = s.Name
	}
	if r, ok := conntrackdRefused[key]; ok {
		im.note(s, r.outcome, "%s", r.why)
		return
	}
	im.note(s, Refused, "unknown to the importer: check whether fwpair needs it")
}

func (im *importer) sync() *outSync {
	return im.out.sync
}

func (im *importer) syncSection(s *stmt) {
	if im.out.sync == nil {
		im.out.sync = &outSync{from: s.where() + " Sync"}
	}
	for _, c := range s.Children {
		switch c.Name {
		case "Mode":
			im.mode(c)
		case "UDP", "Multicast":
			im.channel(c)
		case "Options":
			for _, o := range c.Children {
				if o.Name == "ExpectationSync" {
					im.expectationSync(o)
					continue
				}
				im.ctOther("Options", o)
			}
		default:
			im.ctOther("Sync", c)
		}
	}
}

func onOff(c *stmt) (bool, bool) {
	switch strings.ToLower(c.arg(0)) {
	case "on", "yes", "1":
		return true, true
	case "off", "no", "0":
		return false, true
	}
	return false, false
}

func (im *importer) mode(m *stmt) {
	sy := im.sync()
	from := m.where() + " Mode " + m.arg(0)
	switch strings.ToUpper(m.arg(0)) {
	case "FTFW":
		sy.mode = val{"ftfw", from}
	case "NOTRACK":
		sy.mode = val{"notrack", from}
	case "ALARM":
		im.fatalf(m, "Mode ALARM is not supported by fwpair (use FTFW)")
		return
	default:
		im.fatalf(m, "Mode %q is not FTFW, NOTRACK or ALARM", m.arg(0))
		return
	}
	im.note(m, Carried, "sync.mode")
	// conntrackd keeps an external cache unless told otherwise; so does
	// the imported file, to change one thing at a time.
	sy.directInject = val{"false", from + " (DisableExternalCache off, conntrackd's default)"}
	for _, c := range m.Children {
		switch c.Name {
		case "DisableExternalCache":
			im.boolKey(c, "sync.direct_inject", &sy.directInject)
		case "StartupResync":
			im.boolKey(c, "sync.startup_resync", &sy.startupResync)
		case "ResendQueueSize":
			im.intKey(c, ctsync.MinResendQueue, ctsync.MaxResendQueue, "sync.resend_queue", "", &sy.resendQueue)
		case "ACKWindowSize":
			im.intKey(c, ctsync.MinACKWindow, ctsync.MaxACKWindow, "sync.ack_window", "", &sy.ackWindow)
		case "PurgeTimeout":
			im.intKey(c, 0, 86400, "sync.purge_delay", "s", &sy.purgeDelay)
		default:
			im.ctOther("Mode", c)
		}
	}
}

// expectationSync carries Options ExpectationSync: on or off, or a block
// of helper names (fwpair replicates the expectations of every helper).
func (im *importer) expectationSync(o *stmt) {
	sy := im.sync()
	from := o.where() + " ExpectationSync"
	if len(o.Children) > 0 {
		sy.expectations = val{"true", from}
		im.note(o, Approximated, "sync.expectations = true replicates the expectations of every helper, not only those listed")
		return
	}
	im.boolKey(o, "sync.expectations", &sy.expectations)
}

// boolKey carries an on/off directive into key; anything else is an error
// naming the directive.
func (im *importer) boolKey(c *stmt, key string, dst *val) {
	on, ok := onOff(c)
	if !ok {
		im.fatalf(c, "%s %q is not on or off", c.Name, c.arg(0))
		return
	}
	*dst = val{strconv.FormatBool(on), c.where() + " " + c.Name}
	im.note(c, Carried, "%s", key)
}

// intKey carries an integer directive in lo..hi into key (its value
// followed by unit); anything else is an error naming the directive.
func (im *importer) intKey(c *stmt, lo, hi int, key, unit string, dst *val) {
	n, err := strconv.Atoi(c.arg(0))
	if err != nil || n < lo || n > hi {
		im.fatalf(c, "%s %q is not an integer from %d to %d", c.Name, c.arg(0), lo, hi)
		return
	}
	*dst = val{itoa(n) + unit, c.where() + " " + c.Name}
	im.note(c, Carried, "%s", key)
}

func (im *importer) channel(c *stmt) {
	sy := im.sync()
	l := &outLink{from: c.where() + " " + c.Name}
	multicast := c.Name == "Multicast"
	for _, o := range c.Children {
		from := o.where() + " " + o.Name
		switch o.Name {
		case "IPv4_address", "IPv6_address":
			a, err := netip.ParseAddr(o.arg(0))
			if err != nil {
				im.fatalf(o, "%s %q is not an IP address", o.Name, o.arg(0))
				continue
			}
			if multicast {
				l.group = val{a.String(), from}
				im.note(o, Carried, "sync.link.multicast_group")
			} else {
				l.local = val{a.String(), from}
				im.note(o, Carried, "sync.link.local")
			}
		case "IPv4_Destination_Address", "IPv6_Destination_Address":
			a, err := netip.ParseAddr(o.arg(0))
			if err != nil {
				im.fatalf(o, "%s %q is not an IP address", o.Name, o.arg(0))
				continue
			}
			l.peer = val{a.String(), from}
			im.note(o, Carried, "sync.link.peer")
		case "IPv4_interface", "IPv6_interface":
			a, err := netip.ParseAddr(o.arg(0))
			if err != nil {
				im.fatalf(o, "%s %q is not an IP address", o.Name, o.arg(0))
				continue
			}
			l.local = val{a.String(), from}
			im.note(o, Carried, "sync.link.local")
		case "Port", "Group":
			if n, err := strconv.Atoi(o.arg(0)); err == nil && n >= 1 && n <= 65535 {
				l.port = val{itoa(n), from}
				im.note(o, Carried, "sync.link.port")
			} else {
				im.fatalf(o, "%s %q is not a port", o.Name, o.arg(0))
			}
		case "Interface":
			l.iface = val{o.arg(0), from}
			im.note(o, Carried, "sync.link.interface")
		case "SndSocketBuffer":
			im.intKey(o, ctsync.MinSocketBuffer, ctsync.MaxSocketBuffer, "sync.link.send_buffer", "", &l.sndBuf)
		case "RcvSocketBuffer":
			im.intKey(o, ctsync.MinSocketBuffer, ctsync.MaxSocketBuffer, "sync.link.recv_buffer", "", &l.rcvBuf)
		default:
			im.ctOther("Channel", o)
		}
	}
	if len(c.Args) > 0 && c.arg(0) == "Default" {
		l.isDefault = true
	}
	if !l.iface.set() {
		im.fatalf(c, "%s channel without Interface: fwpair needs the sync link's interface name", c.Name)
	}
	if !l.local.set() {
		im.fatalf(c, "%s channel without a local address (IPv4_address or IPv4_interface)", c.Name)
	}
	if !multicast && !l.peer.set() {
		im.fatalf(c, "UDP channel without IPv4_Destination_Address")
	}
	if multicast {
		if len(im.syncPeers) == 0 {
			im.fatalf(c, "Multicast channel: fwpair accepts sync datagrams only from the peer, and conntrackd.conf does not name it: give the peer's address on the sync link with -sync-peer")
		}
		for _, a := range im.syncPeers {
			l.acceptFrom = append(l.acceptFrom, val{a, "-sync-peer"})
		}
	}
	if len(sy.links) == 4 {
		im.note(c, Refused, "fwpair uses at most 4 sync links")
		return
	}
	sy.links = append(sy.links, l)
}

func (im *importer) general(g *stmt) {
	for _, c := range g.Children {
		switch c.Name {
		case "Filter":
			im.filter(c)
			continue
		case "HashLimit":
			// conntrackd bounds both caches; fwpair bounds the one the
			// peer fills (its internal cache follows the kernel's table).
			if im.out.sync == nil {
				im.out.sync = &outSync{from: c.where() + " HashLimit"}
			}
			im.intKey(c, ctsync.MinExternalLimit, ctsync.MaxExternalLimit, "sync.external_limit", "", &im.sync().externalLimit)
			continue
		}
		im.ctOther("General", c)
	}
}

// conntrackdTCPState spells a conntrackd TCP state name the way fwpair's
// filter does (ctsync.FilterTCPStates); "" when fwpair has no such state.
func conntrackdTCPState(name string) string {
	name = strings.ToUpper(name)
	if name == "CLOSED" {
		name = "CLOSE"
	}
	if !slices.Contains(ctsync.FilterTCPStates(), name) {
		return ""
	}
	return name
}

func (im *importer) filter(f *stmt) {
	if im.out.sync == nil {
		im.out.sync = &outSync{from: f.where() + " Filter"}
	}
	sy := im.sync()
	if strings.EqualFold(f.arg(1), "Kernelspace") {
		im.note(f, Approximated, "fwpair filters in userspace: the same flows are replicated, the kernel still reports the others to fwpaird")
	}
	for _, c := range f.Children {
		policy := strings.ToLower(c.arg(0))
		if policy != "accept" && policy != "ignore" {
			im.fatalf(c, "%s %q is not Accept or Ignore", c.Name, c.arg(0))
			continue
		}
		switch c.Name {
		case "Protocol":
			var listed []string
			for _, p := range words(c) {
				name := strings.ToLower(p.text)
				if !slices.Contains(ctsync.FilterProtocols(), name) {
					im.note(p.s, Refused, "protocol %q is not known to fwpair's filter", p.text)
					continue
				}
				listed = append(listed, name)
			}
			sy.protocols = append(sy.protocols, im.acceptedOf(c, policy, listed, ctsync.FilterProtocols(), "sync.filter.protocols", "protocols: every protocol it knows")...)
		case "Address":
			for _, a := range c.Children {
				if a.Name != "IPv4_address" && a.Name != "IPv6_address" {
					im.note(a, Refused, "not an address")
					continue
				}
				p, err := prefixOf(a.arg(0))
				if err != nil {
					im.fatalf(a, "%s %q is not an address or CIDR", a.Name, a.arg(0))
					continue
				}
				v := val{p, a.where()}
				if policy == "accept" {
					sy.accept = append(sy.accept, v)
				} else {
					sy.ignore = append(sy.ignore, v)
				}
			}
			im.note(c, Carried, "sync.filter.%s_addresses (fwpair also ignores its own addresses, the VIPs and the sync link by default: ignore_own)", policy)
		case "State":
			var listed []string
			ws := words(c)
			for i := 0; i < len(ws); i++ {
				w := ws[i]
				if strings.EqualFold(w.text, "for") {
					if i+1 < len(ws) && !strings.EqualFold(ws[i+1].text, "TCP") {
						im.note(w.s, Refused, "states of %s are not filtered (TCP only)", ws[i+1].text)
					}
					i++
					continue
				}
				name := conntrackdTCPState(w.text)
				if name == "" {
					im.note(w.s, Refused, "TCP state %q is not known to fwpair (%s)", w.text, strings.Join(ctsync.FilterTCPStates(), ", "))
					continue
				}
				listed = append(listed, name)
			}
			sy.tcpStates = append(sy.tcpStates, im.acceptedOf(c, policy, listed, ctsync.FilterTCPStates(), "sync.filter.tcp_states", "TCP states: every state")...)
		default:
			im.note(c, Refused, "unknown filter")
		}
	}
}

// acceptedOf turns a filter's Accept or Ignore list into fwpair's accept
// list (the key): Accept carries the listed names as they are; Ignore is
// approximated by every name in all except the listed ones (what says
// which, for the note).
func (im *importer) acceptedOf(c *stmt, policy string, listed, all []string, key, what string) []val {
	from := c.where() + " " + c.Name + " " + c.arg(0)
	var out []val
	if policy == "accept" {
		for _, n := range listed {
			out = append(out, val{n, from})
		}
		im.note(c, Carried, "%s", key)
		return out
	}
	for _, n := range all {
		if !slices.Contains(listed, n) {
			out = append(out, val{n, from})
		}
	}
	im.note(c, Approximated, "fwpair accepts a list of %s except these", what)
	return out
}

func prefixOf(s string) (string, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return "", err
		}
		return p.Masked().String(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return "", err
	}
	return a.String(), nil
}
