package refdaemons

import (
	"fmt"
	"net/netip"
	"strings"
)

// ConntrackdConf is a conntrackd.conf for one UDP sync link.
type ConntrackdConf struct {
	// Comment is written first, each line as a # comment.
	Comment string
	// Mode is FTFW or NOTRACK.
	Mode        string
	Local, Peer netip.Addr
	// Interface is the sync link (default eth2), Port its UDP port
	// (default 3780, conntrackd's).
	Interface string
	Port      int
	// HashSize and HashLimit size the caches (defaults 8192 and 65536).
	HashSize, HashLimit int
	// NetlinkBuffer and NetlinkBufferMax are NetlinkBufferSize and
	// NetlinkBufferSizeMaxGrowth (defaults 2 MiB and 8 MiB).
	NetlinkBuffer, NetlinkBufferMax int
	LogFile, LockFile, Socket       string
	// Ignore lists the addresses of a "Filter From Userspace" Address
	// Ignore block; empty writes no filter.
	Ignore []netip.Addr
	// ExpectationSync replicates expectations too (Options block).
	ExpectationSync bool
	// DisableExternalCache writes received states straight into the
	// kernel (conntrackd's own direct-inject mode) instead of keeping
	// them in the external cache until a commit.
	DisableExternalCache bool
}

// Render returns the file's text.
func (c ConntrackdConf) Render() string {
	def := func(v, d int) int {
		if v == 0 {
			return d
		}
		return v
	}
	iface := c.Interface
	if iface == "" {
		iface = "eth2"
	}
	var b strings.Builder
	comment(&b, c.Comment)
	extCache := "off"
	if c.DisableExternalCache {
		extCache = "on"
	}
	opts := ""
	if c.ExpectationSync {
		opts = "\tOptions {\n\t\tExpectationSync on\n\t}\n"
	}
	fmt.Fprintf(&b, `Sync {
	Mode %s {
		DisableExternalCache %s
	}
%s	UDP {
		IPv4_address %s
		IPv4_Destination_Address %s
		Port %d
		Interface %s
		SndSocketBuffer 1249280
		RcvSocketBuffer 1249280
		Checksum on
	}
}
General {
	HashSize %d
	HashLimit %d
	LogFile %s
	Syslog off
	LockFile %s
	UNIX {
		Path %s
	}
	NetlinkBufferSize %d
	NetlinkBufferSizeMaxGrowth %d
`, c.Mode, extCache, opts, c.Local, c.Peer, def(c.Port, 3780), iface, def(c.HashSize, 8192), def(c.HashLimit, 65536),
		c.LogFile, c.LockFile, c.Socket, def(c.NetlinkBuffer, 2<<20), def(c.NetlinkBufferMax, 8<<20))
	if len(c.Ignore) > 0 {
		b.WriteString("\tFilter From Userspace {\n\t\tAddress Ignore {\n")
		for _, a := range c.Ignore {
			fmt.Fprintf(&b, "\t\t\tIPv4_address %s\n", a)
		}
		b.WriteString("\t\t}\n\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// KeepalivedConf is a keepalived.conf with one sync group.
type KeepalivedConf struct {
	// Comment is written first, each line as a # comment.
	Comment  string
	RouterID string
	// Globals are extra global_defs lines, e.g. "vrrp_version 3".
	Globals []string
	// Group names the sync group; its notify scripts (empty: none).
	Group                                           string
	NotifyMaster, NotifyBackup, NotifyFault, Notify string
	Instances                                       []Instance
}

// Instance is one vrrp_instance, always starting as BACKUP.
type Instance struct {
	Name, Interface string
	VRID, Priority  int
	// AdvertInt is advert_int as keepalived reads it (default "1").
	AdvertInt string
	// AuthPass enables simple-password authentication (VRRPv2).
	AuthPass string
	VIP      netip.Prefix
}

// Render returns the file's text.
func (k KeepalivedConf) Render() string {
	var b strings.Builder
	comment(&b, k.Comment)
	fmt.Fprintf(&b, "global_defs {\n\trouter_id %s\n\tscript_user root\n", k.RouterID)
	for _, g := range k.Globals {
		fmt.Fprintf(&b, "\t%s\n", g)
	}
	fmt.Fprintf(&b, "}\nvrrp_sync_group %s {\n\tgroup {\n", k.Group)
	for _, in := range k.Instances {
		fmt.Fprintf(&b, "\t\t%s\n", in.Name)
	}
	b.WriteString("\t}\n")
	for _, n := range []struct{ key, script string }{
		{"notify_master", k.NotifyMaster}, {"notify_backup", k.NotifyBackup}, {"notify_fault", k.NotifyFault},
	} {
		if n.script != "" {
			fmt.Fprintf(&b, "\t%s %q\n", n.key, n.script)
		}
	}
	if k.Notify != "" {
		fmt.Fprintf(&b, "\tnotify %s\n", k.Notify)
	}
	b.WriteString("}\n")
	for _, in := range k.Instances {
		adv := in.AdvertInt
		if adv == "" {
			adv = "1"
		}
		fmt.Fprintf(&b, "vrrp_instance %s {\n\tstate BACKUP\n\tinterface %s\n\tvirtual_router_id %d\n\tpriority %d\n\tadvert_int %s\n",
			in.Name, in.Interface, in.VRID, in.Priority, adv)
		if in.AuthPass != "" {
			fmt.Fprintf(&b, "\tauthentication {\n\t\tauth_type PASS\n\t\tauth_pass %s\n\t}\n", in.AuthPass)
		}
		fmt.Fprintf(&b, "\tvirtual_ipaddress {\n\t\t%s dev %s\n\t}\n}\n", in.VIP, in.Interface)
	}
	return b.String()
}

func comment(b *strings.Builder, text string) {
	if text == "" {
		return
	}
	for line := range strings.Lines(strings.TrimRight(text, "\n")) {
		b.WriteString("# " + strings.TrimRight(line, "\n") + "\n")
	}
}
