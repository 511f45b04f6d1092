// A container runtime in a few lines: libcni (the library runtimes use to call plugins)
// drives one network's ADD, CHECK or DEL for one Pod, as tests/libcni.rs asks.
//
// Usage: driver add|check|del CONF_FILE CACHE_DIR CONTAINER_ID NETNS POD_NAME
// with CNI_PATH set (the directories libcni looks for plugins in). ADD prints the result.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/libcni"
)

func main() {
	if len(os.Args) != 7 {
		fmt.Fprintln(os.Stderr, "usage: driver add|check|del CONF_FILE CACHE_DIR CONTAINER_ID NETNS POD_NAME")
		os.Exit(2)
	}
	op, confFile, cacheDir, id, netns, pod := os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5], os.Args[6]
	conf, err := libcni.ConfFromFile(confFile)
	if err != nil {
		fail(err)
	}
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(os.Getenv("CNI_PATH")), cacheDir, nil)
	rt := &libcni.RuntimeConf{
		ContainerID: id,
		NetNS:       netns,
		IfName:      "eth0",
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", "default"},
			{"K8S_POD_NAME", pod},
		},
	}
	ctx := context.Background()
	switch op {
	case "add":
		result, err := cni.AddNetwork(ctx, conf, rt)
		if err != nil {
			fail(err)
		}
		if err := result.Print(); err != nil {
			fail(err)
		}
	case "check":
		err = cni.CheckNetwork(ctx, conf, rt)
	case "del":
		err = cni.DelNetwork(ctx, conf, rt)
	default:
		err = fmt.Errorf("unknown operation %q", op)
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
