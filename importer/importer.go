// Package importer converts a keepalived.conf and a conntrackd.conf into
// a commented fwpair.toml, listing every setting it could not carry over
// and why. The two formats are parsed by a small hand-written reader
// (blocks.go): no Go library reads them.
package importer

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/fwpair/fwpair/appliance"
)

// Outcome says what became of one directive.
type Outcome string

// Outcomes, from best to worst.
const (
	Carried      Outcome = "carried"      // same meaning in fwpair.toml
	Approximated Outcome = "approximated" // carried with a different behaviour, explained
	Ignored      Outcome = "ignored"      // not needed by fwpair (it does this itself or differently)
	Refused      Outcome = "refused"      // fwpair has no equivalent: the operator must act
)

// Note is the fate of one directive.
type Note struct {
	Where     string // file:line
	Directive string
	Outcome   Outcome
	Detail    string
}

func (n Note) String() string {
	return fmt.Sprintf("%s: %s: %s: %s", n.Where, n.Directive, n.Outcome, n.Detail)
}

// Input names the files to convert; either may be empty.
type Input struct {
	Keepalived string
	Conntrackd string
	// Node overrides the node name (default: keepalived's router_id).
	Node string
	// SyncPeers are the peer's addresses on a multicast sync link.
	// conntrackd accepts multicast sync traffic from anyone; fwpair only
	// from the addresses in sync.link.accept_from, which a multicast
	// channel in conntrackd.conf does not name.
	SyncPeers []string
}

// Result is the converted configuration.
type Result struct {
	TOML  []byte
	Notes []Note
}

// Problems lists the notes that need the operator (approximated and
// refused), sorted by place.
func (r *Result) Problems() []Note {
	var out []Note
	for _, n := range r.Notes {
		if n.Outcome == Approximated || n.Outcome == Refused {
			out = append(out, n)
		}
	}
	return out
}

// Import reads the files and converts them. The produced TOML is
// validated with fwpaird's own loader: an error lists what is missing
// for a valid configuration (with the notes so far).
func Import(in Input) (*Result, error) {
	if in.Keepalived == "" && in.Conntrackd == "" {
		return nil, errors.New("import: give a keepalived.conf, a conntrackd.conf or both")
	}
	im := newImporter()
	for _, p := range in.SyncPeers {
		a, err := netip.ParseAddr(p)
		if err != nil {
			return nil, fmt.Errorf("import: -sync-peer %q is not an IP address", p)
		}
		im.syncPeers = append(im.syncPeers, a.String())
	}
	if in.Keepalived != "" {
		st, err := parseFile(in.Keepalived, keepalivedSyntax)
		if err != nil {
			return nil, err
		}
		im.keepalived(st)
	}
	if in.Conntrackd != "" {
		st, err := parseFile(in.Conntrackd, conntrackdSyntax)
		if err != nil {
			return nil, err
		}
		im.conntrackd(st)
	}
	if in.Node != "" {
		im.out.node = val{in.Node, "command line"}
	}
	return im.finish(in)
}

func (im *importer) finish(in Input) (*Result, error) {
	sort.SliceStable(im.notes, func(i, j int) bool { return placeLess(im.notes[i].Where, im.notes[j].Where) })
	if len(im.out.instances) == 0 && im.out.sync == nil {
		im.fatalf(nil, "no vrrp_instance and no conntrackd Sync section: nothing for fwpair to run")
	}
	res := &Result{Notes: im.notes}
	res.TOML = im.out.render(in, res.Problems())
	if len(im.fatal) > 0 {
		return res, fmt.Errorf("import: cannot write a valid fwpair.toml:\n  %s", strings.Join(im.fatal, "\n  "))
	}
	if _, err := appliance.ParseConfig("imported fwpair.toml", res.TOML); err != nil {
		return res, fmt.Errorf("import: the converted configuration does not validate (a bug, or input fwpair cannot express): %w", err)
	}
	return res, nil
}

// placeLess orders "file:line" by file, then line number.
func placeLess(a, b string) bool {
	fa, la := splitPlace(a)
	fb, lb := splitPlace(b)
	if fa != fb {
		return fa < fb
	}
	return la < lb
}

func splitPlace(p string) (string, int) {
	i := strings.LastIndexByte(p, ':')
	if i < 0 {
		return p, 0
	}
	n := 0
	fmt.Sscanf(p[i+1:], "%d", &n)
	return p[:i], n
}

// val is a setting with where it came from.
type val struct {
	v    string
	from string
}

func (v val) set() bool { return v.v != "" }

type importer struct {
	// syncPeers is Input.SyncPeers, validated.
	syncPeers []string
	out       *outConfig
	// strict is accept_mode = false from global_defs vrrp_strict: the
	// default of instances that set neither accept nor no_accept.
	strict val
	notes  []Note
	fatal  []string
}

func newImporter() *importer { return &importer{out: &outConfig{}} }

func (im *importer) note(s *stmt, o Outcome, format string, args ...any) {
	d := s.Name
	if len(s.Args) > 0 && o != Carried {
		d += " " + strings.Join(redactArgs(s), " ")
	}
	im.notes = append(im.notes, Note{Where: s.where(), Directive: d, Outcome: o, Detail: fmt.Sprintf(format, args...)})
}

// redactArgs hides secrets in notes.
func redactArgs(s *stmt) []string {
	switch strings.ToLower(s.Name) {
	case "auth_pass":
		return []string{"<secret>"}
	}
	return s.Args
}

func (im *importer) fatalf(s *stmt, format string, args ...any) {
	where := "input"
	if s != nil {
		where = s.where()
	}
	im.fatal = append(im.fatal, where+": "+fmt.Sprintf(format, args...))
}
