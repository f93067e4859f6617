package appliance

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/fwpair/fwpair/ctsync"
	"github.com/fwpair/fwpair/vrrp"
)

// Defaults of what the appliance itself does. The engines' defaults and
// allowed values are theirs: vrrp.DefaultInstance, vrrp.DefaultGARP,
// ctsync.DefaultConfig, ctsync.DefaultChannel and their Default*, Min* and
// Max* constants; ConfigKeys documents them all.
const (
	DefaultSocket       = "/run/fwpair/fwpaird.sock"
	DefaultReadyTimeout = 60 * time.Second
	maxReadyTimeout     = time.Hour
	DefaultHookTimeout  = 10 * time.Second
	defaultIgnoreOwn    = true
	defaultLogLevel     = "info"
	defaultLogFormat    = "text"
	defaultGroupName    = "fwpair"
)

// Config is a validated node configuration. VRRP or Sync may be nil: the
// daemon then runs the other engine alone.
type Config struct {
	// File is where the configuration was read from.
	File    string
	Node    string
	Log     LogConfig
	Control ControlConfig
	Metrics MetricsConfig
	VRRP    *VRRPConfig
	Sync    *SyncConfig
	Hooks   HooksConfig
}

// LogConfig selects the log level and format.
type LogConfig struct {
	Level  string // debug, info, warn, error
	Format string // text, json
}

// ControlConfig places the control socket.
type ControlConfig struct {
	Socket string
}

// MetricsConfig enables the Prometheus endpoint when Listen is set.
type MetricsConfig struct {
	Listen string
}

// HooksConfig is the optional operator command run after each transition.
type HooksConfig struct {
	OnTransition string
	Timeout      time.Duration
}

// VRRPConfig is [vrrp]: the engine's configuration exactly as vrrp.New
// takes it, and what the appliance does around the engine.
type VRRPConfig struct {
	vrrp.Config
	Group string
	// TrackInterfaces is vrrp.track_interfaces; they are also the first
	// entries of every instance's TrackInterfaces.
	TrackInterfaces []string
	StartupDelay    time.Duration
	// RealtimePriority (1-99) runs the VRRP threads under SCHED_RR; 0 off.
	RealtimePriority int
}

// SyncConfig is [sync]: the engine's configuration exactly as ctsync.New
// takes it, and what the appliance does around the engine.
type SyncConfig struct {
	ctsync.Config
	// ReadyTimeout bounds how long a node that does not yet hold the
	// peer's full state refrains from preempting (0: no hold).
	ReadyTimeout time.Duration
	// Expectations replicates conntrack expectations (conntrackd's
	// ExpectationSync): default on, off when peer_version is set and the
	// key is not.
	Expectations bool
	Filter       FilterConfig
}

// FilterConfig selects which flows are replicated: the engine's filter,
// whose LocalAddrs the daemon fills at start when IgnoreOwn is set.
type FilterConfig struct {
	ctsync.FilterConfig
	// IgnoreOwn leaves out the node's own traffic: flows that terminate on
	// the node or were opened by it (its addresses, any VIP, the sync
	// links), decided from the NAT'd tuples; forwarded flows, port
	// forwards to a VIP included, are replicated (default true).
	IgnoreOwn bool
}

// ConfigError is a configuration error with its place: file, line (0 when
// unknown) and the dotted key.
type ConfigError struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// duration decodes "1s", "200ms" and reports bad text clearly.
type duration struct {
	time.Duration
	set bool
}

func (d *duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration (e.g. \"1s\", \"200ms\")", string(b))
	}
	if v < 0 {
		return fmt.Errorf("%q is negative", string(b))
	}
	d.Duration, d.set = v, true
	return nil
}

// The raw file layout. Pointers tell "absent" from "zero".
type rawConfig struct {
	Node    rawNode    `toml:"node"`
	Log     rawLog     `toml:"log"`
	Control rawControl `toml:"control"`
	Metrics rawMetrics `toml:"metrics"`
	VRRP    *rawVRRP   `toml:"vrrp"`
	Sync    *rawSync   `toml:"sync"`
	Hooks   rawHooks   `toml:"hooks"`
}

type rawNode struct {
	Name string `toml:"name"`
}
type rawLog struct {
	Level  string `toml:"level"`
	Format string `toml:"format"`
}
type rawControl struct {
	Socket string `toml:"socket"`
}
type rawMetrics struct {
	Listen string `toml:"listen"`
}
type rawHooks struct {
	OnTransition string   `toml:"on_transition"`
	Timeout      duration `toml:"timeout"`
}

// A `to:"Field"` tag sends a key as it is into that field of what is
// being built (see assign); the others are decoded by hand in the builders.
type rawVRRP struct {
	Group        string        `toml:"group" to:"Group"`
	Version      *int          `toml:"version"`
	GARPBurst    *int          `toml:"garp_burst"`
	GARPSpacing  duration      `toml:"garp_spacing" to:"GARP.Spacing"`
	GARPRefresh  duration      `toml:"garp_refresh" to:"GARP.Refresh"`
	TrackIfaces  []string      `toml:"track_interfaces"`
	StartupDelay duration      `toml:"startup_delay" to:"StartupDelay"`
	Instances    []rawInstance `toml:"instance"`
	RealtimePrio *int          `toml:"realtime_priority" to:"RealtimePriority"`
}

type rawInstance struct {
	Name           string   `toml:"name" to:"Name"`
	Interface      *string  `toml:"interface"`
	VRID           *int     `toml:"vrid"`
	Priority       *int     `toml:"priority" to:"Priority"`
	AdvertInterval duration `toml:"advert_interval" to:"AdvertInterval"`
	VIPs           []string `toml:"vips"`
	VIPLabel       string   `toml:"vip_label"`
	Preempt        *bool    `toml:"preempt" to:"Preempt"`
	PreemptDelay   duration `toml:"preempt_delay" to:"PreemptDelay"`
	TrackIfaces    []string `toml:"track_interfaces"`
	UnicastPeers   []string `toml:"unicast_peers"`
	UnicastSource  string   `toml:"unicast_source"`
	AuthPassword   string   `toml:"auth_password" to:"AuthPassword"`
	UseVMAC        *bool    `toml:"use_vmac" to:"UseVMAC"`
	AcceptMode     *bool    `toml:"accept_mode"` // the engine's NoAccept, inverted
}

type rawSync struct {
	Mode          *string   `toml:"mode" to:"Mode"`
	ACKWindow     *int      `toml:"ack_window" to:"ACKWindow"`
	ResendQueue   *int      `toml:"resend_queue" to:"ResendQueueSize"`
	ExternalLimit *int      `toml:"external_limit" to:"ExternalLimit"`
	CommitTimeout duration  `toml:"commit_timeout" to:"CommitTimeout"`
	PurgeDelay    duration  `toml:"purge_delay" to:"PurgeDelay"`
	ReadyTimeout  duration  `toml:"ready_timeout" to:"ReadyTimeout"`
	DirectInject  *bool     `toml:"direct_inject" to:"DirectInject"`
	StartupResync *bool     `toml:"startup_resync"`
	PeerVersion   string    `toml:"peer_version"`
	Consistency   duration  `toml:"consistency_check" to:"ConsistencyInterval"`
	Expectations  *bool     `toml:"expectations" to:"Expectations"`
	Links         []rawLink `toml:"link"`
	Filter        rawFilter `toml:"filter"`
	Auth          *rawAuth  `toml:"auth"`
}

type rawLink struct {
	Interface      *string  `toml:"interface"`
	Local          string   `toml:"local"`
	Peer           string   `toml:"peer"`
	MulticastGroup string   `toml:"multicast_group"`
	Port           *int     `toml:"port" to:"Port"`
	SendBuffer     *int     `toml:"send_buffer" to:"SendBuffer"`
	RecvBuffer     *int     `toml:"recv_buffer" to:"RecvBuffer"`
	AcceptFrom     []string `toml:"accept_from"`
}

type rawFilter struct {
	AcceptAddresses []string `toml:"accept_addresses"`
	IgnoreAddresses []string `toml:"ignore_addresses"`
	Protocols       []string `toml:"protocols"`
	TCPStates       []string `toml:"tcp_states"`
	IgnoreOwn       *bool    `toml:"ignore_own" to:"IgnoreOwn"`
}

// LoadConfig reads and validates a configuration file.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return ParseConfig(path, b)
}

var tomlLineRE = regexp.MustCompile(`line (\d+)(?: \(last key "([^"]*)"\))?: `)

// ParseConfig decodes and validates a configuration. name is used in error
// messages (normally the file path).
func ParseConfig(name string, data []byte) (*Config, error) {
	var raw rawConfig
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&raw)
	if err != nil {
		return nil, tomlError(name, err)
	}
	lines := indexKeys(data)
	if und := md.Undecoded(); len(und) > 0 {
		k := keyPath(und[0])
		return nil, &ConfigError{File: name, Line: lines.find(k), Key: k, Msg: "unknown key"}
	}
	v := &validator{file: name, lines: lines}
	cfg := v.config(&raw)
	if len(v.errs) > 0 {
		return nil, errors.Join(v.errs...)
	}
	cfg.File = name
	return cfg, nil
}

// tomlError turns the decoder's error into file:line: key: message.
func tomlError(name string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &ConfigError{File: name, Line: pe.Position.Line, Key: pe.LastKey, Msg: pe.Message}
	}
	msg := err.Error()
	if m := tomlLineRE.FindStringSubmatchIndex(msg); m != nil {
		line, _ := strconv.Atoi(msg[m[2]:m[3]])
		key := ""
		if m[4] >= 0 {
			key = msg[m[4]:m[5]]
		}
		return &ConfigError{File: name, Line: line, Key: key, Msg: strings.TrimPrefix(msg[m[1]:], "toml: ")}
	}
	return &ConfigError{File: name, Msg: strings.TrimPrefix(msg, "toml: ")}
}

// keyPath renders a decoder key as vrrp.instance.priority (array indexes
// are not known for undecoded keys).
func keyPath(k toml.Key) string { return strings.Join(k, ".") }

// keyLines maps dotted keys, with and without array indexes
// ("vrrp.instance[1].priority" and "vrrp.instance.priority"), to the line
// where they are set. TOML has no public position API for keys, so the
// file is scanned for table headers and assignments; values spanning
// lines only affect where later keys are found, never correctness.
type keyLines map[string]int

var (
	headerRE = regexp.MustCompile(`^\s*(\[\[?)\s*([A-Za-z0-9_.\-"]+)\s*\]\]?`)
	assignRE = regexp.MustCompile(`^\s*([A-Za-z0-9_\-]+)\s*=`)
)

func indexKeys(data []byte) keyLines {
	kl := keyLines{}
	counts := map[string]int{}
	table, indexed := "", ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if m := headerRE.FindStringSubmatch(line); m != nil {
			table = strings.ReplaceAll(m[2], `"`, "")
			indexed = table
			if m[1] == "[[" {
				counts[table]++
				indexed = fmt.Sprintf("%s[%d]", table, counts[table]-1)
			} else if i := strings.LastIndex(table, "."); i > 0 && counts[table[:i]] > 0 {
				// [vrrp.instance.x] inside an array of tables
				parent := table[:i]
				indexed = fmt.Sprintf("%s[%d]%s", parent, counts[parent]-1, table[i:])
			}
			kl.set(table, n)
			kl.set(indexed, n)
			continue
		}
		if m := assignRE.FindStringSubmatch(line); m != nil {
			kl.set(join(table, m[1]), n)
			kl.set(join(indexed, m[1]), n)
		}
	}
	return kl
}

func join(table, key string) string {
	if table == "" {
		return key
	}
	return table + "." + key
}

func (kl keyLines) set(k string, n int) {
	if _, ok := kl[k]; !ok {
		kl[k] = n
	}
}

// find returns the line of key, or of its closest enclosing table.
func (kl keyLines) find(key string) int {
	for k := key; k != ""; {
		if n, ok := kl[k]; ok {
			return n
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return 0
}

type validator struct {
	file  string
	lines keyLines
	errs  []error
}

func (v *validator) errorf(key, format string, args ...any) {
	v.errs = append(v.errs, &ConfigError{File: v.file, Line: v.lines.find(key), Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) oneOf(key, val string, allowed ...string) bool {
	if slices.Contains(allowed, val) {
		return true
	}
	v.errorf(key, "%q is not one of %s", val, strings.Join(allowed, ", "))
	return false
}

func (v *validator) rangeInt(key string, val, lo, hi int) bool {
	if val < lo || val > hi {
		v.errorf(key, "%d is outside %d..%d", val, lo, hi)
		return false
	}
	return true
}

// intIn checks an integer key when it is set.
func (v *validator) intIn(key string, p *int, lo, hi int) {
	if p != nil {
		v.rangeInt(key, *p, lo, hi)
	}
}

func (v *validator) iface(key string, p *string) string {
	if p == nil {
		v.errorf(key, "missing (an interface name is required)")
		return ""
	}
	name := *p
	switch {
	case name == "":
		v.errorf(key, "empty interface name")
	case len(name) > 15:
		v.errorf(key, "interface name %q is longer than 15 bytes", name)
	case strings.ContainsAny(name, "/ \t"):
		v.errorf(key, "interface name %q contains a space or a slash", name)
	}
	return name
}

func (v *validator) addr(key, s string) netip.Addr {
	a, err := netip.ParseAddr(s)
	if err != nil {
		v.errorf(key, "%q is not an IP address", s)
	}
	return a
}

func (v *validator) prefixes(key string, list []string) []netip.Prefix {
	var out []netip.Prefix
	for i, s := range list {
		p, err := parsePrefixOrAddr(s)
		if err != nil {
			v.errorf(fmt.Sprintf("%s[%d]", key, i), "%q is not an address or CIDR", s)
			continue
		}
		out = append(out, p)
	}
	return out
}

func parsePrefixOrAddr(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func (v *validator) config(raw *rawConfig) *Config {
	cfg := &Config{
		Node:    raw.Node.Name,
		Log:     LogConfig{Level: raw.Log.Level, Format: raw.Log.Format},
		Control: ControlConfig{Socket: raw.Control.Socket},
		Metrics: MetricsConfig{Listen: raw.Metrics.Listen},
		Hooks:   HooksConfig{OnTransition: raw.Hooks.OnTransition, Timeout: raw.Hooks.Timeout.Duration},
	}
	if cfg.Node == "" {
		if h, err := os.Hostname(); err == nil {
			cfg.Node = h
		}
	}
	if cfg.Log.Level == "" {
		cfg.Log.Level = defaultLogLevel
	}
	v.oneOf("log.level", cfg.Log.Level, "debug", "info", "warn", "error")
	if cfg.Log.Format == "" {
		cfg.Log.Format = defaultLogFormat
	}
	v.oneOf("log.format", cfg.Log.Format, "text", "json")
	if cfg.Control.Socket == "" {
		cfg.Control.Socket = DefaultSocket
	} else if !strings.HasPrefix(cfg.Control.Socket, "/") {
		v.errorf("control.socket", "%q must be an absolute path", cfg.Control.Socket)
	}
	if l := cfg.Metrics.Listen; l != "" {
		if _, err := netip.ParseAddrPort(l); err != nil {
			v.errorf("metrics.listen", "%q is not address:port (e.g. \"127.0.0.1:9723\")", l)
		}
	}
	if !raw.Hooks.Timeout.set {
		cfg.Hooks.Timeout = DefaultHookTimeout
	}
	if raw.VRRP == nil && raw.Sync == nil {
		v.errorf("", "neither [vrrp] nor [sync] is configured: nothing to run")
	}
	if raw.VRRP != nil {
		cfg.VRRP = v.vrrp(raw.VRRP)
	}
	if raw.Sync != nil {
		cfg.Sync = v.sync(raw.Sync)
	}
	// What the engines refuse is refused here too, so that -check catches
	// it (their messages name no key: the table is the place).
	if len(v.errs) == 0 && cfg.VRRP != nil {
		v.engineError("vrrp", cfg.VRRP.Validate())
	}
	if len(v.errs) == 0 && cfg.Sync != nil {
		v.engineError("sync", cfg.Sync.Config.Validate())
	}
	return cfg
}

// engineError reports an engine's refusal at the first line of its table
// ([vrrp] or [sync], or their first array table).
func (v *validator) engineError(table string, err error) {
	if err == nil {
		return
	}
	line := 0
	for k, n := range v.lines {
		if (k == table || strings.HasPrefix(k, table+".")) && (line == 0 || n < line) {
			line = n
		}
	}
	v.errs = append(v.errs, &ConfigError{File: v.file, Line: line, Key: table, Msg: err.Error()})
}

// vrrp builds the engine's configuration from [vrrp], starting from the
// engine's defaults.
func (v *validator) vrrp(r *rawVRRP) *VRRPConfig {
	c := &VRRPConfig{Config: vrrp.Config{GARP: vrrp.DefaultGARP()}, Group: defaultGroupName, TrackInterfaces: r.TrackIfaces}
	v.assign("vrrp", r, c)
	v.intIn("vrrp.realtime_priority", r.RealtimePrio, 0, 99)
	version := int(vrrp.DefaultVersion)
	if r.Version != nil {
		version = *r.Version
		if version != int(vrrp.Version2) && version != int(vrrp.Version3) {
			v.errorf("vrrp.version", "%d is not supported (2 = RFC 3768, 3 = RFC 9568)", version)
		}
	}
	if r.GARPBurst != nil {
		v.intIn("vrrp.garp_burst", r.GARPBurst, 0, 100)
		c.GARP.Count = *r.GARPBurst
		if c.GARP.Count == 0 {
			c.GARP.Count = -1 // off (the engine's zero is its default)
		}
	}
	for i, name := range r.TrackIfaces {
		v.iface(fmt.Sprintf("vrrp.track_interfaces[%d]", i), &name)
	}
	if len(r.Instances) == 0 {
		v.errorf("vrrp", "no [[vrrp.instance]] configured")
	}
	seenVRID := map[string]int{}
	seenName := map[string]int{}
	for i := range r.Instances {
		ri := &r.Instances[i]
		key := fmt.Sprintf("vrrp.instance[%d]", i)
		in := vrrp.DefaultInstance()
		in.Version = uint8(version)
		v.assign(key, ri, &in)
		v.intIn(key+".priority", ri.Priority, 1, 255)
		in.TrackInterfaces = append(slices.Clone(r.TrackIfaces), ri.TrackIfaces...)
		in.Interface = v.iface(key+".interface", ri.Interface)
		if ri.VRID == nil {
			v.errorf(key+".vrid", "missing (1..255)")
		} else if v.rangeInt(key+".vrid", *ri.VRID, 1, 255) {
			in.VRID = uint8(*ri.VRID)
			id := fmt.Sprintf("%s/%d", in.Interface, in.VRID)
			if prev, dup := seenVRID[id]; dup {
				v.errorf(key+".vrid", "VRID %d is already used on %s by vrrp.instance[%d]", in.VRID, in.Interface, prev)
			}
			seenVRID[id] = i
		}
		if in.Name == "" {
			in.Name = fmt.Sprintf("%s-%d", in.Interface, in.VRID)
		}
		if prev, dup := seenName[in.Name]; dup {
			v.errorf(key+".name", "name %q is already used by vrrp.instance[%d]", in.Name, prev)
		}
		seenName[in.Name] = i
		if ri.AdvertInterval.set {
			v.advertInterval(key+".advert_interval", version, in.AdvertInterval)
		}
		if len(ri.VIPs) == 0 {
			v.errorf(key+".vips", "at least one virtual IP is required")
		}
		for j, s := range ri.VIPs {
			vk := fmt.Sprintf("%s.vips[%d]", key, j)
			if !strings.Contains(s, "/") {
				v.errorf(vk, "%q has no prefix length (write e.g. \"%s/24\")", s, s)
				continue
			}
			p, err := netip.ParsePrefix(s)
			if err != nil {
				v.errorf(vk, "%q is not a valid CIDR", s)
				continue
			}
			if !v.vipFamily(vk, version, j, p, in.VIPs) {
				continue
			}
			in.VIPs = append(in.VIPs, vrrp.VIP{Prefix: p, Label: ri.VIPLabel})
		}
		if ri.VIPLabel != "" && len(in.VIPs) > 0 && in.VIPs[0].Prefix.Addr().Is6() {
			v.errorf(key+".vip_label", "Linux labels only IPv4 addresses; remove it from this IPv6 instance")
		}
		if len(ri.VIPLabel) > vrrp.MaxLabel {
			v.errorf(key+".vip_label", "label %q is longer than %d bytes", ri.VIPLabel, vrrp.MaxLabel)
		}
		if ri.AcceptMode != nil {
			in.NoAccept = !*ri.AcceptMode
		}
		for j, name := range ri.TrackIfaces {
			v.iface(fmt.Sprintf("%s.track_interfaces[%d]", key, j), &name)
		}
		for j, s := range ri.UnicastPeers {
			a := v.addr(fmt.Sprintf("%s.unicast_peers[%d]", key, j), s)
			if a.IsValid() {
				in.UnicastPeers = append(in.UnicastPeers, a)
			}
		}
		if ri.UnicastSource != "" {
			in.UnicastSource = v.addr(key+".unicast_source", ri.UnicastSource)
		}
		if version == int(vrrp.Version3) && in.AuthPassword != "" {
			v.errorf(key+".auth_password", "VRRPv3 has no authentication (RFC 9568); remove it or use version = 2")
		}
		if len(in.AuthPassword) > vrrp.MaxAuthPassword {
			v.errorf(key+".auth_password", "simple-password authentication holds at most %d characters, got %d", vrrp.MaxAuthPassword, len(in.AuthPassword))
		}
		c.Instances = append(c.Instances, in)
	}
	return c
}

// sync builds the engine's configuration from [sync], starting from the
// engine's defaults.
func (v *validator) sync(r *rawSync) *SyncConfig {
	c := &SyncConfig{Config: ctsync.DefaultConfig(), ReadyTimeout: DefaultReadyTimeout}
	// A conntrackd peer has neither the consistency check nor, unless
	// asked for, expectations.
	conntrackdPeer := r.PeerVersion != ""
	if conntrackdPeer {
		c.ConsistencyInterval = 0
	}
	c.Expectations = !conntrackdPeer
	v.assign("sync", r, c)
	if r.Mode != nil {
		v.oneOf("sync.mode", *r.Mode, ctsync.Modes()...)
	}
	v.intIn("sync.ack_window", r.ACKWindow, ctsync.MinACKWindow, ctsync.MaxACKWindow)
	v.intIn("sync.resend_queue", r.ResendQueue, ctsync.MinResendQueue, ctsync.MaxResendQueue)
	v.intIn("sync.external_limit", r.ExternalLimit, ctsync.MinExternalLimit, ctsync.MaxExternalLimit)
	if r.CommitTimeout.set && c.CommitTimeout == 0 {
		v.errorf("sync.commit_timeout", "must be positive")
	}
	if c.ReadyTimeout > maxReadyTimeout {
		v.errorf("sync.ready_timeout", "%v is longer than %v", c.ReadyTimeout, maxReadyTimeout)
	}
	if r.StartupResync != nil {
		c.NoStartupResync = !*r.StartupResync
	}
	if r.Consistency.set && c.ConsistencyInterval > 0 && c.ConsistencyInterval < ctsync.MinConsistencyInterval {
		v.errorf("sync.consistency_check", "must be 0 (off) or at least %v", ctsync.MinConsistencyInterval)
	}
	if conntrackdPeer && v.oneOf("sync.peer_version", r.PeerVersion, ctsync.PeerVersions()...) {
		c.Wire, _ = ctsync.WireFor(r.PeerVersion)
	}
	switch n := len(r.Links); {
	case n == 0:
		v.errorf("sync", "no [[sync.link]] configured (the dedicated sync interface)")
	case n > ctsync.MaxChannels:
		v.errorf("sync.link", "%d links configured, at most %d are supported", n, ctsync.MaxChannels)
	}
	for i := range r.Links {
		rl := &r.Links[i]
		key := fmt.Sprintf("sync.link[%d]", i)
		l := ctsync.DefaultChannel()
		v.assign(key, rl, &l)
		v.intIn(key+".port", rl.Port, 1, 65535)
		v.intIn(key+".send_buffer", rl.SendBuffer, ctsync.MinSocketBuffer, ctsync.MaxSocketBuffer)
		v.intIn(key+".recv_buffer", rl.RecvBuffer, ctsync.MinSocketBuffer, ctsync.MaxSocketBuffer)
		l.Interface = v.iface(key+".interface", rl.Interface)
		if rl.Local == "" {
			v.errorf(key+".local", "missing: the local address on the sync link")
		} else {
			l.Local = v.addr(key+".local", rl.Local)
		}
		switch {
		case rl.Peer != "" && rl.MulticastGroup != "":
			v.errorf(key+".peer", "set either peer (UDP unicast) or multicast_group, not both")
		case rl.Peer != "":
			l.Peer = v.addr(key+".peer", rl.Peer)
		case rl.MulticastGroup != "":
			l.Group = v.addr(key+".multicast_group", rl.MulticastGroup)
			if l.Group.IsValid() && !l.Group.IsMulticast() {
				v.errorf(key+".multicast_group", "%s is not a multicast address", l.Group)
			}
		default:
			l.Group = ctsync.DefaultGroup()
		}
		if l.Local.IsValid() && l.Peer.IsValid() && l.Local.Is4() != l.Peer.Is4() {
			v.errorf(key+".peer", "%s and local %s are not the same address family", l.Peer, l.Local)
		}
		l.AcceptFrom = v.acceptFrom(key, rl.AcceptFrom, l)
		c.Channels = append(c.Channels, l)
	}
	if r.Auth != nil {
		c.Auth = v.syncAuth(r.Auth)
	}
	c.Filter = v.filter(&r.Filter)
	return c
}

// filter builds the engine's filter from [sync.filter]; the names are the
// engine's (ctsync.FilterProtocols, ctsync.FilterTCPStates).
func (v *validator) filter(r *rawFilter) FilterConfig {
	f := FilterConfig{IgnoreOwn: defaultIgnoreOwn}
	v.assign("sync.filter", r, &f)
	f.AcceptAddrs = v.prefixes("sync.filter.accept_addresses", r.AcceptAddresses)
	f.IgnoreAddrs = v.prefixes("sync.filter.ignore_addresses", r.IgnoreAddresses)
	for i, name := range r.Protocols {
		key := fmt.Sprintf("sync.filter.protocols[%d]", i)
		if v.oneOf(key, name, ctsync.FilterProtocols()...) {
			p, err := ctsync.ParseProto(name)
			if err != nil {
				v.errorf(key, "%v", err)
			}
			f.AcceptProtos = append(f.AcceptProtos, p)
		}
	}
	for i, name := range r.TCPStates {
		key := fmt.Sprintf("sync.filter.tcp_states[%d]", i)
		if v.oneOf(key, strings.ToUpper(name), ctsync.FilterTCPStates()...) {
			st, err := ctsync.ParseTCPState(name)
			if err != nil {
				v.errorf(key, "%v", err)
			}
			f.AcceptTCPStates = append(f.AcceptTCPStates, st)
		}
	}
	return f
}
