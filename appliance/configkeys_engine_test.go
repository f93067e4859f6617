package appliance

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/fwpair/fwpair/ctsync"
)

// keyMapping says where one documented key lands: get reads it back from
// the parsed configuration, from the engines' own configs (vrrp.Config,
// ctsync.Config) where the engine uses it, in TOML terms (string, int,
// bool, time.Duration, []string).
type keyMapping struct {
	key string
	// set is a non-default TOML value of the key.
	set string
	get func(*Config) any
	// dflt is the value expected when the key is left out, for keys whose
	// documented default is prose ("none", "all", "required"...); nil:
	// the documented default is a TOML value and is what is expected.
	dflt any
	// want is the value expected for set when it is not set itself.
	want any
	// with are other keys the mapping needs, in both runs.
	with map[string]string
	// engine translates a TOML value into the engine's terms (nil: same).
	engine func(any) any
	// pattern: the documented default is a TOML value that stands for
	// others ("INTERFACE-VRID"); dflt is what it gives in the base.
	pattern bool
}

// keyMappings covers every row of ConfigKeys; the ReachEngines tests fail
// for a key without one.
func keyMappings(t *testing.T) []keyMapping {
	key := strings.Repeat("ab", 32)
	keyFile := filepath.Join(t.TempDir(), "sync.key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	wire := func(v string) ctsync.WireOptions {
		w, err := ctsync.WireFor(v)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	return []keyMapping{
		{key: "node.name", set: `"fw9"`, get: func(c *Config) any { return c.Node }, dflt: host},
		{key: "log.level", set: `"debug"`, get: func(c *Config) any { return c.Log.Level }},
		{key: "log.format", set: `"json"`, get: func(c *Config) any { return c.Log.Format }},
		{key: "control.socket", set: `"/run/x/x.sock"`, get: func(c *Config) any { return c.Control.Socket }},
		{key: "metrics.listen", set: `"127.0.0.1:9723"`, get: func(c *Config) any { return c.Metrics.Listen }, dflt: ""},
		{key: "hooks.on_transition", set: `"/bin/true"`, get: func(c *Config) any { return c.Hooks.OnTransition }, dflt: ""},
		{key: "hooks.timeout", set: `"3s"`, get: func(c *Config) any { return c.Hooks.Timeout }},
		{key: "vrrp.group", set: `"g"`, get: func(c *Config) any { return c.VRRP.Group }},
		{key: "vrrp.version", set: `3`, get: func(c *Config) any { return int(c.VRRP.Instances[0].Version) }},
		{key: "vrrp.garp_burst", set: `2`, get: func(c *Config) any { return c.VRRP.GARP.Count }},
		{key: "vrrp.garp_spacing", set: `"1s"`, get: func(c *Config) any { return c.VRRP.GARP.Spacing }},
		{key: "vrrp.garp_refresh", set: `"30s"`, get: func(c *Config) any { return c.VRRP.GARP.Refresh }},
		{key: "vrrp.track_interfaces", set: `["eth1"]`, get: func(c *Config) any { return c.VRRP.Instances[0].TrackInterfaces }, dflt: []string(nil)},
		{key: "vrrp.startup_delay", set: `"2s"`, get: func(c *Config) any { return c.VRRP.StartupDelay }},
		{key: "vrrp.realtime_priority", set: `50`, get: func(c *Config) any { return c.VRRP.RealtimePriority }},
		{key: "vrrp.instance.name", set: `"inside"`, get: func(c *Config) any { return c.VRRP.Instances[0].Name }, dflt: "eth0-51", pattern: true},
		{key: "vrrp.instance.interface", set: `"eth1"`, get: func(c *Config) any { return c.VRRP.Instances[0].Interface }, dflt: "eth0"},
		{key: "vrrp.instance.vrid", set: `52`, get: func(c *Config) any { return int(c.VRRP.Instances[0].VRID) }, dflt: 51},
		{key: "vrrp.instance.priority", set: `150`, get: func(c *Config) any { return int(c.VRRP.Instances[0].Priority) }},
		{key: "vrrp.instance.advert_interval", set: `"2s"`, get: func(c *Config) any { return c.VRRP.Instances[0].AdvertInterval }},
		{key: "vrrp.instance.vips", set: `["10.1.1.1/24"]`, get: func(c *Config) any {
			var out []string
			for _, v := range c.VRRP.Instances[0].VIPs {
				out = append(out, v.Prefix.String())
			}
			return out
		}, dflt: []string{"192.168.0.100/24"}},
		{key: "vrrp.instance.vip_label", set: `"eth0:vip"`, get: func(c *Config) any { return c.VRRP.Instances[0].VIPs[0].Label }, dflt: ""},
		{key: "vrrp.instance.preempt", set: `false`, get: func(c *Config) any { return c.VRRP.Instances[0].Preempt }},
		{key: "vrrp.instance.preempt_delay", set: `"5s"`, get: func(c *Config) any { return c.VRRP.Instances[0].PreemptDelay }},
		{key: "vrrp.instance.track_interfaces", set: `["eth3"]`, get: func(c *Config) any { return c.VRRP.Instances[0].TrackInterfaces }, dflt: []string(nil)},
		{key: "vrrp.instance.unicast_peers", set: `["192.168.0.2"]`, get: func(c *Config) any { return addrStrings(c.VRRP.Instances[0].UnicastPeers) }, dflt: []string(nil)},
		{key: "vrrp.instance.unicast_source", set: `"192.168.0.1"`, get: func(c *Config) any { return addrString(c.VRRP.Instances[0].UnicastSource) }, dflt: "",
			with: map[string]string{"vrrp.instance.unicast_peers": `["192.168.0.2"]`}},
		{key: "vrrp.instance.auth_password", set: `"secret"`, get: func(c *Config) any { return c.VRRP.Instances[0].AuthPassword }, dflt: ""},
		{key: "vrrp.instance.use_vmac", set: `true`, get: func(c *Config) any { return c.VRRP.Instances[0].UseVMAC }},
		{key: "vrrp.instance.accept_mode", set: `false`, get: func(c *Config) any { return !c.VRRP.Instances[0].NoAccept }},
		{key: "sync.mode", set: `"notrack"`, get: func(c *Config) any { return string(c.Sync.Mode) }},
		{key: "sync.ack_window", set: `500`, get: func(c *Config) any { return c.Sync.ACKWindow }},
		{key: "sync.resend_queue", set: `1024`, get: func(c *Config) any { return c.Sync.ResendQueueSize }},
		{key: "sync.external_limit", set: `1048576`, get: func(c *Config) any { return c.Sync.ExternalLimit }},
		{key: "sync.auth.key_files", set: fmt.Sprintf("[%q]", keyFile), get: func(c *Config) any {
			if c.Sync.Auth == nil {
				return [][]byte(nil)
			}
			return c.Sync.Auth.Keys
		}, dflt: [][]byte(nil), want: [][]byte{[]byte(strings.Repeat("\xab", 32))}},
		{key: "sync.auth.max_clock_skew", set: `"30s"`, get: func(c *Config) any { return c.Sync.Auth.MaxSkew },
			with: map[string]string{"sync.auth.key_files": fmt.Sprintf("[%q]", keyFile)}},
		{key: "sync.commit_timeout", set: `"10s"`, get: func(c *Config) any { return c.Sync.CommitTimeout }},
		{key: "sync.purge_delay", set: `"5s"`, get: func(c *Config) any { return c.Sync.PurgeDelay }},
		{key: "sync.ready_timeout", set: `"0s"`, get: func(c *Config) any { return c.Sync.ReadyTimeout }},
		{key: "sync.direct_inject", set: `false`, get: func(c *Config) any { return c.Sync.DirectInject }},
		{key: "sync.startup_resync", set: `false`, get: func(c *Config) any { return !c.Sync.NoStartupResync }},
		{key: "sync.peer_version", set: `"1.4.5"`, get: func(c *Config) any { return c.Sync.Wire },
			engine: func(v any) any { return wire(v.(string)) }},
		{key: "sync.consistency_check", set: `"0s"`, get: func(c *Config) any { return c.Sync.ConsistencyInterval }},
		{key: "sync.expectations", set: `false`, get: func(c *Config) any { return c.Sync.Expectations }, dflt: true},
		{key: "sync.link.interface", set: `"eth3"`, get: func(c *Config) any { return c.Sync.Channels[0].Interface }, dflt: "eth2"},
		{key: "sync.link.local", set: `"10.0.0.5"`, get: func(c *Config) any { return addrString(c.Sync.Channels[0].Local) }, dflt: "10.0.0.1"},
		{key: "sync.link.peer", set: `"10.0.0.2"`, get: func(c *Config) any { return addrString(c.Sync.Channels[0].Peer) }, dflt: ""},
		{key: "sync.link.multicast_group", set: `"225.0.0.51"`, get: func(c *Config) any { return addrString(c.Sync.Channels[0].Group) }, dflt: "225.0.0.50"},
		{key: "sync.link.port", set: `4000`, get: func(c *Config) any { return int(c.Sync.Channels[0].Port) }},
		{key: "sync.link.accept_from", set: `["10.0.0.3"]`, get: func(c *Config) any { return addrStrings(c.Sync.Channels[0].AcceptFrom) }, dflt: []string{"10.0.0.2"}},
		{key: "sync.link.send_buffer", set: `8192`, get: func(c *Config) any { return c.Sync.Channels[0].SendBuffer }},
		{key: "sync.link.recv_buffer", set: `8192`, get: func(c *Config) any { return c.Sync.Channels[0].RecvBuffer }},
		{key: "sync.filter.accept_addresses", set: `["10.0.0.0/8"]`, get: func(c *Config) any { return prefixStrings(c.Sync.Filter.AcceptAddrs) }, dflt: []string(nil)},
		{key: "sync.filter.ignore_addresses", set: `["10.9.0.0/16"]`, get: func(c *Config) any { return prefixStrings(c.Sync.Filter.IgnoreAddrs) }, dflt: []string(nil)},
		{key: "sync.filter.protocols", set: `["tcp", "udp"]`, get: func(c *Config) any {
			var out []string
			for _, p := range c.Sync.Filter.AcceptProtos {
				out = append(out, ctsync.ProtoName(p))
			}
			return out
		}, dflt: []string(nil)},
		{key: "sync.filter.tcp_states", set: `["ESTABLISHED"]`, get: func(c *Config) any {
			var out []string
			for _, s := range c.Sync.Filter.AcceptTCPStates {
				out = append(out, ctsync.TCPStateName(s))
			}
			return out
		}, dflt: []string(nil)},
		{key: "sync.filter.ignore_own", set: `false`, get: func(c *Config) any { return c.Sync.Filter.IgnoreOwn }},
	}
}

// forEachKey runs check for every ConfigKeys row with its mapping and
// its documented default in the engine's terms; a key without a mapping,
// or a mapping without a key, fails.
func forEachKey(t *testing.T, check func(t *testing.T, k ConfigKey, m keyMapping, dflt any)) {
	mappings := map[string]keyMapping{}
	for _, m := range keyMappings(t) {
		mappings[m.key] = m
	}
	for _, k := range ConfigKeys {
		m, ok := mappings[k.Key]
		if !ok {
			t.Errorf("%s: no mapping in keyMappings: say where the key lands", k.Key)
			continue
		}
		delete(mappings, k.Key)
		t.Run(k.Key, func(t *testing.T) {
			dflt, err := m.value(k.Type, k.Default)
			switch {
			case err == nil && m.pattern:
				dflt = m.dflt
			case err == nil && m.dflt != nil && !reflect.DeepEqual(dflt, m.dflt):
				t.Fatalf("documented default %s (%#v) but the mapping expects %#v", k.Default, dflt, m.dflt)
			case err != nil && m.dflt == nil:
				t.Fatalf("documented default %q is prose: the mapping must say what it means (%v)", k.Default, err)
			case err != nil:
				dflt = m.dflt
			}
			check(t, k, m, dflt)
		})
	}
	for k := range mappings {
		t.Errorf("%s: mapped but not in ConfigKeys", k)
	}
}

// value reads a TOML value of the key in the engine's terms.
func (m keyMapping) value(typ, text string) (any, error) {
	v, err := tomlValue(typ, text)
	if err == nil && m.engine != nil {
		v = m.engine(v)
	}
	return v, err
}

// TestConfigKeyDefaultsReachEngines: a configuration that leaves a key out
// gives the engine (or the appliance) the default ConfigKeys documents.
func TestConfigKeyDefaultsReachEngines(t *testing.T) {
	forEachKey(t, func(t *testing.T, _ ConfigKey, m keyMapping, dflt any) {
		if got := m.get(parseWith(t, m.with)); !reflect.DeepEqual(got, dflt) {
			t.Errorf("left out: got %#v, want the documented default %#v", got, dflt)
		}
	})
}

// TestConfigKeyValuesReachEngines: a configuration that sets a key to a
// value other than its default gives the engine that value.
func TestConfigKeyValuesReachEngines(t *testing.T) {
	forEachKey(t, func(t *testing.T, k ConfigKey, m keyMapping, dflt any) {
		want := m.want
		if want == nil {
			var err error
			if want, err = m.value(k.Type, m.set); err != nil {
				t.Fatal(err)
			}
		}
		if reflect.DeepEqual(want, dflt) {
			t.Fatalf("set %s is the default: pick another value", m.set)
		}
		set := map[string]string{k.Key: m.set}
		for wk, wv := range m.with {
			set[wk] = wv
		}
		if got := m.get(parseWith(t, set)); !reflect.DeepEqual(got, want) {
			t.Errorf("set to %s: got %#v, want %#v", m.set, got, want)
		}
	})
}

// TestFilterNamesFromEngine: every protocol and TCP state name the engine
// lists for a filter is accepted and reaches the engine's filter as a
// distinct value.
func TestFilterNamesFromEngine(t *testing.T) {
	quoted := func(names []string) string {
		var q []string
		for _, n := range names {
			q = append(q, fmt.Sprintf("%q", n))
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	cfg := parseWith(t, map[string]string{
		"sync.filter.protocols":  quoted(ctsync.FilterProtocols()),
		"sync.filter.tcp_states": quoted(ctsync.FilterTCPStates()),
	})
	for _, c := range []struct {
		names []string
		got   []uint8
	}{{ctsync.FilterProtocols(), cfg.Sync.Filter.AcceptProtos}, {ctsync.FilterTCPStates(), cfg.Sync.Filter.AcceptTCPStates}} {
		seen := map[uint8]bool{}
		for _, v := range c.got {
			seen[v] = true
		}
		if len(c.got) != len(c.names) || len(seen) != len(c.names) {
			t.Errorf("%v became %v", c.names, c.got)
		}
	}
}

// engineKeyBase is the smallest configuration running both engines; the
// tables are in the order TOML needs (a table's keys before its
// sub-tables and arrays of tables).
var engineKeyBase = []struct {
	table string
	array bool
	keys  []string
}{
	{"node", false, nil},
	{"log", false, nil},
	{"control", false, nil},
	{"metrics", false, nil},
	{"hooks", false, nil},
	{"vrrp", false, nil},
	{"vrrp.instance", true, []string{`interface = "eth0"`, `vrid = 51`, `vips = ["192.168.0.100/24"]`}},
	{"sync", false, nil},
	{"sync.auth", false, nil},
	{"sync.filter", false, nil},
	{"sync.link", true, []string{`interface = "eth2"`, `local = "10.0.0.1"`, `accept_from = ["10.0.0.2"]`}},
}

// parseWith parses engineKeyBase with the given dotted keys set (replacing
// a base line of the same key).
func parseWith(t *testing.T, set map[string]string) *Config {
	t.Helper()
	var b strings.Builder
	for _, tb := range engineKeyBase {
		var lines []string
		for _, l := range tb.keys {
			leaf := strings.TrimSpace(strings.SplitN(l, "=", 2)[0])
			if _, ok := set[tb.table+"."+leaf]; !ok {
				lines = append(lines, l)
			}
		}
		for k, v := range set {
			if i := strings.LastIndex(k, "."); k[:i] == tb.table {
				lines = append(lines, k[i+1:]+" = "+v)
			}
		}
		switch {
		case tb.array:
			fmt.Fprintf(&b, "[[%s]]\n", tb.table)
		case len(lines) > 0:
			fmt.Fprintf(&b, "[%s]\n", tb.table)
		}
		for _, l := range lines {
			b.WriteString(l + "\n")
		}
	}
	cfg, err := ParseConfig("keys.toml", []byte(b.String()))
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	return cfg
}

// tomlValue reads a documented TOML value as the getters return it.
func tomlValue(typ, text string) (any, error) {
	var doc map[string]any
	if _, err := toml.Decode("v = "+text, &doc); err != nil {
		return nil, err
	}
	switch v := doc["v"].(type) {
	case int64:
		if typ == "integer" {
			return int(v), nil
		}
	case bool:
		if typ == "boolean" {
			return v, nil
		}
	case string:
		switch typ {
		case "string":
			return v, nil
		case "duration":
			return time.ParseDuration(v)
		}
	case []any:
		if typ == "list of strings" {
			out := []string{}
			for _, e := range v {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("%s: not a list of strings", text)
				}
				out = append(out, s)
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("%s is not a TOML %s", text, typ)
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func addrStrings(list []netip.Addr) []string {
	var out []string
	for _, a := range list {
		out = append(out, a.String())
	}
	return out
}

func prefixStrings(list []netip.Prefix) []string {
	var out []string
	for _, p := range list {
		out = append(out, p.String())
	}
	return out
}
