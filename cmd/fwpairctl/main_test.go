package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fwpair/fwpair/appliance"
	"github.com/fwpair/fwpair/appliance/api"
	"github.com/fwpair/fwpair/appliance/client"
)

// serve answers the control API on a UNIX socket with canned data.
func serve(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ctl.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc(api.PathStatus, func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(api.Status{Node: "fw9", VRRP: &api.VRRPStatus{GroupState: "BACKUP",
			Instances: []api.Instance{{Name: "inside", Interface: "eth0", VRID: 51, State: "BACKUP", Priority: 100, VIPs: []string{"192.168.0.100/24"}}}},
			Sync: &api.SyncStatus{Mode: "ftfw", PeerAlive: true, ExternalEntries: 12}})
	})
	mux.HandleFunc(api.PathCommit, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		w.WriteHeader(http.StatusConflict)
		json.NewEncoder(w).Encode(api.Error{Error: "no [sync] section", Code: "unavailable"})
	})
	mux.HandleFunc(api.PathFlush, func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(api.Result{OK: true, Message: "flushed " + r.URL.Query().Get("cache")})
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return path
}

func TestCommands(t *testing.T) {
	sock := serve(t)
	tests := []struct {
		args     []string
		code     int
		stdout   string
		stderrIn string
	}{
		{[]string{"-socket", sock, "status"}, exitOK, "vrrp group : BACKUP", ""},
		{[]string{"-socket", sock, "--json", "status"}, exitOK, `"group_state": "BACKUP"`, ""},
		{[]string{"-socket", sock, "-f", "external"}, exitOK, "flushed external", ""},
		{[]string{"-socket", sock, "flush"}, exitOK, "flushed all", ""},
		{[]string{"-socket", sock, "-c"}, exitRefused, "", "no [sync] section"},
		{[]string{"-socket", sock, "cache"}, exitUsage, "", "cache needs internal or external"},
		{[]string{"-socket", sock, "frobnicate"}, exitUsage, "", `unknown command "frobnicate"`},
		{[]string{"-socket"}, exitUsage, "", "needs a path"},
		{[]string{"-x"}, exitUsage, "", "unknown flag -x"},
		{[]string{}, exitUsage, "", "usage:"},
		{[]string{"-socket", filepath.Join(t.TempDir(), "none.sock"), "status"}, exitUnreachable, "", "daemon not reachable"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tc.args, &out, &errb)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out.String(), errb.String())
			}
			if tc.stdout != "" && !strings.Contains(strings.Join(strings.Fields(out.String()), " "), strings.Join(strings.Fields(tc.stdout), " ")) {
				t.Errorf("stdout %q does not contain %q", out.String(), tc.stdout)
			}
			if tc.stderrIn != "" && !strings.Contains(errb.String(), tc.stderrIn) {
				t.Errorf("stderr %q does not contain %q", errb.String(), tc.stderrIn)
			}
		})
	}
}

func TestImportCommand(t *testing.T) {
	dir := t.TempDir()
	ka := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(ka, []byte("vrrp_instance a {\n interface eth0\n virtual_router_id 7\n state MASTER\n virtual_ipaddress {\n 10.0.0.1/24\n }\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "fwpair.toml")
	var stdout, stderr bytes.Buffer
	if rc := run([]string{"import", "-keepalived", ka, "-o", out}, &stdout, &stderr); rc != exitOK {
		t.Fatalf("rc %d: %s", rc, stderr.String())
	}
	if !strings.Contains(stderr.String(), "state MASTER: approximated") {
		t.Errorf("approximated directive not listed: %s", stderr.String())
	}
	if _, err := appliance.LoadConfig(out); err != nil {
		t.Error(err)
	}
	bad := filepath.Join(dir, "bad.conf")
	if err := os.WriteFile(bad, []byte("vrrp_instance a {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	if rc := run([]string{"import", "-keepalived", bad}, &stdout, &stderr); rc != exitUsage || !strings.Contains(stderr.String(), "bad.conf:1:") {
		t.Errorf("malformed: rc %d, %s", rc, stderr.String())
	}
	if rc := run([]string{"import"}, &stdout, &stderr); rc != exitUsage {
		t.Errorf("no files: rc %d", rc)
	}
}

// TestCommandsDocumented: fwpairctl(8) (the commands table) covers every
// command dispatch accepts, every conntrackd flag and every import flag.
func TestCommandsDocumented(t *testing.T) {
	c := client.New(filepath.Join(t.TempDir(), "none.sock"))
	documented := map[string]bool{}
	for _, cmd := range commands {
		documented[cmd.name] = true
		if cmd.local {
			continue
		}
		args := []string{cmd.name}
		if cmd.args == "internal|external" || cmd.args == "LEVEL" {
			args = append(args, "internal")
			if cmd.args == "LEVEL" {
				args[1] = "info"
			}
		}
		if _, err := dispatch(t.Context(), c, args); err == nil || strings.Contains(err.Error(), "unknown command") {
			t.Errorf("%s: documented but dispatch says %v", cmd.name, err)
		}
	}
	// Every command named in the usage text is documented.
	for _, line := range strings.Split(usage, "\n") {
		if f := strings.Fields(line); strings.HasPrefix(line, "  ") && len(f) > 0 && !strings.HasPrefix(f[0], "-") && !documented[f[0]] {
			t.Errorf("usage lists %q, fwpairctl(8) does not", f[0])
		}
	}
	for f := range conntrackdFlags {
		if conntrackdFlagDocs[f] == "" {
			t.Errorf("conntrackd flag %s undocumented", f)
		}
	}
	fs, _ := importFlags(io.Discard)
	var imp string
	for _, cmd := range commands {
		if cmd.name == "import" {
			imp = cmd.args
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.Contains(imp, "-"+f.Name+" ") && !strings.Contains(imp, "-"+f.Name+"]") {
			t.Errorf("import flag -%s undocumented", f.Name)
		}
		if !strings.Contains(importUsage, "-"+f.Name) {
			t.Errorf("import flag -%s missing from its usage", f.Name)
		}
	})
	var b bytes.Buffer
	if rc := run([]string{"manpage"}, &b, io.Discard); rc != exitOK || !strings.Contains(b.String(), ".TH FWPAIRCTL 8") {
		t.Errorf("manpage: rc %d", rc)
	}
}
