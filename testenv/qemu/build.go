package qemu

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
)

//go:embed files
var files embed.FS

// HostPackages are the Debian packages the busybox lab needs on the host.
var HostPackages = []string{"qemu-system-x86", "busybox-static", "cpio", "kmod", "nftables", "conntrack"}

// SystemdHostPackages are needed on top for the systemd root filesystem.
var SystemdHostPackages = []string{"mmdebstrap", "e2fsprogs"}

// Modules are the kernel modules the initramfs carries (with their
// dependencies): virtio for the devices, netfilter for the firewalls.
var Modules = []string{
	"virtio_pci", "virtio_net", "virtio_console", "virtio_blk", "qemu_fw_cfg",
	"nfnetlink", "nf_conntrack", "nf_conntrack_netlink", "nf_tables", "nft_ct",
	"nf_nat", "nft_nat", "nft_chain_nat", "nft_masq", "nf_defrag_ipv4", "nf_defrag_ipv6", "libcrc32c",
	"nft_reject_inet", "nft_fib_inet",
	// Not used by the lab, but a netlink library may open an XFRM socket;
	// the kernel then autoloads this through /sbin/modprobe, as on a full system.
	"xfrm_user",
}

// Builder makes the lab's artefacts under Dir (testenv/qemu/build).
type Builder struct {
	Repo string // repository root
	Dir  string // build folder
	Logf func(format string, args ...any)
	// Packages, when set, installs fwpair into the systemd root with
	// dpkg -i instead of copying the binaries and the unit (package.go).
	Packages *Packages

	lock *os.File
}

func (b *Builder) logf(format string, args ...any) {
	if b.Logf != nil {
		b.Logf(format, args...)
	}
}

func run(dir string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(lastLines(out.String(), 5)))
	}
	return out.String(), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Prepare creates the build folder with a go.mod of its own, so that
// `go vet ./...` and friends do not walk into the unpacked kernel and root
// filesystem trees.
func (b *Builder) Prepare() error {
	if err := os.MkdirAll(b.Dir, 0o755); err != nil {
		return err
	}
	// One lab per build folder: a second run would rebuild the initramfs
	// and remove the run folder under the first one's VMs.
	lock, err := os.OpenFile(filepath.Join(b.Dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return fmt.Errorf("another qemu-lab is using %s", b.Dir)
	}
	b.lock = lock // held until the process exits
	gomod := filepath.Join(b.Dir, "go.mod")
	if _, err := os.Stat(gomod); err == nil {
		return nil
	}
	return os.WriteFile(gomod, []byte("// Build output of testenv/qemu, kept out of the fwpair module.\nmodule fwpair-qemu-build\n"), 0o644)
}

// EnsurePackages installs the missing ones of pkgs with apt-get.
func EnsurePackages(logf func(string, ...any), pkgs ...string) error {
	var missing []string
	for _, p := range pkgs {
		out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", p).Output()
		if !strings.Contains(string(out), "install ok installed") {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("need root to install %s", strings.Join(missing, " "))
	}
	logf("installing %s", strings.Join(missing, " "))
	args := append([]string{"install", "-y", "-qq", "--no-install-recommends"}, missing...)
	cmd := exec.Command("apt-get", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		// Stale package lists are the usual cause on a fresh machine.
		if _, uerr := run("", "apt-get", "update", "-qq"); uerr != nil {
			return fmt.Errorf("apt-get install: %v: %s", err, lastLines(string(out), 5))
		}
		cmd = exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get install: %v: %s", err, lastLines(string(out), 5))
		}
	}
	return nil
}

// Kernel is an unpacked Debian cloud kernel.
type Kernel struct {
	Version string // e.g. 6.1.0-56-cloud-amd64
	Root    string // the dpkg -x tree
}

// Image is the path of the kernel image.
func (k Kernel) Image() string { return filepath.Join(k.Root, "boot", "vmlinuz-"+k.Version) }

// ModDir is the kernel's module directory.
func (k Kernel) ModDir() string { return filepath.Join(k.Root, "lib", "modules", k.Version) }

var cloudImageRE = regexp.MustCompile(`linux-image-(\d[^\s]*-cloud-amd64)\b`)

// cloudKernelVersion asks apt which kernel linux-image-cloud-amd64 currently
// depends on.
func cloudKernelVersion() (string, error) {
	out, err := run("", "apt-cache", "depends", "linux-image-cloud-amd64")
	if err != nil {
		return "", err
	}
	m := cloudImageRE.FindStringSubmatch(out)
	if m == nil {
		return "", errors.New("apt-cache depends linux-image-cloud-amd64: no linux-image-*-cloud-amd64 dependency")
	}
	return m[1], nil
}

// Kernel downloads (once) the current Debian cloud kernel package and
// unpacks it with dpkg -x into the build folder; it never touches /boot.
func (b *Builder) Kernel() (Kernel, error) {
	ver, err := cloudKernelVersion()
	if err != nil {
		if _, uerr := run("", "apt-get", "update", "-qq"); uerr != nil {
			return Kernel{}, err
		}
		if ver, err = cloudKernelVersion(); err != nil {
			return Kernel{}, err
		}
	}
	k := Kernel{Version: ver, Root: filepath.Join(b.Dir, "kernel", ver)}
	if _, err := os.Stat(filepath.Join(k.ModDir(), "modules.dep")); err == nil {
		if _, err := os.Stat(k.Image()); err == nil {
			return k, nil
		}
	}
	dl := filepath.Join(b.Dir, "deb")
	if err := os.MkdirAll(dl, 0o755); err != nil {
		return k, err
	}
	pkg := "linux-image-" + ver
	b.logf("downloading %s", pkg)
	if _, err := run(dl, "apt-get", "download", "-q", pkg); err != nil {
		if _, uerr := run("", "apt-get", "update", "-qq"); uerr != nil {
			return k, err
		}
		if _, err := run(dl, "apt-get", "download", "-q", pkg); err != nil {
			return k, err
		}
	}
	debs, _ := filepath.Glob(filepath.Join(dl, pkg+"_*.deb"))
	if len(debs) == 0 {
		return k, fmt.Errorf("apt-get download %s left no .deb in %s", pkg, dl)
	}
	slices.Sort(debs)
	tmp := k.Root + ".tmp"
	_ = os.RemoveAll(tmp)
	if err := os.MkdirAll(filepath.Dir(tmp), 0o755); err != nil {
		return k, err
	}
	if _, err := run("", "dpkg", "-x", debs[len(debs)-1], tmp); err != nil {
		return k, err
	}
	// The package ships no modules.dep: make one.
	if _, err := run("", "depmod", "-b", tmp, ver); err != nil {
		return k, err
	}
	_ = os.RemoveAll(k.Root)
	if err := os.Rename(tmp, k.Root); err != nil {
		return k, err
	}
	for _, d := range debs {
		_ = os.Remove(d)
	}
	return k, nil
}

// moduleFiles resolves mods and their dependencies to .ko paths inside k.
func moduleFiles(k Kernel, mods []string) ([]string, error) {
	seen := map[string]bool{}
	var paths []string
	for _, m := range mods {
		out, err := run("", "modprobe", "-d", k.Root, "-S", k.Version, "--show-depends", m)
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || f[0] != "insmod" {
				continue // "builtin x" lines need nothing
			}
			if !seen[f[1]] {
				seen[f[1]] = true
				paths = append(paths, f[1])
			}
		}
	}
	return paths, nil
}

// libraries lists the shared objects bin needs, as ldd resolves them.
func libraries(bin string) ([]string, error) {
	out, err := run("", "ldd", bin)
	if err != nil {
		return nil, err
	}
	var libs []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			libs = append(libs, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			libs = append(libs, f[0]) // the dynamic loader
		}
	}
	return libs, nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// GoBinaries builds the static binaries the guests run into dir/bin:
// qemu-guest always, fwpaird and fwpairctl when withDaemon.
func (b *Builder) GoBinaries(withDaemon bool) (map[string]string, error) {
	bin := filepath.Join(b.Dir, "bin")
	pkgs := map[string]string{"qemu-guest": "./testenv/qemu/cmd/qemu-guest"}
	if withDaemon {
		pkgs["fwpaird"] = "./cmd/fwpaird"
		pkgs["fwpairctl"] = "./cmd/fwpairctl"
	}
	res := map[string]string{}
	for name, pkg := range pkgs {
		out := filepath.Join(bin, name)
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=qemu-lab", "-o", out, pkg)
		cmd.Dir = b.Repo
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if o, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s: %v: %s", pkg, err, lastLines(string(o), 10))
		}
		res[name] = out
	}
	return res, nil
}

// Initramfs builds the busybox initramfs (an uncompressed newc cpio: the
// kernel unpacks it faster than a compressed one under TCG) and returns its
// path. bins maps names to the static Go binaries to include.
func (b *Builder) Initramfs(k Kernel, bins map[string]string) (string, error) {
	stage := filepath.Join(b.Dir, "initramfs")
	_ = os.RemoveAll(stage)
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "etc/fwpair", "proc", "sys", "dev", "run", "tmp", "var", "lib64", "root"} {
		if err := os.MkdirAll(filepath.Join(stage, d), 0o755); err != nil {
			return "", err
		}
	}
	// busybox and its applets.
	if err := copyFile("/bin/busybox", filepath.Join(stage, "bin/busybox"), 0o755); err != nil {
		return "", fmt.Errorf("busybox-static: %w", err)
	}
	out, err := run("", "/bin/busybox", "--list-full")
	if err != nil {
		return "", err
	}
	for _, applet := range strings.Fields(out) {
		dst := filepath.Join(stage, applet)
		if _, err := os.Lstat(dst); err == nil {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return "", err
		}
		if err := os.Symlink("/bin/busybox", dst); err != nil {
			return "", err
		}
	}
	// nft and conntrack with the libraries ldd lists.
	for _, tool := range []string{"/usr/sbin/nft", "/usr/sbin/conntrack"} {
		if err := copyFile(tool, filepath.Join(stage, tool), 0o755); err != nil {
			return "", err
		}
		libs, err := libraries(tool)
		if err != nil {
			return "", err
		}
		for _, l := range libs {
			real, err := filepath.EvalSymlinks(l)
			if err != nil {
				return "", err
			}
			if err := copyFile(real, filepath.Join(stage, l), 0o755); err != nil {
				return "", err
			}
		}
	}
	for _, f := range []string{"/etc/protocols", "/etc/services"} {
		if _, err := os.Stat(f); err == nil {
			if err := copyFile(f, filepath.Join(stage, f), 0o644); err != nil {
				return "", err
			}
		}
	}
	if err := os.WriteFile(filepath.Join(stage, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(stage, "etc/group"), []byte("root:x:0:\n"), 0o644); err != nil {
		return "", err
	}
	// The modules and a modules.dep for busybox modprobe.
	kos, err := moduleFiles(k, Modules)
	if err != nil {
		return "", err
	}
	for _, ko := range kos {
		rel, err := filepath.Rel(k.Root, ko)
		if err != nil {
			return "", err
		}
		if err := copyFile(ko, filepath.Join(stage, rel), 0o644); err != nil {
			return "", err
		}
	}
	for _, f := range []string{"modules.order", "modules.builtin", "modules.builtin.modinfo"} {
		if err := copyFile(filepath.Join(k.ModDir(), f), filepath.Join(stage, "lib/modules", k.Version, f), 0o644); err != nil {
			return "", err
		}
	}
	if _, err := run("", "depmod", "-b", stage, k.Version); err != nil {
		return "", err
	}
	// The repository's configs and ruleset, exactly as committed.
	for _, f := range []string{"node1.toml", "node2.toml", "fwpair.nft"} {
		if err := copyFile(filepath.Join(b.Repo, "etc", f), filepath.Join(stage, "etc/fwpair", f), 0o644); err != nil {
			return "", err
		}
	}
	// The Go binaries.
	dest := map[string]string{"qemu-guest": "bin/qemu-guest", "fwpaird": "usr/sbin/fwpaird", "fwpairctl": "usr/sbin/fwpairctl"}
	for name, path := range bins {
		if err := copyFile(path, filepath.Join(stage, dest[name]), 0o755); err != nil {
			return "", err
		}
	}
	// init and its helpers.
	for name, dst := range map[string]string{"init": "init", "lab-setup": "usr/sbin/fwpair-lab-setup", "fwpair-start": "usr/sbin/fwpair-start", "fwpair-stop": "usr/sbin/fwpair-stop"} {
		data, err := files.ReadFile("files/" + name)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(stage, dst), data, 0o755); err != nil {
			return "", err
		}
	}
	img := filepath.Join(b.Dir, "initramfs.cpio")
	if err := cpio(stage, img); err != nil {
		return "", err
	}
	return img, nil
}

// cpio packs dir into a newc archive owned by root.
func cpio(dir, img string) error {
	var list bytes.Buffer
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel != "." {
			list.WriteString(rel + "\n")
		}
		return nil
	})
	if err != nil {
		return err
	}
	out, err := os.Create(img)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.Command("cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0")
	cmd.Dir = dir
	cmd.Stdin = &list
	cmd.Stdout = out
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("cpio: %v: %s", err, stderr.String())
	}
	return out.Close()
}
