// Command gorouter is the original proof of concept's router example,
// re-created for wire-compatibility tests only. It prints the addresses
// it bound, "tunnels HOST:PORT" then "http HOST:PORT", and one
// "Tunnel added: ADDR" line per backend, all on stdout.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"

	"ptth"
)

func main() {
	httpAddr := flag.String("http", ":8888", "address for HTTP traffic")
	tunnelAddr := flag.String("tunnels", ":8887", "address for reverse tunnels")
	flag.Parse()
	log.SetOutput(os.Stdout)
	log.SetFlags(0)

	tln, err := net.Listen("tcp", *tunnelAddr)
	if err != nil {
		log.Fatal(err)
	}
	hln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("tunnels", tln.Addr())
	fmt.Println("http", hln.Addr())

	var router ptth.Router
	go func() { log.Fatal(router.AcceptTunnels(tln)) }()
	log.Fatal(http.Serve(hln, &router))
}
