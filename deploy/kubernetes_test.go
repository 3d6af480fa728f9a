package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsjson "sigs.k8s.io/json"

	"github.com/nat64kit/nat64kit/internal/release"
	"sigs.k8s.io/yaml"
)

const kubeDir = "kubernetes"

// The image names the manifests use: the ones make image builds.
const (
	corednsImage  = release.CoreDNSImage
	nat64ctlImage = release.Nat64ctlImage
)

// imageSpec is what make image builds under a name.
func imageSpec(t *testing.T, name string) release.ImageSpec {
	t.Helper()
	for _, s := range release.Images {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("make image builds no %s", name)
	return release.ImageSpec{}
}

// configMapName is the kustomize generator's name (before its hash).
const configMapName = "nat64kit-config"

// kustomization is the part of kustomize's Kustomization these manifests
// use; decoding strictly into it refuses any other field, so a misspelt
// key fails here rather than being ignored.
type kustomization struct {
	APIVersion         string   `json:"apiVersion"`
	Kind               string   `json:"kind"`
	Namespace          string   `json:"namespace"`
	Resources          []string `json:"resources"`
	ConfigMapGenerator []struct {
		Name  string   `json:"name"`
		Files []string `json:"files"`
	} `json:"configMapGenerator"`
	Images []struct {
		Name    string `json:"name"`
		NewTag  string `json:"newTag"`
		NewName string `json:"newName,omitempty"`
	} `json:"images"`
}

// manifests is every object of the kustomization, decoded.
type manifests struct {
	kust         kustomization
	namespaces   []*corev1.Namespace
	accounts     []*corev1.ServiceAccount
	services     []*corev1.Service
	configMaps   []*corev1.ConfigMap // only in kustomize's output
	deployments  []*appsv1.Deployment
	daemonSets   []*appsv1.DaemonSet
	clusterRoles []*rbacv1.ClusterRole
	bindings     []*rbacv1.ClusterRoleBinding
}

// decodeStrict decodes one YAML document into v, refusing unknown and
// duplicate fields; an error names the file, the document and, when it
// can be found, the line of the offending field.
//
// yaml.UnmarshalStrict alone is not enough: it ends in encoding/json,
// which matches field names case-insensitively, so "mountpath" would pass
// where the API server (case-sensitive, through sigs.k8s.io/json) drops
// or refuses it. The document is decoded again the API server's way.
func decodeStrict(file string, doc int, startLine int, data []byte, v any) error {
	where := fmt.Sprintf("%s: document %d", file, doc)
	if err := yaml.UnmarshalStrict(data, v); err != nil {
		return fieldError(file, where, startLine, data, err.Error())
	}
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return fmt.Errorf("%s: %v", where, err)
	}
	strict, err := sigsjson.UnmarshalStrict(js, v, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return fmt.Errorf("%s: %v", where, err)
	}
	var errs []error
	for _, e := range strict {
		errs = append(errs, fieldError(file, where, startLine, data, e.Error()))
	}
	return errors.Join(errs...)
}

// fieldError turns a decoder's message into "FILE:LINE: unknown field
// "PATH"" when it names an unknown field whose line can be found.
func fieldError(file, where string, startLine int, data []byte, msg string) error {
	m := unknownField.FindStringSubmatch(msg)
	if m == nil {
		return fmt.Errorf("%s: %s", where, msg)
	}
	field := m[1]
	if i := strings.LastIndexByte(field, '.'); i >= 0 {
		field = field[i+1:]
	}
	if n := lineOfKey(data, field); n > 0 {
		where = fmt.Sprintf("%s:%d", file, startLine+n-1)
	}
	return fmt.Errorf("%s: unknown field %q", where, m[1])
}

var unknownField = regexp.MustCompile(`unknown field "([^"]+)"`)

// lineOfKey is the 1-based line of the first "key:" in a YAML document.
func lineOfKey(data []byte, key string) int {
	re := regexp.MustCompile(`^\s*(- )?` + regexp.QuoteMeta(key) + `\s*:`)
	for i, l := range strings.Split(string(data), "\n") {
		if re.MatchString(l) {
			return i + 1
		}
	}
	return 0
}

// splitDocs splits a YAML stream at "---" lines, returning each
// document with the line it starts on.
func splitDocs(data []byte) (docs [][]byte, starts []int) {
	lines := strings.SplitAfter(string(data), "\n")
	var cur bytes.Buffer
	start := 1
	for i, l := range lines {
		if strings.TrimRight(l, "\r\n") == "---" {
			docs, starts = append(docs, bytes.Clone(cur.Bytes())), append(starts, start)
			cur.Reset()
			start = i + 2
			continue
		}
		cur.WriteString(l)
	}
	return append(docs, cur.Bytes()), append(starts, start)
}

// loadManifests decodes the kustomization in dir and every resource it
// lists into the Kubernetes API types, strictly.
func loadManifests(dir string) (*manifests, error) {
	m := &manifests{}
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	if err := decodeStrict("kustomization.yaml", 1, 1, data, &m.kust); err != nil {
		return nil, err
	}
	var errs []error
	for _, res := range m.kust.Resources {
		data, err := os.ReadFile(filepath.Join(dir, res))
		if err != nil {
			errs = append(errs, fmt.Errorf("kustomization.yaml: resource %s: %w", res, err))
			continue
		}
		errs = append(errs, m.decodeStream(res, data))
	}
	return m, errors.Join(errs...)
}

// decodeStream decodes every document of a YAML stream (a file, or what
// kustomize builds) into the API type its apiVersion and kind name.
func (m *manifests) decodeStream(file string, data []byte) error {
	var errs []error
	docs, starts := splitDocs(data)
	for i, doc := range docs {
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			errs = append(errs, fmt.Errorf("%s: document %d: %w", file, i+1, err))
			continue
		}
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "v1 Namespace":
			o := &corev1.Namespace{}
			m.namespaces, obj = append(m.namespaces, o), o
		case "v1 ServiceAccount":
			o := &corev1.ServiceAccount{}
			m.accounts, obj = append(m.accounts, o), o
		case "v1 Service":
			o := &corev1.Service{}
			m.services, obj = append(m.services, o), o
		case "v1 ConfigMap":
			o := &corev1.ConfigMap{}
			m.configMaps, obj = append(m.configMaps, o), o
		case "apps/v1 Deployment":
			o := &appsv1.Deployment{}
			m.deployments, obj = append(m.deployments, o), o
		case "apps/v1 DaemonSet":
			o := &appsv1.DaemonSet{}
			m.daemonSets, obj = append(m.daemonSets, o), o
		case "rbac.authorization.k8s.io/v1 ClusterRole":
			o := &rbacv1.ClusterRole{}
			m.clusterRoles, obj = append(m.clusterRoles, o), o
		case "rbac.authorization.k8s.io/v1 ClusterRoleBinding":
			o := &rbacv1.ClusterRoleBinding{}
			m.bindings, obj = append(m.bindings, o), o
		default:
			errs = append(errs, fmt.Errorf("%s:%d: apiVersion %q kind %q: not a kind these manifests use", file, starts[i], tm.APIVersion, tm.Kind))
			continue
		}
		if err := decodeStrict(file, i+1, starts[i], doc, obj); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func stripComments(doc []byte) []byte {
	var out []byte
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			out = append(append(out, l...), '\n')
		}
	}
	return out
}

func mustLoad(t *testing.T) *manifests {
	t.Helper()
	m, err := loadManifests(kubeDir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestManifestsDecodeStrictly(t *testing.T) {
	m := mustLoad(t)
	if len(m.deployments) != 1 || len(m.daemonSets) != 1 || len(m.services) != 1 || len(m.clusterRoles) != 1 || len(m.bindings) != 1 || len(m.accounts) != 1 || len(m.namespaces) != 1 {
		t.Errorf("want one Deployment, DaemonSet, Service, ClusterRole, binding, ServiceAccount and Namespace; have %d %d %d %d %d %d %d",
			len(m.deployments), len(m.daemonSets), len(m.services), len(m.clusterRoles), len(m.bindings), len(m.accounts), len(m.namespaces))
	}
	// Every YAML file in the folder is a resource: none is left out of
	// the kustomization (and so never decoded here).
	files, _ := filepath.Glob(filepath.Join(kubeDir, "*.yaml"))
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" && !slices.Contains(m.kust.Resources, b) {
			t.Errorf("%s is not in kustomization.yaml's resources", b)
		}
	}
}

// A misspelt field fails, naming the file, the line and the field.
func TestManifestTypoIsNamed(t *testing.T) {
	for _, c := range []struct {
		file, from, to, want string
	}{
		{"coredns.yaml", "          image: nat64kit/coredns", "          imagee: nat64kit/coredns", `coredns.yaml:`},
		{"nat64ctl.yaml", "      hostNetwork: true", "      hostNetwrok: true", `nat64ctl.yaml:`},
		{"nat64ctl.yaml", "              mountPath: /dev/net/tun", "              mountpath: /dev/net/tun", `nat64ctl.yaml:`},
		{"coredns-rbac.yaml", `    verbs: ["list", "watch"]`, `    verb: ["list", "watch"]`, `coredns-rbac.yaml:`},
		{"kustomization.yaml", "resources:", "resource:", `kustomization.yaml:`},
	} {
		t.Run(c.file+" "+strings.TrimSpace(c.to), func(t *testing.T) {
			dir := t.TempDir()
			entries, _ := os.ReadDir(kubeDir)
			for _, e := range entries {
				b, _ := os.ReadFile(filepath.Join(kubeDir, e.Name()))
				if e.Name() == c.file {
					if !bytes.Contains(b, []byte(c.from)) {
						t.Fatalf("%s has no %q", c.file, c.from)
					}
					b = bytes.Replace(b, []byte(c.from), []byte(c.to), 1)
				}
				os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644)
			}
			_, err := loadManifests(dir)
			field := strings.TrimSpace(strings.TrimPrefix(strings.SplitN(strings.TrimSpace(c.to), ":", 2)[0], "- "))
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), field+`"`) {
				t.Errorf("want an error naming %s and %q, got %v", c.want, field, err)
			}
			// The line is the typo's own.
			b, _ := os.ReadFile(filepath.Join(dir, c.file))
			n := bytes.Count(b[:bytes.Index(b, []byte(c.to))], []byte("\n")) + 1
			if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("%s:%d:", c.file, n)) {
				t.Errorf("want line %d of %s in %v", n, c.file, err)
			}
		})
	}
}

func imageName(ref string) string {
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		return ref[:i]
	}
	return ref
}

// Every container runs an image make image builds, at the tag it builds,
// with the image's entrypoint as its command, and as the image's user, so
// the pod and the image agree on who the process is.
func TestManifestImages(t *testing.T) {
	m := mustLoad(t)
	cl, err := release.ReadChangelog(filepath.Join(debDir, "changelog"))
	if err != nil {
		t.Fatal(err)
	}
	check := func(kind string, spec corev1.PodSpec, want string) {
		img := imageSpec(t, want)
		uid, err := strconv.ParseInt(strings.SplitN(img.User, ":", 2)[0], 10, 64)
		if err != nil {
			t.Fatalf("image %s: user %q: %v", img.Name, img.User, err)
		}
		for _, c := range append(spec.InitContainers, spec.Containers...) {
			if imageName(c.Image) != want {
				t.Errorf("%s container %s: image %q, want %s", kind, c.Name, c.Image, want)
			}
			if !slices.Equal(c.Command, img.Entrypoint()) {
				t.Errorf("%s container %s: command %q, want the image's entrypoint %q", kind, c.Name, c.Command, img.Entrypoint())
			}
			runAs := (*int64)(nil)
			if spec.SecurityContext != nil {
				runAs = spec.SecurityContext.RunAsUser
			}
			if c.SecurityContext != nil && c.SecurityContext.RunAsUser != nil {
				runAs = c.SecurityContext.RunAsUser
			}
			if runAs == nil {
				t.Errorf("%s container %s: no runAsUser, want %d, the image's user %s", kind, c.Name, uid, img.User)
			} else if *runAs != uid {
				t.Errorf("%s container %s: runAsUser %d, want %d, the image's user %s", kind, c.Name, *runAs, uid, img.User)
			}
		}
	}
	for _, d := range m.deployments {
		check("Deployment "+d.Name, d.Spec.Template.Spec, corednsImage)
	}
	for _, d := range m.daemonSets {
		check("DaemonSet "+d.Name, d.Spec.Template.Spec, nat64ctlImage)
	}
	var names []string
	for _, im := range m.kust.Images {
		names = append(names, im.Name)
		// The version tag, not latest: kind and a node that loaded the
		// archive use it as it is (IfNotPresent), where :latest is pulled.
		if want := release.ImageTag(cl.Version); im.NewTag != want {
			t.Errorf("kustomization images: %s tag %q, want %q (deploy/debian/changelog's version, which make image tags)", im.Name, im.NewTag, want)
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{corednsImage, nat64ctlImage}) {
		t.Errorf("kustomization images: %q, want %s and %s", names, corednsImage, nat64ctlImage)
	}
}

// The objects fit together: selectors, the generated ConfigMap and its
// mounts, the paths the commands read, RBAC, and the translator's
// privileges (exactly NET_ADMIN and BPF, the TUN device, the node's network).
func TestManifestWiring(t *testing.T) {
	m := mustLoad(t)
	if len(m.kust.ConfigMapGenerator) != 1 || m.kust.ConfigMapGenerator[0].Name != configMapName ||
		!slices.Equal(m.kust.ConfigMapGenerator[0].Files, []string{"Corefile", "nat64.toml"}) {
		t.Errorf("configMapGenerator: want %s from Corefile and nat64.toml, have %+v", configMapName, m.kust.ConfigMapGenerator)
	}
	if len(m.namespaces) == 1 && m.namespaces[0].Name != m.kust.Namespace {
		t.Errorf("Namespace %s, kustomization namespace %s", m.namespaces[0].Name, m.kust.Namespace)
	}
	// configDir is where a pod spec mounts the ConfigMap.
	configDir := func(what string, spec corev1.PodSpec) string {
		vol := ""
		for _, v := range spec.Volumes {
			if v.ConfigMap != nil && v.ConfigMap.Name == configMapName {
				vol = v.Name
			}
		}
		for _, vm := range spec.Containers[0].VolumeMounts {
			if vm.Name == vol {
				return vm.MountPath
			}
		}
		t.Errorf("%s does not mount ConfigMap %s", what, configMapName)
		return "/nonexistent"
	}

	for _, d := range m.deployments {
		what := "Deployment " + d.Name
		labels := d.Spec.Template.Labels
		for k, v := range d.Spec.Selector.MatchLabels {
			if labels[k] != v {
				t.Errorf("%s: selector %s=%s does not match its pods", what, k, v)
			}
		}
		spec := d.Spec.Template.Spec
		dir := configDir(what, spec)
		c := spec.Containers[0]
		if !slices.Equal(c.Args, []string{"-conf", dir + "/Corefile"}) || c.WorkingDir != dir {
			t.Errorf("%s: args %q in %s; want -conf %s/Corefile run in %s (where instances nat64.toml resolves)", what, c.Args, c.WorkingDir, dir, dir)
		}
		for _, svc := range m.services {
			for k, v := range svc.Spec.Selector {
				if labels[k] != v {
					t.Errorf("Service %s: selector %s=%s does not match %s", svc.Name, k, v, what)
				}
			}
		}
		bound := false
		for _, b := range m.bindings {
			for _, s := range b.Subjects {
				bound = bound || s.Kind == "ServiceAccount" && s.Name == spec.ServiceAccountName && s.Namespace == m.kust.Namespace
			}
		}
		if !bound {
			t.Errorf("%s: its ServiceAccount %q is bound by no ClusterRoleBinding", what, spec.ServiceAccountName)
		}
		if sc := c.SecurityContext; sc == nil || sc.Capabilities == nil || len(sc.Capabilities.Add) != 0 || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("%s: want every capability dropped and none added", what)
		}
	}
	// The kubernetes plugin's reads, and nothing that writes.
	need := map[string]bool{"/endpoints": true, "/services": true, "/namespaces": true, "discovery.k8s.io/endpointslices": true}
	for _, r := range m.clusterRoles {
		for _, rule := range r.Rules {
			for _, v := range rule.Verbs {
				if v != "list" && v != "watch" {
					t.Errorf("ClusterRole %s grants %q", r.Name, v)
				}
			}
			for _, g := range rule.APIGroups {
				for _, res := range rule.Resources {
					delete(need, g+"/"+res)
				}
			}
		}
	}
	if len(need) > 0 {
		t.Errorf("ClusterRole lacks list/watch on %v", need)
	}

	for _, d := range m.daemonSets {
		what := "DaemonSet " + d.Name
		spec := d.Spec.Template.Spec
		for k, v := range d.Spec.Selector.MatchLabels {
			if d.Spec.Template.Labels[k] != v {
				t.Errorf("%s: selector %s=%s does not match its pods", what, k, v)
			}
		}
		if spec.NodeSelector["nat64kit.io/gateway"] != "true" || !spec.HostNetwork {
			t.Errorf("%s: want nodeSelector nat64kit.io/gateway=true and hostNetwork", what)
		}
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Errorf("%s: nat64ctl needs no API token; set automountServiceAccountToken: false", what)
		}
		c := spec.Containers[0]
		dir := configDir(what, spec)
		if !slices.Equal(c.Args, []string{"run", "-c", dir + "/nat64.toml", "--instance", "$(NODE_NAME)"}) {
			t.Errorf("%s: args %q", what, c.Args)
		}
		if len(c.Env) != 1 || c.Env[0].Name != "NODE_NAME" || c.Env[0].ValueFrom == nil || c.Env[0].ValueFrom.FieldRef == nil || c.Env[0].ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
			t.Errorf("%s: NODE_NAME must come from spec.nodeName", what)
		}
		sc := c.SecurityContext
		if sc == nil || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Add, []corev1.Capability{"NET_ADMIN", "BPF"}) || !slices.Contains(sc.Capabilities.Drop, "ALL") ||
			sc.Privileged != nil && *sc.Privileged || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s: want exactly NET_ADMIN and BPF (the fast path) added, ALL dropped, not privileged, no privilege escalation", what)
		}
		tun := ""
		for _, v := range spec.Volumes {
			if v.HostPath != nil && v.HostPath.Path == "/dev/net/tun" && v.HostPath.Type != nil && *v.HostPath.Type == corev1.HostPathCharDev {
				tun = v.Name
			}
		}
		mounted := false
		for _, vm := range c.VolumeMounts {
			mounted = mounted || vm.Name == tun && vm.MountPath == "/dev/net/tun"
		}
		if tun == "" || !mounted {
			t.Errorf("%s: want hostPath /dev/net/tun (CharDevice) mounted at /dev/net/tun", what)
		}
	}
}

// The ConfigMap's two files, as the operator edits them, pass the real
// `nat64ctl check`: every dns64 prefix is owned by an instance and every
// instance's prefix is in use.
func TestManifestConfigPassesCheck(t *testing.T) {
	ctl := binary(t, "nat64ctl")
	out, err := exec.Command(ctl, "check", "-c", filepath.Join(kubeDir, "nat64.toml"), "--corefile", filepath.Join(kubeDir, "Corefile")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok: every dns64 prefix is owned") {
		t.Errorf("nat64ctl check: %v\n%s", err, out)
	}
}

// The DaemonSet's arguments are flags nat64ctl really has: run with them
// (the ConfigMap's nat64.toml, a node with no instance) it gets as far as
// looking the node's instance up.
func TestManifestDaemonSetArgsMatchCLI(t *testing.T) {
	ctl := binary(t, "nat64ctl")
	m := mustLoad(t)
	for _, d := range m.daemonSets {
		c := d.Spec.Template.Spec.Containers[0]
		cfg := filepath.Join(kubeDir, "nat64.toml")
		var args []string
		for _, a := range c.Args {
			args = append(args, strings.NewReplacer("$(NODE_NAME)", "not-a-gateway", "/etc/nat64kit/nat64.toml", cfg).Replace(a))
		}
		out, err := exec.Command(ctl, args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), fmt.Sprintf(`no instance "not-a-gateway" in %s`, cfg)) {
			t.Errorf("DaemonSet %s: nat64ctl %q: %v\n%s", d.Name, args, err, out)
		}
	}
}
