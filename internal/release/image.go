package release

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The image names: the Kubernetes manifests in deploy/kubernetes run
// these, and their test holds them to these constants.
const (
	CoreDNSImage  = "nat64kit/coredns"
	Nat64ctlImage = "nat64kit/nat64ctl"
)

// ImageRegistry is where the short names point, for Kubernetes as for
// docker.
const ImageRegistry = "docker.io"

// ImageBinDir is where an image has its binary.
const ImageBinDir = "/usr/local/bin"

// ImageSpec is one image: a static binary on an empty base, nothing else.
type ImageSpec struct {
	Name        string // repository, without tag
	Binary      string // the file name under ImageBinDir
	Package     string // the Go package that builds it, from the repository's root
	Description string
	Cmd         []string // the default arguments
	WorkingDir  string   // made in the image, so a runtime without a mount there still starts
	User        string   // UID:GID, numeric: the image has no /etc/passwd
	Ports       []string
}

// Entrypoint is the binary, always: the arguments are the Cmd or the
// operator's.
func (s ImageSpec) Entrypoint() []string { return []string{path.Join(ImageBinDir, s.Binary)} }

// Images are the two images, each running as what its binary needs:
//
//   - CoreDNS as 65532 (no root): port 53 comes from
//     net.ipv4.ip_unprivileged_port_start, a namespaced sysctl the pod sets
//     (and Docker sets to 0 in every container), not from a capability;
//   - nat64ctl as root, with every capability but NET_ADMIN dropped by the
//     pod: a non-root process gets an added capability only through
//     ambient capabilities, which Kubernetes does not grant, and a node's
//     /dev/net/tun may be 0600.
var Images = []ImageSpec{
	{
		Name: CoreDNSImage, Binary: "coredns", Package: "./plugin/coredns",
		Description: "CoreDNS with nat64kit's dns64 plugin: DNS64 with the prefixes of the healthy NAT64 translators of nat64.toml",
		Cmd:         []string{"-conf", "/etc/coredns/Corefile"},
		WorkingDir:  "/etc/coredns",
		User:        "65532:65532",
		Ports:       []string{"53/udp", "53/tcp", "9153/tcp"},
	},
	{
		Name: Nat64ctlImage, Binary: "nat64ctl", Package: "./nat64ctl",
		Description: "nat64kit's stateful NAT64 translator (RFC 6146, RFC 7915) on a TUN device, and its command-line tool",
		Cmd:         []string{"run", "-c", "/etc/nat64kit/nat64.toml"},
		WorkingDir:  "/etc/nat64kit",
		User:        "0:0",
		Ports:       []string{"9164/tcp"},
	},
}

// ImageFile is the file name of an image's archive.
func ImageFile(s ImageSpec, version string) string {
	return strings.ReplaceAll(s.Name, "/", "-") + "_" + ImageTag(version) + ".tar"
}

// ImageTag is the image tag of a Debian version: a tag has no ~ or +, so
// 0.2.0~rc1 is tagged 0.2.0-rc1.
func ImageTag(version string) string {
	return strings.NewReplacer("~", "-", "+", "-").Replace(version)
}

// ImageMeta is what a build stamps on the image. Created is the
// changelog's date, not the time of the build, so the same source and
// binary give the same image digest.
type ImageMeta struct {
	Version, Revision string
	Created           time.Time
}

// BuildImage makes the image of s around the binary at bin: an empty base
// and one layer with the binary and the working directory.
func BuildImage(s ImageSpec, bin string, m ImageMeta) (v1.Image, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	layerTar, err := imageLayer(s, data, m.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, err
	}
	labels := map[string]string{
		"org.opencontainers.image.title":       s.Name,
		"org.opencontainers.image.description": s.Description,
		"org.opencontainers.image.version":     m.Version,
		"org.opencontainers.image.created":     m.Created.UTC().Format(time.RFC3339),
		"org.opencontainers.image.vendor":      "nat64kit",
	}
	if m.Revision != "" {
		labels["org.opencontainers.image.revision"] = m.Revision
	}
	ports := map[string]struct{}{}
	for _, p := range s.Ports {
		ports[p] = struct{}{}
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: "amd64",
		OS:           "linux",
		Created:      v1.Time{Time: m.Created},
		Config: v1.Config{
			Entrypoint:   s.Entrypoint(),
			Cmd:          s.Cmd,
			WorkingDir:   s.WorkingDir,
			User:         s.User,
			Env:          []string{"PATH=" + ImageBinDir + ":/usr/bin:/bin"},
			ExposedPorts: ports,
			Labels:       labels,
		},
	})
	if err != nil {
		return nil, err
	}
	return mutate.Append(img, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: m.Created},
			CreatedBy: "nat64kit deploy/mkimage: " + s.Package + " as " + s.Entrypoint()[0],
		},
	})
}

// imageLayer is the layer's tar: the directories down to the binary and
// the working directory, all root's, with the changelog's time.
func imageLayer(s ImageSpec, bin []byte, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	seen := map[string]bool{}
	dirs := func(p string) error {
		var parts []string
		for _, e := range strings.Split(strings.Trim(p, "/"), "/") {
			if e == "" {
				continue
			}
			parts = append(parts, e)
			d := strings.Join(parts, "/") + "/"
			if seen[d] {
				continue
			}
			seen[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
				return err
			}
		}
		return nil
	}
	if err := dirs(ImageBinDir); err != nil {
		return nil, err
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(s.Entrypoint()[0], "/"), Mode: 0o755, Size: int64(len(bin)), ModTime: mtime, Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	if err := dirs(s.WorkingDir); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteImage writes img as the archive `docker save` makes, tagged
// NAME:ImageTag(VERSION): docker load, podman load and
// kind load image-archive all read it. One tag only, and no latest: the
// manifests run the version tag, and go-containerregistry writes the tags
// of one image in random order, so a second tag would make the same image
// a different archive from build to build.
func WriteImage(file string, s ImageSpec, img v1.Image, version string) error {
	// Written out in full: docker and containerd (kind) read a short name
	// as docker.io's, as a pod's image is, but podman as localhost's.
	ref, err := name.NewTag(ImageRef(s, version))
	if err != nil {
		return fmt.Errorf("image tag %s: %w", ImageRef(s, version), err)
	}
	return tarball.WriteToFile(file, ref, img)
}

// ImageRef is the full reference an archive tags its image with.
func ImageRef(s ImageSpec, version string) string {
	return ImageRegistry + "/" + s.Name + ":" + ImageTag(version)
}
