package deploy

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/nat64kit/nat64kit/internal/release"
)

// testImageMeta is what make image stamps, with a fixed revision.
func testImageMeta(t *testing.T) release.ImageMeta {
	t.Helper()
	cl, err := release.ReadChangelog(filepath.Join(debDir, "changelog"))
	if err != nil {
		t.Fatal(err)
	}
	return release.ImageMeta{Version: cl.Version, Revision: "0123456789abcdef0123456789abcdef01234567", Created: cl.Date}
}

// builtImages are the two archives, written once per run.
var builtImages struct {
	sync.Mutex
	files map[string]string
}

// imageArchives builds both images from this run's binaries, as make
// image does, once, returning each archive by image name.
func imageArchives(t *testing.T) (map[string]string, release.ImageMeta) {
	t.Helper()
	meta := testImageMeta(t)
	bins := map[string]string{}
	for _, s := range release.Images {
		bins[s.Name] = binary(t, strings.TrimPrefix(s.Package, "./"))
	}
	builtImages.Lock()
	defer builtImages.Unlock()
	if builtImages.files != nil {
		return builtImages.files, meta
	}
	dir := filepath.Join(filepath.Dir(bins[nat64ctlImage]), "images")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, s := range release.Images {
		img, err := release.BuildImage(s, bins[s.Name], meta)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, release.ImageFile(s, meta.Version))
		if err := release.WriteImage(file, s, img, meta.Version); err != nil {
			t.Fatal(err)
		}
		files[s.Name] = file
	}
	builtImages.files = files
	return files, meta
}

// Each archive, read back, is the image the manifests expect: the version
// tag, the entrypoint, arguments, user, working directory, ports and
// OCI labels, one layer whose binary is byte for byte the one built, and
// nothing else in it.
func TestImageReadBack(t *testing.T) {
	files, meta := imageArchives(t)
	tag := release.ImageTag(meta.Version)
	for _, s := range release.Images {
		t.Run(s.Name, func(t *testing.T) {
			file := files[s.Name]
			// What docker load reads first: the tags of the one image.
			var manifest []struct{ RepoTags []string }
			if err := json.Unmarshal(tarMember(t, file, "manifest.json"), &manifest); err != nil {
				t.Fatal(err)
			}
			wantTags := []string{release.ImageRegistry + "/" + s.Name + ":" + tag}
			if len(manifest) != 1 || !slices.Equal(manifest[0].RepoTags, wantTags) {
				t.Fatalf("manifest.json: %+v, want one image tagged %q", manifest, wantTags)
			}
			tg, err := name.NewTag(wantTags[0])
			if err != nil {
				t.Fatal(err)
			}
			img, err := tarball.ImageFromPath(file, &tg)
			if err != nil {
				t.Fatalf("%s: %v", tg, err)
			}

			cfg, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			c := cfg.Config
			if cfg.OS != "linux" || cfg.Architecture != "amd64" || !cfg.Created.Time.Equal(meta.Created) {
				t.Errorf("platform %s/%s created %v, want linux/amd64 created %v", cfg.OS, cfg.Architecture, cfg.Created, meta.Created)
			}
			if !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/" + s.Binary}) || !slices.Equal(c.Cmd, s.Cmd) {
				t.Errorf("entrypoint %q cmd %q, want /usr/local/bin/%s and %q", c.Entrypoint, c.Cmd, s.Binary, s.Cmd)
			}
			if c.User != s.User || c.WorkingDir != s.WorkingDir {
				t.Errorf("user %q in %q, want %q in %q", c.User, c.WorkingDir, s.User, s.WorkingDir)
			}
			if ports := slices.Sorted(maps.Keys(c.ExposedPorts)); !slices.Equal(ports, slices.Sorted(slices.Values(s.Ports))) {
				t.Errorf("exposed ports %q, want %q", ports, s.Ports)
			}
			wantLabels := map[string]string{
				"org.opencontainers.image.title":       s.Name,
				"org.opencontainers.image.description": s.Description,
				"org.opencontainers.image.version":     meta.Version,
				"org.opencontainers.image.revision":    meta.Revision,
				"org.opencontainers.image.created":     meta.Created.UTC().Format(time.RFC3339),
				"org.opencontainers.image.vendor":      "nat64kit",
			}
			if !maps.Equal(c.Labels, wantLabels) {
				t.Errorf("labels %q, want %q", c.Labels, wantLabels)
			}

			layers, err := img.Layers()
			if err != nil || len(layers) != 1 || len(cfg.RootFS.DiffIDs) != 1 {
				t.Fatalf("%d layers, %d diff IDs (%v), want one", len(layers), len(cfg.RootFS.DiffIDs), err)
			}
			want, err := os.ReadFile(binary(t, strings.TrimPrefix(s.Package, "./")))
			if err != nil {
				t.Fatal(err)
			}
			entries, diffID := layerContents(t, layers[0], "usr/local/bin/"+s.Binary, want)
			if diffID != cfg.RootFS.DiffIDs[0] {
				t.Errorf("the layer's content hashes to %v, the config says %v", diffID, cfg.RootFS.DiffIDs[0])
			}
			wantEntries := []string{"usr/", "usr/local/", "usr/local/bin/", "usr/local/bin/" + s.Binary}
			for p := strings.Trim(s.WorkingDir, "/"); p != "." && p != ""; p = filepath.Dir(p) {
				wantEntries = append(wantEntries, p+"/")
			}
			slices.Sort(wantEntries)
			wantEntries = slices.Compact(wantEntries)
			slices.Sort(entries)
			if !slices.Equal(entries, wantEntries) {
				t.Errorf("layer holds %q, want %q", entries, wantEntries)
			}
		})
	}
}

// layerContents lists a layer's entries, checks that the one at binPath is
// want byte for byte, mode 0755 and root's, and hashes the uncompressed
// layer as its diff ID is hashed.
func layerContents(t *testing.T, l v1.Layer, binPath string, want []byte) ([]string, v1.Hash) {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h := sha256.New()
	tr := tar.NewReader(io.TeeReader(rc, h))
	var names []string
	found := false
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
		if hdr.Uid != 0 || hdr.Gid != 0 {
			t.Errorf("%s owned by %d:%d, want root's", hdr.Name, hdr.Uid, hdr.Gid)
		}
		if hdr.Name != binPath {
			continue
		}
		found = true
		got, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes, not the %d of the binary built", binPath, len(got), len(want))
		}
		if hdr.Typeflag != tar.TypeReg || hdr.Mode != 0o755 {
			t.Errorf("%s: type %c mode %o, want a regular file 0755", binPath, hdr.Typeflag, hdr.Mode)
		}
	}
	io.Copy(h, rc) // the tar's end-of-archive padding
	if !found {
		t.Errorf("no %s in the layer", binPath)
	}
	return names, v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", h.Sum(nil))}
}

// tarMember is one file of a tar archive.
func tarMember(t *testing.T, file, member string) []byte {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err != nil {
			t.Fatalf("%s: no %s: %v", file, member, err)
		}
		if hdr.Name == member {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
}

// The same binary and changelog give the same image, digest and all: the
// build stamps the changelog's date, never the clock.
func TestImageReproducible(t *testing.T) {
	s := release.Images[slices.IndexFunc(release.Images, func(s release.ImageSpec) bool { return s.Name == nat64ctlImage })]
	meta := testImageMeta(t)
	var digests []v1.Hash
	for range 2 {
		img, err := release.BuildImage(s, binary(t, strings.TrimPrefix(s.Package, "./")), meta)
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
	}
	if digests[0] != digests[1] {
		t.Errorf("two builds, two digests: %v", digests)
	}
}

// podman, a real loader, takes both archives: it lists each image under
// its tag with the entrypoint and user of the build. Its storage is a
// temporary directory, so the machine's images are never touched.
func TestImageLoadsInPodman(t *testing.T) {
	if _, err := exec.LookPath("podman"); err != nil {
		t.Skip("needs podman (apt-get install podman)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: podman's storage in a temporary directory, without a user namespace")
	}
	files, meta := imageArchives(t)
	// Short: podman refuses a run root of more than 50 characters.
	store, err := os.MkdirTemp("", "n64pod")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(store) })
	podman := func(args ...string) []byte {
		t.Helper()
		base := []string{"--root", filepath.Join(store, "root"), "--runroot", filepath.Join(store, "run"), "--tmpdir", filepath.Join(store, "tmp"),
			"--storage-driver", "vfs", "--events-backend", "none", "--cgroup-manager", "cgroupfs"}
		out, err := exec.Command("podman", append(base, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("podman %q: %v\n%s", args, err, out)
		}
		return out
	}
	os.MkdirAll(filepath.Join(store, "tmp"), 0o700)
	for _, s := range release.Images {
		out := podman("load", "--quiet", "--input", files[s.Name])
		ref := release.ImageRef(s, meta.Version)
		if !strings.Contains(string(out), ref) {
			t.Errorf("podman load %s:\n%s", filepath.Base(files[s.Name]), out)
		}
		var inspect []struct {
			ID       string `json:"Id"`
			RepoTags []string
			Config   struct {
				Entrypoint []string
				User       string
				Labels     map[string]string
			}
		}
		if err := json.Unmarshal(podman("image", "inspect", ref), &inspect); err != nil || len(inspect) != 1 {
			t.Fatalf("podman image inspect %s: %v %+v", ref, err, inspect)
		}
		got := inspect[0]
		slices.Sort(got.RepoTags)
		if wantTags := []string{ref}; !slices.Equal(got.RepoTags, wantTags) {
			t.Errorf("podman has %s as %q, want %q", s.Name, got.RepoTags, wantTags)
		}
		if !slices.Equal(got.Config.Entrypoint, s.Entrypoint()) || got.Config.User != s.User || got.Config.Labels["org.opencontainers.image.version"] != meta.Version {
			t.Errorf("podman sees entrypoint %q user %q version %q, want %q %q %q", got.Config.Entrypoint, got.Config.User,
				got.Config.Labels["org.opencontainers.image.version"], s.Entrypoint(), s.User, meta.Version)
		}
	}
}
