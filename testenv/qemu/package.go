package qemu

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Packages are the Debian packages the systemd firewalls are installed
// from: Install with dpkg -i when the image is built, Upgrade (the same
// tree with a higher version) copied into the image for the upgrade check.
type Packages struct {
	Install, Upgrade               string
	InstallVersion, UpgradeVersion string
}

// UpgradePath is where the upgrade package waits inside the firewalls.
const UpgradePath = "/var/cache/fwpair-lab/fwpair-upgrade.deb"

// DebPackages builds the two packages with packaging/deb/build.sh (make
// deb's script): the tree's version, and the same plus "+lab1".
func (b *Builder) DebPackages() (Packages, error) {
	out := filepath.Join(b.Dir, "deb")
	_ = os.RemoveAll(out)
	version, err := run(b.Repo, "packaging/deb/version.sh")
	if err != nil {
		return Packages{}, err
	}
	p := Packages{InstallVersion: strings.TrimSpace(version)}
	p.UpgradeVersion = p.InstallVersion + "+lab1"
	for _, v := range []struct {
		version string
		path    *string
	}{{p.InstallVersion, &p.Install}, {p.UpgradeVersion, &p.Upgrade}} {
		cmd := exec.Command("bash", "packaging/deb/build.sh", filepath.Join(out, v.version))
		cmd.Dir = b.Repo
		cmd.Env = append(os.Environ(), "FWPAIR_DEB_VERSION="+v.version)
		o, err := cmd.Output()
		if err != nil {
			return Packages{}, fmt.Errorf("build the package %s: %v: %s", v.version, err, exitStderr(err))
		}
		*v.path = strings.TrimSpace(string(o))
	}
	b.logf("packages %s and %s built", filepath.Base(p.Install), filepath.Base(p.Upgrade))
	return p, nil
}

func exitStderr(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return lastLines(string(ee.Stderr), 10)
	}
	return ""
}

// installPackage installs p.Install into the image tree work with dpkg -i
// (its maintainer scripts run chrooted there: the postinst enables
// fwpaird.service; with no systemd running it starts nothing) and leaves
// p.Upgrade at UpgradePath.
func installPackage(work string, p Packages) error {
	if out, err := run("", "dpkg", "--root="+work, "--force-confold", "-i", p.Install); err != nil {
		return fmt.Errorf("dpkg -i %s: %w: %s", filepath.Base(p.Install), err, out)
	}
	// The postinst must have enabled the unit as deb-systemd-helper does.
	link := filepath.Join(work, "etc/systemd/system/multi-user.target.wants/fwpaird.service")
	if _, err := os.Lstat(link); err != nil {
		return fmt.Errorf("the package's postinst did not enable fwpaird.service: %w", err)
	}
	dst := filepath.Join(work, UpgradePath)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return copyFile(p.Upgrade, dst, 0o644)
}

// UsePackages makes the scenarios check the installed package and upgrade
// it on the running MASTER.
func (l *Lab) UsePackages(p Packages) { l.Packages = &p }

// packageChecks verifies what dpkg installed on both firewalls: the
// version, the conffile, the unit enabled by the postinst, and that the
// running fwpaird is the packaged one.
func (l *Lab) packageChecks() {
	want := l.Packages.InstallVersion
	for _, fw := range []*VM{l.FW1, l.FW2} {
		out, err := sh(fw, "dpkg-query -W -f='${Version} ${db:Status-Abbrev}\\n${Conffiles}\\n' fwpair; systemctl is-enabled fwpaird; readlink -f /proc/$(systemctl show fwpaird -p MainPID --value)/exe; fwpaird -version", 10*time.Second)
		ok := err == nil && strings.HasPrefix(out, want+" ii ") && strings.Contains(out, "/etc/fwpair/fwpair.toml") &&
			strings.Contains(out, "\nenabled\n") && strings.Contains(out, "/usr/sbin/fwpaird\n") && strings.Contains(out, "fwpaird "+want)
		l.Check(ok, fw.Name+": package: fwpair "+want+" installed by dpkg, unit enabled, fwpaird running from it", "%s%s", oneLine(out, nil), errText(err))
	}
}

// upgradeCheck upgrades the package on the MASTER (fw1) while the traffic
// and the long-lived TCP session run: the postinst restarts fwpaird, fw2
// takes over during the restart, fw1 preempts back with the new version.
func (l *Lab) upgradeCheck(t *Times) {
	name := "package upgrade"
	l.logf("---- %s", name)
	l.probeReset()
	before, _ := sh(l.FW1, "systemctl show fwpaird -p MainPID --value", 5*time.Second)
	start := time.Now()
	out, err := sh(l.FW1, "DEBIAN_FRONTEND=noninteractive dpkg --force-confold -i "+UpgradePath+" 2>&1 | tail -n 3", 90*time.Second)
	l.Check(err == nil, name+": dpkg -i on the running MASTER", "%.1fs: %s", time.Since(start).Seconds(), oneLine(out, err))
	_, s := waitState(l.FW1, "MASTER", DefaultBounds.Failback)
	t.Failback[name] = time.Since(start)
	l.Check(s == "MASTER", name+": fw1 MASTER again after the restart", "%.2fs after dpkg started (%s)", t.Failback[name].Seconds(), s)
	after, _ := sh(l.FW1, "systemctl show fwpaird -p MainPID --value; dpkg-query -W -f='${Version}' fwpair; echo; fwpaird -version", 5*time.Second)
	want := l.Packages.UpgradeVersion
	l.Check(before != "" && !strings.HasPrefix(after, before+"\n") && strings.Contains(after, "\n"+want+"\n") && strings.Contains(after, "fwpaird "+want),
		name+": fwpaird restarted from the new version", "MainPID %s -> %s", strings.TrimSpace(before), oneLine(after, nil))
	if st, err := getStatus(l.FW2); err == nil && st.LastTransition.At.After(start) {
		l.Check(st.LastTransition.From == "MASTER", name+": fw2 carried the traffic during the restart",
			"fw2's last transition %s -> %s (%s)", st.LastTransition.From, st.LastTransition.To, st.LastTransition.Reason)
	} else {
		l.Check(false, name+": fw2 carried the traffic during the restart", "no transition on fw2 since the upgrade began%s", errText(err))
	}
	gap, back := l.probeGap(5 * time.Second)
	t.Gap[name] = gap
	l.Check(back, name+": traffic flows after the upgrade", "longest probe gap %dms", gap.Milliseconds())
	l.settled(name)
	l.master(name, l.FW1, l.FW2)
}
