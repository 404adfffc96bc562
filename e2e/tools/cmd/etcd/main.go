// Command etcd is etcd's server built from go.etcd.io/etcd/server/v3 at the
// version the pinned Kubernetes release uses; it does what etcd's own main does.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
