package appliance

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Defaults for everything an operator may leave out.
const (
	DefaultSocket         = "/run/fwpair/fwpaird.sock"
	DefaultAdvertInterval = time.Second
	DefaultGARPBurst      = 5
	DefaultGARPSpacing    = 200 * time.Millisecond
	DefaultSyncPort       = 3780
	DefaultMulticastGroup = "225.0.0.50"
	DefaultACKWindow      = 300
	DefaultResendQueue    = 131072
	DefaultCommitTimeout  = 5 * time.Second
	DefaultPurgeDelay     = 60 * time.Second
	DefaultReadyTimeout   = 60 * time.Second
	maxReadyTimeout       = time.Hour
	DefaultHookTimeout    = 10 * time.Second
	DefaultSocketBuffer   = 4 << 20
	DefaultPeerVersion    = "1.4.7"
	maxSyncLinks          = 4
	defaultVRRPPriority   = 100
	defaultPreemptOn      = true
	defaultStartupResync  = true
	// defaultDirectInject: received states go straight into the kernel, so
	// taking over needs no commit and the VIPs come up in the same few
	// milliseconds whatever the table size (README, "Why direct inject").
	defaultDirectInject    = true
	defaultIgnoreOwn       = true
	defaultLogLevel        = "info"
	defaultLogFormat       = "text"
	defaultSyncMode        = "ftfw"
	defaultGroupName       = "fwpair"
	defaultVRRPVersion     = 2
	maxAdvertIntervalV2Sec = 255
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

// VRRPConfig is the VRRP sync group of this node.
type VRRPConfig struct {
	Group        string
	Version      int
	GARPBurst    int
	GARPSpacing  time.Duration
	GARPRefresh  time.Duration
	Instances    []InstanceConfig
	TrackIfaces  []string
	StartupDelay time.Duration
	// RealtimePriority (1-99) runs the VRRP threads under SCHED_RR; 0 off.
	RealtimePriority int
}

// InstanceConfig is one VRRP instance (one interface, one VRID).
type InstanceConfig struct {
	Name           string
	Interface      string
	VRID           uint8
	Priority       uint8
	AdvertInterval time.Duration
	VIPs           []netip.Prefix
	VIPLabel       string
	Preempt        bool
	PreemptDelay   time.Duration
	TrackIfaces    []string
	UnicastPeers   []netip.Addr
	UnicastSource  netip.Addr
	AuthPassword   string
	UseVMAC        bool
}

// DefaultConsistencyCheck is the period of the consistency check between
// two fwpaird nodes.
const DefaultConsistencyCheck = 2 * time.Second

// SyncConfig is the conntrack sync engine.
type SyncConfig struct {
	Mode          string // ftfw or notrack
	Links         []SyncLink
	ACKWindow     int
	ResendQueue   int
	CommitTimeout time.Duration
	PurgeDelay    time.Duration
	// ReadyTimeout bounds how long a node that does not yet hold the
	// peer's full state refrains from preempting (0: no hold).
	ReadyTimeout  time.Duration
	DirectInject  bool
	StartupResync bool
	PeerVersion   string
	Filter        FilterConfig
	// Auth, when set, authenticates every sync datagram (syncauth.go).
	Auth *SyncAuth
	// ConsistencyCheck is the period of the continuous consistency check
	// (a fwpair extension; 0: off). Default DefaultConsistencyCheck, or
	// off when peer_version is set (the peer is conntrackd).
	ConsistencyCheck time.Duration
	// Expectations replicates conntrack expectations (conntrackd's
	// ExpectationSync): default on, off when peer_version is set and the
	// key is not.
	Expectations bool
}

// SyncLink is one dedicated sync link (up to four, the first is preferred).
type SyncLink struct {
	Interface      string
	Local          netip.Addr
	Peer           netip.Addr // unicast peer, or
	MulticastGroup netip.Addr // multicast group when Peer is not set
	Port           uint16
	SendBuffer     int
	RecvBuffer     int
	// AcceptFrom are the addresses sync datagrams are accepted from
	// (default: Peer; required for multicast).
	AcceptFrom []netip.Addr
}

// FilterConfig selects which flows are replicated.
type FilterConfig struct {
	AcceptAddresses []netip.Prefix
	IgnoreAddresses []netip.Prefix
	Protocols       []string
	TCPStates       []string
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

type rawVRRP struct {
	Group        string        `toml:"group"`
	Version      *int          `toml:"version"`
	GARPBurst    *int          `toml:"garp_burst"`
	GARPSpacing  duration      `toml:"garp_spacing"`
	GARPRefresh  duration      `toml:"garp_refresh"`
	TrackIfaces  []string      `toml:"track_interfaces"`
	StartupDelay duration      `toml:"startup_delay"`
	Instances    []rawInstance `toml:"instance"`
	RealtimePrio *int          `toml:"realtime_priority"`
}

type rawInstance struct {
	Name           string   `toml:"name"`
	Interface      *string  `toml:"interface"`
	VRID           *int     `toml:"vrid"`
	Priority       *int     `toml:"priority"`
	AdvertInterval duration `toml:"advert_interval"`
	VIPs           []string `toml:"vips"`
	VIPLabel       string   `toml:"vip_label"`
	Preempt        *bool    `toml:"preempt"`
	PreemptDelay   duration `toml:"preempt_delay"`
	TrackIfaces    []string `toml:"track_interfaces"`
	UnicastPeers   []string `toml:"unicast_peers"`
	UnicastSource  string   `toml:"unicast_source"`
	AuthPassword   string   `toml:"auth_password"`
	UseVMAC        bool     `toml:"use_vmac"`
}

type rawSync struct {
	Mode          *string   `toml:"mode"`
	ACKWindow     *int      `toml:"ack_window"`
	ResendQueue   *int      `toml:"resend_queue"`
	CommitTimeout duration  `toml:"commit_timeout"`
	PurgeDelay    duration  `toml:"purge_delay"`
	ReadyTimeout  duration  `toml:"ready_timeout"`
	DirectInject  *bool     `toml:"direct_inject"`
	StartupResync *bool     `toml:"startup_resync"`
	PeerVersion   string    `toml:"peer_version"`
	Consistency   duration  `toml:"consistency_check"`
	Expectations  *bool     `toml:"expectations"`
	Links         []rawLink `toml:"link"`
	Filter        rawFilter `toml:"filter"`
	Auth          *rawAuth  `toml:"auth"`
}

type rawLink struct {
	Interface      *string  `toml:"interface"`
	Local          string   `toml:"local"`
	Peer           string   `toml:"peer"`
	MulticastGroup string   `toml:"multicast_group"`
	Port           *int     `toml:"port"`
	SendBuffer     *int     `toml:"send_buffer"`
	RecvBuffer     *int     `toml:"recv_buffer"`
	AcceptFrom     []string `toml:"accept_from"`
}

type rawFilter struct {
	AcceptAddresses []string `toml:"accept_addresses"`
	IgnoreAddresses []string `toml:"ignore_addresses"`
	Protocols       []string `toml:"protocols"`
	TCPStates       []string `toml:"tcp_states"`
	IgnoreOwn       *bool    `toml:"ignore_own"`
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

func (v *validator) oneOf(key, val string, allowed ...string) {
	for _, a := range allowed {
		if val == a {
			return
		}
	}
	v.errorf(key, "%q is not one of %s", val, strings.Join(allowed, ", "))
}

func (v *validator) rangeInt(key string, val, lo, hi int) bool {
	if val < lo || val > hi {
		v.errorf(key, "%d is outside %d..%d", val, lo, hi)
		return false
	}
	return true
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
	return cfg
}

func (v *validator) vrrp(r *rawVRRP) *VRRPConfig {
	c := &VRRPConfig{
		Group:        r.Group,
		Version:      defaultVRRPVersion,
		GARPBurst:    DefaultGARPBurst,
		GARPSpacing:  DefaultGARPSpacing,
		GARPRefresh:  r.GARPRefresh.Duration,
		TrackIfaces:  r.TrackIfaces,
		StartupDelay: r.StartupDelay.Duration,
	}
	if c.Group == "" {
		c.Group = defaultGroupName
	}
	if r.Version != nil {
		c.Version = *r.Version
		if c.Version != 2 && c.Version != 3 {
			v.errorf("vrrp.version", "%d is not supported (2 = RFC 3768, 3 = RFC 9568)", c.Version)
		}
	}
	if r.RealtimePrio != nil && v.rangeInt("vrrp.realtime_priority", *r.RealtimePrio, 0, 99) {
		c.RealtimePriority = *r.RealtimePrio
	}
	if r.GARPBurst != nil {
		c.GARPBurst = *r.GARPBurst
		v.rangeInt("vrrp.garp_burst", c.GARPBurst, 0, 100)
	}
	if r.GARPSpacing.set {
		c.GARPSpacing = r.GARPSpacing.Duration
	}
	for i, name := range r.TrackIfaces {
		v.iface(fmt.Sprintf("vrrp.track_interfaces[%d]", i), &name)
	}
	if len(r.Instances) == 0 {
		v.errorf("vrrp", "no [[vrrp.instance]] configured")
	}
	seenVRID := map[string]int{}
	seenName := map[string]int{}
	for i, ri := range r.Instances {
		key := fmt.Sprintf("vrrp.instance[%d]", i)
		in := InstanceConfig{
			Name:           ri.Name,
			AdvertInterval: DefaultAdvertInterval,
			Priority:       defaultVRRPPriority,
			Preempt:        defaultPreemptOn,
			PreemptDelay:   ri.PreemptDelay.Duration,
			VIPLabel:       ri.VIPLabel,
			TrackIfaces:    ri.TrackIfaces,
			AuthPassword:   ri.AuthPassword,
			UseVMAC:        ri.UseVMAC,
		}
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
		if ri.Priority != nil && v.rangeInt(key+".priority", *ri.Priority, 1, 255) {
			in.Priority = uint8(*ri.Priority)
		}
		if ri.AdvertInterval.set {
			in.AdvertInterval = ri.AdvertInterval.Duration
			v.advertInterval(key+".advert_interval", c.Version, in.AdvertInterval)
		}
		if ri.Preempt != nil {
			in.Preempt = *ri.Preempt
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
			if !v.vipFamily(vk, c.Version, j, p, in.VIPs) {
				continue
			}
			in.VIPs = append(in.VIPs, p)
		}
		if in.VIPLabel != "" && len(in.VIPs) > 0 && in.VIPs[0].Addr().Is6() {
			v.errorf(key+".vip_label", "Linux labels only IPv4 addresses; remove it from this IPv6 instance")
		}
		if len(in.VIPLabel) > 15 {
			v.errorf(key+".vip_label", "label %q is longer than 15 bytes", in.VIPLabel)
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
		if c.Version == 3 && in.AuthPassword != "" {
			v.errorf(key+".auth_password", "VRRPv3 has no authentication (RFC 9568); remove it or use version = 2")
		}
		if len(in.AuthPassword) > 8 {
			v.errorf(key+".auth_password", "simple-password authentication holds at most 8 characters, got %d", len(in.AuthPassword))
		}
		c.Instances = append(c.Instances, in)
	}
	return c
}

func (v *validator) sync(r *rawSync) *SyncConfig {
	c := &SyncConfig{
		Mode:          defaultSyncMode,
		ACKWindow:     DefaultACKWindow,
		ResendQueue:   DefaultResendQueue,
		CommitTimeout: DefaultCommitTimeout,
		PurgeDelay:    DefaultPurgeDelay,
		ReadyTimeout:  DefaultReadyTimeout,
		DirectInject:  defaultDirectInject,
		StartupResync: defaultStartupResync,
		PeerVersion:   r.PeerVersion,
	}
	if r.Mode != nil {
		c.Mode = *r.Mode
		v.oneOf("sync.mode", c.Mode, "ftfw", "notrack")
	}
	if r.ACKWindow != nil && v.rangeInt("sync.ack_window", *r.ACKWindow, 1, 1<<20) {
		c.ACKWindow = *r.ACKWindow
	}
	if r.ResendQueue != nil && v.rangeInt("sync.resend_queue", *r.ResendQueue, 16, 1<<24) {
		c.ResendQueue = *r.ResendQueue
	}
	if r.CommitTimeout.set {
		c.CommitTimeout = r.CommitTimeout.Duration
		if c.CommitTimeout == 0 {
			v.errorf("sync.commit_timeout", "must be positive")
		}
	}
	if r.PurgeDelay.set {
		c.PurgeDelay = r.PurgeDelay.Duration
	}
	if r.ReadyTimeout.set {
		c.ReadyTimeout = r.ReadyTimeout.Duration
		if c.ReadyTimeout > maxReadyTimeout {
			v.errorf("sync.ready_timeout", "%v is longer than %v", c.ReadyTimeout, maxReadyTimeout)
		}
	}
	if r.DirectInject != nil {
		c.DirectInject = *r.DirectInject
	}
	if r.StartupResync != nil {
		c.StartupResync = *r.StartupResync
	}
	if r.PeerVersion == "" {
		c.ConsistencyCheck = DefaultConsistencyCheck
	}
	c.Expectations = r.PeerVersion == ""
	if r.Expectations != nil {
		c.Expectations = *r.Expectations
	}
	if r.Consistency.set {
		c.ConsistencyCheck = r.Consistency.Duration
		if c.ConsistencyCheck < 0 || (c.ConsistencyCheck > 0 && c.ConsistencyCheck < 100*time.Millisecond) {
			v.errorf("sync.consistency_check", "must be 0 (off) or at least 100ms")
		}
	}
	if c.PeerVersion == "" {
		c.PeerVersion = DefaultPeerVersion
	} else {
		v.oneOf("sync.peer_version", c.PeerVersion, "1.4.2", "1.4.3", "1.4.4", "1.4.5", "1.4.6", "1.4.7", "1.4.8", "1.4.9")
	}
	switch n := len(r.Links); {
	case n == 0:
		v.errorf("sync", "no [[sync.link]] configured (the dedicated sync interface)")
	case n > maxSyncLinks:
		v.errorf("sync.link", "%d links configured, at most %d are supported", n, maxSyncLinks)
	}
	for i, rl := range r.Links {
		key := fmt.Sprintf("sync.link[%d]", i)
		l := SyncLink{Port: DefaultSyncPort, SendBuffer: DefaultSocketBuffer, RecvBuffer: DefaultSocketBuffer}
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
			l.MulticastGroup = v.addr(key+".multicast_group", rl.MulticastGroup)
			if l.MulticastGroup.IsValid() && !l.MulticastGroup.IsMulticast() {
				v.errorf(key+".multicast_group", "%s is not a multicast address", l.MulticastGroup)
			}
		default:
			l.MulticastGroup = netip.MustParseAddr(DefaultMulticastGroup)
		}
		if rl.Port != nil && v.rangeInt(key+".port", *rl.Port, 1, 65535) {
			l.Port = uint16(*rl.Port)
		}
		if rl.SendBuffer != nil && v.rangeInt(key+".send_buffer", *rl.SendBuffer, 4096, 1<<30) {
			l.SendBuffer = *rl.SendBuffer
		}
		if rl.RecvBuffer != nil && v.rangeInt(key+".recv_buffer", *rl.RecvBuffer, 4096, 1<<30) {
			l.RecvBuffer = *rl.RecvBuffer
		}
		if l.Local.IsValid() && l.Peer.IsValid() && l.Local.Is4() != l.Peer.Is4() {
			v.errorf(key+".peer", "%s and local %s are not the same address family", l.Peer, l.Local)
		}
		l.AcceptFrom = v.acceptFrom(key, rl.AcceptFrom, l)
		c.Links = append(c.Links, l)
	}
	if r.Auth != nil {
		c.Auth = v.syncAuth(r.Auth)
	}
	c.Filter = FilterConfig{
		AcceptAddresses: v.prefixes("sync.filter.accept_addresses", r.Filter.AcceptAddresses),
		IgnoreAddresses: v.prefixes("sync.filter.ignore_addresses", r.Filter.IgnoreAddresses),
		Protocols:       r.Filter.Protocols,
		TCPStates:       r.Filter.TCPStates,
		IgnoreOwn:       defaultIgnoreOwn,
	}
	if r.Filter.IgnoreOwn != nil {
		c.Filter.IgnoreOwn = *r.Filter.IgnoreOwn
	}
	for i, p := range c.Filter.Protocols {
		v.oneOf(fmt.Sprintf("sync.filter.protocols[%d]", i), p, "tcp", "udp", "icmp", "icmpv6", "sctp", "dccp", "udplite", "gre")
	}
	for i, s := range c.Filter.TCPStates {
		v.oneOf(fmt.Sprintf("sync.filter.tcp_states[%d]", i), strings.ToUpper(s),
			"SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2")
	}
	return c
}
