package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestCopyrightListsLinkedModules: every Go module compiled into the two
// binaries is named in debian/copyright (they are statically linked).
func TestCopyrightListsLinkedModules(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if .Module}}{{.Module.Path}}{{end}}",
		"../cmd/fwpaird", "../cmd/fwpairctl").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	cp, err := os.ReadFile("deb/copyright")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, m := range strings.Fields(string(out)) {
		if m == "github.com/fwpair/fwpair" || seen[m] {
			continue
		}
		seen[m] = true
		path := regexp.MustCompile(`/v[0-9]+$`).ReplaceAllString(m, "")
		if !strings.Contains(string(cp), "vendor/"+path+"/*") {
			t.Errorf("module %s is linked but not in packaging/deb/copyright", m)
		}
	}
	if len(seen) < 5 {
		t.Fatalf("only %d modules found", len(seen))
	}
}

var debVersionRE = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)

// TestDebPackage builds the package with packaging/deb/build.sh and
// checks what an operator relies on: the files, the conffile, the
// relations, a valid native version, the maintainer scripts' service
// handling, and, when lintian is installed, no lintian error.
func TestDebPackage(t *testing.T) {
	for _, tool := range []string{"dpkg-deb", "git", "gzip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	if testing.Short() {
		t.Skip("builds both binaries (-short)")
	}
	out := t.TempDir()
	cmd := exec.Command("bash", "packaging/deb/build.sh", out)
	cmd.Dir = ".."
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("build.sh: %v\n%s", err, exitText(err))
	}
	deb := strings.TrimSpace(string(b))
	if !strings.HasPrefix(filepath.Base(deb), "fwpair_") || !strings.HasSuffix(deb, ".deb") {
		t.Fatalf("unexpected package name %q", deb)
	}
	field := func(name string) string {
		v, err := exec.Command("dpkg-deb", "-f", deb, name).Output()
		if err != nil {
			t.Fatalf("dpkg-deb -f %s: %v", name, err)
		}
		return strings.TrimSpace(string(v))
	}
	version := field("Version")
	if !debVersionRE.MatchString(version) {
		t.Errorf("version %q is not a native Debian version", version)
	}
	if want := "fwpair_" + version + "_"; !strings.HasPrefix(filepath.Base(deb), want) {
		t.Errorf("file %s does not carry version %s", deb, version)
	}
	if r := field("Recommends"); !strings.Contains(r, "nftables") || !strings.Contains(r, "conntrack") {
		t.Errorf("Recommends: %q", r)
	}
	contents, err := exec.Command("dpkg-deb", "-c", deb).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"./usr/sbin/fwpaird", "./usr/sbin/fwpairctl", "./lib/systemd/system/fwpaird.service",
		"./etc/fwpair/fwpair.toml", "./usr/share/man/man8/fwpaird.8.gz", "./usr/share/man/man8/fwpairctl.8.gz",
		"./usr/share/man/man5/fwpair.toml.5.gz", "./usr/share/doc/fwpair/copyright", "./usr/share/doc/fwpair/changelog.gz",
		"./usr/share/doc/fwpair/fwpair.nft", "./usr/share/doc/fwpair/fwpair-alerts.yml", "./usr/share/doc/fwpair/node1.toml"} {
		if !strings.Contains(string(contents), want+"\n") {
			t.Errorf("package lacks %s", want)
		}
	}
	ctl := t.TempDir()
	if err := exec.Command("dpkg-deb", "-e", deb, ctl).Run(); err != nil {
		t.Fatal(err)
	}
	if c, _ := os.ReadFile(filepath.Join(ctl, "conffiles")); strings.TrimSpace(string(c)) != "/etc/fwpair/fwpair.toml" {
		t.Errorf("conffiles: %q", c)
	}
	post, _ := os.ReadFile(filepath.Join(ctl, "postinst"))
	if !strings.Contains(string(post), "deb-systemd-helper enable 'fwpaird.service'") ||
		!strings.Contains(string(post), "deb-systemd-invoke try-restart 'fwpaird.service'") ||
		strings.Contains(string(post), "deb-systemd-invoke start") {
		t.Errorf("postinst must enable, not start, and restart on upgrade:\n%s", post)
	}
	// The installed binaries run and say the packaged version.
	root := t.TempDir()
	if err := exec.Command("dpkg-deb", "-x", deb, root).Run(); err != nil {
		t.Fatal(err)
	}
	v, err := exec.Command(filepath.Join(root, "usr/sbin/fwpaird"), "-version").Output()
	if err != nil || strings.TrimSpace(string(v)) != "fwpaird "+version {
		t.Errorf("fwpaird -version: %q, %v", v, err)
	}
	if out, err := exec.Command(filepath.Join(root, "usr/sbin/fwpaird"), "-check", "-offline", "-c", filepath.Join(root, "etc/fwpair/fwpair.toml")).CombinedOutput(); err != nil {
		t.Errorf("the packaged configuration does not pass -check: %v\n%s", err, out)
	}
	if _, err := exec.LookPath("lintian"); err != nil {
		t.Log("lintian not installed (make deb-deps): package not linted")
		return
	}
	lint := exec.Command("lintian", "--fail-on", "error", deb)
	if out, err := lint.CombinedOutput(); err != nil {
		t.Errorf("lintian: %v\n%s", err, out)
	} else {
		t.Logf("lintian: %s", strings.TrimSpace(string(out)))
	}
}

func exitText(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}
