// Command demoserver is the IPv4-only web server of `make demo`: its page
// says which address the connection came from, which for a client behind
// NAT64 is the translator's pool4 address.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"time"
)

func main() {
	listen := flag.String("listen", "0.0.0.0:80", "address to serve on")
	flag.Parse()
	srv := &http.Server{
		Addr: *listen,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "hello from the IPv4-only server %s; you came from %s\n", r.Host, r.RemoteAddr)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	log.Fatal(srv.ListenAndServe())
}
