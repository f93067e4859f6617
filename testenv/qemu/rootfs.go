package qemu

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// SystemdPackages make the firewalls' systemd root filesystem (mmdebstrap
// minbase plus these; netbase brings /etc/protocols, which the ruleset's
// "ip protocol vrrp" needs).
var SystemdPackages = []string{"systemd", "systemd-sysv", "kmod", "iproute2", "nftables", "conntrack", "iputils-ping", "procps", "netbase"}

// maskedUnits would slow the boot or wait for hardware the VMs lack: without
// udev the serial getty waits 90 s for its device.
var maskedUnits = []string{
	"serial-getty@ttyS0.service", "getty@tty1.service", "getty.target",
	"apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer", "e2scrub_all.timer", "fstrim.timer",
	"systemd-timesyncd.service",
}

// SystemdBase builds, once, the Debian root tree with mmdebstrap (from the
// host's apt sources) and returns its path. It is rebuilt only when the
// package list changes.
func (b *Builder) SystemdBase() (string, error) {
	dir := filepath.Join(b.Dir, "systemd", "base")
	stamp := filepath.Join(dir, ".fwpair-lab-packages")
	want := strings.Join(SystemdPackages, ",")
	if got, err := os.ReadFile(stamp); err == nil && string(got) == want {
		return dir, nil
	}
	suite := "stable"
	if osr, err := os.ReadFile("/etc/os-release"); err == nil {
		if m := kv(strings.ReplaceAll(string(osr), "\n", " "))["VERSION_CODENAME"]; m != "" {
			suite = m
		}
	}
	tmp := dir + ".tmp"
	_ = os.RemoveAll(tmp)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	b.logf("building the systemd root filesystem with mmdebstrap (%s, once; several minutes)", suite)
	if _, err := run("", "mmdebstrap", "--variant=minbase", "--include="+want,
		"--dpkgopt=path-exclude=/usr/share/man/*", "--dpkgopt=path-exclude=/usr/share/doc/*",
		"--dpkgopt=path-exclude=/usr/share/locale/*", suite, tmp); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, ".fwpair-lab-packages"), []byte(want), 0o644); err != nil {
		return "", err
	}
	_ = os.RemoveAll(dir)
	return dir, os.Rename(tmp, dir)
}

// SystemdImage makes the firewalls' root disk image: the base tree plus the
// kernel modules (from the initramfs stage), fwpaird and fwpairctl with
// etc/fwpaird.service unmodified and enabled (installed from the Debian
// package with dpkg -i when b.Packages is set), the repository's configs and
// ruleset (as /etc/nftables.conf), and the lab's setup and agent units.
func (b *Builder) SystemdImage(k Kernel, bins map[string]string) (string, error) {
	base, err := b.SystemdBase()
	if err != nil {
		return "", err
	}
	work := filepath.Join(b.Dir, "systemd", "work")
	_ = os.RemoveAll(work)
	if _, err := run("", "cp", "-a", base, work); err != nil {
		return "", err
	}
	stage := filepath.Join(b.Dir, "initramfs")
	// The base is usr-merged (lib is a link to usr/lib).
	if err := os.MkdirAll(filepath.Join(work, "usr/lib/modules"), 0o755); err != nil {
		return "", err
	}
	if _, err := run("", "cp", "-a", filepath.Join(stage, "lib/modules", k.Version), filepath.Join(work, "usr/lib/modules", k.Version)); err != nil {
		return "", err
	}
	type cp struct {
		src, dst string
		mode     os.FileMode
	}
	list := []cp{
		{bins["qemu-guest"], "usr/bin/qemu-guest", 0o755},
		{filepath.Join(b.Repo, "etc/node1.toml"), "etc/fwpair/node1.toml", 0o640},
		{filepath.Join(b.Repo, "etc/node2.toml"), "etc/fwpair/node2.toml", 0o640},
		{filepath.Join(b.Repo, "etc/fwpair.nft"), "etc/fwpair/fwpair.nft", 0o644},
		{filepath.Join(b.Repo, "etc/fwpair.nft"), "etc/nftables.conf", 0o755},
	}
	units := map[string]string{
		"fwpair-lab-setup.service": "sysinit.target.wants",
		"fwpair-lab-agent.service": "multi-user.target.wants",
		"nftables.service":         "sysinit.target.wants",
	}
	if b.Packages == nil {
		list = append(list,
			cp{bins["fwpaird"], "usr/sbin/fwpaird", 0o755},
			cp{bins["fwpairctl"], "usr/sbin/fwpairctl", 0o755},
			cp{filepath.Join(b.Repo, "etc/fwpaird.service"), "etc/systemd/system/fwpaird.service", 0o644})
		units["fwpaird.service"] = "multi-user.target.wants"
	} else if err := installPackage(work, *b.Packages); err != nil {
		return "", err
	}
	for _, c := range list {
		if err := os.Remove(filepath.Join(work, c.dst)); err != nil && !os.IsNotExist(err) {
			return "", err
		}
		if err := copyFile(c.src, filepath.Join(work, c.dst), c.mode); err != nil {
			return "", err
		}
	}
	for name, dst := range map[string]string{
		"lab-setup":                "usr/sbin/fwpair-lab-setup",
		"fwpair-lab-setup.service": "etc/systemd/system/fwpair-lab-setup.service",
		"fwpair-lab-agent.service": "etc/systemd/system/fwpair-lab-agent.service",
	} {
		data, err := files.ReadFile("files/" + name)
		if err != nil {
			return "", err
		}
		mode := os.FileMode(0o644)
		if !strings.HasSuffix(name, ".service") {
			mode = 0o755
		}
		if err := os.WriteFile(filepath.Join(work, dst), data, mode); err != nil {
			return "", err
		}
	}
	sys := filepath.Join(work, "etc/systemd/system")
	for unit, target := range units {
		if err := os.MkdirAll(filepath.Join(sys, target), 0o755); err != nil {
			return "", err
		}
		src := "/etc/systemd/system/" + unit
		if unit == "nftables.service" {
			src = "/lib/systemd/system/" + unit
		}
		_ = os.Remove(filepath.Join(sys, target, unit))
		if err := os.Symlink(src, filepath.Join(sys, target, unit)); err != nil {
			return "", err
		}
	}
	for _, unit := range maskedUnits {
		_ = os.Remove(filepath.Join(sys, unit))
		if err := os.Symlink("/dev/null", filepath.Join(sys, unit)); err != nil {
			return "", err
		}
	}
	img := filepath.Join(b.Dir, "systemd", "root.img")
	_ = os.Remove(img)
	if _, err := run("", "mke2fs", "-q", "-t", "ext4", "-L", "fwpair-root", "-d", work, img, "1G"); err != nil {
		return "", fmt.Errorf("root image: %w", err)
	}
	_ = os.RemoveAll(work)
	return img, nil
}
