package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// kustomize itself (the library behind `kubectl apply -k`) builds the
// folder; what it emits decodes strictly too, and it did what the
// manifests count on: one ConfigMap holding the two files under a
// content-hashed name that every pod's volume now refers to, the images'
// tags, and the namespace on every namespaced object.
func TestKustomizeBuild(t *testing.T) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), kubeDir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", kubeDir, err)
	}
	out, err := res.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	m := &manifests{}
	if err := m.decodeStream("kustomize build "+kubeDir, out); err != nil {
		t.Fatal(err)
	}
	src := mustLoad(t)
	ns := src.kust.Namespace

	if len(m.configMaps) != 1 {
		t.Fatalf("want one generated ConfigMap, got %d", len(m.configMaps))
	}
	cm := m.configMaps[0]
	if !strings.HasPrefix(cm.Name, configMapName+"-") || cm.Name == configMapName+"-" || cm.Namespace != ns {
		t.Errorf("ConfigMap %s/%s: want %s/%s-HASH", cm.Namespace, cm.Name, ns, configMapName)
	}
	for _, f := range []string{"Corefile", "nat64.toml"} {
		want, _ := os.ReadFile(filepath.Join(kubeDir, f))
		if cm.Data[f] != string(want) {
			t.Errorf("ConfigMap key %s differs from %s/%s", f, kubeDir, f)
		}
	}
	refs := func(what string, spec corev1.PodSpec) {
		found := false
		for _, v := range spec.Volumes {
			if v.ConfigMap != nil {
				found = true
				if v.ConfigMap.Name != cm.Name {
					t.Errorf("%s: volume %s refers to ConfigMap %s, not the generated %s", what, v.Name, v.ConfigMap.Name, cm.Name)
				}
			}
		}
		if !found {
			t.Errorf("%s mounts no ConfigMap", what)
		}
	}
	tags := map[string]string{}
	for _, im := range src.kust.Images {
		tags[im.Name] = im.Name + ":" + im.NewTag
	}
	for _, d := range m.deployments {
		refs("Deployment "+d.Name, d.Spec.Template.Spec)
		if img := d.Spec.Template.Spec.Containers[0].Image; img != tags[corednsImage] || d.Namespace != ns {
			t.Errorf("Deployment %s/%s: image %s, want %s in %s", d.Namespace, d.Name, img, tags[corednsImage], ns)
		}
	}
	for _, d := range m.daemonSets {
		refs("DaemonSet "+d.Name, d.Spec.Template.Spec)
		if img := d.Spec.Template.Spec.Containers[0].Image; img != tags[nat64ctlImage] || d.Namespace != ns {
			t.Errorf("DaemonSet %s/%s: image %s, want %s in %s", d.Namespace, d.Name, img, tags[nat64ctlImage], ns)
		}
	}
	for _, s := range m.services {
		if s.Namespace != ns {
			t.Errorf("Service %s in namespace %q", s.Name, s.Namespace)
		}
	}
	for _, b := range m.bindings {
		for _, s := range b.Subjects {
			if s.Namespace != ns {
				t.Errorf("ClusterRoleBinding %s: subject %s in namespace %q", b.Name, s.Name, s.Namespace)
			}
		}
	}
}
