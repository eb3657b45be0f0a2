// A small CRI client for the NRI tests: it does what the kubelet does to run a pod's containers
// (RunPodSandbox, CreateContainer, StartContainer, StopContainer, RemoveContainer,
// StopPodSandbox, RemovePodSandbox), and builds the OCI image archive the tests import.
// Built with Debian's packages only (GO111MODULE=off; golang-github-kubernetes-cri-api-dev,
// golang-google-grpc-dev).
//
//	cri image ROOTFS NAME OUT.tar          an OCI image archive of ROOTFS, named NAME
//	cri -socket S pod SPEC                 RunPodSandbox; prints the pod's id
//	cri -socket S create POD_ID SPEC       CreateContainer; prints the container's id
//	cri -socket S start|stop|rm ID         StartContainer, StopContainer (timeout 0), RemoveContainer
//	cri -socket S stoppod|rmpod ID         StopPodSandbox, RemovePodSandbox
//	cri -socket S cycle POD_ID SPEC N      N times: create and start a container (timed: one line
//	                                       of microseconds each), then stop and remove it
//	cri -socket S many POD_ID SPEC N       create and start N containers named NAME-1 to NAME-N;
//	                                       prints their ids
//	cri -socket S update ID CPUSET         UpdateContainerResources: the container's new cpuset
//
// SPEC is JSON: {"name", "namespace", "annotations", "image", "cpuset", "command", "pod"} (the
// pod's spec again when creating a container, as the kubelet passes it).
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	goruntime "runtime"
)

type spec struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace"`
	Annotations map[string]string `json:"annotations"`
	Image       string            `json:"image"`
	Cpuset      string            `json:"cpuset"`
	Command     []string          `json:"command"`
	Pod         *spec             `json:"pod"`
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "cri: "+format+"\n", args...)
	os.Exit(1)
}

func parse(text string) *spec {
	var s spec
	if err := json.Unmarshal([]byte(text), &s); err != nil {
		fail("spec: %v", err)
	}
	return &s
}

// podConfig is the configuration of pod s, as the kubelet sends it with RunPodSandbox and again
// with each CreateContainer. Its containers' logs go to the test's directory as containerd sees
// it (containerd makes the directory when it starts one), and are removed with it.
func podConfig(s *spec) *runtime.PodSandboxConfig {
	uid := s.Namespace + "-" + s.Name
	return &runtime.PodSandboxConfig{
		Metadata:     &runtime.PodSandboxMetadata{Name: s.Name, Namespace: s.Namespace, Uid: uid, Attempt: 0},
		LogDirectory: "/mnt/test/logs/" + uid,
		Annotations:  s.Annotations,
		Linux: &runtime.LinuxPodSandboxConfig{
			SecurityContext: &runtime.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE},
			},
		},
	}
}

func main() {
	socket := flag.String("socket", "/run/containerd/containerd.sock", "containerd's socket")
	flag.Parse()
	args := flag.Args()
	if len(args) == 0 {
		fail("no command")
	}
	if args[0] == "image" {
		if len(args) != 4 {
			fail("image ROOTFS NAME OUT")
		}
		image(args[1], args[2], args[3])
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+*socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fail("%v", err)
	}
	defer conn.Close()
	client := runtime.NewRuntimeServiceClient(conn)
	one := func(n int) {
		if len(args) != n+1 {
			fail("%s takes %d arguments", args[0], n)
		}
	}
	switch args[0] {
	case "pod":
		one(1)
		s := parse(args[1])
		rpl, err := client.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig(s)})
		if err != nil {
			fail("%v", err)
		}
		fmt.Println(rpl.PodSandboxId)
	case "create":
		one(2)
		id, err := create(ctx, client, args[1], parse(args[2]))
		if err != nil {
			fail("%v", err)
		}
		fmt.Println(id)
	case "cycle":
		one(3)
		var n int
		fmt.Sscan(args[3], &n)
		s := parse(args[2])
		for i := 0; i < n; i++ {
			begin := time.Now()
			id, err := create(ctx, client, args[1], s)
			if err == nil {
				_, err = client.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: id})
			}
			if err != nil {
				fail("%v", err)
			}
			fmt.Println(time.Since(begin).Microseconds())
			client.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: id, Timeout: 0})
			client.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: id})
		}
	case "many":
		one(3)
		var n int
		fmt.Sscan(args[3], &n)
		for i := 1; i <= n; i++ {
			s := parse(args[2])
			s.Name = fmt.Sprintf("%s-%d", s.Name, i)
			id, err := create(ctx, client, args[1], s)
			if err == nil {
				_, err = client.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: id})
			}
			if err != nil {
				fail("%v", err)
			}
			fmt.Println(id)
		}
	case "update":
		one(2)
		_, err = client.UpdateContainerResources(ctx, &runtime.UpdateContainerResourcesRequest{
			ContainerId: args[1], Linux: &runtime.LinuxContainerResources{CpusetCpus: args[2]},
		})
	case "start":
		one(1)
		_, err = client.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: args[1]})
	case "stop":
		one(1)
		_, err = client.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: args[1], Timeout: 0})
	case "rm":
		one(1)
		_, err = client.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: args[1]})
	case "stoppod":
		one(1)
		_, err = client.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: args[1]})
	case "rmpod":
		one(1)
		_, err = client.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: args[1]})
	default:
		fail("unknown command %q", args[0])
	}
	if err != nil {
		fail("%v", err)
	}
}

// create is CreateContainer of spec s in pod podID, as the kubelet asks it.
func create(ctx context.Context, client runtime.RuntimeServiceClient, podID string, s *spec) (string, error) {
	if s.Pod == nil {
		return "", fmt.Errorf("create: the spec names no pod")
	}
	config := &runtime.ContainerConfig{
		Metadata:    &runtime.ContainerMetadata{Name: s.Name},
		Image:       &runtime.ImageSpec{Image: s.Image},
		Command:     s.Command,
		Annotations: s.Annotations,
		LogPath:     s.Name + ".log",
		Linux: &runtime.LinuxContainerConfig{
			Resources: &runtime.LinuxContainerResources{CpusetCpus: s.Cpuset},
		},
	}
	rpl, err := client.CreateContainer(ctx, &runtime.CreateContainerRequest{
		PodSandboxId: podID, Config: config, SandboxConfig: podConfig(s.Pod),
	})
	if err != nil {
		return "", err
	}
	return rpl.ContainerId, nil
}

// blob is content and its digest.
type blob struct {
	data   []byte
	digest string
}

func newBlob(data []byte) blob {
	return blob{data, fmt.Sprintf("sha256:%x", sha256.Sum256(data))}
}

// image writes an OCI image archive (oci-layout, index.json, blobs) of rootfs as one
// uncompressed layer, whose default command is `sleep 100000` (the pod's sandbox runs it).
func image(rootfs, name, out string) {
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	err := filepath.WalkDir(rootfs, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(rootfs, path)
		if rel == "." {
			return nil
		}
		info, err := os.Lstat(path)
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&os.ModeSymlink != 0 {
			link, _ = os.Readlink(path)
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = rel
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		}
		return nil
	})
	if err != nil {
		fail("%v", err)
	}
	tw.Close()
	layerBlob := newBlob(layer.Bytes())
	config, _ := json.Marshal(map[string]interface{}{
		"architecture": goruntime.GOARCH,
		"os":           "linux",
		"config":       map[string]interface{}{"Cmd": []string{"sleep", "100000"}, "Env": []string{"PATH=/bin"}},
		"rootfs":       map[string]interface{}{"type": "layers", "diff_ids": []string{layerBlob.digest}},
	})
	configBlob := newBlob(config)
	manifest, _ := json.Marshal(map[string]interface{}{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]interface{}{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": configBlob.digest, "size": len(config)},
		"layers":        []interface{}{map[string]interface{}{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layerBlob.digest, "size": len(layerBlob.data)}},
	})
	manifestBlob := newBlob(manifest)
	index, _ := json.Marshal(map[string]interface{}{
		"schemaVersion": 2,
		"manifests": []interface{}{map[string]interface{}{
			"mediaType":   "application/vnd.oci.image.manifest.v1+json",
			"digest":      manifestBlob.digest,
			"size":        len(manifest),
			"annotations": map[string]string{"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name},
		}},
	})
	f, err := os.Create(out)
	if err != nil {
		fail("%v", err)
	}
	aw := tar.NewWriter(f)
	put := func(name string, data []byte) {
		aw.WriteHeader(&tar.Header{Name: name, Mode: 0644, Size: int64(len(data)), Typeflag: tar.TypeReg})
		aw.Write(data)
	}
	put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	put("index.json", index)
	for _, b := range []blob{layerBlob, configBlob, manifestBlob} {
		put("blobs/sha256/"+b.digest[len("sha256:"):], b.data)
	}
	if err := aw.Close(); err != nil {
		fail("%v", err)
	}
	if err := f.Close(); err != nil {
		fail("%v", err)
	}
}
