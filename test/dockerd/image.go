package dockerd

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// BusyboxImage is the image Start imports: a static busybox with its
// applets (sh, true, ping, ip, nc, sleep, ...) linked in /bin.
const BusyboxImage = "calyx-test/busybox:latest"

// LoadBusybox imports BusyboxImage from a tarball built from
// Options.Busybox: the tests need no registry and no network.
func (d *Daemon) LoadBusybox(ctx context.Context) error {
	tarball, err := BusyboxTar(ctx, d.opts.Busybox)
	if err != nil {
		return err
	}
	if _, err := d.docker(ctx, bytes.NewReader(tarball), "import", "--change", `CMD ["/bin/sh"]`, "-", BusyboxImage); err != nil {
		return fmt.Errorf("importing %s: %w", BusyboxImage, err)
	}
	return nil
}

// BusyboxTar builds a root filesystem tarball holding the static busybox
// at path as /bin/busybox, a symbolic link to it for each of its applets,
// /etc/passwd and /etc/group with root, and /tmp. Its files' times are
// fixed, so the same busybox always gives the same image.
func BusyboxTar(ctx context.Context, path string) ([]byte, error) {
	bin, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading busybox: %w", err)
	}
	list, err := exec.CommandContext(ctx, path, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("listing busybox's applets (%s --list): %w", path, err)
	}
	var buf bytes.Buffer
	w := tar.NewWriter(&buf)
	mtime := time.Unix(0, 0)
	add := func(h *tar.Header, body []byte) error {
		h.ModTime, h.Size = mtime, int64(len(body))
		if err := w.WriteHeader(h); err != nil {
			return err
		}
		_, err := w.Write(body)
		return err
	}
	entries := []struct {
		h    tar.Header
		body []byte
	}{
		{tar.Header{Typeflag: tar.TypeDir, Name: "bin/", Mode: 0o755}, nil},
		{tar.Header{Typeflag: tar.TypeDir, Name: "etc/", Mode: 0o755}, nil},
		{tar.Header{Typeflag: tar.TypeDir, Name: "root/", Mode: 0o700}, nil},
		{tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777}, nil},
		{tar.Header{Typeflag: tar.TypeReg, Name: "etc/passwd", Mode: 0o644}, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")},
		{tar.Header{Typeflag: tar.TypeReg, Name: "etc/group", Mode: 0o644}, []byte("root:x:0:\nnogroup:x:65534:\n")},
		{tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755}, bin},
	}
	for _, e := range entries {
		if err := add(&e.h, e.body); err != nil {
			return nil, fmt.Errorf("writing the busybox tarball: %w", err)
		}
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		h := &tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777}
		if err := add(h, nil); err != nil {
			return nil, fmt.Errorf("writing the busybox tarball: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("writing the busybox tarball: %w", err)
	}
	return buf.Bytes(), nil
}
