package importer

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// keepalived directives fwpair does not need or cannot express, with the
// reason given to the operator. Keys are "context directive" (context is
// global_defs, vrrp_sync_group, vrrp_instance or "" for the top level).
var keepalivedRefused = map[string]struct {
	outcome Outcome
	why     string
}{
	" virtual_server":                          {Refused, "LVS load balancing is not part of fwpair"},
	" virtual_server_group":                    {Refused, "LVS load balancing is not part of fwpair"},
	" vrrp_script":                             {Refused, "fwpair has no health-check scripts; track interfaces instead, or lower the priority with a reload"},
	" vrrp_track_file":                         {Refused, "fwpair has no track files"},
	" track_file":                              {Refused, "fwpair has no track files"},
	" static_ipaddress":                        {Refused, "static addresses belong to the network configuration (ifupdown, systemd-networkd)"},
	" static_routes":                           {Refused, "static routes belong to the network configuration"},
	" static_rules":                            {Refused, "static rules belong to the network configuration"},
	" linkbeat_use_polling":                    {Ignored, "fwpair follows links through netlink"},
	"global_defs notification_email":           {Ignored, "fwpair sends no mail; use the alerting rules (etc/fwpair-alerts.yml)"},
	"global_defs notification_email_from":      {Ignored, "fwpair sends no mail"},
	"global_defs smtp_server":                  {Ignored, "fwpair sends no mail"},
	"global_defs smtp_connect_timeout":         {Ignored, "fwpair sends no mail"},
	"global_defs enable_script_security":       {Ignored, "fwpair's hook runs under the unit's user"},
	"global_defs script_user":                  {Ignored, "fwpair's hook runs under the unit's user"},
	"global_defs vrrp_skip_check_adv_addr":     {Ignored, "fwpair always checks the advert's addresses"},
	"global_defs vrrp_garp_interval":           {Ignored, "fwpair spaces gratuitous ARPs by vrrp.garp_spacing (default 200ms)"},
	"global_defs vrrp_gna_interval":            {Ignored, "fwpair spaces gratuitous ARPs by vrrp.garp_spacing"},
	"global_defs vrrp_iptables":                {Ignored, "fwpair leaves the ruleset alone; load etc/fwpair.nft or your own"},
	"global_defs vrrp_no_swap":                 {Ignored, "not applicable"},
	"global_defs lvs_id":                       {Refused, "LVS is not part of fwpair"},
	"vrrp_sync_group smtp_alert":               {Ignored, "fwpair sends no mail"},
	"vrrp_sync_group global_tracking":          {Approximated, "fwpair applies vrrp.track_interfaces to the whole group"},
	"vrrp_sync_group track_script":             {Refused, "fwpair has no health-check scripts"},
	"vrrp_sync_group notify_stop":              {Refused, "fwpair has no stop notification; systemd reports the unit's stop"},
	"vrrp_instance state":                      {Approximated, "fwpair has no initial state: every node starts as BACKUP and the priority decides (a priority of 255 owns the addresses)"},
	"vrrp_instance smtp_alert":                 {Ignored, "fwpair sends no mail"},
	"vrrp_instance track_script":               {Refused, "fwpair has no health-check scripts"},
	"vrrp_instance track_file":                 {Refused, "fwpair has no track files"},
	"vrrp_instance dont_track_primary":         {Refused, "fwpair always tracks the instance's interface"},
	"vrrp_instance virtual_ipaddress_excluded": {Refused, "fwpair adds every address it owns to the advert; add these to the network configuration"},
	"vrrp_instance virtual_routes":             {Refused, "routes belong to the network configuration"},
	"vrrp_instance virtual_rules":              {Refused, "rules belong to the network configuration"},
	"vrrp_instance garp_master_delay":          {Ignored, "fwpair sends its burst at once and refreshes it by vrrp.garp_refresh"},
	"vrrp_instance garp_lower_prio_repeat":     {Ignored, "not applicable"},
	"vrrp_instance lvs_sync_daemon_interface":  {Refused, "LVS is not part of fwpair"},
	"vrrp_instance vmac_xmit_base":             {Approximated, "with use_vmac fwpair sends adverts through the parent interface, as vmac_xmit_base does, but from the virtual MAC (RFC 9568 7.2), not the interface's"},
	"vrrp_instance native_ipv6":                {Refused, "IPv6 instances are not imported: write a VRRPv3 IPv6 instance by hand (fwpair.toml(5))"},
	"vrrp_instance mcast_src_ip":               {Approximated, "fwpair sends from the interface's primary address"},
	"vrrp_instance notify_stop":                {Refused, "fwpair has no stop notification; systemd reports the unit's stop"},
	"vrrp_instance debug":                      {Ignored, "use log.level = \"debug\""},
}

// keepalived converts the top level of a keepalived.conf.
func (im *importer) keepalived(sts []*stmt) {
	groupOf := map[string]string{}
	var groups []*stmt
	for _, s := range sts {
		switch s.Name {
		case "global_defs":
			im.globalDefs(s)
		case "vrrp_sync_group":
			groups = append(groups, s)
		case "vrrp_instance":
		default:
			im.other("", s)
		}
	}
	for i, g := range groups {
		if i == 0 {
			im.out.group = val{g.arg(0), g.where() + " vrrp_sync_group"}
			im.note(g, Carried, "vrrp.group")
		} else {
			im.note(g, Approximated, "fwpair runs one sync group per node: its instances join group %q", groups[0].arg(0))
		}
		for _, c := range g.Children {
			switch c.Name {
			case "group":
				for _, m := range words(c) {
					groupOf[m.text] = g.arg(0)
				}
			case "notify_master", "notify_backup", "notify_fault", "notify":
				im.notify(c)
			default:
				im.other("vrrp_sync_group", c)
			}
		}
	}
	for _, s := range sts {
		if s.Name == "vrrp_instance" {
			if len(groups) > 0 && groupOf[s.arg(0)] == "" {
				im.note(s, Approximated, "not in a vrrp_sync_group: fwpair moves every instance of a node together")
			}
			im.instance(s)
		}
	}
	im.resolveAdverts()
}

func (im *importer) other(ctx string, s *stmt) {
	if r, ok := keepalivedRefused[ctx+" "+s.Name]; ok {
		im.note(s, r.outcome, "%s", r.why)
		return
	}
	im.note(s, Refused, "unknown to the importer: check whether fwpair needs it")
}

func (im *importer) globalDefs(g *stmt) {
	for _, c := range g.Children {
		switch c.Name {
		case "router_id":
			im.out.node = val{c.arg(0), c.where() + " router_id"}
			im.note(c, Carried, "node.name")
		case "vrrp_version":
			im.version(c, c.where()+" vrrp_version")
		case "vrrp_garp_master_repeat":
			im.garpRepeat(c)
		case "vrrp_garp_master_refresh":
			im.garpRefresh(c)
		case "vrrp_strict":
			// keepalived's strict mode makes no_accept the default of
			// instances that say neither accept nor no_accept.
			im.strict = val{"false", c.where() + " vrrp_strict"}
			im.note(c, Approximated, "instances without accept or no_accept get accept_mode = false, as strict mode defaults them; fwpair does not refuse unicast or authentication as strict mode does")
		default:
			im.other("global_defs", c)
		}
	}
}

func (im *importer) garpRepeat(c *stmt) {
	n, err := strconv.Atoi(c.arg(0))
	if err != nil || n < 0 || n > 100 {
		im.note(c, Refused, "not a count from 0 to 100")
		return
	}
	im.out.garpBurst = val{itoa(n), c.where() + " " + c.Name}
	im.note(c, Carried, "vrrp.garp_burst")
}

func (im *importer) garpRefresh(c *stmt) {
	n, err := strconv.Atoi(c.arg(0))
	if err != nil || n < 0 {
		im.note(c, Refused, "not a number of seconds")
		return
	}
	if n > 0 {
		im.out.garpRefr = val{itoa(n) + "s", c.where() + " " + c.Name}
	}
	im.note(c, Carried, "vrrp.garp_refresh")
}

// notify handles notify scripts. conntrackd's primary-backup.sh is what
// fwpaird does itself (ordered, before the VIPs); another script becomes
// the transition hook, called differently.
func (im *importer) notify(c *stmt) {
	cmd := strings.Join(c.Args, " ")
	if strings.Contains(cmd, "primary-backup.sh") || strings.Contains(cmd, "conntrackd") {
		im.note(c, Ignored, "fwpaird commits the replicated connections itself on becoming MASTER, before the VIPs; conntrackd's notify script must not run with fwpair")
		return
	}
	script := c.arg(0)
	if im.out.hook.set() && im.out.hook.v != script {
		im.note(c, Refused, "fwpair runs one transition hook; %q is already hooks.on_transition", im.out.hook.v)
		return
	}
	if len(c.Args) > 1 || strings.ContainsAny(script, " \t") {
		im.note(c, Refused, "hooks.on_transition runs one program without arguments (it gets the state as $1 and FWPAIR_* variables): wrap %q in a script", cmd)
		return
	}
	im.out.hook = val{script, c.where() + " " + c.Name}
	im.note(c, Approximated, "hooks.on_transition = %q: fwpair calls it after every transition with the new state as $1 (MASTER, BACKUP, FAULT) and FWPAIR_NODE, FWPAIR_FROM, FWPAIR_STATE, FWPAIR_REASON in the environment; keepalived passed GROUP|INSTANCE NAME STATE: adapt the script", script)
}

func (im *importer) instance(s *stmt) {
	in := &outInstance{name: val{s.arg(0), ""}, from: s.where() + " vrrp_instance " + s.arg(0)}
	if s.arg(0) == "" {
		im.fatalf(s, "vrrp_instance without a name")
	}
	for _, c := range s.Children {
		from := c.where() + " " + c.Name
		switch c.Name {
		case "interface":
			in.iface = val{c.arg(0), from}
			im.note(c, Carried, "interface")
		case "virtual_router_id":
			if n, err := strconv.Atoi(c.arg(0)); err != nil || n < 1 || n > 255 {
				im.fatalf(c, "virtual_router_id %q is not 1..255", c.arg(0))
			} else {
				in.vrid = val{itoa(n), from}
				im.note(c, Carried, "vrid")
			}
		case "priority":
			if n, err := strconv.Atoi(c.arg(0)); err != nil || n < 1 || n > 255 {
				im.fatalf(c, "priority %q is not 1..255", c.arg(0))
			} else {
				in.priority = val{itoa(n), from}
				im.note(c, Carried, "priority")
			}
		case "advert_int":
			im.advert(in, c)
		case "state":
			if strings.EqualFold(c.arg(0), "BACKUP") {
				im.note(c, Ignored, "every fwpair node starts as BACKUP")
			} else {
				im.other("vrrp_instance", c)
			}
		case "version":
			im.version(c, from)
		case "nopreempt":
			in.preempt = val{"false", from}
			im.note(c, Carried, "preempt = false")
		case "preempt":
			in.preempt = val{"true", from}
			im.note(c, Carried, "preempt = true")
		case "preempt_delay":
			f, err := strconv.ParseFloat(c.arg(0), 64)
			if err != nil || f < 0 || f > 1000 {
				im.fatalf(c, "preempt_delay %q is not a number of seconds", c.arg(0))
				continue
			}
			in.preemptDelay = val{seconds(f), from}
			im.note(c, Carried, "preempt_delay")
		case "accept":
			in.accept = val{"true", from}
			im.note(c, Carried, "accept_mode = true")
		case "no_accept":
			in.accept = val{"false", from}
			im.note(c, Carried, "accept_mode = false")
		case "use_vmac":
			in.useVMAC = val{"true", from}
			if len(c.Args) > 0 {
				im.note(c, Approximated, "use_vmac: fwpair names the interface vrrp.<VRID> itself, not %q", c.arg(0))
			} else {
				im.note(c, Carried, "use_vmac")
			}
		case "virtual_ipaddress":
			im.vips(in, c)
		case "unicast_peer":
			for _, p := range c.Children {
				a, err := netip.ParseAddr(p.Name)
				if err != nil {
					im.fatalf(p, "unicast_peer %q is not an IP address", p.Name)
					continue
				}
				if len(p.Args) > 0 {
					im.note(p, Approximated, "options after the address are dropped")
				}
				in.unicastPeers = append(in.unicastPeers, val{a.String(), p.where()})
			}
			im.note(c, Carried, "unicast_peers")
		case "unicast_src_ip":
			if a, err := netip.ParseAddr(c.arg(0)); err != nil {
				im.fatalf(c, "unicast_src_ip %q is not an IP address", c.arg(0))
			} else {
				in.unicastSource = val{a.String(), from}
				im.note(c, Carried, "unicast_source")
			}
		case "authentication":
			im.auth(in, c)
		case "track_interface":
			for _, t := range c.Children {
				in.track = append(in.track, val{t.Name, t.where()})
				if len(t.Args) > 0 {
					im.note(t, Approximated, "weight is not supported: a tracked interface going down puts the group in FAULT")
				}
			}
			im.note(c, Carried, "track_interfaces")
		case "notify_master", "notify_backup", "notify_fault", "notify":
			im.notify(c)
		case "garp_master_repeat":
			im.garpRepeat(c)
		case "garp_master_refresh":
			im.garpRefresh(c)
		default:
			im.other("vrrp_instance", c)
		}
	}
	if !in.accept.set() && im.strict.set() {
		in.accept = im.strict
	}
	if !in.iface.set() {
		im.fatalf(s, "vrrp_instance %s has no interface", s.arg(0))
	}
	if !in.vrid.set() {
		im.fatalf(s, "vrrp_instance %s has no virtual_router_id", s.arg(0))
	}
	if len(in.vips) == 0 {
		im.fatalf(s, "vrrp_instance %s has no IPv4 virtual_ipaddress fwpair can carry", s.arg(0))
	}
	im.out.instances = append(im.out.instances, in)
}

// version carries vrrp_version (global) and an instance's version:
// fwpair runs one VRRP version per node.
func (im *importer) version(c *stmt, from string) {
	v := c.arg(0)
	if v != "2" && v != "3" {
		im.note(c, Refused, "VRRP version %q: fwpair speaks versions 2 and 3", v)
		return
	}
	if im.out.version.set() && im.out.version.v != v {
		im.fatalf(c, "VRRP version %s here, %s at %s: fwpair runs one VRRP version for all instances of a node", v, im.out.version.v, im.out.version.from)
		return
	}
	im.out.version = val{v, from}
	im.note(c, Carried, "vrrp.version")
}

// advert reads advert_int; resolveAdverts carries it once the version
// is known.
func (im *importer) advert(in *outInstance, c *stmt) {
	f, err := strconv.ParseFloat(c.arg(0), 64)
	if err != nil || f <= 0 || f > 255 {
		im.fatalf(c, "advert_int %q is not a number of seconds from 1 to 255", c.arg(0))
		return
	}
	in.advertStmt, in.advertSecs = c, f
}

// resolveAdverts carries every instance's advert_int: VRRPv2 advertises
// in whole seconds, VRRPv3 in centiseconds from 10 ms to 40.95 s.
func (im *importer) resolveAdverts() {
	v3 := im.out.version.v == "3"
	for _, in := range im.out.instances {
		c, f := in.advertStmt, in.advertSecs
		if c == nil {
			continue
		}
		from := c.where() + " advert_int"
		switch {
		case v3:
			cs := math.Round(f * 100)
			cs = math.Min(4095, math.Max(1, cs))
			in.advert = val{seconds(cs / 100), from}
			if cs != f*100 {
				im.note(c, Approximated, "VRRPv3 advertises in centiseconds from 10ms to 40.95s: %s", seconds(cs/100))
			} else {
				im.note(c, Carried, "advert_interval")
			}
		case f != math.Trunc(f) || f < 1:
			up := math.Max(1, math.Ceil(f))
			in.advert = val{seconds(up), from}
			im.note(c, Approximated, "VRRPv2 advertises in whole seconds: %s (vrrp_version 3 allows sub-second adverts)", seconds(up))
		default:
			in.advert = val{seconds(f), from}
			im.note(c, Carried, "advert_interval")
		}
	}
}

func seconds(f float64) string {
	if f == math.Trunc(f) {
		return fmt.Sprintf("%ds", int(f))
	}
	return fmt.Sprintf("%dms", int(math.Round(f*1000)))
}

// vips carries virtual_ipaddress lines: ADDR[/LEN] [brd X] [dev IF]
// [scope S] [label L].
func (im *importer) vips(in *outInstance, c *stmt) {
	for _, v := range c.Children {
		addr := v.Name
		if !strings.Contains(addr, "/") {
			addr += "/32" // keepalived's default
		}
		p, err := netip.ParsePrefix(addr)
		if err != nil {
			im.fatalf(v, "virtual_ipaddress %q is not an address or CIDR", v.Name)
			continue
		}
		if !p.Addr().Is4() {
			im.note(v, Refused, "IPv6 virtual addresses are not imported: write a VRRPv3 IPv6 instance by hand, its link-local VIP first (fwpair.toml(5))")
			continue
		}
		skip := false
		for i := 0; i < len(v.Args); i++ {
			opt, arg := v.Args[i], ""
			if i+1 < len(v.Args) {
				arg = v.Args[i+1]
			}
			switch opt {
			case "dev":
				i++
				if in.iface.set() && arg != in.iface.v {
					im.note(v, Refused, "fwpair adds an instance's addresses on its interface %s, not %s: make it an instance on %s", in.iface.v, arg, arg)
					skip = true
				}
			case "label":
				i++
				if in.vipLabel.set() && in.vipLabel.v != arg {
					im.note(v, Approximated, "one label per instance: %q is kept", in.vipLabel.v)
				} else if len(arg) <= 15 {
					in.vipLabel = val{arg, v.where() + " label"}
				}
			case "brd", "broadcast", "scope":
				i++
				im.note(v, Ignored, "%s %s: fwpair adds the address with the kernel's defaults", opt, arg)
			default:
				im.note(v, Refused, "option %q is not supported", opt)
			}
		}
		if !skip && slices.ContainsFunc(in.vips, func(x val) bool { return x.v == p.String() }) {
			im.note(v, Ignored, "%s is listed twice", p)
			skip = true
		}
		if !skip {
			in.vips = append(in.vips, val{p.String(), v.where()})
		}
	}
	im.note(c, Carried, "vips")
}

func (im *importer) auth(in *outInstance, c *stmt) {
	typ, pass := "", ""
	var passStmt *stmt
	for _, a := range c.Children {
		switch a.Name {
		case "auth_type":
			typ = strings.ToUpper(a.arg(0))
		case "auth_pass":
			pass, passStmt = a.arg(0), a
		default:
			im.other("authentication", a)
		}
	}
	switch typ {
	case "PASS":
		if passStmt == nil {
			im.fatalf(c, "auth_type PASS without auth_pass")
			return
		}
		if len(pass) > 8 {
			// keepalived also sends only the first 8 characters.
			pass = pass[:8]
			im.note(passStmt, Approximated, "truncated to its first 8 characters, as keepalived does on the wire")
		} else {
			im.note(passStmt, Carried, "auth_password")
		}
		in.authPassword = val{pass, passStmt.where() + " auth_pass"}
	case "AH":
		im.note(c, Refused, "IPsec AH authentication is not supported (RFC 3768 deprecates authentication)")
	default:
		im.note(c, Refused, "auth_type %q is not PASS", typ)
	}
}
