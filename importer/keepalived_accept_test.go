package importer

import (
	"fmt"
	"testing"

	"github.com/fwpair/fwpair/appliance"
)

// keepalived's accept and no_accept carry to accept_mode; vrrp_strict
// makes no_accept the default of the instances that say neither, as in
// keepalived; without it they keep fwpair's default (accept).
func TestImportAcceptMode(t *testing.T) {
	instance := func(name string, vrid int, extra string) string {
		return fmt.Sprintf("vrrp_instance %s {\n\tinterface eth0\n\tvirtual_router_id %d\n\tpriority 100\n%s\tvirtual_ipaddress {\n\t\t192.168.%d.100/24\n\t}\n}\n",
			name, vrid, extra, vrid)
	}
	body := instance("acc", 1, "\taccept\n") + instance("noacc", 2, "\tno_accept\n") + instance("plain", 3, "")
	for _, c := range []struct {
		strict bool
		want   map[string]bool // instance -> accepts
	}{
		{false, map[string]bool{"acc": true, "noacc": false, "plain": true}},
		{true, map[string]bool{"acc": true, "noacc": false, "plain": false}},
	} {
		t.Run(fmt.Sprintf("vrrp_strict=%v", c.strict), func(t *testing.T) {
			conf := "global_defs {\n\trouter_id fw1\n}\n" + body
			if c.strict {
				conf = "global_defs {\n\trouter_id fw1\n\tvrrp_strict\n}\n" + body
			}
			res, err := Import(Input{Keepalived: write(t, t.TempDir(), "keepalived.conf", conf)})
			if err != nil {
				t.Fatalf("%v\n%s", err, res.TOML)
			}
			cfg, err := appliance.ParseConfig("out.toml", res.TOML)
			if err != nil {
				t.Fatalf("%v\n%s", err, res.TOML)
			}
			for _, in := range cfg.VRRP.Instances {
				if want, ok := c.want[in.Name]; !ok || want == in.NoAccept {
					t.Errorf("instance %s: accepts %v, want %v\n%s", in.Name, !in.NoAccept, want, res.TOML)
				}
			}
			for _, n := range res.Notes {
				if n.Directive == "accept" || n.Directive == "no_accept" || n.Directive == "vrrp_strict" {
					if n.Outcome == Refused || n.Outcome == Ignored {
						t.Errorf("%s: %v", n.Directive, n)
					}
				}
			}
		})
	}
}
